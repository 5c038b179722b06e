"""Value conversion, mirroring posthog-python 7.x.

posthog-python first runs ``posthog.utils.clean`` over every message and then
serialises it with ``json.dumps(..., cls=DatetimeSerializer)`` where non-finite
floats become ``null``. ``clean`` and ``dumps`` below reproduce that result in
one pass:

- ``Decimal`` -> float, ``UUID`` -> str
- str, bool, numbers, ``None`` unchanged; ``datetime``/``date`` -> ``isoformat()``
  (as is: a naive datetime inside properties stays naive, like posthog-python)
- set, frozenset, list, tuple, deque -> list
- pydantic models (``model_dump()`` / ``dict()``) and dataclasses -> dict
- dict -> dict with cleaned values (keys left to ``json.dumps``)
- bytes -> decoded as UTF-8 (None when not UTF-8); anything else -> None
- NaN / +-Infinity -> None

Small deliberate differences, all where posthog-python would lose the event:
numeric types ``json`` cannot encode (numpy scalars, ``Fraction``) become
int/float here, where posthog-python's ``json.dumps`` raises in its consumer
and drops the whole batch.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import platform
import re
import sys
from collections import deque
from dataclasses import asdict, is_dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Dict, Optional, Tuple, Union
from uuid import UUID, uuid4

log = logging.getLogger("libposthog")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


_PLAIN = frozenset({str, int, bool, type(None)})


def clean(item: Any) -> Any:
    """posthog.utils.clean + DatetimeSerializer + non-finite floats, in one pass."""
    t = type(item)
    if t in _PLAIN:
        return item
    if t is float:
        return item if math.isfinite(item) else None
    if t is dict:
        return _clean_dict(item)
    if t is list:
        return [clean(x) for x in item]
    return _clean_other(item)


def _clean_other(item: Any) -> Any:
    if isinstance(item, str) or item is None or isinstance(item, bool):
        return item
    if isinstance(item, float):
        return item if math.isfinite(item) else None
    if isinstance(item, int):
        return item
    if isinstance(item, Decimal):
        f = float(item)
        return f if math.isfinite(f) else None
    if isinstance(item, UUID):
        return str(item)
    if isinstance(item, (datetime, date)):
        return item.isoformat()
    if isinstance(item, numbers.Number):
        return _number(item)
    if isinstance(item, dict):
        return _clean_dict(item)
    if isinstance(item, (set, frozenset, list, tuple, deque)):
        return [clean(x) for x in item]
    item = _pydantic(item)
    if isinstance(item, dict):
        return _clean_dict(item)
    if is_dataclass(item) and not isinstance(item, type):
        return _clean_dict(asdict(item))
    if isinstance(item, bytes):
        try:
            return item.decode("utf-8", "strict")
        except UnicodeDecodeError as e:
            log.warning("Error decoding: %s", e)
            return None
    return None


def _number(item: Any) -> Any:
    # numpy scalars, Fraction, ...: json.dumps cannot encode them.
    try:
        if isinstance(item, numbers.Integral):
            return int(item)
        f = float(item)  # type: ignore[arg-type]
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return None


def _clean_dict(d: Dict[Any, Any]) -> Dict[Any, Any]:
    out = {}
    plain = _PLAIN
    for k, v in d.items():
        if type(v) in plain:
            out[k] = v
            continue
        try:
            out[k] = clean(v)
        except TypeError:
            log.warning(
                'Dictionary values must be serializeable to JSON "%s" value %s of type %s is unsupported.',
                k,
                v,
                type(v),
            )
    return out


def _pydantic(item: Any) -> Any:
    try:
        model_dump = getattr(item, "model_dump", None)
        if callable(model_dump):
            return model_dump()
        dict_method = getattr(item, "dict", None)
        if callable(dict_method):
            return dict_method()
    except TypeError as e:
        log.debug("Could not serialize Pydantic-like model: %s", e)
    return item


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_dumps_ascii = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON of an already cleaned object."""
    s = _dumps(obj)
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let json escape them
        return _dumps_ascii(obj).encode("ascii")


def dumps_clean(obj: Any) -> bytes:
    return dumps(clean(obj))


# The C encoder json.JSONEncoder.encode builds on every call, built once:
# compact, ensure_ascii=False, allow_nan=False, no default (TypeError on any
# other type). None where the json module has no C speedups.
try:
    _c_encode: Any = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, None, json.encoder.encode_basestring, None, ":", ",", False, False, False)
except (AttributeError, TypeError):
    _c_encode = None


def dumps_clean_fast(obj: Any) -> bytes:
    """dumps_clean(obj), byte for byte, faster for the common case: when obj
    holds only JSON's own types (clean() changes nothing then) it is encoded
    in one C call; anything else (datetimes, NaN, bytes, lone surrogates...)
    goes through clean() and dumps() as before."""
    if _c_encode is not None:
        try:
            return "".join(_c_encode(obj, 0)).encode("utf-8")
        except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
            pass
    return dumps(clean(obj))


# ------------------------------------------------------------------ ids


def stringify_id(val: Any) -> Optional[str]:
    if val is None:
        return None
    if isinstance(val, str):
        return val
    return str(val)


def identity(passed: Any) -> Tuple[str, bool]:
    """(distinct_id, personless) like posthog-python's get_identity_state."""
    s = stringify_id(passed)
    if s:
        return s, False
    return str(uuid4()), True


def event_uuid(value: Any) -> Optional[str]:
    """Canonical uuid string, or None (C generates a v7) when absent/invalid."""
    if value is None:
        return None
    if isinstance(value, UUID):
        return str(value)
    s = stringify_id(value)
    try:
        if not s:
            raise ValueError
        return str(UUID(s))
    except ValueError:
        log.error(
            "Invalid event uuid %r. Expected a valid UUID string or uuid.UUID instance. "
            "Falling back to a generated UUID.",
            value,
        )
        return None


# ------------------------------------------------------------------ timestamps


def _is_naive(dt: datetime) -> bool:
    return dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None


def guess_timezone(dt: datetime) -> datetime:
    """posthog.utils.guess_timezone: a naive datetime within 5 s of
    datetime.now() is local time, any other naive one is UTC."""
    if _is_naive(dt):
        delta = (datetime.now() - dt).total_seconds()
        if 0 <= delta < 5:
            dt = dt.replace(tzinfo=datetime.now().astimezone().tzinfo)
        else:
            dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _parse_iso(s: str) -> datetime:
    if re.fullmatch(r"\d{4}-?\d{2}-?\d{2}", s):
        raise ValueError(s)
    n = s.replace("Z", "+00:00")
    n = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", n)
    return datetime.fromisoformat(n)


def timestamp_ms(ts: Union[None, datetime, date, str, int, float]) -> int:
    """Unix epoch milliseconds for the C library; 0 means now."""
    if ts is None:
        return 0
    try:
        if isinstance(ts, datetime):
            dt = ts
        elif isinstance(ts, date):
            # posthog-python fails on a plain date (and loses the event):
            # take midnight UTC.
            dt = datetime(ts.year, ts.month, ts.day, tzinfo=timezone.utc)
        elif isinstance(ts, str):
            dt = _parse_iso(ts)
        elif isinstance(ts, (int, float)):
            # seconds or milliseconds? posthog-python fails on a number (the
            # event is lost); guessing could send 1970 or the year 55000:
            # refused, the event keeps the current time
            log.warning(
                "Invalid timestamp %r: a number is not accepted (seconds or milliseconds "
                "since the epoch is ambiguous); pass a datetime (e.g. "
                "datetime.fromtimestamp(ts, timezone.utc)) or an ISO 8601 string. "
                "Falling back to the current UTC time.", ts)
            return 0
        else:
            raise ValueError(ts)
        ms = (guess_timezone(dt) - _EPOCH) // _MS
    except (ValueError, TypeError, OverflowError):
        log.warning("Invalid timestamp %r. Falling back to the current UTC time.", ts)
        return 0
    return ms  # (exactly 1970-01-01T00:00:00.000Z would read as "now" in C)


# ------------------------------------------------------------------ system context

_system_context: Optional[Dict[str, Any]] = None


def _os_info() -> Dict[str, str]:
    p = sys.platform
    if p.startswith("win"):
        return {"$os": "Windows", "$os_version": platform.win32_ver()[0] or ""}
    if p == "darwin":
        return {"$os": "Mac OS X", "$os_version": platform.mac_ver()[0] or ""}
    if p.startswith("linux"):
        rel: Dict[str, str] = {}
        try:
            rel = platform.freedesktop_os_release()  # type: ignore[attr-defined]
        except (OSError, AttributeError):
            rel = {}
        info = {"$os": "Linux", "$os_version": rel.get("VERSION_ID", "")}
        if rel.get("NAME"):
            info["$os_distro"] = rel["NAME"]
        return info
    if p.startswith("freebsd"):
        return {"$os": "FreeBSD", "$os_version": platform.release()}
    return {"$os": p, "$os_version": platform.release()}


def system_context() -> Dict[str, Any]:
    """posthog-python's system_context(), computed once per process."""
    global _system_context
    if _system_context is None:
        _system_context = {
            "$python_runtime": platform.python_implementation(),
            "$python_version": "%s.%s.%s" % sys.version_info[:3],
            **_os_info(),
        }
    return _system_context


def release_id() -> Optional[str]:
    raw = os.environ.get("POSTHOG_RELEASE_ID")
    if raw is None:
        return None
    raw = raw.strip()
    return raw or None
