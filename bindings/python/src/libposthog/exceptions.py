"""Error tracking: posthog-python 7.x's capture_exception and exception
autocapture on top of libposthog's posthog_capture_exception_ex.

The binding builds the ``$exception_list`` itself, in the shape
posthog-python 7.91 sends (README.md, "Error tracking"):

- one entry per exception, the caught (outermost) one first, then what it
  was raised from (``__cause__``) or during (``__context__``), depth first
  through exception groups (``source: "member"``), at most 50 entries;
- each entry ``{"mechanism", "module", "type", "value", "stacktrace"}``;
  the first entry's mechanism is ``{"exception_id": 0, "type": "generic",
  "handled": true, "synthetic": false}`` (autocapture:
  ``"onuncaughtexception"``, ``handled: false``), the others ``{"type":
  "chained", "source": "cause"|"context"|"member", "parent_id"}``;
- frames outermost call first, each ``{"platform": "python", "filename",
  "abs_path", "function", "module", "lineno", "pre_context",
  "context_line", "post_context"}`` (5 context lines each side) and
  ``in_app`` where it is decided: True for in_app_modules and files under
  project_root, False for site-packages / dist-packages, absent otherwise;
- an exception that was never raised gets the stack of the call to
  capture_exception (``synthetic: true``), without this package's frames.

The C library adds ``$exception_level`` and captures the event like any
other (before_send, queue, spool). Nothing here raises into the caller.
"""

from __future__ import annotations

import builtins
import linecache
import logging
import os
import re
import sys
import threading
import warnings
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from .client import Posthog

log = logging.getLogger("libposthog")

# posthog-python's limits and names
MAX_EXCEPTIONS = 50  # entries in one $exception_list
MAX_GROUP_MEMBERS = 1000  # exception-group members looked at, in all
CONTEXT_LINES = 5
MAX_LINE_BYTES = 1024  # a longer source line is sent as null, like posthog-python
LEVELS = ("fatal", "error", "warning", "info", "debug", "log")
_LEVEL_ALIASES = {
    "critical": "fatal", "alert": "fatal", "emergency": "fatal", "warn": "warning",
    "notice": "info", "trace": "debug",
}
_CAPTURED = "__libposthog_exception_captured"
_PACKAGE = __name__.partition(".")[0]
_EXTERNAL = re.compile(r"[\\/](?:dist|site)-packages[\\/]")
_BaseExceptionGroup = getattr(builtins, "BaseExceptionGroup", None)  # Python >= 3.11

# The client keywords this module takes (posthog-python's names).
KEYWORDS = ("enable_exception_autocapture", "log_captured_exceptions", "project_root",
            "in_app_modules")


def normalize_level(level: Any) -> Optional[str]:
    """posthog-python's level names ("critical" -> "fatal", ...), or None."""
    if not isinstance(level, str):
        return None
    lv = level.lower()
    return lv if lv in LEVELS else _LEVEL_ALIASES.get(lv)


# ------------------------------------------------------------------ frames


def _module_of(frame: Any) -> Optional[str]:
    try:
        return frame.f_globals["__name__"]
    except Exception:
        return None


def _hidden(frame: Any) -> bool:
    mod = _module_of(frame)
    if isinstance(mod, str) and mod.startswith("sentry_sdk."):
        return True
    for name in ("__traceback_hide__", "__tracebackhide__"):
        try:
            if frame.f_locals[name]:
                return True
        except Exception:
            pass
    return False


def _filename(module: Optional[str], abs_path: Optional[str]) -> Optional[str]:
    """The path relative to the top package's parent (a top-level module:
    its file's name), as posthog-python sends it."""
    if not abs_path or not module:
        return abs_path
    try:
        if abs_path.endswith(".pyc"):
            abs_path = abs_path[:-1]
        top = module.split(".", 1)[0]
        if top == module:
            return os.path.basename(abs_path)
        top_file = sys.modules[top].__file__
        if not top_file:
            return abs_path
        parent = top_file.rsplit(os.sep, 2)[0]
        return abs_path.split(parent, 1)[-1].lstrip(os.sep)
    except Exception:
        return abs_path


def _line(text: str) -> Optional[str]:
    text = text.strip("\r\n")
    try:
        too_long = len(text.encode("utf-8")) > MAX_LINE_BYTES
    except UnicodeError:
        too_long = len(text) > MAX_LINE_BYTES
    return None if too_long else text


def _source(frame: Any, module: Optional[str], abs_path: Optional[str]) -> Optional[List[str]]:
    loader = None
    try:
        loader = frame.f_globals["__loader__"]
    except Exception:
        pass
    if loader is not None and hasattr(loader, "get_source"):
        try:
            text = loader.get_source(module)
        except (ImportError, OSError):
            text = None
        except Exception:
            text = None
        if text is not None:
            return text.splitlines()
    if not abs_path:
        return None
    try:
        return linecache.getlines(abs_path)
    except OSError:
        return None


def _context(frame: Any, module: Optional[str], abs_path: Optional[str],
             lineno: Optional[int]) -> Tuple[List[Optional[str]], Optional[str], List[Optional[str]]]:
    """pre_context, context_line, post_context (5 lines each side)."""
    if module is None or not abs_path or not isinstance(lineno, int):
        return [], None, []
    src = _source(frame, module, abs_path)
    if not src:
        return [], None, []
    i = lineno - 1
    lo, hi = max(0, i - CONTEXT_LINES), min(i + 1 + CONTEXT_LINES, len(src))
    try:
        return ([_line(s) for s in src[lo:i]], _line(src[i]),
                [_line(s) for s in src[i + 1:hi]])
    except IndexError:  # the file changed since it was loaded
        return [], None, []


def _frame(frame: Any, lineno: Optional[int]) -> Dict[str, Any]:
    code = getattr(frame, "f_code", None)
    abs_path = code.co_filename if code else None
    function = code.co_name if code else None
    module = _module_of(frame)
    if lineno is None:
        lineno = getattr(frame, "f_lineno", None)
    out: Dict[str, Any] = {
        "platform": "python",
        "filename": _filename(module, abs_path) or None,
        "abs_path": os.path.abspath(abs_path) if abs_path else None,
        "function": function or "<unknown>",
        "module": module,
        "lineno": lineno,
    }
    out["pre_context"], out["context_line"], out["post_context"] = _context(
        frame, module, abs_path, lineno)
    return out


def _in_list(module: Optional[str], prefixes: Optional[List[str]]) -> bool:
    if module is None or not prefixes:
        return False
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _set_in_app(frames: List[Dict[str, Any]], in_app_modules: Optional[List[str]],
                project_root: Optional[str]) -> None:
    for f in frames:
        if f.get("in_app") is not None:
            continue
        if _in_list(f.get("module"), in_app_modules):
            f["in_app"] = True
            continue
        path = f.get("abs_path")
        if path is None:
            continue
        if _EXTERNAL.search(path):
            f["in_app"] = False
        elif project_root is not None and path.startswith(project_root):
            f["in_app"] = True


def _traceback_frames(tb: Any) -> List[Dict[str, Any]]:
    frames = []
    while tb is not None:
        if not _hidden(tb.tb_frame):
            frames.append(_frame(tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    return frames


def _caller_frames() -> List[Dict[str, Any]]:
    """The current stack, outermost first, without this package's innermost
    frames: where the application called capture_exception."""
    stack = []
    f = sys._getframe(1)
    while f is not None:
        stack.append(f)
        f = f.f_back
    while stack and (_module_of(stack[0]) or "").partition(".")[0] == _PACKAGE:
        stack.pop(0)
    return [_frame(f, f.f_lineno) for f in reversed(stack) if not _hidden(f)]


# ------------------------------------------------------------------ exceptions


def _message(exc: Any) -> str:
    m = getattr(exc, "message", "") or getattr(exc, "detail", "") or exc
    try:
        return str(m)
    except Exception:
        try:
            return repr(m)
        except Exception:
            return "<broken repr>"


def _type_module(cls: Any) -> Optional[str]:
    mod = getattr(cls, "__module__", None)
    return None if mod in (None, "builtins", "__builtins__") else mod


class _Walk:
    def __init__(self, root_mechanism: Optional[Dict[str, Any]], synthetic_tb: Any):
        self.root_mechanism = dict(root_mechanism or {})
        self.synthetic_tb = synthetic_tb
        self.seen: set = set()
        self.keep: list = []  # keeps ids valid while walking
        self.members = 0
        self.out: List[Dict[str, Any]] = []

    def entry(self, exc_type: Any, exc: Any, tb: Any, exc_id: int, parent_id: int,
              source: Optional[str]) -> Dict[str, Any]:
        mech: Dict[str, Any] = {}
        if exc_id == 0:
            for k, t in (("type", str), ("handled", bool), ("source", str), ("synthetic", bool)):
                v = self.root_mechanism.get(k)
                if isinstance(v, t) and (t is bool or v):
                    mech[k] = v
        mech["exception_id"] = exc_id
        errno = getattr(exc, "errno", None) if exc is not None else None
        if errno is not None:
            mech.setdefault("meta", {}).setdefault("errno", {}).setdefault("number", errno)
        if exc_id == 0:
            mech.setdefault("type", "generic")
            mech.setdefault("handled", True)
            mech.pop("source", None)
        else:
            if source:
                mech["source"] = source
            mech["parent_id"] = parent_id
            mech["type"] = "chained"
            mech.pop("handled", None)
        synthetic = exc_id == 0 and self.synthetic_tb is not None
        mech.setdefault("synthetic", synthetic)
        if _BaseExceptionGroup is not None and isinstance(exc, _BaseExceptionGroup):
            mech["is_exception_group"] = True
        e: Dict[str, Any] = {
            "mechanism": mech,
            "module": _type_module(exc_type),
            "type": getattr(exc_type, "__qualname__", None) or getattr(exc_type, "__name__", None),
            "value": _message(exc),
        }
        if synthetic:
            frames = self.synthetic_tb
        else:
            frames = _traceback_frames(tb)
        if frames:
            e["stacktrace"] = {"frames": frames, "type": "raw"}
        return e

    def walk(self, exc_type: Any, exc: Any, tb: Any, exc_id: int = 0, parent_id: int = 0,
             source: Optional[str] = None) -> int:
        """Appends exc (and what it chains to) depth first; the next free id."""
        if exc is not None:
            if id(exc) in self.seen or exc_id >= MAX_EXCEPTIONS:
                return exc_id
            self.seen.add(id(exc))
            self.keep.append(exc)
        self.out.append(self.entry(exc_type, exc, tb, exc_id, parent_id, source))
        parent_id, exc_id = exc_id, exc_id + 1
        if getattr(exc, "__suppress_context__", False):
            cause, how = getattr(exc, "__cause__", None), "cause"
        else:
            cause, how = getattr(exc, "__context__", None), "context"
        if cause is not None and exc_id < MAX_EXCEPTIONS:
            exc_id = self.walk(type(cause), cause, getattr(cause, "__traceback__", None),
                               exc_id, parent_id, how)
        if _BaseExceptionGroup is not None and isinstance(exc, _BaseExceptionGroup):
            members = exc.exceptions
            i = 0
            while i < len(members) and exc_id < MAX_EXCEPTIONS and self.members < MAX_GROUP_MEMBERS:
                self.members += 1
                m = members[i]
                i += 1
                exc_id = self.walk(type(m), m, getattr(m, "__traceback__", None),
                                   exc_id, parent_id, "member")
        return exc_id


def exc_info_of(exception: Any) -> Optional[Tuple[Any, Any, Any]]:
    """(type, value, traceback) of an exception, an exc_info tuple, or
    None: the one being handled (sys.exc_info()). None when there is none.
    Raises TypeError for anything else."""
    if exception is None:
        info = sys.exc_info()
        return None if info[1] is None else info
    if isinstance(exception, tuple) and len(exception) == 3:
        return None if exception[1] is None and exception[0] is None else exception
    if isinstance(exception, BaseException):
        return (type(exception), exception, getattr(exception, "__traceback__", None))
    raise TypeError("capture_exception: exception must be an exception instance, an "
                    "exc_info tuple or None (the exception being handled), not %s"
                    % type(exception).__name__)


def exception_list(exc_info: Tuple[Any, Any, Any], mechanism: Optional[Dict[str, Any]] = None,
                   in_app_modules: Optional[List[str]] = None,
                   project_root: Optional[str] = None,
                   synthesize: bool = False) -> List[Dict[str, Any]]:
    """The $exception_list posthog-python 7.91 sends for exc_info.
    synthesize: an exception without a traceback (never raised) gets the
    stack of the caller (an exc_info tuple without one gets no stack)."""
    exc_type, exc, tb = exc_info
    synthetic = None
    if synthesize and tb is None and exc is not None:
        synthetic = _caller_frames() or None
    w = _Walk(mechanism, synthetic)
    w.walk(exc_type, exc, tb)
    for e in w.out:
        st = e.get("stacktrace")
        if st:
            _set_in_app(st["frames"], in_app_modules, project_root)
    return w.out


def otel_properties() -> Dict[str, str]:
    """$trace_id / $span_id of the active OpenTelemetry span, if any."""
    try:
        from opentelemetry import trace  # type: ignore
    except ImportError:
        return {}
    try:
        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return {}
        return {"$trace_id": "%032x" % ctx.trace_id, "$span_id": "%016x" % ctx.span_id}
    except Exception:
        return {}


def already_captured(exc: Any) -> bool:
    return exc is not None and hasattr(exc, _CAPTURED)


def mark_captured(exc: Any, uuid: str) -> None:
    try:
        setattr(exc, _CAPTURED, uuid)
    except Exception:  # exceptions with __slots__: captured again next time
        pass


# ------------------------------------------------------------------ client settings


def configure(client: "Posthog", kwargs: Dict[str, Any]) -> None:
    """Takes the error-tracking keywords out of the client's kwargs."""
    client.enable_exception_autocapture = bool(kwargs.pop("enable_exception_autocapture", False))
    client.log_captured_exceptions = bool(kwargs.pop("log_captured_exceptions", False))
    modules = kwargs.pop("in_app_modules", None)
    client.in_app_modules = list(modules) if modules else None
    root = kwargs.pop("project_root", None)
    if root is None:
        try:
            root = os.getcwd()
        except OSError:
            root = None
    client.project_root = root
    client.exception_capture = None


def start(client: "Posthog") -> None:
    """Installs the hooks when the client asked for autocapture."""
    if client.enable_exception_autocapture and not client.disabled:
        client.exception_capture = ExceptionCapture(client)


class ExceptionCapture:
    """Autocapture: wraps sys.excepthook (level "fatal") and
    threading.excepthook (level "error"); each captures the uncaught
    exception ($exception_source "python.sys_excepthook" /
    "python.threading_excepthook", mechanism onuncaughtexception, handled
    false) and then calls the hook it replaced. close() puts the previous
    hooks back (when nobody replaced ours since; a later hook that chains
    to ours then skips it)."""

    def __init__(self, client: "Posthog"):
        self.client = client
        self.closed = False
        self.previous_excepthook = sys.excepthook
        self.previous_threading_excepthook = threading.excepthook
        self._sys_hook = self.excepthook
        self._thread_hook = self.threading_excepthook
        sys.excepthook = self._sys_hook
        threading.excepthook = self._thread_hook

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        prev_sys = _live_hook(self.previous_excepthook, "excepthook", "previous_excepthook")
        prev_thread = _live_hook(self.previous_threading_excepthook, "threading_excepthook",
                                 "previous_threading_excepthook")
        if sys.excepthook == self._sys_hook:
            sys.excepthook = prev_sys
        if threading.excepthook == self._thread_hook:
            threading.excepthook = prev_thread

    def excepthook(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self.closed:
            self._capture((exc_type, exc, tb), "fatal", "python.sys_excepthook")
        _live_hook(self.previous_excepthook, "excepthook", "previous_excepthook")(
            exc_type, exc, tb)

    def threading_excepthook(self, args: Any) -> None:
        if not self.closed:
            self._capture((args.exc_type, args.exc_value, args.exc_traceback), "error",
                          "python.threading_excepthook")
        _live_hook(self.previous_threading_excepthook, "threading_excepthook",
                   "previous_threading_excepthook")(args)

    def _capture(self, info: Tuple[Any, Any, Any], level: str, source: str) -> None:
        try:
            capture_exception(self.client, info, _level=level, _source=source,
                              _mechanism={"type": "onuncaughtexception", "handled": False})
        except Exception as e:  # never in the way of the previous hook
            log.exception("Failed to capture exception: %s", e)


def _live_hook(hook: Any, name: str, previous: str) -> Any:
    """hook, or, while it is a closed ExceptionCapture's, the one it replaced."""
    while True:
        owner = getattr(hook, "__self__", None)
        if not isinstance(owner, ExceptionCapture) or not owner.closed:
            return hook
        if hook != getattr(owner, name):
            return hook
        hook = getattr(owner, previous)


# ------------------------------------------------------------------ capture

RESERVED = frozenset({
    "$exception_list", "$exception_level", "$exception_source", "$debug_images",
    "$exception_handled", "$exception_types", "$exception_values", "$exception_sources",
    "$exception_functions", "$exception_fingerprint_version", "$exception_fingerprint_record",
    "$exception_issue_id", "$exception_release", "$cymbal_errors",
})


def capture_exception(client: "Posthog", exception: Any = None, *, distinct_id: Any = None,
                      properties: Optional[Dict[str, Any]] = None, timestamp: Any = None,
                      uuid: Any = None, groups: Optional[Dict[str, Any]] = None,
                      flags: Any = None, send_feature_flags: Any = False,
                      disable_geoip: Optional[bool] = None, _level: Optional[str] = None,
                      _source: Optional[str] = None,
                      _mechanism: Optional[Dict[str, Any]] = None,
                      **kwargs: Any) -> Optional[str]:
    """Posthog.capture_exception (see there). Raises only with debug=True."""
    if client.disabled:
        return None
    info = exc_info_of(exception)
    if info is None:
        log.warning("No exception information available")
        return None
    if already_captured(info[1]):
        log.debug("Exception already captured, skipping")
        return None
    caller = dict(properties or {})
    overridden = RESERVED.intersection(caller)
    if overridden:
        try:
            warnings.warn(
                "Reserved exception properties passed through `capture_exception(properties=...)` "
                "replace the SDK's own (deprecated in posthog-python): "
                + ", ".join(sorted(overridden)), DeprecationWarning, stacklevel=4)
        except DeprecationWarning:  # warnings turned into errors: still capture
            pass
    # the caller's $exception_list / $exception_level, if any, replace these
    # in the C library (each key sent once, the caller's value)
    synthesize = isinstance(exception, BaseException)
    exc_list = exception_list(info, _mechanism, client.in_app_modules, client.project_root,
                              synthesize)
    level = normalize_level(_level) or "error"
    props: Dict[str, Any] = {**otel_properties()}
    if _source:
        props["$exception_source"] = _source
    props.update(caller)
    if client.log_captured_exceptions:
        log.error("%s", _message(info[1]), exc_info=info)
    res = client._capture_exception_event(
        exc_list, level, distinct_id=distinct_id, properties=props, timestamp=timestamp,
        uuid=uuid, groups=groups, flags=flags, send_feature_flags=send_feature_flags,
        disable_geoip=disable_geoip)
    if res is not None and info[1] is not None:
        mark_captured(info[1], res)
    return res
