"""Flask: ``PosthogFlaskIntegration(app)`` (or ``.init_app(app)`` later),
posthog-python's integration under the binding's package.

Every request runs in a fresh context tagged with ``$current_url`` (without
the query string), ``$request_method``, ``$request_path``, ``$ip``,
``$user_agent`` / ``$raw_user_agent`` and ``$request_route``, plus
extra_properties(request); the X-POSTHOG-DISTINCT-ID / X-POSTHOG-SESSION-ID
headers identify it (capture_tracing_headers, default True). Unhandled
exceptions (Flask's got_request_exception) are captured when
capture_exceptions (None: the client's enable_exception_autocapture).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional

from .. import contexts
from ._common import apply_headers, capture_exception, resolve_capture_headers, wants_exceptions

_EXTENSION_KEY = "posthog"
_STATE = "_libposthog_request_scope"


class PosthogFlaskIntegration:
    """See the module docstring; the keywords are posthog-python's."""

    def __init__(self, app: Any = None, *, client: Any = None,
                 capture_exceptions: Optional[bool] = None,
                 request_filter: Optional[Callable[[Any], bool]] = None,
                 extra_properties: Optional[Callable[[Any], Mapping[str, Any]]] = None,
                 trust_tracing_headers: Optional[bool] = None,
                 capture_tracing_headers: Optional[bool] = None) -> None:
        self.client = client
        self.capture_exceptions = capture_exceptions
        self.request_filter = request_filter
        self.extra_properties = extra_properties
        self.capture_tracing_headers = resolve_capture_headers(capture_tracing_headers,
                                                               trust_tracing_headers)
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any) -> None:
        """Registers the integration with a Flask application (once)."""
        try:
            from flask import got_request_exception
        except ImportError as e:  # pragma: no cover - exercised without Flask
            raise RuntimeError("PosthogFlaskIntegration requires Flask to be installed") from e
        if _EXTENSION_KEY in app.extensions:
            raise RuntimeError("PostHog is already initialized for this Flask app")
        app.extensions[_EXTENSION_KEY] = self
        app.before_request(self._before_request)
        app.teardown_request(self._teardown_request)
        got_request_exception.connect(self._on_exception, app, weak=False)

    @staticmethod
    def _request_properties(request: Any) -> Dict[str, Any]:
        props: Dict[str, Any] = {
            "$current_url": request.base_url,  # no query string: it may hold secrets
            "$request_method": request.method,
            "$request_path": request.path,
        }
        if request.remote_addr:
            props["$ip"] = request.remote_addr
        ua = request.headers.get("User-Agent")
        if ua:
            props["$user_agent"] = ua
            props["$raw_user_agent"] = ua
        rule = getattr(request, "url_rule", None)
        if rule is not None:
            props["$request_route"] = str(rule)
        return props

    def _before_request(self) -> None:
        from flask import g, request

        if self.request_filter is not None and not self.request_filter(request):
            setattr(g, _STATE, None)
            return
        # exceptions are captured through got_request_exception (Flask handles
        # them before the request stack unwinds), not by the context
        scope = contexts.new_context(fresh=True, capture_exceptions=False, client=self.client)
        scope.__enter__()
        setattr(g, _STATE, scope)
        apply_headers(request.headers.get, self.capture_tracing_headers)
        for k, v in self._request_properties(request).items():
            contexts.tag(k, v)
        if self.extra_properties is not None:
            for k, v in (self.extra_properties(request) or {}).items():
                contexts.tag(k, v)

    def _on_exception(self, sender: Any, exception: BaseException, **kwargs: Any) -> None:
        from flask import g, has_request_context

        if not has_request_context() or getattr(g, _STATE, None) is None:
            return
        if wants_exceptions(self.capture_exceptions, self.client):
            capture_exception(self.client, exception)

    def _teardown_request(self, exception: Optional[BaseException]) -> None:
        from flask import g

        scope = getattr(g, _STATE, None)
        if scope is None:
            return
        setattr(g, _STATE, None)
        scope.__exit__(None, None, None)
