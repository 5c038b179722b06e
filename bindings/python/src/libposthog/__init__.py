"""libposthog: PostHog event capture for Python on top of the libposthog C library.

A drop-in for posthog-python 7.x's capture API::

    from libposthog import Posthog
    posthog = Posthog("phc_...", host="https://us.i.posthog.com")
    posthog.capture("signed_up", distinct_id="user-1", properties={"plan": "pro"})

or module-level, like posthog-python::

    import libposthog
    libposthog.api_key = "phc_..."
    libposthog.capture("signed_up", distinct_id="user-1")
"""

from __future__ import annotations

import threading
from typing import Any, Dict, Optional

from . import _native
from .client import (
    APIError,
    BeforeSend,
    CaptureCompression,
    CaptureMode,
    Client,
    OnError,
    Posthog,
    PosthogError,
    Transport,
    TransportRequest,
    TransportResponse,
)
from .contexts import (
    get_context_device_id,
    get_context_distinct_id,
    get_context_session_id,
    get_tags,
    identify_context,
    new_context,
    scoped,
    set_context_device_id,
    set_context_session,
    tag,
)
from .flags import FeatureFlagEvaluations, FeatureFlagResult
from .version import VERSION

__version__ = VERSION

# A package without a loadable C library is a broken install: say so at
# import, loudly (a RuntimeWarning, shown by default, and an ERROR log), not
# only by clients that quietly come up disabled.
try:
    _native.load()
except OSError as _e:
    import logging as _logging
    import warnings as _warnings

    _msg = "%s; every libposthog client will be disabled" % _e
    _logging.getLogger("libposthog").error("%s", _msg)
    _warnings.warn(_msg, RuntimeWarning, stacklevel=2)

# ------------------------------------------------------------------ module settings
# Read by setup() when the default client is created (first module-level call).

api_key = None  # type: Optional[str]
project_api_key = None  # type: Optional[str]
host = None  # type: Optional[str]
on_error = None  # type: Optional[OnError]
debug = False  # type: bool
send = True  # type: bool
sync_mode = False  # type: bool
disabled = False  # type: bool
disable_geoip = True  # type: bool
is_server = True  # type: bool
super_properties = None  # type: Optional[Dict[str, Any]]
before_send = None  # type: Optional[BeforeSend]
historical_migration = False  # type: bool
# None: $POSTHOG_CAPTURE_MODE / $POSTHOG_CAPTURE_COMPRESSION, else libposthog's default
capture_mode = None  # type: Optional[CaptureMode | str]
capture_compression = None  # type: Optional[CaptureCompression | str]
# feature flags: local evaluation with a secret key (personal_api_key is the
# older name), definitions polled every poll_interval seconds
personal_api_key = None  # type: Optional[str]
secret_key = None  # type: Optional[str]
poll_interval = 30  # type: int
feature_flags_request_timeout_seconds = None  # type: Optional[float]
# error tracking (posthog-python's names)
enable_exception_autocapture = False  # type: bool
log_captured_exceptions = False  # type: bool
project_root = None  # type: Optional[str]
in_app_modules = None  # type: Optional[list]
# libposthog extras
flush_at = None  # type: Optional[int]
flush_interval = None  # type: Optional[float]
max_queue_size = None  # type: Optional[int]
max_queue_bytes = None  # type: Optional[int]
gzip = None  # type: Optional[bool]
max_retries = None  # type: Optional[int]
timeout = None  # type: Optional[float]
storage_path = None  # type: Optional[str]
durability = None  # type: Optional[str]
options = None  # type: Optional[Dict[str, Any]]

default_client = None  # type: Optional[Posthog]
_setup_lock = threading.Lock()


def setup() -> Posthog:
    """Creates (once) and returns the default client from the module settings."""
    global default_client
    if default_client is None:
        with _setup_lock:
            if default_client is None:
                key = (project_api_key or "").strip() or (api_key or "").strip()
                default_client = Posthog(
                    key,
                    host=host,
                    debug=debug,
                    on_error=on_error,
                    send=send,
                    sync_mode=sync_mode,
                    disabled=disabled,
                    disable_geoip=disable_geoip,
                    is_server=is_server,
                    historical_migration=historical_migration,
                    capture_mode=capture_mode,
                    capture_compression=capture_compression,
                    super_properties=super_properties,
                    before_send=before_send,
                    flush_at=flush_at,
                    flush_interval=flush_interval,
                    max_queue_size=max_queue_size,
                    max_queue_bytes=max_queue_bytes,
                    gzip=gzip,
                    max_retries=max_retries,
                    timeout=timeout,
                    storage_path=storage_path,
                    durability=durability,
                    options=options,
                    poll_interval=poll_interval,
                    personal_api_key=personal_api_key,
                    secret_key=secret_key,
                    feature_flags_request_timeout_seconds=feature_flags_request_timeout_seconds,
                    enable_exception_autocapture=enable_exception_autocapture,
                    log_captured_exceptions=log_captured_exceptions,
                    project_root=project_root,
                    in_app_modules=in_app_modules,
                )
    c = default_client
    # Like posthog-python: these follow the module settings on every call.
    c.disabled = disabled or not c.api_key or c._handle is None
    c.debug = debug
    if before_send is not c.before_send:
        c.before_send = before_send
    return c


def _proxy(method: str, *args: Any, **kwargs: Any) -> Any:
    return getattr(setup(), method)(*args, **kwargs)


def capture(event: str, **kwargs: Any) -> Optional[str]:
    """Module-level Posthog.capture on the default client."""
    return _proxy("capture", event, **kwargs)


def capture_exception(exception: Any = None, **kwargs: Any) -> Optional[str]:
    """Module-level Posthog.capture_exception on the default client."""
    return _proxy("capture_exception", exception, **kwargs)


def capture_ai(event: str, **kwargs: Any) -> Optional[str]:
    """Module-level Posthog.capture_ai on the default client (the AI endpoint)."""
    return _proxy("capture_ai", event, **kwargs)


def capture_durable(event: str, **kwargs: Any) -> Optional[str]:
    """Module-level Posthog.capture_durable on the default client (needs storage_path)."""
    return _proxy("capture_durable", event, **kwargs)


def set(**kwargs: Any) -> Optional[str]:  # noqa: A001 - posthog-python's name
    """Module-level Posthog.set on the default client."""
    return _proxy("set", **kwargs)


def set_once(**kwargs: Any) -> Optional[str]:
    """Module-level Posthog.set_once on the default client."""
    return _proxy("set_once", **kwargs)


def group_identify(group_type: str, group_key: str, properties: Optional[Dict[str, Any]] = None,
                   timestamp: Any = None, uuid: Any = None, disable_geoip: Optional[bool] = None,
                   distinct_id: Any = None) -> Optional[str]:
    """Module-level Posthog.group_identify on the default client."""
    return _proxy("group_identify", group_type, group_key, properties, timestamp=timestamp,
                  uuid=uuid, disable_geoip=disable_geoip, distinct_id=distinct_id)


def alias(previous_id: Any, distinct_id: Any, timestamp: Any = None, uuid: Any = None,
          disable_geoip: Optional[bool] = None) -> Optional[str]:
    """Module-level Posthog.alias on the default client."""
    return _proxy("alias", previous_id, distinct_id, timestamp=timestamp, uuid=uuid,
                  disable_geoip=disable_geoip)


def get_feature_flag(key: str, distinct_id: Any, **kwargs: Any) -> Any:
    """Module-level Posthog.get_feature_flag on the default client."""
    return _proxy("get_feature_flag", key, distinct_id, **kwargs)


def feature_enabled(key: str, distinct_id: Any, **kwargs: Any) -> Optional[bool]:
    """Module-level Posthog.feature_enabled on the default client."""
    return _proxy("feature_enabled", key, distinct_id, **kwargs)


def get_feature_flag_payload(key: str, distinct_id: Any, **kwargs: Any) -> Any:
    """Module-level Posthog.get_feature_flag_payload on the default client."""
    return _proxy("get_feature_flag_payload", key, distinct_id, **kwargs)


def get_feature_flag_result(key: str, distinct_id: Any, **kwargs: Any) -> Optional[FeatureFlagResult]:
    """Module-level Posthog.get_feature_flag_result on the default client."""
    return _proxy("get_feature_flag_result", key, distinct_id, **kwargs)


def get_all_flags(distinct_id: Any, **kwargs: Any) -> Optional[Dict[str, Any]]:
    """Module-level Posthog.get_all_flags on the default client."""
    return _proxy("get_all_flags", distinct_id, **kwargs)


def get_all_flags_and_payloads(distinct_id: Any, **kwargs: Any) -> Dict[str, Any]:
    """Module-level Posthog.get_all_flags_and_payloads on the default client."""
    return _proxy("get_all_flags_and_payloads", distinct_id, **kwargs)


def evaluate_flags(distinct_id: Any = None, **kwargs: Any) -> FeatureFlagEvaluations:
    """Module-level Posthog.evaluate_flags on the default client."""
    return _proxy("evaluate_flags", distinct_id, **kwargs)


def load_feature_flags() -> None:
    """Module-level Posthog.load_feature_flags on the default client."""
    return _proxy("load_feature_flags")


def flush(timeout_seconds: Optional[float] = 10) -> None:
    """Flushes the default client (if one was created)."""
    if default_client is not None:
        default_client.flush(timeout_seconds=timeout_seconds)


def join() -> None:
    """Flushes and stops the default client."""
    if default_client is not None:
        default_client.join()


def shutdown() -> None:
    """Flushes and permanently shuts down the default client."""
    if default_client is not None:
        default_client.shutdown()


def library_path() -> Optional[str]:
    """Path of the libposthog shared library in use (loads it if needed)."""
    _native.load()
    return _native.library_path()


def library_version() -> str:
    """Version of the libposthog C library in use."""
    return _native.version()


def _after_fork_in_child() -> None:
    global _setup_lock
    _setup_lock = threading.Lock()  # may have been held by another thread at fork


import os as _os  # noqa: E402

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "Posthog",
    "Transport",
    "TransportRequest",
    "TransportResponse",
    "Client",
    "APIError",
    "PosthogError",
    "CaptureMode",
    "CaptureCompression",
    "BeforeSend",
    "OnError",
    "VERSION",
    "capture",
    "capture_ai",
    "capture_durable",
    "capture_exception",
    "set",
    "set_once",
    "group_identify",
    "alias",
    "new_context",
    "scoped",
    "tag",
    "get_tags",
    "identify_context",
    "set_context_session",
    "set_context_device_id",
    "get_context_session_id",
    "get_context_distinct_id",
    "get_context_device_id",
    "FeatureFlagEvaluations",
    "FeatureFlagResult",
    "get_feature_flag",
    "feature_enabled",
    "get_feature_flag_payload",
    "get_feature_flag_result",
    "get_all_flags",
    "get_all_flags_and_payloads",
    "evaluate_flags",
    "load_feature_flags",
    "flush",
    "join",
    "shutdown",
    "setup",
    "library_path",
    "library_version",
]
