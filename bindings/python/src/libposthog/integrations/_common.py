"""What the integrations share: PostHog's tracing headers, exception capture."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any, Callable, Optional

from .. import contexts

log = logging.getLogger("libposthog")

DISTINCT_ID_HEADER = "X-POSTHOG-DISTINCT-ID"
SESSION_ID_HEADER = "X-POSTHOG-SESSION-ID"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MAX_HEADER = 1000


def clean_header(value: object) -> Optional[str]:
    """A header value as posthog-python keeps it: text without control
    characters, trimmed, at most 1000 characters; None when empty."""
    if not isinstance(value, str):
        return None
    return _CONTROL.sub("", value).strip()[:_MAX_HEADER] or None


def resolve_capture_headers(capture: Optional[bool], trust: Optional[bool],
                            canonical: str = "capture_tracing_headers",
                            deprecated: str = "trust_tracing_headers") -> bool:
    """capture_tracing_headers, or its deprecated alias; default True."""
    if trust is not None:
        warnings.warn("%s is deprecated; use %s instead." % (deprecated, canonical),
                      DeprecationWarning, stacklevel=3)
    if capture is not None:
        return capture if isinstance(capture, bool) else False
    if trust is not None:
        return trust if isinstance(trust, bool) else False
    return True


def apply_headers(get_header: Callable[[str], object], capture_headers: bool,
                  fallback_distinct_id: Optional[str] = None) -> None:
    """The request's PostHog headers (the frontend's distinct id and session)
    on the current context; else the fallback (the authenticated user)."""
    distinct_id = fallback_distinct_id
    if capture_headers:
        try:
            header_id = clean_header(get_header(DISTINCT_ID_HEADER))
            session_id = clean_header(get_header(SESSION_ID_HEADER))
        except Exception:
            header_id = session_id = None
        distinct_id = header_id or distinct_id
        if session_id:
            contexts.set_context_session(session_id)
    if distinct_id:
        contexts.identify_context(distinct_id)


def wants_exceptions(setting: Optional[bool], client: Any) -> bool:
    """An integration's capture_exceptions (None: the client's autocapture)."""
    if setting is not None:
        return bool(setting)
    return contexts._default_capture_exceptions(client)


_warned_no_capture = False


def capture_exception(client: Any, exc: BaseException) -> None:
    """Sends exc through client's capture_exception (None: the default client
    through the package's module-level function); never raises."""
    global _warned_no_capture
    if client is not None:
        fn = getattr(client, "capture_exception", None)
    else:
        fn = contexts._package().get("capture_exception")
    if fn is None:
        if not _warned_no_capture:
            _warned_no_capture = True
            log.warning("libposthog: this build of the binding has no capture_exception; "
                        "exceptions seen by the integrations are not captured")
        return
    try:
        fn(exc)
    except Exception:  # pragma: no cover - never replace the application's error
        log.debug("libposthog: capture_exception failed", exc_info=True)
