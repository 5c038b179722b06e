"""Feature flags: posthog-python's flag API on top of libposthog's C flags API.

Every call goes through a C snapshot (``posthog_evaluate_flags``): one
``/flags`` request at most (none when the flags can be decided locally with a
``secret_key``/``personal_api_key``), and reading a flag through the snapshot
captures ``$feature_flag_called`` once per (distinct_id, flag, value, groups),
as posthog-python does. A call never raises because the server failed: the
flag is then unknown (``None``) and the C library logs why.

The snapshot object of :meth:`FlagsMixin.evaluate_flags` holds the C snapshot
and frees it (``posthog_flags_free``) when the last view of it is collected.
"""

from __future__ import annotations

import ctypes
import importlib
import json
import logging
import os
import threading
import weakref
from ctypes import POINTER, Structure, c_char_p, c_int, c_int64, c_size_t, c_void_p
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Union

from . import _native
from ._serialize import clean, dumps, dumps_clean_fast, stringify_id

log = logging.getLogger("libposthog")

FlagValue = Union[bool, str]

# How long load_feature_flags() waits for the definitions poll it starts.
LOAD_TIMEOUT_MS = 10000


# ------------------------------------------------------------------ C declarations


class FlagsOptions(Structure):
    """posthog_flags_options_t (zero = every member not set)."""

    _fields_ = [
        ("person_properties_json", c_char_p),
        ("groups_json", c_char_p),
        ("group_properties_json", c_char_p),
        ("flag_keys", POINTER(c_char_p)),  # NULL-terminated
        ("device_id", c_char_p),
        ("disable_geoip", c_int),  # posthog_tristate_t
        ("send_feature_flag_events", c_int),  # posthog_tristate_t
        ("only_evaluate_locally", c_int),
        ("force_remote", c_int),
    ]


class Flag(Structure):
    """posthog_flag_t (strings owned by the snapshot)."""

    _fields_ = [
        ("key", c_char_p),
        ("enabled", c_int),
        ("variant", c_char_p),
        ("payload_json", c_char_p),
        ("reason", c_char_p),
        ("locally_evaluated", c_int),
        ("id", c_int64),
        ("version", c_int64),
    ]


_declared_lock = threading.Lock()
_declared: Optional[ctypes.CDLL] = None


def _lib() -> ctypes.CDLL:
    """The C library with the flag functions declared (once)."""
    global _declared
    lib = _native.load()
    if _declared is lib:
        return lib
    with _declared_lock:
        if _declared is not lib:

            def fn(name, restype, *argtypes):
                f = getattr(lib, name)
                f.restype = restype
                f.argtypes = list(argtypes)

            fn("posthog_evaluate_flags", c_int, c_void_p, c_char_p, POINTER(FlagsOptions),
               POINTER(c_void_p))
            fn("posthog_flags_get", c_int, c_void_p, c_char_p, POINTER(Flag))
            fn("posthog_flags_peek", c_int, c_void_p, c_char_p, POINTER(Flag))
            fn("posthog_flags_payload", c_char_p, c_void_p, c_char_p)
            fn("posthog_flags_count", c_size_t, c_void_p)
            fn("posthog_flags_key", c_char_p, c_void_p, c_size_t)
            fn("posthog_flags_error", c_char_p, c_void_p, c_char_p, c_size_t)
            fn("posthog_flags_free", None, c_void_p)
            fn("posthog_wait_for_flag_definitions", c_int, c_void_p, c_int)
            fn("posthog_reload_feature_flags", c_int, c_void_p, c_int)
            fn("posthog_get_feature_flag", c_int, c_void_p, c_char_p, c_char_p,
               POINTER(FlagsOptions), c_char_p, c_size_t)
            _declared = lib
    return lib


# ------------------------------------------------------------------ results


def _decode_payload(text: Optional[bytes]) -> Any:
    """A payload's JSON text as a Python value, like posthog-python's
    _parse_flag_payload: None when there is none or it is not JSON (logged)."""
    if text is None:
        return None
    try:
        return json.loads(text.decode("utf-8", "replace"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        log.warning("[FEATURE FLAGS] Unable to parse flag payload as JSON")
        return None


def _reject_constant(_value: str) -> Any:
    raise ValueError("Invalid JSON constant")


def _text(b: Optional[bytes]) -> Optional[str]:
    return None if b is None else b.decode("utf-8", "replace")


@dataclass(frozen=True)
class FeatureFlagResult:
    """posthog-python's FeatureFlagResult: a flag's value with its payload
    (decoded JSON) and the reason the server gave (None when evaluated
    locally or unknown)."""

    key: str
    enabled: bool
    variant: Optional[str]
    payload: Optional[Any]
    reason: Optional[str]

    def get_value(self) -> FlagValue:
        """The variant when there is one, else enabled (the
        ``$feature_flag_response`` of the event)."""
        return self.variant or self.enabled


@dataclass(frozen=True)
class _Record:
    key: str
    enabled: bool
    variant: Optional[str]
    payload: Any
    reason: Optional[str]
    locally_evaluated: bool
    id: Optional[int]
    version: Optional[int]
    payload_text: Optional[str] = None  # the payload's JSON text as sent

    @property
    def value(self) -> FlagValue:
        if not self.enabled:
            return False
        return self.variant if self.variant is not None else True

    def result(self) -> FeatureFlagResult:
        return FeatureFlagResult(self.key, self.enabled, self.variant, self.payload, self.reason)


def _record(f: Flag) -> _Record:
    return _Record(
        key=_text(f.key) or "",
        enabled=bool(f.enabled),
        variant=_text(f.variant),
        payload=_decode_payload(f.payload_json),
        reason=_text(f.reason),
        locally_evaluated=bool(f.locally_evaluated),
        id=int(f.id) if f.id >= 0 else None,
        version=int(f.version) if f.version >= 0 else None,
        payload_text=_text(f.payload_json),
    )


# ------------------------------------------------------------------ C snapshot


class _Snapshot:
    """Owns one C snapshot (posthog_flags_t*), shared by a
    FeatureFlagEvaluations and its only()/only_accessed() views; freed
    (posthog_flags_free) when the last of them is collected. Holds the client,
    so the C client outlives it."""

    __slots__ = ("ptr", "client", "error", "__weakref__")

    def __init__(self, ptr: int, client: Any):
        self.ptr = ptr
        self.client = client
        buf = ctypes.create_string_buffer(256)
        self.error = _lib().posthog_flags_error(ptr, buf, len(buf)).decode("utf-8", "replace") \
            if ptr else ""
        if ptr:
            weakref.finalize(self, _lib().posthog_flags_free, ptr)

    def client_alive(self) -> bool:
        handle = getattr(self.client, "_handle", None)
        return bool(self.ptr) and handle is not None and bool(handle.ptr)

    def records(self) -> Dict[str, _Record]:
        """Every flag of the snapshot, read without capturing an event."""
        out: Dict[str, _Record] = {}
        if not self.ptr:
            return out
        lib = _lib()
        f = Flag()
        for i in range(int(lib.posthog_flags_count(self.ptr))):
            key = lib.posthog_flags_key(self.ptr, i)
            if key is not None and lib.posthog_flags_peek(self.ptr, key, ctypes.byref(f)):
                r = _record(f)
                out[r.key] = r
        return out

    def read(self, key: str) -> Optional[_Record]:
        """posthog_flags_get: the flag (None when the snapshot does not have
        it), capturing $feature_flag_called when the snapshot sends events."""
        if not self.client_alive():
            return None
        from .client import _depth, _tls  # the capture path's per-thread state

        f = Flag()
        _tls.capture = _depth("capture") + 1  # a capture-time drop is not on_error's
        _tls.raise_after = None
        try:
            found = _lib().posthog_flags_get(self.ptr, key.encode("utf-8"), ctypes.byref(f))
            rec = _record(f) if found else None
        finally:
            _tls.capture -= 1
        pending, _tls.raise_after = getattr(_tls, "raise_after", None), None
        if pending is not None:
            raise pending  # before_send raised KeyboardInterrupt/SystemExit
        return rec


class FeatureFlagEvaluations:
    """posthog-python's FeatureFlagEvaluations: the flags of one distinct_id,
    evaluated once (Posthog.evaluate_flags).

    ``is_enabled``/``get_flag`` capture ``$feature_flag_called`` on the first
    read of each flag (deduplicated by the C library); ``get_flag_payload``,
    ``keys`` and ``only``/``only_accessed`` are silent. Pass the snapshot to
    ``capture(..., flags=snapshot)`` to add ``$feature/<key>`` and
    ``$active_feature_flags`` to an event without another request.

    A view from ``only()``/``only_accessed()`` answers for its own flags; a
    flag it left out reads as missing (``default_value``/None) and, unlike
    posthog-python, captures no ``$feature_flag_called`` for it.
    """

    def __init__(self, snapshot: _Snapshot, distinct_id: Optional[str],
                 groups: Optional[Mapping[str, Any]], flags: Dict[str, _Record],
                 accessed: Optional[Set[str]] = None, view: bool = False):
        self._snapshot = snapshot
        self._distinct_id = distinct_id
        self._groups = dict(groups or {})
        self._flags = flags
        self._accessed: Set[str] = set(accessed or ())
        self._view = view

    # ------------------------------------------------------------ reads

    def _access(self, key: str) -> Optional[_Record]:
        key = str(key)
        self._accessed.add(key)
        rec = self._flags.get(key)
        if rec is None and self._view:
            return None  # left out of this view: no event (see the class doc)
        try:
            self._snapshot.read(key)  # the exposure event, through the C snapshot
        except Exception as e:  # never let the event break the caller's branch
            log.error("feature flags: reading %r: %s", key, e)
        return rec

    def is_enabled(self, key: str, default_value: bool = False) -> bool:
        """Whether the flag is on; default_value when this evaluation has no
        value for it (a disabled flag is False whatever default_value says)."""
        rec = self._access(key)
        return rec.enabled if rec is not None else default_value

    def get_flag(self, key: str) -> Optional[FlagValue]:
        """The variant, True, False, or None when this evaluation has no value."""
        rec = self._access(key)
        return rec.value if rec is not None else None

    def get_flag_payload(self, key: str) -> Optional[Any]:
        """The flag's payload (decoded JSON), or None; captures no event and
        does not count as an access."""
        rec = self._flags.get(str(key))
        return rec.payload if rec is not None else None

    @property
    def keys(self) -> List[str]:
        """The flag keys of this evaluation."""
        return list(self._flags.keys())

    @property
    def error(self) -> str:
        """What went wrong for the whole evaluation, as $feature_flag_error
        spells it ("" when nothing): libposthog extra."""
        return self._snapshot.error

    # ------------------------------------------------------------ views

    def only_accessed(self) -> "FeatureFlagEvaluations":
        """A copy with the flags read through is_enabled/get_flag so far
        (empty when none was)."""
        return self._clone({k: v for k, v in self._flags.items() if k in self._accessed})

    def only(self, keys: Iterable[str]) -> "FeatureFlagEvaluations":
        """A copy with the given flags; keys this evaluation does not have are
        dropped and logged as a warning."""
        picked: Dict[str, _Record] = {}
        missing: List[str] = []
        for k in keys:
            rec = self._flags.get(k)
            if rec is not None:
                picked[k] = rec
            else:
                missing.append(k)
        if missing:
            log.warning(
                "FeatureFlagEvaluations.only() was called with flag keys that are not in the "
                "evaluation set and will be dropped: %s", ", ".join(missing))
        return self._clone(picked)

    def _clone(self, flags: Dict[str, _Record]) -> "FeatureFlagEvaluations":
        return FeatureFlagEvaluations(self._snapshot, self._distinct_id, self._groups, flags,
                                      accessed=self._accessed, view=True)

    # ------------------------------------------------------------ capture(flags=...)

    def _get_event_properties(self) -> Dict[str, Any]:
        props: Dict[str, Any] = {}
        active: List[str] = []
        for key, rec in self._flags.items():
            props["$feature/" + key] = rec.value
            if rec.enabled:
                active.append(key)
        if active:
            props["$active_feature_flags"] = sorted(active)
        return props

    def __len__(self) -> int:
        return len(self._flags)

    def __repr__(self) -> str:
        return "<libposthog.FeatureFlagEvaluations distinct_id=%r flags=%d>" % (
            self._distinct_id, len(self._flags))


# ------------------------------------------------------------------ one-flag fast path

# posthog_flag_state_t
_FLAG_UNKNOWN, _FLAG_DISABLED, _FLAG_ENABLED = -1, 0, 1
# A variant this long or longer may have been truncated: the snapshot path
# reads it whole.
_VARIANT_CAP = 256
# str -> UTF-8 bytes of flag keys (few, long-lived); cleared when it grows
# past this (keys are caller data, so the cache stays bounded).
_KEY_CACHE_MAX = 1024
_key_bytes: Dict[str, bytes] = {}


class _FastState:
    """One thread's reusable C arguments for posthog_get_feature_flag, all
    ready-made ctypes objects (the call converts nothing): the client
    pointer, the options struct (its int members rewritten only when they
    change), the variant buffer and its size. ``busy`` while a call is in C:
    a call made from a callback on the same thread (log, before_send) gets
    its own."""

    __slots__ = ("ptr", "ptr_arg", "opts", "opts_ref", "ints", "buf", "cap", "busy")

    def __init__(self) -> None:
        self.ptr = 0
        self.ptr_arg = c_void_p(0)
        self.opts = FlagsOptions()
        self.opts_ref = ctypes.byref(self.opts)
        self.ints = (0, 0, 0)  # (disable_geoip, send_feature_flag_events, only_evaluate_locally)
        self.buf = ctypes.create_string_buffer(_VARIANT_CAP)
        self.cap = c_size_t(_VARIANT_CAP)
        self.busy = False


_fast_tls = threading.local()
_capture_tls: Any = None  # client._tls, bound at the first call (client imports this module)
_fast_fn: Any = None  # posthog_get_feature_flag without argtypes (see _fast_call)


def _fast_state() -> _FastState:
    try:
        st = _fast_tls.state
    except AttributeError:
        st = _fast_tls.state = _FastState()
    return st if not st.busy else _FastState()


def _fast_call() -> Any:
    """posthog_get_feature_flag as a second function object without
    argtypes: _FastState passes exact ctypes objects and bytes, so the
    per-argument from_param conversions of the declared one are skipped."""
    global _fast_fn
    lib = _lib()
    fn = _fast_fn
    if fn is None or fn.lib is not lib:
        f = lib["posthog_get_feature_flag"]  # a new object: the declared one keeps its argtypes
        f.restype = c_int
        f.argtypes = None
        f.lib = lib
        _fast_fn = fn = f
    return fn


# ------------------------------------------------------------------ client methods


def _json_object(value: Any, name: str) -> Optional[bytes]:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError("%s must be a dict, got %s" % (name, type(value).__name__))
    return dumps_clean_fast(value if type(value) is dict else dict(value))


def _str_arg(value: Any, name: str) -> Optional[bytes]:
    if value is None:
        return None
    s = value if isinstance(value, str) else stringify_id(value)
    if s is None:
        return None
    if "\x00" in s:
        raise ValueError("%s contains a NUL character" % name)
    return s.encode("utf-8")


def client_flag_options(personal_api_key: Optional[str], poll_interval: Any,
                        kwargs: Dict[str, Any]) -> Dict[str, str]:
    """The C options for posthog-python's flag keywords of Posthog():
    secret_key (or personal_api_key, its older name), poll_interval (seconds),
    feature_flags_request_timeout_seconds, feature_flags_request_max_retries
    and send_feature_flag_events. Removes the ones it uses from kwargs."""
    opts: Dict[str, str] = {}
    secret = kwargs.pop("secret_key", None) or personal_api_key
    if secret:
        opts["secret_key"] = str(secret).strip()
    if poll_interval is not None and (secret or poll_interval != 30):
        opts["poll_interval_ms"] = str(max(1, int(round(float(poll_interval) * 1000))))
    t = kwargs.pop("feature_flags_request_timeout_seconds", None)
    if t is not None:
        opts["feature_flags_request_timeout_ms"] = str(max(1, int(round(float(t) * 1000))))
    r = kwargs.pop("feature_flags_request_max_retries", None)
    if r is not None:
        opts["feature_flags_request_max_retries"] = str(int(r))
    s = kwargs.pop("send_feature_flag_events", None)
    if s is not None:
        opts["send_feature_flag_events"] = "1" if s else "0"
    return opts


_SLOW = object()  # _fast_flag: the snapshot path answers
_SLOW_QUIET = object()  # the same, without another $feature_flag_called


class FlagsMixin:
    """posthog-python's feature-flag methods, mixed into Posthog."""

    # set by Posthog
    _handle: Any
    disabled: bool
    disable_geoip: bool
    debug: bool

    def _evaluate(self, distinct_id: Any, *, groups: Any = None, person_properties: Any = None,
                  group_properties: Any = None, only_evaluate_locally: bool = False,
                  disable_geoip: Optional[bool] = None, flag_keys: Any = None,
                  device_id: Any = None, send_feature_flag_events: Optional[bool] = None,
                  ) -> _Snapshot:
        """A C snapshot (ptr 0 when the client is disabled or gone)."""
        handle = self._handle
        if handle is None or not handle.ptr:
            return _Snapshot(0, self)
        o = FlagsOptions()
        keep: List[Any] = []  # the C strings live until the call returns
        o.person_properties_json = _json_object(person_properties, "person_properties")
        o.groups_json = _json_object(groups, "groups")
        o.group_properties_json = _json_object(group_properties, "group_properties")
        if flag_keys is not None:
            if isinstance(flag_keys, (str, bytes)):
                raise TypeError("flag_keys must be a list of flag keys, not a string")
            enc = [_str_arg(k, "flag key") for k in flag_keys]
            arr = (c_char_p * (len(enc) + 1))(*[e for e in enc if e is not None], None)
            keep.append(arr)
            o.flag_keys = ctypes.cast(arr, POINTER(c_char_p))
        o.device_id = _str_arg(device_id, "device_id")
        if disable_geoip is None:
            disable_geoip = self.disable_geoip
        o.disable_geoip = _native.tristate(disable_geoip)
        o.send_feature_flag_events = _native.tristate(send_feature_flag_events)
        o.only_evaluate_locally = 1 if only_evaluate_locally else 0
        did = stringify_id(distinct_id) or None
        out = c_void_p()
        st = _lib().posthog_evaluate_flags(handle.ptr, _str_arg(did, "distinct_id"),
                                           ctypes.byref(o), ctypes.byref(out))
        if st != _native.OK:
            # bad arguments (logged by the C library, naming the argument)
            raise ValueError("feature flags: %s" % _native.strerror(st))
        return _Snapshot(out.value or 0, self)

    def _flag_call(self, default: Any, fn, *args: Any, **kwargs: Any) -> Any:
        """Runs fn; an exception is logged (raised with debug=True) and the
        call answers `default`, as posthog-python's flag methods do."""
        if self.disabled:
            return default
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            if self.debug:
                raise
            log.error("[FEATURE FLAGS] %s", e)
            return default

    def _one(self, key: str, distinct_id: Any, send_events: Optional[bool], fire: bool,
             **kw: Any) -> Optional[_Record]:
        snap = self._evaluate(distinct_id, flag_keys=[key],
                              send_feature_flag_events=send_events, **kw)
        if fire:
            return snap.read(key)
        rec = snap.records().get(key)
        return rec

    def _send_feature_flags_properties(self, distinct_id: str, groups: Any, how: Any,
                                       disable_geoip: Optional[bool]) -> Dict[str, Any]:
        """capture(send_feature_flags=True | {...}): $feature/<key> and
        $active_feature_flags of the flags evaluated now (no events), as
        posthog-python; the dict form takes should_send,
        only_evaluate_locally, person_properties, group_properties and
        flag_keys_filter."""
        opts: Mapping[str, Any] = how if isinstance(how, Mapping) else {}
        if opts and not opts.get("should_send", True):
            return {}

        def run() -> Dict[str, Any]:
            snap = self._evaluate(distinct_id, groups=groups,
                                  person_properties=opts.get("person_properties"),
                                  group_properties=opts.get("group_properties"),
                                  only_evaluate_locally=bool(opts.get("only_evaluate_locally")),
                                  disable_geoip=disable_geoip,
                                  flag_keys=opts.get("flag_keys_filter"),
                                  send_feature_flag_events=False)
            return FeatureFlagEvaluations(snap, distinct_id, groups,
                                          snap.records())._get_event_properties()

        return self._flag_call({}, run) or {}

    # ------------------------------------------------------------ posthog-python API

    def _fast_flag(self, key: str, distinct_id: str, person_properties: Any,
                   only_evaluate_locally: bool, send_feature_flag_events: Optional[bool],
                   disable_geoip: Optional[bool]) -> Any:
        """get_feature_flag through posthog_get_feature_flag (no snapshot, no
        objects built in C when the flag is decided locally). Returns the
        value, or _SLOW when the snapshot path must answer (a variant that
        may not fit the buffer, a client without a handle)."""
        handle = self._handle
        if handle is None or not handle.ptr:
            return _SLOW
        kb = _key_bytes.get(key)
        if kb is None:
            if "\x00" in key:
                return _SLOW  # the snapshot path names the bad argument
            if len(_key_bytes) >= _KEY_CACHE_MAX:
                _key_bytes.clear()
            kb = _key_bytes[key] = key.encode("utf-8")
        if "\x00" in distinct_id:
            return _SLOW
        if person_properties is None:
            pp = None
        elif type(person_properties) is dict:
            pp = dumps_clean_fast(person_properties)
        else:
            pp = _json_object(person_properties, "person_properties")
        st = _fast_state()
        o = st.opts
        if o.person_properties_json is not None or pp is not None:
            o.person_properties_json = pp
        if disable_geoip is None:
            disable_geoip = self.disable_geoip
        # _native.tristate, inline: None -> UNSET, truthy -> TRUE, falsy -> FALSE
        ints = (_native.UNSET if disable_geoip is None
                else _native.TRUE if disable_geoip else _native.FALSE,
                _native.UNSET if send_feature_flag_events is None
                else _native.TRUE if send_feature_flag_events else _native.FALSE,
                1 if only_evaluate_locally else 0)
        if ints != st.ints:
            o.disable_geoip, o.send_feature_flag_events, o.only_evaluate_locally = ints
            st.ints = ints
        ptr = handle.ptr
        if ptr != st.ptr:
            st.ptr_arg = c_void_p(ptr)
            st.ptr = ptr
        fn = _fast_fn or _fast_call()
        did = distinct_id.encode("utf-8")
        st.busy = True
        try:
            if send_feature_flag_events is False:
                r = fn(st.ptr_arg, kb, did, st.opts_ref, st.buf, st.cap)
            else:
                r = self._fast_flag_events(fn, kb, did, st)
            if r == _FLAG_ENABLED:
                v = st.buf.value
                if not v:
                    return True
                if len(v) >= _VARIANT_CAP - 1:
                    return _SLOW_QUIET  # maybe truncated: read it whole, no second event
                return v.decode("utf-8", "replace")
        finally:
            st.busy = False
            if pp is not None:
                o.person_properties_json = None  # not kept alive past the call
        return False if r == _FLAG_DISABLED else None

    @staticmethod
    def _fast_flag_events(fn: Any, kb: bytes, did: bytes, st: _FastState) -> int:
        """The call when $feature_flag_called may be captured: the capture
        path's per-thread state, as _Snapshot.read sets it."""
        global _capture_tls
        tls = _capture_tls
        if tls is None:
            from .client import _tls as tls  # noqa: PLC0415 (client imports this module)

            _capture_tls = tls
        tls.capture = getattr(tls, "capture", 0) + 1  # a capture-time drop is not on_error's
        tls.raise_after = None
        try:
            r = fn(st.ptr_arg, kb, did, st.opts_ref, st.buf, st.cap)
        finally:
            tls.capture -= 1
        pending, tls.raise_after = getattr(tls, "raise_after", None), None
        if pending is not None:
            raise pending  # before_send raised KeyboardInterrupt/SystemExit
        return r

    def get_feature_flag(self, key: str, distinct_id: Any, *, groups: Any = None,
                         person_properties: Any = None, group_properties: Any = None,
                         only_evaluate_locally: bool = False,
                         send_feature_flag_events: Optional[bool] = None,
                         disable_geoip: Optional[bool] = None,
                         device_id: Any = None) -> Optional[FlagValue]:
        """The flag's value for distinct_id: the variant (str) of a
        multivariate flag, True/False, or None when it could not be evaluated
        (unknown flag, server error...). Captures $feature_flag_called unless
        send_feature_flag_events is False (None: the client's
        send_feature_flag_events, True by default)."""
        if (groups is None and group_properties is None and device_id is None
                and type(key) is str and type(distinct_id) is str and distinct_id
                and key):
            # the common call: one flag, str key and id, at most person
            # properties, straight to posthog_get_feature_flag
            if self.disabled:
                return None
            try:
                v = self._fast_flag(key, distinct_id, person_properties,
                                    only_evaluate_locally, send_feature_flag_events,
                                    disable_geoip)
            except Exception as e:
                if self.debug:
                    raise
                log.error("[FEATURE FLAGS] %s", e)
                return None
            if v is _SLOW_QUIET:
                send_feature_flag_events = False  # the fast call captured it already
            elif v is not _SLOW:
                return v
        rec = self._flag_call(None, self._one, key, distinct_id, send_feature_flag_events, True,
                              groups=groups, person_properties=person_properties,
                              group_properties=group_properties,
                              only_evaluate_locally=only_evaluate_locally,
                              disable_geoip=disable_geoip, device_id=device_id)
        return rec.value if rec is not None else None

    def feature_enabled(self, key: str, distinct_id: Any, *, groups: Any = None,
                        person_properties: Any = None, group_properties: Any = None,
                        only_evaluate_locally: bool = False,
                        send_feature_flag_events: Optional[bool] = None,
                        disable_geoip: Optional[bool] = None,
                        device_id: Any = None) -> Optional[bool]:
        """Whether the flag is on (a variant counts as on); None when it could
        not be evaluated."""
        v = self.get_feature_flag(key, distinct_id, groups=groups,
                                  person_properties=person_properties,
                                  group_properties=group_properties,
                                  only_evaluate_locally=only_evaluate_locally,
                                  send_feature_flag_events=send_feature_flag_events,
                                  disable_geoip=disable_geoip, device_id=device_id)
        return None if v is None else bool(v)

    def get_feature_flag_result(self, key: str, distinct_id: Any, *, groups: Any = None,
                                person_properties: Any = None, group_properties: Any = None,
                                only_evaluate_locally: bool = False,
                                send_feature_flag_events: Optional[bool] = None,
                                disable_geoip: Optional[bool] = None,
                                device_id: Any = None) -> Optional[FeatureFlagResult]:
        """The flag's FeatureFlagResult (key, enabled, variant, payload,
        reason), or None when it could not be evaluated. Captures
        $feature_flag_called like get_feature_flag."""
        rec = self._flag_call(None, self._one, key, distinct_id, send_feature_flag_events, True,
                              groups=groups, person_properties=person_properties,
                              group_properties=group_properties,
                              only_evaluate_locally=only_evaluate_locally,
                              disable_geoip=disable_geoip, device_id=device_id)
        return rec.result() if rec is not None else None

    def get_feature_flag_payload(self, key: str, distinct_id: Any, *,
                                 match_value: Optional[FlagValue] = None, groups: Any = None,
                                 person_properties: Any = None, group_properties: Any = None,
                                 only_evaluate_locally: bool = False,
                                 send_feature_flag_events: bool = False,
                                 disable_geoip: Optional[bool] = None,
                                 device_id: Any = None) -> Optional[Any]:
        """The payload (decoded JSON) of the flag's value for distinct_id, or
        None. Captures no event unless send_feature_flag_events=True. With
        match_value, the payload only when the flag evaluates to that value
        (libposthog knows only the payload of the evaluated value)."""
        rec = self._flag_call(None, self._one, key, distinct_id,
                              bool(send_feature_flag_events), bool(send_feature_flag_events),
                              groups=groups, person_properties=person_properties,
                              group_properties=group_properties,
                              only_evaluate_locally=only_evaluate_locally,
                              disable_geoip=disable_geoip, device_id=device_id)
        if rec is None:
            return None
        if match_value is not None and match_value != rec.value:
            log.debug("get_feature_flag_payload(%r): the flag is %r, not %r: no payload",
                      key, rec.value, match_value)
            return None
        return rec.payload

    def get_all_flags(self, distinct_id: Any, *, groups: Any = None,
                      person_properties: Any = None, group_properties: Any = None,
                      only_evaluate_locally: bool = False,
                      disable_geoip: Optional[bool] = None,
                      flag_keys_to_evaluate: Optional[List[str]] = None,
                      device_id: Any = None) -> Optional[Dict[str, FlagValue]]:
        """{flag key: value} of every flag for distinct_id ({} when none could
        be evaluated). Captures no event."""
        both = self.get_all_flags_and_payloads(
            distinct_id, groups=groups, person_properties=person_properties,
            group_properties=group_properties, only_evaluate_locally=only_evaluate_locally,
            disable_geoip=disable_geoip, flag_keys_to_evaluate=flag_keys_to_evaluate,
            device_id=device_id)
        return both["featureFlags"]

    def get_all_flags_and_payloads(self, distinct_id: Any, *, groups: Any = None,
                                   person_properties: Any = None, group_properties: Any = None,
                                   only_evaluate_locally: bool = False,
                                   disable_geoip: Optional[bool] = None,
                                   flag_keys_to_evaluate: Optional[List[str]] = None,
                                   device_id: Any = None) -> Dict[str, Any]:
        """{"featureFlags": {key: value}, "featureFlagPayloads": {key: payload}}
        (payloads of the enabled flags that have one, as their JSON text, as
        posthog-python returns them: get_feature_flag_payload decodes).
        Captures no event."""

        def run() -> Dict[str, Any]:
            snap = self._evaluate(distinct_id, groups=groups,
                                  person_properties=person_properties,
                                  group_properties=group_properties,
                                  only_evaluate_locally=only_evaluate_locally,
                                  disable_geoip=disable_geoip,
                                  flag_keys=flag_keys_to_evaluate, device_id=device_id,
                                  send_feature_flag_events=False)
            recs = snap.records()
            return {
                "featureFlags": {k: r.value for k, r in recs.items()},
                "featureFlagPayloads": {k: r.payload_text for k, r in recs.items()
                                        if r.enabled and r.payload is not None},
            }

        empty: Dict[str, Any] = {"featureFlags": {}, "featureFlagPayloads": {}}
        return self._flag_call(empty, run) or empty

    def evaluate_flags(self, distinct_id: Any = None, *, groups: Any = None,
                       person_properties: Any = None, group_properties: Any = None,
                       only_evaluate_locally: bool = False,
                       disable_geoip: Optional[bool] = None,
                       flag_keys: Optional[List[str]] = None,
                       device_id: Any = None) -> FeatureFlagEvaluations:
        """Evaluates the flags (all, or flag_keys) for distinct_id at once
        (one /flags request at most) into a FeatureFlagEvaluations snapshot.
        Without a distinct_id, or on a disabled client, the snapshot is empty
        (no request, no events)."""
        did = stringify_id(distinct_id) or None

        def run() -> FeatureFlagEvaluations:
            snap = self._evaluate(did, groups=groups, person_properties=person_properties,
                                  group_properties=group_properties,
                                  only_evaluate_locally=only_evaluate_locally,
                                  disable_geoip=disable_geoip, flag_keys=flag_keys,
                                  device_id=device_id)
            return FeatureFlagEvaluations(snap, did, groups, snap.records())

        snap = self._flag_call(None, run)
        if snap is None:  # refused (logged): an empty snapshot, as posthog-python
            snap = FeatureFlagEvaluations(_Snapshot(0, self), did, groups, {})
        return snap

    def load_feature_flags(self) -> None:
        """Polls the flag definitions now (local evaluation, with secret_key /
        personal_api_key) and waits for that poll, at most 10 s."""
        handle = self._handle
        if handle is None or not handle.ptr or self.disabled:
            return
        st = _lib().posthog_reload_feature_flags(handle.ptr, LOAD_TIMEOUT_MS)
        if st == _native.E_INVALID_ARG:
            log.warning("[FEATURE FLAGS] You have to specify a personal_api_key (or secret_key) "
                        "to use feature flags locally.")
        elif st != _native.OK:
            log.warning("[FEATURE FLAGS] the flag definitions could not be loaded (%s)",
                        _native.strerror(st))

    def wait_for_flag_definitions(self, timeout_seconds: Optional[float] = 10) -> bool:
        """Waits until the flag definitions are loaded (libposthog extra):
        True when they are, False without a secret key or on timeout."""
        handle = self._handle
        if handle is None or not handle.ptr or self.disabled:
            return False
        ms = -1 if timeout_seconds is None else max(0, int(timeout_seconds * 1000))
        return _lib().posthog_wait_for_flag_definitions(handle.ptr, ms) == _native.OK


# ------------------------------------------------------------------ compiled accelerator
# libposthog/_accel.c: get_feature_flag, feature_enabled,
# get_feature_flag_payload, get_all_flags and get_all_flags_and_payloads in C
# (argument conversion, the JSON of person_properties/groups/group_properties
# and the C call without ctypes), with the results, events and logging of
# the methods above, which it calls for every case it does not handle.
# Optional: a build without a compiler has none, LIBPOSTHOG_NO_ACCEL=1 (any
# value but "" and "0") turns it off at run time.

# the methods the accelerator answers, with the methods each one's Python
# version calls (a subclass that overrides any of them keeps its own)
_ACCEL_METHODS = {
    "get_feature_flag": ("get_feature_flag",),
    "feature_enabled": ("feature_enabled", "get_feature_flag"),
    "get_feature_flag_payload": ("get_feature_flag_payload",),
    "get_all_flags": ("get_all_flags", "get_all_flags_and_payloads"),
    "get_all_flags_and_payloads": ("get_all_flags_and_payloads",),
}


def _load_accel() -> "tuple[Any, str]":
    """(the _accel module or None, why it is not used)."""
    if os.environ.get("LIBPOSTHOG_NO_ACCEL", "") not in ("", "0"):
        return None, "LIBPOSTHOG_NO_ACCEL is set"
    try:
        mod = importlib.import_module(__name__.rpartition(".")[0] + "._accel")
    except ImportError as e:
        return None, "not built (%s)" % e
    return mod, ""


_accel, _accel_why = _load_accel()
_accel_lib: Optional[ctypes.CDLL] = None  # the library _accel.setup() was given


def accelerator() -> Optional[str]:
    """The path of the compiled accelerator the flag calls of new clients
    use, or None (then ``accelerator_status()`` says why)."""
    return getattr(_accel, "__file__", None) if _accel is not None else None


def accelerator_status() -> str:
    """"on (<path>)" or "off: <why>"."""
    return "on (%s)" % accelerator() if _accel is not None else "off: " + _accel_why


def _accel_failed(client: Any, e: BaseException) -> None:
    """The fast paths' `except Exception`: raised again with debug=True, else
    logged (the caller answers the method's default)."""
    if client.debug:
        raise e
    log.error("[FEATURE FLAGS] %s", e)


def _accel_status_error(st: int) -> Exception:
    return ValueError("feature flags: %s" % _native.strerror(st))


def _accel_payload_mismatch(key: str, value: Any, match_value: Any) -> None:
    log.debug("get_feature_flag_payload(%r): the flag is %r, not %r: no payload",
              key, value, match_value)


def _accel_setup(mod: Any) -> None:
    """Hands _accel the C functions of the library ctypes loaded (so both
    call the same copy) and the Python helpers; once per library."""
    global _accel_lib
    lib = _lib()
    if _accel_lib is lib:
        return
    from .client import _tls  # noqa: PLC0415 (client imports this module)

    names = ("posthog_get_feature_flag", "posthog_evaluate_flags", "posthog_flags_get",
             "posthog_flags_peek", "posthog_flags_count", "posthog_flags_key",
             "posthog_flags_free")
    addrs = {n: ctypes.cast(lib[n], c_void_p).value for n in names}
    mod.setup(addrs, {
        "get_feature_flag": FlagsMixin.get_feature_flag,
        "feature_enabled": FlagsMixin.feature_enabled,
        "get_feature_flag_payload": FlagsMixin.get_feature_flag_payload,
        "get_all_flags": FlagsMixin.get_all_flags,
        "get_all_flags_and_payloads": FlagsMixin.get_all_flags_and_payloads,
        "dumps": dumps_clean_fast,
        "json_object": _json_object,
        "decode_payload": _decode_payload,
        "failed": _accel_failed,
        "status_error": _accel_status_error,
        "payload_mismatch": _accel_payload_mismatch,
        "tls": _tls,
    })
    _accel_lib = lib


def accel_bind(client: Any, handle: Any) -> Any:
    """Makes the client's flag methods the compiled ones (instance
    attributes: bound methods of an _accel.Flags), unless the accelerator
    is off or a subclass overrides them. Returns the Flags object (the
    handle detaches it before freeing the C client) or None."""
    mod = _accel
    if mod is None or handle is None or not handle.ptr:
        return None
    try:
        _accel_setup(mod)
        fast = mod.Flags(client, handle.ptr, bool(client._has_before_send_hook))
    except Exception as e:  # never worse than the ctypes path
        log.warning("libposthog: the compiled flags accelerator is not used: %s", e)
        return None
    cls = type(client)
    for name, uses in _ACCEL_METHODS.items():
        if all(getattr(cls, u, None) is getattr(FlagsMixin, u) for u in uses):
            client.__dict__[name] = getattr(fast, name)
    return fast


def accel_capture_depth() -> int:
    """Compiled flag calls on this thread that may be capturing
    $feature_flag_called right now (the drop callback's question)."""
    return _accel.capture_depth() if _accel is not None else 0


__all__ = ["FeatureFlagEvaluations", "FeatureFlagResult", "FlagsMixin", "client_flag_options",
           "accelerator", "accelerator_status"]
