"""ctypes declarations for the libposthog C API (include/posthog/posthog.h).

Nothing here is public API. The shared library is looked up, in order:

1. ``$LIBPOSTHOG_PATH`` at run time: a path to ``libposthog.so*`` or to a
   directory holding it (e.g. a CMake build dir);
2. the copy bundled into this package at install time (``libposthog/_lib/``);
3. ``ctypes.util.find_library("posthog")`` (ldconfig, ``$LD_LIBRARY_PATH``);
4. common install prefixes (``/usr/local/lib``, ``/usr/lib``, ...).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import List, Optional, Tuple

# ------------------------------------------------------------------ constants

OK = 0
NETWORK_UP = 0  # posthog_network_state_t
NETWORK_DOWN = 1
E_INVALID_ARG = 1
E_INVALID_EVENT = 2
E_INVALID_UTF8 = 3
E_INVALID_JSON = 4
E_TOO_LARGE = 5
E_QUEUE_FULL = 6
E_SHUTDOWN = 7
E_TIMEOUT = 8
E_NOMEM = 9
E_UNKNOWN_OPTION = 10
E_BAD_OPTION_VALUE = 11
E_NO_API_KEY = 12
E_DISABLED = 13
E_DROPPED = 14
E_THREAD = 15
E_HTTP = 16
E_INTERNAL = 17
E_STORAGE = 18
E_NO_STORAGE = 19
E_UNDELIVERED = 20  # posthog_flush_ex: finished, but events were dropped meanwhile
E_IN_CALLBACK = 21  # flush/shutdown inside a callback of the same client

LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR = 0, 1, 2, 3

DROP_QUEUE_FULL = 0
DROP_INVALID = 1
DROP_TOO_LARGE = 2
DROP_REJECTED = 3
DROP_RETRIES_EXHAUSTED = 4
DROP_BEFORE_SEND = 5
DROP_SHUTDOWN = 6
DROP_REASON_SLOTS = 16  # POSTHOG_DROP_REASON_SLOTS: reasons the ABI leaves room for
# The names of the drop reasons come from the loaded library
# (posthog_drop_reason_name), so a reason added in C needs no binding change:
# see drop_reason_name() / drop_reason_names().

BEFORE_SEND_KEEP, BEFORE_SEND_REPLACE, BEFORE_SEND_DROP = 0, 1, 2

# posthog_tristate_t
UNSET, TRUE, FALSE = 0, 1, 2

UUID_BUF_LEN = 37


class DropInfo(Structure):
    """posthog_drop_info_t"""

    _fields_ = [
        ("reason", c_int32),
        ("status", c_int32),
        ("count", c_uint32),
        ("http_status", c_int32),
        ("message", c_char_p),
        ("events_json", c_char_p),
        ("event", c_char_p),
        ("distinct_id", c_char_p),
    ]


class FlushResult(Structure):
    """posthog_flush_result_t"""

    _fields_ = [
        ("delivered", c_uint64),
        ("dropped", c_uint64),
        ("spooled", c_uint64),
        ("spool_pending", c_uint64),
    ]


class CaptureOptions(Structure):
    """posthog_capture_options_t (zero = every field "not set")."""

    _fields_ = [
        ("timestamp_ms", c_int64),
        ("uuid", c_char_p),
        ("groups_json", c_char_p),
        ("set_json", c_char_p),
        ("set_once_json", c_char_p),
        ("process_person_profile", c_int),  # posthog_tristate_t
        ("cookieless_mode", c_int),  # posthog_tristate_t
        ("disable_skew_correction", c_int),  # posthog_tristate_t
        ("product_tour_id", c_char_p),
        ("flags", c_void_p),  # const posthog_flags_t *: a flags snapshot, or NULL
    ]


class ExceptionOptions(Structure):
    """posthog_exception_options_t (zero = every field "not set")."""

    _fields_ = [
        ("exception_list_json", c_char_p),  # the $exception_list the binding built
        ("level", c_char_p),
        ("fingerprint", c_char_p),
        ("handled", c_int),  # posthog_tristate_t
        ("mechanism_type", c_char_p),
        ("skip_frames", c_int),
        ("timestamp_ms", c_int64),
        ("uuid", c_char_p),
        ("groups_json", c_char_p),
    ]


def tristate(v) -> int:
    """None -> UNSET, truthy -> TRUE, falsy -> FALSE."""
    if v is None:
        return UNSET
    return TRUE if v else FALSE


LOG_FN = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
DROP_FN = CFUNCTYPE(None, POINTER(DropInfo), c_void_p)
# (event_json, posthog_replacement_t *replacement, user_data) -> verdict. The
# replacement belongs to the library; posthog_replacement_set copies the text.
BEFORE_SEND_FN = CFUNCTYPE(c_int, c_char_p, c_void_p, c_void_p)


class TransportRequestC(Structure):
    """posthog_transport_request_t"""

    _fields_ = [
        ("method", c_char_p),
        ("url", c_char_p),
        ("headers", POINTER(c_char_p)),
        ("header_count", c_size_t),
        ("body", c_void_p),
        ("body_len", c_size_t),
        ("timeout_ms", ctypes.c_uint32),
        ("connect_timeout_ms", ctypes.c_uint32),
        ("kind", c_char_p),
    ]


# (const posthog_transport_request_t *, posthog_transport_call_t *, user_data) -> 0 taken
TRANSPORT_FN = CFUNCTYPE(c_int, POINTER(TransportRequestC), c_void_p, c_void_p)

# ------------------------------------------------------------------ loading

_PACKAGE_LIB_DIR = Path(__file__).resolve().parent / "_lib"
_NAMES = ("libposthog.so.0", "libposthog.so", "libposthog.dylib", "posthog.dll")
_COMMON_DIRS = (
    "/usr/local/lib",
    "/usr/local/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/opt/homebrew/lib",
)


def _in_dir(d: Path) -> List[str]:
    return [str(d / n) for n in _NAMES if (d / n).exists()]


def candidate_paths() -> List[str]:
    """Where the library is looked for, in order (see the module docstring)."""
    out: List[str] = []
    env = os.environ.get("LIBPOSTHOG_PATH")
    if env:
        p = Path(env)
        out.extend(_in_dir(p) if p.is_dir() else [str(p)])
    out.extend(_in_dir(_PACKAGE_LIB_DIR))
    found = ctypes.util.find_library("posthog")
    if found:
        out.append(found)
    for d in _COMMON_DIRS:
        out.extend(_in_dir(Path(d)))
    return out


def _declare(lib: ctypes.CDLL) -> None:
    def fn(name, restype, *argtypes):
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)

    fn("posthog_strerror", c_char_p, c_int)
    fn("posthog_version", c_char_p)
    fn("posthog_drop_reason_name", c_char_p, c_int)
    fn("posthog_options_new", c_void_p)
    fn("posthog_options_set", c_int, c_void_p, c_char_p, c_char_p)
    fn("posthog_options_set_ex", c_int, c_void_p, c_char_p, c_char_p, c_char_p, c_size_t)
    fn("posthog_options_free", None, c_void_p)
    fn("posthog_options_set_log", None, c_void_p, LOG_FN, c_void_p)
    fn("posthog_options_set_on_drop", None, c_void_p, DROP_FN, c_void_p)
    fn("posthog_options_set_before_send", None, c_void_p, BEFORE_SEND_FN, c_void_p)
    fn("posthog_replacement_set", c_int, c_void_p, c_char_p)
    fn("posthog_options_set_transport", None, c_void_p, TRANSPORT_FN, c_void_p)
    fn("posthog_transport_complete", c_int, c_void_p, ctypes.c_int32, c_char_p, c_char_p,
       c_void_p, c_size_t)
    fn("posthog_transport_fail", c_int, c_void_p, c_char_p)
    fn("posthog_transport_call_abandoned", c_int, c_void_p)
    fn("posthog_has_curl", c_int)
    fn("posthog_client_new", c_void_p, c_void_p, c_char_p, c_size_t)
    for name in ("posthog_capture_opts", "posthog_capture_durable_opts", "posthog_capture_ai"):
        fn(
            name,
            c_int,
            c_void_p,  # client
            c_char_p,  # distinct_id (NULL: default_distinct_id, else generated + personless)
            c_char_p,  # event
            c_char_p,  # properties_json
            POINTER(CaptureOptions),  # opts
            POINTER(c_char),  # uuid_out
        )
    fn(
        "posthog_capture_exception_ex",
        c_int,
        c_void_p,  # client
        c_char_p,  # distinct_id
        c_char_p,  # type (ignored with exception_list_json)
        c_char_p,  # message
        c_char_p,  # properties_json
        POINTER(ExceptionOptions),  # opts
        POINTER(c_char),  # uuid_out
    )
    fn("posthog_capture_json", c_int, c_void_p, c_char_p, c_char_p, c_char_p)
    fn("posthog_flush", c_int, c_void_p, c_int)
    fn("posthog_flush_ex", c_int, c_void_p, c_int, POINTER(FlushResult))
    fn("posthog_flush_resolved", c_int, c_void_p, c_int)
    fn("posthog_drop_event", c_int, c_void_p, c_int, c_char_p, c_char_p, c_char_p)
    fn("posthog_shutdown", c_int, c_void_p, c_int)
    fn("posthog_client_free", None, c_void_p)
    fn("posthog_get_stat", c_uint64, c_void_p, c_char_p)
    fn("posthog_set_network_state", c_int, c_void_p, c_int)


_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[str] = None


def load() -> ctypes.CDLL:
    """Loads (once) and returns the C library; raises OSError if not found."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    errors = []
    for path in candidate_paths():
        try:
            lib = ctypes.CDLL(path)
            _declare(lib)
        except (OSError, AttributeError) as e:
            errors.append(f"{path}: {e}")
            continue
        _lib, _lib_path = lib, path
        break
    if _lib is None:
        detail = "; ".join(errors) if errors else "no candidate found"
        raise OSError(
            "libposthog: cannot load the libposthog shared library (" + detail + "). "
            "Build it with CMake and set LIBPOSTHOG_PATH to the .so or its directory, "
            "or install it system-wide."
        )
    return _lib


def library_path() -> Optional[str]:
    """The path of the loaded library (None before the first load())."""
    return _lib_path


def strerror(status: int) -> str:
    return load().posthog_strerror(status).decode("utf-8", "replace")


def version() -> str:
    return load().posthog_version().decode()


_reason_names: Optional[List[str]] = None


def drop_reason_names() -> List[str]:
    """Every drop reason the loaded library has, by number ("queue_full",
    "invalid", ..., "server_dropped"), from posthog_drop_reason_name."""
    global _reason_names
    if _reason_names is None:
        lib = load()
        names = []
        for i in range(DROP_REASON_SLOTS):
            n = lib.posthog_drop_reason_name(i).decode("ascii", "replace")
            if n == "unknown":
                break
            names.append(n)
        _reason_names = names
    return _reason_names


def drop_reason_name(reason: int) -> str:
    """The library's name of a drop reason; "unknown_<n>" for a number it
    does not name (never just the number)."""
    names = drop_reason_names()
    return names[reason] if 0 <= reason < len(names) else "unknown_%d" % reason


def set_option(o: int, key: str, value: str) -> Tuple[int, str]:
    """posthog_options_set_ex: (status, the library's message naming the key,
    the value (secrets masked) and what is allowed; "" when OK)."""
    err = ctypes.create_string_buffer(512)
    st = int(load().posthog_options_set_ex(o, key.encode(), value.encode(), err, len(err)))
    return st, err.value.decode("utf-8", "replace")


def option_status(key: str, value: str) -> int:
    """What posthog_options_set answers for key=value on a scratch option set
    (OK, E_UNKNOWN_OPTION, E_BAD_OPTION_VALUE): whether the loaded library
    knows an option and accepts a value, without creating a client."""
    lib = load()
    o = lib.posthog_options_new()
    if not o:
        raise MemoryError("posthog_options_new failed")
    try:
        return int(lib.posthog_options_set(o, key.encode(), value.encode()))
    finally:
        lib.posthog_options_free(o)


def uuid_buffer():
    return ctypes.create_string_buffer(UUID_BUF_LEN)


__all__ = [
    "load",
    "library_path",
    "candidate_paths",
    "DropInfo",
    "CaptureOptions",
    "ExceptionOptions",
    "FlushResult",
    "drop_reason_name",
    "drop_reason_names",
    "set_option",
    "tristate",
    "option_status",
    "LOG_FN",
    "DROP_FN",
    "BEFORE_SEND_FN",
    "c_int64",
]
