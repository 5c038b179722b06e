"""The Posthog client: posthog-python 7.x's capture API on top of libposthog."""

from __future__ import annotations

import atexit
import ctypes
import functools
import json
import logging
import os
import threading
import time
import weakref
from datetime import date, datetime
from enum import Enum
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union
from uuid import UUID

from . import _native, contexts, exceptions
from ._serialize import (
    clean,
    dumps,
    dumps_clean,
    event_uuid,
    identity,
    release_id,
    stringify_id,
    system_context,
    timestamp_ms,
)
from .flags import FlagsMixin, accel_bind, accel_capture_depth, client_flag_options
from .version import VERSION

log = logging.getLogger("libposthog")

LIB_NAME = "libposthog-python"

ID = Union[str, int, float, UUID]
Timestamp = Union[datetime, date, str]
OnError = Callable[[Exception, List[Dict[str, Any]]], Any]
BeforeSend = Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]

# Keywords of posthog-python's Client that have no meaning here (exception
# code variables and autocapture rate limiting, AI, tracing, metrics, flag
# caches...). Accepted and ignored. The feature-flag keywords libposthog has
# (personal_api_key/secret_key, poll_interval, feature_flags_request_*,
# send_feature_flag_events) are passed on by flags.client_flag_options;
# error tracking's (exceptions.KEYWORDS) are taken by exceptions.configure.
_IGNORED_KEYWORDS = frozenset(
    {
        "thread",
        "privacy_mode",
        "flag_fallback_cache_url",
        "enable_local_evaluation",
        "flag_definition_cache_provider",
        "capture_exception_code_variables",
        "code_variables_mask_patterns",
        "code_variables_ignore_patterns",
        "code_variables_mask_url_credentials",
        "code_variables_detect_secrets",
        "enable_exception_autocapture_rate_limiting",
        "exception_autocapture_bucket_size",
        "exception_autocapture_refill_rate",
        "exception_autocapture_refill_interval_seconds",
        "metrics",
        "enable_full_ai_capture",
        "capture_trace_context",
        "traces",
        "app_host",
        "email_request_timeout_seconds",
        "email_request_max_retries",
        "migrated_from",
    }
)

# Of those, the ones that switch on (or configure) a posthog-python feature
# this binding does not have, with posthog-python's default: given with
# another value they are logged at WARNING (the feature is not there), the
# rest at DEBUG.
_MISSING_FEATURE_DEFAULTS: Dict[str, Any] = {
    "privacy_mode": False,
    "flag_fallback_cache_url": None,
    "enable_local_evaluation": True,
    "flag_definition_cache_provider": None,
    "capture_exception_code_variables": False,
    "code_variables_mask_patterns": None,
    "code_variables_ignore_patterns": None,
    "code_variables_mask_url_credentials": None,
    "code_variables_detect_secrets": None,
    "enable_exception_autocapture_rate_limiting": False,
    "metrics": None,
    "enable_full_ai_capture": False,
    "capture_trace_context": False,
    "traces": None,
    "app_host": None,
    "migrated_from": None,
}

# Options the C library will gain with the disk spool; until then it answers
# POSTHOG_E_UNKNOWN_OPTION and we only warn.
_FUTURE_OPTIONS = frozenset()  # every option the C library knows is passed through

# Options whose refusal leaves no client instead of one without them: without
# the given host the events would go to the default (US) host, without the
# given key the library would take $POSTHOG_API_KEY's.
_FATAL_OPTIONS = frozenset({"host", "api_key"})


class CaptureMode(str, Enum):
    """posthog-python's ``posthog.CaptureMode``: the capture wire protocol.

    ``V1`` is ``POST /i/v1/analytics/events``, ``V0`` the legacy ``POST /batch/``.
    Passed to libposthog's ``capture_mode`` option; unset, the C library
    decides (``$POSTHOG_CAPTURE_MODE``, else v1).
    """

    V0 = "v0"
    V1 = "v1"


class CaptureCompression(str, Enum):
    """posthog-python's ``posthog.CaptureCompression``: the request-body
    encoding (libposthog's ``compression`` option). v0 accepts GZIP and NONE."""

    NONE = "none"
    GZIP = "gzip"
    DEFLATE = "deflate"
    ZSTD = "zstd"


CAPTURE_MODE_ENV_VAR = "POSTHOG_CAPTURE_MODE"
CAPTURE_COMPRESSION_ENV_VAR = "POSTHOG_CAPTURE_COMPRESSION"

# The spellings posthog-python accepts (its aliases follow posthog-go's names).
_MODE_ALIASES = {"v0": "v0", "legacy": "v0", "v1": "v1", "analytics_v1": "v1"}
_COMPRESSION_ALIASES = {
    "none": "none",
    "identity": "none",
    "gzip": "gzip",
    "deflate": "deflate",
    "zstd": "zstd",
}


def _canonical(value: Any, aliases: Dict[str, str]) -> str:
    """An enum member or a known alias in its libposthog spelling; anything
    else as given (the C library then refuses it, reported like every bad
    option)."""
    if isinstance(value, Enum):
        value = value.value
    s = str(value)
    return aliases.get(s.strip().lower(), s)


def _from_env(var: str, aliases: Dict[str, str]) -> Optional[str]:
    """A recognised value of env var `var`, or None (unset, or unrecognised:
    warned, like posthog-python, which never lets an env typo break capture)."""
    raw = os.environ.get(var)
    if raw is None or not raw.strip():
        return None
    v = aliases.get(raw.strip().lower())
    if v is None:
        log.warning("Unrecognized %s=%r; ignored. Expected one of %s.", var, raw, sorted(aliases))
    return v


class APIError(Exception):
    """What on_error receives for events the library could not deliver.

    Same attributes as posthog-python's ``posthog.request.APIError`` (``status``,
    ``message``), plus ``reason`` (the libposthog drop reason: "rejected",
    "retries_exhausted", "too_large", "shutdown") and ``count``.
    ``status`` is the HTTP status when the server decided, else the reason.
    ``message`` carries the server's answer when it gave one (e.g. ``server
    rejected the batch: HTTP 401: {"type":"authentication_error",...}``).
    """

    def __init__(self, status: Union[int, str], message: str, reason: str = "", count: int = 0):
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.reason = reason
        self.count = count

    def __str__(self) -> str:
        return "[PostHog] {0} ({1})".format(self.message, self.status)


class PosthogError(Exception):
    """Raised (debug=True only) when libposthog refuses an event or an option."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# Per-thread state: capture nesting (to tell capture-time drop reports from
# delivery drops) and callback nesting (lifecycle calls from inside a callback
# would deadlock the flusher thread that runs it).
_tls = threading.local()


def _depth(name: str) -> int:
    return getattr(_tls, name, 0)


def _in_callback() -> bool:
    return _depth("callback") > 0


def no_throw(func):
    """Like posthog-python's decorator: log instead of raising unless debug."""

    @functools.wraps(func)
    def wrapper(self, *args, **kwargs):
        try:
            return func(self, *args, **kwargs)
        except Exception as e:
            if self.debug:
                raise
            log.exception("Error in %s: %s", func.__name__, e)
            return None

    return wrapper


class _Handle:
    """The C client and the ctypes callbacks it points to.

    Kept apart from Posthog so a finalizer can free it when the Posthog object
    is collected; the callbacks must outlive every call the C side can make.
    """

    __slots__ = ("ptr", "callbacks", "exit_timeout_ms", "accel", "__weakref__")

    def __init__(self, ptr: int, callbacks: tuple):
        self.ptr: Optional[int] = ptr
        self.callbacks = callbacks
        # the compiled flag calls bound to ptr (flags.accel_bind), or None
        self.accel: Any = None
        # the shutdown_timeout_ms the application set (then the exit hook
        # waits that long), or None (the exit hook's shared deadline)
        self.exit_timeout_ms: Optional[int] = None

    def shutdown(self, timeout_ms: int = -1) -> int:
        if not self.ptr:
            return _native.OK
        return _native.load().posthog_shutdown(self.ptr, timeout_ms)


_leaked: List[_Handle] = []  # handles freed off a callback thread (kept alive)
_live: "weakref.WeakSet[_Handle]" = weakref.WeakSet()


def _free_handle(handle: _Handle) -> None:
    """Finalizer of a collected Posthog object: shut down (delivering what is
    queued, within shutdown_timeout_ms) and free the C client."""
    if not handle.ptr:
        return
    if _in_callback():
        # Freeing from the flusher thread would wait for itself.
        _leaked.append(handle)
        threading.Thread(target=_free_handle_now, args=(handle,), daemon=True).start()
        return
    _free_handle_now(handle)


def _free_handle_now(handle: _Handle) -> None:
    ptr, handle.ptr = handle.ptr, None
    if handle.accel is not None:
        handle.accel.detach()
    if ptr:
        _native.load().posthog_client_free(ptr)
    if handle in _leaked:
        _leaked.remove(handle)


# posthog-python's _ATEXIT_FLUSH_TIMEOUT_SECONDS: at interpreter exit every
# client together gets this long to deliver, so a hanging server holds the
# exit up for no longer than it does with posthog-python.
ATEXIT_TIMEOUT_S = 1.0


@atexit.register
def _shutdown_all_at_exit() -> None:
    # Shut down (not free: daemon threads may still call capture) every live
    # client, so queued events are delivered and no flusher thread calls into
    # a finalizing interpreter. One deadline for all the clients
    # (ATEXIT_TIMEOUT_S), except those whose application set
    # shutdown_timeout_ms: they get that. What is not delivered by then is
    # spooled (storage_path) or counted as dropped (shutdown).
    deadline = time.monotonic() + ATEXIT_TIMEOUT_S
    for handle in list(_live):
        try:
            ms = handle.exit_timeout_ms
            if ms is None:
                ms = max(0, int((deadline - time.monotonic()) * 1000))
            handle.shutdown(ms)
        except Exception:  # pragma: no cover - interpreter teardown
            pass


def _bool(v: Any) -> str:
    return "1" if v else "0"


class Posthog(FlagsMixin):
    """A PostHog client backed by libposthog.

    The constructor takes posthog-python 7.x's keywords (same positional
    order for the common ones); see README.md for how each maps.
    """

    def __init__(
        self,
        project_api_key: Optional[str] = None,
        host: Optional[str] = None,
        debug: bool = False,
        max_queue_size: Optional[int] = None,
        send: bool = True,
        on_error: Optional[OnError] = None,
        flush_at: Optional[int] = None,
        flush_interval: Optional[float] = None,
        gzip: Optional[bool] = None,
        max_retries: Optional[int] = None,
        sync_mode: bool = False,
        timeout: Optional[float] = None,
        thread: int = 1,
        poll_interval: int = 30,
        personal_api_key: Optional[str] = None,
        disabled: bool = False,
        disable_geoip: bool = True,
        is_server: bool = True,
        historical_migration: bool = False,
        *,
        super_properties: Optional[Dict[str, Any]] = None,
        before_send: Optional[BeforeSend] = None,
        storage_path: Optional[str] = None,
        durability: Optional[str] = None,
        max_queue_bytes: Optional[int] = None,
        memory_budget: Optional[int] = None,
        capture_mode: Optional[Union[CaptureMode, str]] = None,
        capture_compression: Optional[Union[CaptureCompression, str]] = None,
        transport: Optional["Transport"] = None,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ):
        self.api_key = (project_api_key or "").strip()
        self.debug = debug
        self.on_error = on_error
        self.send = send
        self.sync_mode = sync_mode
        self.disable_geoip = disable_geoip
        self.is_server = is_server
        self.historical_migration = historical_migration
        self.super_properties = super_properties
        self.disabled = disabled or not self.api_key
        self._before_send: Optional[BeforeSend] = None
        self._release_id = release_id()
        self._pid = os.getpid()
        self._configure_logging(debug)
        if before_send is not None and not callable(before_send):
            log.warning("before_send is not callable, it will be ignored")
            before_send = None
        self._before_send = before_send
        if transport is not None and not callable(transport):
            raise TypeError("transport must be a callable taking a TransportRequest")
        self._transport = transport
        self._has_before_send_hook = before_send is not None

        exceptions.configure(self, kwargs)  # error tracking's keywords
        flag_opts = client_flag_options(personal_api_key, poll_interval, kwargs)
        ignored = [k for k in kwargs if k in _IGNORED_KEYWORDS or k.startswith("_")]
        unknown = [k for k in kwargs if k not in ignored]
        missing = sorted(k for k in ignored if k in _MISSING_FEATURE_DEFAULTS
                         and kwargs[k] != _MISSING_FEATURE_DEFAULTS[k])
        if missing:
            log.warning(
                "libposthog: %s: this binding does not have the posthog-python feature(s) "
                "these switch on or configure; ignored (see README.md, 'Compared with "
                "posthog-python')",
                ", ".join("%s=%r" % (k, kwargs[k]) for k in missing),
            )
        quiet = sorted(k for k in ignored if k not in missing)
        if quiet or thread != 1:
            log.debug(
                "libposthog: ignoring posthog-python options without effect here: %s",
                ", ".join(quiet) or "thread",
            )
        if unknown:
            raise TypeError(
                "Posthog() got unexpected keyword argument(s): " + ", ".join(sorted(unknown))
            )

        opts: Dict[str, Any] = {}
        # Options taken from the environment or implied by gzip=: when the C
        # library refuses one of these the client is made without it (logged),
        # as posthog-python never lets such a setting break capture. Explicit
        # arguments are reported like every bad option (raised with debug=True).
        soft: Dict[str, str] = {}
        if self.api_key:
            opts["api_key"] = self.api_key
        if host:
            opts["host"] = host
        if max_queue_size is not None:
            opts["max_queue_size"] = int(max_queue_size)
        if flush_at is not None:
            opts["flush_at"] = max(1, int(flush_at))
        if flush_interval is not None:
            opts["flush_interval_ms"] = max(1, int(round(float(flush_interval) * 1000)))
        if gzip is not None:
            opts["gzip"] = _bool(gzip)
        if capture_mode is not None:
            opts["capture_mode"] = _canonical(capture_mode, _MODE_ALIASES)
        else:
            env_mode = _from_env(CAPTURE_MODE_ENV_VAR, _MODE_ALIASES)
            if env_mode is not None:
                opts["capture_mode"] = env_mode
                soft["capture_mode"] = CAPTURE_MODE_ENV_VAR
        # posthog-python's precedence: capture_compression, then
        # $POSTHOG_CAPTURE_COMPRESSION, then the gzip flag; none of them: the
        # C library's default (zstd when built with libzstd).
        if capture_compression is not None:
            opts["compression"] = _canonical(capture_compression, _COMPRESSION_ALIASES)
        else:
            env_comp = _from_env(CAPTURE_COMPRESSION_ENV_VAR, _COMPRESSION_ALIASES)
            if env_comp is not None:
                opts["compression"] = env_comp
                soft["compression"] = CAPTURE_COMPRESSION_ENV_VAR
            elif gzip is not None:
                opts["compression"] = "gzip" if gzip else "none"
                soft["compression"] = "gzip=%s" % bool(gzip)
        if max_retries is not None:
            opts["max_retries"] = max(0, int(max_retries))
        if timeout is not None:
            opts["request_timeout_ms"] = max(1, int(round(float(timeout) * 1000)))
        if historical_migration:
            opts["historical_migration"] = "1"
        # capture v1: the server credits events to the SDK in PostHog-Sdk-Info
        opts["sdk_name"], soft["sdk_name"] = LIB_NAME, "the binding"
        opts["sdk_version"], soft["sdk_version"] = VERSION, "the binding"
        # $lib/$lib_version as library-level super properties: in v0 they go
        # into every event's properties (an event's own values win), in v1 the
        # library sends them as PostHog-Sdk-Info instead
        lib_props = {"$lib": LIB_NAME, "$lib_version": VERSION}
        opts["super_properties"] = json.dumps(lib_props)
        if max_queue_bytes is not None:
            opts["max_queue_bytes"] = int(max_queue_bytes)
        if memory_budget is not None:
            opts["memory_budget"] = int(memory_budget)
        if storage_path is not None:
            opts["storage_path"] = os.fspath(storage_path)
        if durability is not None:
            opts["durability"] = durability
        if debug:
            opts["debug"] = "1"
        if not self.api_key or not send:
            # No key: posthog-python disables the client for good. send=False:
            # calls succeed (uuids returned), nothing is sent.
            opts["disabled"] = "1"
        opts.update(flag_opts)
        for k, v in (options or {}).items():
            opts[str(k)] = _bool(v) if isinstance(v, bool) else v
            soft.pop(str(k), None)
        if options and "super_properties" in options:
            # the caller's library-level super properties, with the binding's
            # $lib/$lib_version unless they set their own
            try:
                sp = options["super_properties"]
                sp = json.loads(sp) if isinstance(sp, str) else dict(sp)
                opts["super_properties"] = json.dumps({**lib_props, **sp})
            except (TypeError, ValueError):
                pass  # not an object: libposthog refuses it with its own error

        self._handle: Optional[_Handle] = None
        try:
            self._handle = self._create(opts, soft)
        except OSError as e:  # the shared library could not be loaded
            if debug:
                raise
            log.error("%s; the client is disabled", e)
        if self._handle is not None and "shutdown_timeout_ms" in opts:
            try:  # the application's own deadline, also at exit
                self._handle.exit_timeout_ms = int(opts["shutdown_timeout_ms"])
            except (TypeError, ValueError):
                pass  # refused by the C library already
        if self._handle is None:
            self.disabled = True
        else:
            self._handle.accel = accel_bind(self, self._handle)
        exceptions.start(self)  # enable_exception_autocapture

    # ------------------------------------------------------------ setup

    def _configure_logging(self, debug: bool) -> None:
        if debug:
            logging.basicConfig()
            log.setLevel(logging.DEBUG)
        else:
            log.setLevel(logging.WARNING)
        if not self.api_key:
            log.error("api_key is empty after trimming whitespace; check your project API key")

    def _create(self, opts: Dict[str, Any], soft: Mapping[str, str] = {}) -> Optional[_Handle]:
        lib = _native.load()
        o = lib.posthog_options_new()
        if not o:
            raise MemoryError("posthog_options_new failed")
        try:
            for key, value in opts.items():
                sval = value if isinstance(value, str) else str(value)
                st, why = _native.set_option(o, key, sval)
                if st == _native.OK:
                    continue
                why = why or _native.strerror(st)
                if key in soft:
                    # from the environment, or implied by gzip= (which
                    # already covers v0 when `compression` is unknown)
                    level = logging.DEBUG if soft[key].startswith("gzip=") else logging.WARNING
                    log.log(level, "libposthog: %s (from %s); not used", why, soft[key])
                    continue
                if st == _native.E_UNKNOWN_OPTION and key in _FUTURE_OPTIONS:
                    log.warning(
                        "libposthog: option %r is not supported by this libposthog (%s) yet; "
                        "ignored",
                        key,
                        _native.version(),
                    )
                    continue
                msg = "libposthog: " + why
                if self.debug:
                    raise PosthogError(st, msg)
                if key in _FATAL_OPTIONS:
                    # never send elsewhere, nor with another key, than asked
                    log.error("%s; the client is disabled", msg)
                    lib.posthog_options_free(o)
                    return None
                log.error("%s; ignored", msg)
        except BaseException:
            lib.posthog_options_free(o)
            raise

        wself = weakref.ref(self)
        log_cb = _native.LOG_FN(_log_trampoline)
        drop_cb = _native.DROP_FN(functools.partial(_drop_trampoline, wself))
        lib.posthog_options_set_log(o, log_cb, None)
        lib.posthog_options_set_on_drop(o, drop_cb, None)
        callbacks: tuple = (log_cb, drop_cb)
        if self._before_send is not None:
            bs_cb = _native.BEFORE_SEND_FN(functools.partial(_before_send_trampoline, wself))
            lib.posthog_options_set_before_send(o, bs_cb, None)
            callbacks += (bs_cb,)

        if getattr(self, "_transport", None) is not None:
            tr_cb = _native.TRANSPORT_FN(functools.partial(_transport_trampoline, self._transport))
            lib.posthog_options_set_transport(o, tr_cb, None)
            callbacks += (tr_cb,)

        err = ctypes.create_string_buffer(512)
        ptr = lib.posthog_client_new(o, err, len(err))  # takes ownership of o
        if not ptr:
            msg = "libposthog: cannot create the client: " + err.value.decode("utf-8", "replace")
            if self.debug:
                raise PosthogError(_native.E_INTERNAL, msg)
            log.error("%s; the client is disabled", msg)
            return None
        handle = _Handle(ptr, callbacks)
        _live.add(handle)
        weakref.finalize(self, _free_handle, handle).atexit = False
        return handle

    # ------------------------------------------------------------ properties

    @property
    def before_send(self) -> Optional[BeforeSend]:
        return self._before_send

    @before_send.setter
    def before_send(self, fn: Optional[BeforeSend]) -> None:
        if fn is not None and not callable(fn):
            log.warning("before_send is not callable, it will be ignored")
            fn = None
        if fn is not None and not self._has_before_send_hook:
            log.warning(
                "libposthog: before_send must be given to the constructor (or set on the "
                "module before the first call); ignored"
            )
            return
        self._before_send = fn

    def _set_before_send(self, fn: Optional[BeforeSend]) -> None:  # posthog-python name
        self.before_send = fn

    # ------------------------------------------------------------ capture API

    @no_throw
    def capture(
        self,
        event: str,
        *,
        distinct_id: Optional[ID] = None,
        properties: Optional[Dict[str, Any]] = None,
        timestamp: Optional[Timestamp] = None,
        uuid: Optional[Union[str, UUID]] = None,
        groups: Optional[Dict[str, Any]] = None,
        send_feature_flags: Any = False,
        disable_geoip: Optional[bool] = None,
        flags: Any = None,
        process_person_profile: Optional[bool] = None,
        cookieless_mode: Optional[bool] = None,
        disable_skew_correction: Optional[bool] = None,
        product_tour_id: Optional[str] = None,
        _ai_lane: bool = False,
        **kwargs: Any,
    ) -> Optional[str]:
        """Captures an event; returns its uuid, or None when it was dropped.

        Without a distinct_id the event gets a generated one and is personless
        (unless the C option default_distinct_id is set), as in posthog-python.
        process_person_profile / cookieless_mode / disable_skew_correction /
        product_tour_id (None: not set) are sent as the properties
        $process_person_profile, $cookieless_mode, $ignore_sent_at and
        $product_tour_id (capture v0), or in the event's options (v1); the
        same keys in properties win.
        """
        if self.disabled:
            return None
        did, props = self._event_props(distinct_id, properties, groups)
        extra: Dict[str, Any] = {}
        if flags is not None and hasattr(flags, "_get_event_properties"):
            extra = flags._get_event_properties() or {}
        elif send_feature_flags and did is not None:
            extra = self._send_feature_flags_properties(did, groups, send_feature_flags,
                                                        disable_geoip)
        if extra:
            props = {**extra, **props}
        return self._enqueue(
            event, did, props, timestamp, uuid, disable_geoip,
            event_options=(process_person_profile, cookieless_mode, disable_skew_correction,
                           product_tour_id),
            ai=_ai_lane,
        )

    @no_throw
    def capture_ai(self, event: str, **kwargs: Any) -> Optional[str]:
        """Captures an LLM-analytics event on the dedicated AI endpoint
        (/i/v1/ai/events, or /i/v0/ai/batch/ in v0), in batches of its own and
        with the AI lane's larger per-event limit, as posthog-python's
        capture_ai. Same arguments and return value as capture(); capture()
        never reroutes an $ai_* event."""
        if not str(event).startswith("$ai_"):
            log.debug("capture_ai called with non-AI event name %r; routing it to the AI endpoint anyway.", event)
        return self.capture(event, _ai_lane=True, **kwargs)

    @no_throw
    def capture_durable(
        self,
        event: str,
        *,
        distinct_id: Optional[ID] = None,
        properties: Optional[Dict[str, Any]] = None,
        timestamp: Optional[Timestamp] = None,
        uuid: Optional[Union[str, UUID]] = None,
        groups: Optional[Dict[str, Any]] = None,
        disable_geoip: Optional[bool] = None,
        process_person_profile: Optional[bool] = None,
        cookieless_mode: Optional[bool] = None,
        disable_skew_correction: Optional[bool] = None,
        product_tour_id: Optional[str] = None,
    ) -> Optional[str]:
        """Like capture(), for events that must never be lost (purchases, device
        boot): returns the uuid only once the event is fsync'ed to the spool
        (needs storage_path); blocks for the disk write. None when it could not
        be made durable (logged; raised with debug=True)."""
        if self.disabled:
            return None
        did, props = self._event_props(distinct_id, properties, groups)
        return self._enqueue(
            event, did, props, timestamp, uuid, disable_geoip, durable=True,
            event_options=(process_person_profile, cookieless_mode, disable_skew_correction,
                           product_tour_id),
        )

    @no_throw
    def capture_exception(self, exception: Any = None, **kwargs: Any) -> Optional[str]:
        """Captures an exception for error tracking ($exception), as
        posthog-python's capture_exception: ``exception`` is an exception,
        an exc_info tuple, or None for the one being handled. Keywords:
        distinct_id, properties, timestamp, uuid, groups, flags,
        disable_geoip. Sends $exception_list (the exception and the chain of
        its __cause__ / __context__, Python frames with source context and
        in_app) and $exception_level; an exception already captured is
        skipped. Returns the event's uuid, or None (nothing to capture,
        dropped)."""
        return exceptions.capture_exception(self, exception, **kwargs)

    def _capture_exception_event(self, exc_list: Any, level: str, *, distinct_id: Any,
                                 properties: Dict[str, Any], timestamp: Any, uuid: Any,
                                 groups: Any, flags: Any, send_feature_flags: Any,
                                 disable_geoip: Optional[bool]) -> Optional[str]:
        did, props = self._event_props(distinct_id, properties, groups)
        extra: Dict[str, Any] = {}
        if flags is not None and hasattr(flags, "_get_event_properties"):
            extra = flags._get_event_properties() or {}
        elif send_feature_flags and did is not None:
            extra = self._send_feature_flags_properties(did, groups, send_feature_flags,
                                                        disable_geoip)
        if extra:
            props = {**extra, **props}
        return self._enqueue("$exception", did, props, timestamp, uuid, disable_geoip,
                             exception=(exc_list, level))

    @staticmethod
    def _event_props(distinct_id: Optional[ID], properties: Optional[Dict[str, Any]],
                     groups: Optional[Dict[str, Any]]) -> Tuple[Optional[str], Dict[str, Any]]:
        """The distinct_id to send (None: the C library generates one and makes
        the event personless, or uses default_distinct_id) and the properties
        before library context ($groups as posthog-python sends it), with the
        current context's tags and session applied (contexts.py)."""
        props = contexts.apply({**(properties or {}), **system_context()})
        if groups:
            props["$groups"] = groups
        # no distinct_id: the context's (a person event), else None
        return stringify_id(distinct_id) or contexts.get_context_distinct_id() or None, props

    @no_throw
    def set(
        self,
        *,
        distinct_id: Optional[ID] = None,
        properties: Optional[Dict[str, Any]] = None,
        timestamp: Optional[Timestamp] = None,
        uuid: Optional[Union[str, UUID]] = None,
        disable_geoip: Optional[bool] = None,
        **kwargs: Any,
    ) -> Optional[str]:
        """Sets person properties ($set event); returns the event uuid or None."""
        return self._set("$set", distinct_id, properties, timestamp, uuid, disable_geoip)

    @no_throw
    def set_once(
        self,
        *,
        distinct_id: Optional[ID] = None,
        properties: Optional[Dict[str, Any]] = None,
        timestamp: Optional[Timestamp] = None,
        uuid: Optional[Union[str, UUID]] = None,
        disable_geoip: Optional[bool] = None,
        **kwargs: Any,
    ) -> Optional[str]:
        """Sets person properties once ($set_once event); returns the uuid or None."""
        return self._set("$set_once", distinct_id, properties, timestamp, uuid, disable_geoip)

    def _set(self, name, distinct_id, properties, timestamp, uuid, disable_geoip):
        if self.disabled:
            return None
        properties = contexts.apply(properties or {})
        did, personless = identity(distinct_id)
        ctx_did = contexts.get_context_distinct_id() if personless else None
        if ctx_did:
            did, personless = ctx_did, False  # posthog-python: the context's distinct_id
        if personless or not properties:
            return None  # posthog-python: a personless or empty set() does nothing
        if name == "$set":
            return self._enqueue(name, did, {}, timestamp, uuid, disable_geoip, set_=properties)
        return self._enqueue(name, did, {}, timestamp, uuid, disable_geoip, set_once=properties)

    @no_throw
    def group_identify(
        self,
        group_type: str,
        group_key: str,
        properties: Optional[Dict[str, Any]] = None,
        timestamp: Optional[Timestamp] = None,
        uuid: Optional[Union[str, UUID]] = None,
        disable_geoip: Optional[bool] = None,
        distinct_id: Optional[ID] = None,
    ) -> Optional[str]:
        """Sets properties on a group ($groupidentify); returns the uuid or None."""
        if self.disabled:
            return None
        if not stringify_id(group_type):
            log.warning(
                "group_identify() called without a group_type, dropping the $groupidentify event"
            )
            return None
        if not stringify_id(group_key):
            log.warning(
                "group_identify() called without a group_key, dropping the $groupidentify event"
            )
            return None
        did = identity(distinct_id)[0]  # always personful, like posthog-python
        props = {"$group_type": group_type, "$group_key": group_key, "$group_set": properties or {},
                 **contexts.session_property()}
        return self._enqueue("$groupidentify", did, props, timestamp, uuid, disable_geoip)

    @no_throw
    def alias(
        self,
        previous_id: ID,
        distinct_id: Optional[ID],
        timestamp: Optional[Timestamp] = None,
        uuid: Optional[Union[str, UUID]] = None,
        disable_geoip: Optional[bool] = None,
    ) -> Optional[str]:
        """Links previous_id to distinct_id ($create_alias); returns the uuid or None."""
        if self.disabled:
            return None
        prev = stringify_id(previous_id)
        if not prev:
            log.warning("alias() called without a previous_id, dropping the $create_alias event")
            return None
        did, personless = identity(distinct_id)
        if personless:
            log.warning("alias() called without a distinct_id, dropping the $create_alias event")
            return None
        props = {"distinct_id": prev, "alias": did, **contexts.session_property()}
        return self._enqueue("$create_alias", prev, props, timestamp, uuid, disable_geoip)

    # ------------------------------------------------------------ core

    def _enqueue(
        self,
        event: Any,
        did: Optional[str],
        props: Dict[str, Any],
        timestamp: Any,
        uuid: Any,
        disable_geoip: Optional[bool],
        set_: Optional[Dict[str, Any]] = None,
        set_once: Optional[Dict[str, Any]] = None,
        durable: bool = False,
        event_options: Tuple[Any, Any, Any, Any] = (None, None, None, None),
        ai: bool = False,
        exception: Optional[Tuple[Any, str]] = None,
    ) -> Optional[str]:
        handle = self._handle
        if handle is None or not handle.ptr:
            return None
        ts = timestamp_ms(timestamp)
        uid = event_uuid(uuid)
        if disable_geoip is None:
            disable_geoip = self.disable_geoip
        if disable_geoip:
            props["$geoip_disable"] = True
        if self.super_properties:
            # the event's own properties win, as in the C library (its
            # super_properties option) and the Ruby binding; posthog-python
            # lets super properties override them (README: precedence)
            props = {**self.super_properties, **props}
        if self._release_id is not None:
            props.setdefault("$release_id", self._release_id)
        if self.is_server:
            props["$is_server"] = True

        name = event if isinstance(event, str) else stringify_id(event) or ""
        if "\x00" in name or (did is not None and "\x00" in did):
            self._refused(_native.E_INVALID_EVENT, name, "NUL character in name or id")
            return None
        ppp, cookieless, no_skew, tour = event_options
        if tour is not None and not isinstance(tour, str):
            tour = stringify_id(tour)
        if tour is not None and "\x00" in tour:
            self._refused(_native.E_INVALID_ARG, name, "NUL character in product_tour_id")
            return None
        try:
            props_b = dumps(clean(props))
            set_b = dumps_clean(set_) if set_ is not None else None
            set_once_b = dumps_clean(set_once) if set_once is not None else None
        except RecursionError:
            # a dict or list that contains itself (or nests past Python's
            # recursion limit): refused and counted, not a 1000-frame traceback
            self._refuse_unserialisable(handle, name, did, props, set_, set_once)
            return None
        if exception is not None:
            # $exception: the list and the level go to posthog_capture_exception_ex
            try:
                list_b = dumps_clean(exception[0])
            except RecursionError:
                self._refuse_unserialisable(handle, name, did, exception[0], None, None)
                return None
            return self._call_capture(handle, name, did, props_b, exception_opts=(
                list_b, exception[1], ts, uid))
        co = _native.CaptureOptions()  # zero: every field not set
        co.timestamp_ms = ts
        co.uuid = uid.encode() if uid else None
        co.set_json = set_b
        co.set_once_json = set_once_b
        co.process_person_profile = _native.tristate(ppp)
        co.cookieless_mode = _native.tristate(cookieless)
        co.disable_skew_correction = _native.tristate(no_skew)
        co.product_tour_id = tour.encode("utf-8") if tour else None
        lib = _native.load()
        fn = (lib.posthog_capture_durable_opts if durable
              else lib.posthog_capture_ai if ai else lib.posthog_capture_opts)
        return self._call_capture(handle, name, did, props_b, fn=fn, co=co)

    def _call_capture(self, handle: "_Handle", name: str, did: Optional[str], props_b: bytes,
                      fn: Any = None, co: Any = None,
                      exception_opts: Optional[Tuple[bytes, str, int, Optional[str]]] = None,
                      ) -> Optional[str]:
        out = _native.uuid_buffer()
        _tls.capture = _depth("capture") + 1
        _tls.drop = None
        _tls.raise_after = None
        try:
            if exception_opts is not None:
                list_b, level, ts, uid = exception_opts
                eo = _native.ExceptionOptions()  # zero: every field not set
                eo.exception_list_json = list_b
                eo.level = level.encode("ascii")
                eo.timestamp_ms = ts
                eo.uuid = uid.encode() if uid else None
                st = _native.load().posthog_capture_exception_ex(
                    handle.ptr, did.encode("utf-8") if did is not None else None, None, None,
                    props_b, ctypes.byref(eo), out)
            else:
                st = fn(
                    handle.ptr,
                    did.encode("utf-8") if did is not None else None,
                    name.encode("utf-8"),
                    props_b,
                    ctypes.byref(co),
                    out,
                )
        finally:
            _tls.capture -= 1
        pending, _tls.raise_after = getattr(_tls, "raise_after", None), None
        if pending is not None:
            # before_send raised KeyboardInterrupt, SystemExit...: the event was
            # dropped (counted as before_send); the exception goes on to the
            # caller, as posthog-python lets it
            raise pending
        if st != _native.OK:
            self._refused(st, name, getattr(_tls, "drop", None))
            return None
        if self.sync_mode and self.send:
            # delivered, dropped, or safe in the spool: never the spool's
            # drain, which lasts as long as PostHog is unreachable
            self._sync_wait()
        return out.value.decode("ascii")

    def _refuse_unserialisable(self, handle: "_Handle", name: str, did: Optional[str],
                               props: Any, set_: Any, set_once: Any) -> None:
        where = "properties"
        for label, value in (("properties", props), ("set", set_), ("set_once", set_once)):
            path = _cycle_path(value, label)
            if path:
                where = path
                break
        if where in ("properties", "set", "set_once"):
            why = "nest deeper than Python's recursion limit"
        else:
            why = "contain a reference cycle (%s refers back to a value that contains it)" % where
        text = "libposthog refused event %r: its values %s; pass plain, acyclic data" % (
            name, why)
        _tls.capture = _depth("capture") + 1
        try:
            _native.load().posthog_drop_event(
                handle.ptr, _native.DROP_INVALID, name.encode("utf-8", "replace"),
                did.encode("utf-8", "replace") if did is not None else None,
                text.encode("utf-8", "replace"))
        finally:
            _tls.capture -= 1
        if self.debug:
            raise PosthogError(_native.E_INVALID_JSON, text)
        log.error("%s", text)

    def _refused(self, st: int, name: str, detail: Optional[str]) -> None:
        msg = _native.strerror(st)
        if st == _native.E_DROPPED:
            log.debug("Event dropped by before_send callback")
        elif st == _native.E_QUEUE_FULL:
            log.warning("queue is full, dropping event %s", name)
        elif st == _native.E_SHUTDOWN:
            log.warning("client is shut down, dropping event %s", name)
        elif st == _native.E_DISABLED:
            pass
        else:
            text = "libposthog refused event %r: %s%s" % (name, msg, " (%s)" % detail if detail else "")
            if self.debug:
                raise PosthogError(st, text)
            log.error("%s", text)

    # ------------------------------------------------------------ lifecycle

    def _flush_ms(self, timeout_ms: int) -> int:
        handle = self._handle
        if handle is None or not handle.ptr:
            return _native.OK
        if _in_callback():
            log.warning("libposthog: flush() from inside a callback is ignored (it would deadlock)")
            return _native.OK
        res = _native.FlushResult()
        st = _native.load().posthog_flush_ex(handle.ptr, timeout_ms, ctypes.byref(res))
        if st == _native.E_IN_CALLBACK:
            log.warning("libposthog: flush() from inside a callback is ignored (it would deadlock)")
        elif st == _native.E_TIMEOUT:
            log.warning("flush timed out with events still queued")
        elif st == _native.E_UNDELIVERED:
            log.warning("flush finished, but %d event(s) were dropped instead of delivered "
                        "(see on_error)", res.dropped)
        return st

    def _sync_wait(self) -> None:
        """sync_mode: until the event is delivered, dropped, or safe in the
        spool; never for the spool to drain, which lasts as long as PostHog
        is unreachable."""
        handle = self._handle
        if handle is None or not handle.ptr or _in_callback():
            return
        _native.load().posthog_flush_resolved(handle.ptr, -1)

    @no_throw
    def flush(self, timeout_seconds: Optional[float] = 10) -> Optional[bool]:
        """Sends what is queued and waits for it to be delivered or dropped
        (at most timeout_seconds; None waits without a limit). Returns True
        when everything it waited for was delivered, False when events were
        dropped meanwhile (on_error has them) or the timeout passed (the
        rest is still queued or spooled). posthog-python returns None: code
        that ignores the result is unaffected."""
        ms = -1 if timeout_seconds is None else max(0, int(timeout_seconds * 1000))
        return self._flush_ms(ms) == _native.OK

    @no_throw
    def join(self) -> None:
        """Flushes and stops the background flusher (same as shutdown here)."""
        self._shutdown()

    @no_throw
    def shutdown(self) -> None:
        """Delivers what is queued (within the C shutdown_timeout_ms, 5 s by
        default) and stops the client; later captures are dropped."""
        self._shutdown()

    def _shutdown(self) -> None:
        if self.exception_capture is not None:  # posthog-python: hooks go back
            self.exception_capture.close()
        handle = self._handle
        if handle is None or not handle.ptr:
            return
        if _in_callback():
            log.warning("libposthog: shutdown() from inside a callback is ignored (it would deadlock)")
            return
        st = handle.shutdown(-1)
        if st == _native.E_TIMEOUT:
            log.warning("shutdown deadline passed with events undelivered (dropped)")

    # ------------------------------------------------------------ extras

    def set_network_state(self, up: bool) -> bool:
        """Tells the client the network is back (True) or down (False), e.g.
        from the OS's connectivity callback. While down it sends nothing and
        uses up no retries: events wait in memory (on disk with
        storage_path) and are not lost. Back up, it sends at once, skipping
        any retry backoff or Retry-After in progress. stats() shows
        network_down and network_down_periods. Returns True when applied."""
        handle = self._handle
        if handle is None or not handle.ptr:
            return False
        if not isinstance(up, bool):
            raise TypeError("set_network_state(up): up must be True (network back) or False "
                            "(network down), not %r" % (up,))
        state = _native.NETWORK_UP if up else _native.NETWORK_DOWN
        return _native.load().posthog_set_network_state(handle.ptr, state) == _native.OK

    def stats(self) -> Dict[str, int]:
        """libposthog's counters (captured, sent, requests, dropped_*...)."""
        handle = self._handle
        names = ["captured", "sent", "requests", "retries", "bytes_raw", "bytes_sent",
                 "queue_depth", "queue_bytes", "spooled", "replayed", "spool_bytes",
                 "spool_pending", "dropped_total", "network_down", "network_down_periods"]
        names += ["dropped_" + r for r in _native.drop_reason_names()]
        if handle is None or not handle.ptr:
            return {n: 0 for n in names}
        lib = _native.load()
        return {n: int(lib.posthog_get_stat(handle.ptr, n.encode())) for n in names}

    def __repr__(self) -> str:
        return "<libposthog.Posthog disabled=%s sync_mode=%s>" % (self.disabled, self.sync_mode)


Client = Posthog

# ------------------------------------------------------------------ callbacks
# All run with the GIL taken by ctypes. The log and drop callbacks may run on
# libposthog's flusher thread; before_send and capture-time drop reports run on
# the capturing thread. None of them may raise into C.

_LEVELS = {
    _native.LOG_DEBUG: logging.DEBUG,
    _native.LOG_INFO: logging.INFO,
    _native.LOG_WARN: logging.WARNING,
    _native.LOG_ERROR: logging.ERROR,
}


def _log_trampoline(level: int, message: Optional[bytes], _ud: Any) -> None:
    try:
        log.log(_LEVELS.get(level, logging.ERROR), "%s", (message or b"").decode("utf-8", "replace"))
    except Exception:  # pragma: no cover
        pass


def _drop_trampoline(wself: "weakref.ref[Posthog]", info_p: Any, _ud: Any) -> None:
    try:
        info = info_p.contents
        if _depth("capture") > 0 or accel_capture_depth() > 0:
            # A capture-time drop on this thread: posthog_capture_opts returns its
            # status; keep the detail for the log line.
            _tls.drop = _native.drop_reason_name(info.reason)
            return
        self = wself()
        if self is None or self.on_error is None:
            return
        _tls.callback = _depth("callback") + 1
        try:
            reason = _native.drop_reason_name(info.reason)
            message = (info.message or b"").decode("utf-8", "replace")
            batch: List[Dict[str, Any]] = []
            if info.events_json:
                try:
                    batch = json.loads(info.events_json)
                except ValueError:
                    batch = []
            err = APIError(info.http_status or reason, message, reason, int(info.count))
            self.on_error(err, batch)
        except Exception as e:
            log.error("on_error handler failed: %s", e)
        finally:
            _tls.callback -= 1
    except Exception:  # pragma: no cover
        pass


class TransportResponse(Tuple[int, bytes, Optional[str], Optional[str]]):
    """What a transport returns: the server's status, body and the values of
    its Retry-After and ETag headers (None when absent)."""

    def __new__(cls, status: int, body: bytes = b"", retry_after: Optional[str] = None,
                etag: Optional[str] = None) -> "TransportResponse":
        return tuple.__new__(cls, (status, body, retry_after, etag))  # type: ignore[arg-type]

    status = property(lambda self: self[0])
    body = property(lambda self: self[1])
    retry_after = property(lambda self: self[2])
    etag = property(lambda self: self[3])


class TransportRequest:
    """One request libposthog asks a custom transport to carry (the
    `transport=` keyword): method, url, headers ("Name: value" strings),
    body (bytes, maybe compressed: see Content-Encoding; None for GET),
    timeout (seconds), kind ("capture", "flags", "flag_definitions").

    The transport either returns a TransportResponse (or raises: a transport
    failure, retried like a network error), or returns None and calls
    complete() or fail() exactly once later, from any thread. A request not
    answered within its timeout (+1 s) is given up by the library; answering
    it afterwards is harmless (`abandoned` then says True)."""

    __slots__ = ("method", "url", "headers", "body", "timeout", "kind", "_call", "_done")

    def __init__(self, call: int, method: str, url: str, headers: List[str],
                 body: Optional[bytes], timeout: float, kind: str):
        self._call = call
        self._done = False
        self.method, self.url, self.headers = method, url, headers
        self.body, self.timeout, self.kind = body, timeout, kind

    def complete(self, status: int, body: bytes = b"", retry_after: Optional[str] = None,
                 etag: Optional[str] = None) -> None:
        if self._done:
            raise RuntimeError("this transport request was already answered")
        self._done = True
        if isinstance(body, str):
            body = body.encode("utf-8")
        st = _native.load().posthog_transport_complete(
            self._call, int(status), retry_after.encode() if retry_after else None,
            etag.encode() if etag else None, body or None, len(body or b""))
        if st != 0:
            raise ValueError("libposthog refused the answer: %s (status %r)"
                             % (_native.strerror(st), status))

    def fail(self, message: str) -> None:
        if self._done:
            raise RuntimeError("this transport request was already answered")
        self._done = True
        _native.load().posthog_transport_fail(self._call, str(message).encode("utf-8", "replace"))

    @property
    def abandoned(self) -> bool:
        return self._done or bool(_native.load().posthog_transport_call_abandoned(self._call))


Transport = Callable[[TransportRequest], Optional[TransportResponse]]


def _transport_trampoline(fn: Transport, req_p: Any, call: int, _ud: Any) -> int:
    req = None
    try:
        r = req_p.contents
        headers = [r.headers[i].decode("utf-8", "replace") for i in range(r.header_count)]
        body = ctypes.string_at(r.body, r.body_len) if r.body else None
        req = TransportRequest(call, r.method.decode(), r.url.decode("utf-8", "replace"), headers,
                               body, r.timeout_ms / 1000.0, (r.kind or b"capture").decode())
        out = fn(req)
        if out is not None and not req._done:
            if isinstance(out, tuple):
                req.complete(*out)
            else:
                raise TypeError("a transport returns a TransportResponse or None")
        return 0
    except BaseException as e:  # noqa: B036 - must not unwind through C
        if req is None:
            return 1  # not started: the library retries it
        if not req._done:
            req.fail("%s: %s" % (type(e).__name__, e))
        if not isinstance(e, Exception):
            log.warning("transport interrupted by %s", type(e).__name__)
        return 0


def _before_send_trampoline(
    wself: "weakref.ref[Posthog]", event_json: Optional[bytes], replacement: Any, _ud: Any
) -> int:
    _tls.callback = _depth("callback") + 1
    try:
        self = wself()
        fn = self._before_send if self is not None else None
        if fn is None or not event_json:
            return _native.BEFORE_SEND_KEEP
        msg = json.loads(event_json)
        out = fn(msg)
        if out is None:
            return _native.BEFORE_SEND_DROP
        if not isinstance(out, dict):
            raise TypeError("before_send must return a dict or None")
        # the library copies the text; a replacement it refuses (invalid JSON,
        # a number beyond a double, too deep, no event name...) is dropped as
        # invalid and reported with the reason
        st = _native.load().posthog_replacement_set(replacement, dumps_clean(out))
        if st != 0:
            log.error("before_send returned an event libposthog refuses: %s", _native.strerror(st))
        return _native.BEFORE_SEND_REPLACE
    except Exception as e:
        log.exception("Error in before_send callback: %s", e)
        return _native.BEFORE_SEND_DROP
    except BaseException as e:  # noqa: B036 - must not unwind through C
        # KeyboardInterrupt, SystemExit...: never send the unfiltered event.
        # Dropped (counted as before_send) and raised again once the capture
        # call is back in Python (_enqueue), as posthog-python propagates it.
        _tls.raise_after = e
        return _native.BEFORE_SEND_DROP
    finally:
        _tls.callback -= 1


def _cycle_path(value: Any, label: str) -> Optional[str]:
    """The path of the first dict/list/tuple/set inside `value` that contains
    itself (e.g. "properties['a']['b']"), or None. Iterative: it runs after a
    RecursionError, so it must not recurse itself."""
    if not isinstance(value, (dict, list, tuple, set, frozenset)):
        return None
    stack = [(value, label, iter(_children(value)))]
    on_path = {id(value)}
    while stack:
        _, path, it = stack[-1]
        for key, child in it:
            if not isinstance(child, (dict, list, tuple, set, frozenset)):
                continue
            child_path = "%s[%r]" % (path, key)
            if id(child) in on_path:
                return child_path
            on_path.add(id(child))
            stack.append((child, child_path, iter(_children(child))))
            break
        else:
            on_path.discard(id(stack.pop()[0]))
    return None


def _children(value: Any):
    if isinstance(value, dict):
        return value.items()
    return enumerate(value)


def _after_fork_in_child() -> None:
    # libposthog's own pthread_atfork handler already made every client in the
    # child forget the parent's queue and start a fresh flusher on its next
    # capture; the ctypes callbacks and handles stay valid (same memory image).
    # Reset the per-thread state: the forking thread may have been mid-callback.
    _tls.__dict__.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
