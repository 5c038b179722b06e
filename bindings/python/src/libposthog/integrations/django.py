"""Django: ``MIDDLEWARE = [..., "libposthog.integrations.django.PosthogContextMiddleware"]``,
posthog-python's middleware under the binding's package.

Every request runs in a new context (contexts.py) tagged with
``$current_url``, ``$request_method``, ``$request_path``, ``$ip``
(X-Forwarded-For), ``$user_agent`` / ``$raw_user_agent`` and the
authenticated user's ``email``; the context's distinct_id is the
X-POSTHOG-DISTINCT-ID header, else the authenticated user's pk, and its
session the X-POSTHOG-SESSION-ID header. Sync (WSGI) and async (ASGI)
chains both work. Settings, as posthog-python reads them:

- ``POSTHOG_MW_CLIENT``: the client exceptions go to (default: the module's)
- ``POSTHOG_MW_CAPTURE_EXCEPTIONS``: True (default) / False / None (the
  client's enable_exception_autocapture)
- ``POSTHOG_MW_REQUEST_FILTER``: request -> bool; False: no context
- ``POSTHOG_MW_EXTRA_PROPERTIES`` (alias ``POSTHOG_MW_EXTRA_TAGS``): request -> dict
- ``POSTHOG_MW_PROPERTIES_MAP`` (alias ``POSTHOG_MW_TAG_MAP``): dict -> dict
- ``POSTHOG_MW_CAPTURE_TRACING_HEADERS`` (deprecated ``..._TRUST_...``): read
  the headers [True]
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, Optional, Tuple

from .. import contexts
from ..client import Posthog
from ._common import apply_headers, capture_exception, resolve_capture_headers, wants_exceptions

try:  # Django's own detection of async views / middleware
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
except ImportError:  # pragma: no cover - Django always has asgiref
    iscoroutinefunction = asyncio.iscoroutinefunction

    def markcoroutinefunction(func: Any) -> Any:
        return func


def _settings() -> Any:
    try:
        from django.conf import settings
    except ImportError:  # used outside Django (tests): no settings
        return object()
    return settings


class PosthogContextMiddleware:
    """Runs each request in a PostHog context (see the module docstring)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        self._is_coroutine = iscoroutinefunction(get_response)
        if self._is_coroutine:
            markcoroutinefunction(self)
        settings = _settings()
        extra = (getattr(settings, "POSTHOG_MW_EXTRA_PROPERTIES")
                 if hasattr(settings, "POSTHOG_MW_EXTRA_PROPERTIES")
                 else getattr(settings, "POSTHOG_MW_EXTRA_TAGS", None))
        self.extra_properties = extra if callable(extra) else None
        flt = getattr(settings, "POSTHOG_MW_REQUEST_FILTER", None)
        self.request_filter = flt if callable(flt) else None
        pmap = (getattr(settings, "POSTHOG_MW_PROPERTIES_MAP")
                if hasattr(settings, "POSTHOG_MW_PROPERTIES_MAP")
                else getattr(settings, "POSTHOG_MW_TAG_MAP", None))
        self.properties_map = pmap if callable(pmap) else None
        ce = getattr(settings, "POSTHOG_MW_CAPTURE_EXCEPTIONS", True)
        self.capture_exceptions: Optional[bool] = ce if ce is None or isinstance(ce, bool) else True
        self.capture_tracing_headers = resolve_capture_headers(
            getattr(settings, "POSTHOG_MW_CAPTURE_TRACING_HEADERS", None),
            getattr(settings, "POSTHOG_MW_TRUST_TRACING_HEADERS", None),
            "POSTHOG_MW_CAPTURE_TRACING_HEADERS", "POSTHOG_MW_TRUST_TRACING_HEADERS")
        client = getattr(settings, "POSTHOG_MW_CLIENT", None)
        self.client: Optional[Posthog] = client if isinstance(client, Posthog) else None

    # posthog-python's older names
    @property
    def extra_tags(self) -> Any:
        return self.extra_properties

    @property
    def tag_map(self) -> Any:
        return self.properties_map

    # -------------------------------------------------------------- request data

    @staticmethod
    def _user_details(user: Any) -> Tuple[Optional[str], Optional[str]]:
        if user is None:
            return None, None
        authed = getattr(user, "is_authenticated", False)
        if callable(authed):  # very old Django
            authed = authed()
        if not authed:
            return None, None
        pk = getattr(user, "pk", None)
        email = getattr(user, "email", None)
        return (str(pk) if pk is not None else None), (str(email) if email else None)

    def extract_request_user(self, request: Any) -> Tuple[Optional[str], Optional[str]]:
        return self._user_details(getattr(request, "user", None))

    async def aextract_request_user(self, request: Any) -> Tuple[Optional[str], Optional[str]]:
        auser = getattr(request, "auser", None)
        if not callable(auser):
            return None, None
        try:
            return self._user_details(await auser())
        except Exception:
            return None, None

    def _build(self, request: Any, user_id: Optional[str], email: Optional[str]) -> Dict[str, Any]:
        apply_headers(request.headers.get, self.capture_tracing_headers, user_id)
        tags: Dict[str, Any] = {}
        if email:
            tags["email"] = email
        url = request.build_absolute_uri()
        if url:
            tags["$current_url"] = url
        if request.method:
            tags["$request_method"] = request.method
        if request.path:
            tags["$request_path"] = request.path
        ip = request.headers.get("X-Forwarded-For")
        if ip:
            tags["$ip"] = ip
        ua = request.headers.get("User-Agent")
        if ua:
            tags["$user_agent"] = ua
            tags["$raw_user_agent"] = ua
        if self.extra_properties:
            extra = self.extra_properties(request)
            if extra:
                tags.update(extra)
        if self.properties_map:
            tags = self.properties_map(tags)
        return tags

    def extract_properties(self, request: Any) -> Dict[str, Any]:
        return self._build(request, *self.extract_request_user(request))

    extract_tags = extract_properties

    async def aextract_properties(self, request: Any) -> Dict[str, Any]:
        return self._build(request, *(await self.aextract_request_user(request)))

    aextract_tags = aextract_properties

    # -------------------------------------------------------------- the chain

    def __call__(self, request: Any) -> Any:
        if self._is_coroutine:
            return self.__acall__(request)
        if self.request_filter and not self.request_filter(request):
            return self.get_response(request)
        with contexts.new_context(capture_exceptions=self.capture_exceptions, client=self.client):
            for k, v in self.extract_properties(request).items():
                contexts.tag(k, v)
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        if self.request_filter and not self.request_filter(request):
            return await self.get_response(request)
        with contexts.new_context(capture_exceptions=self.capture_exceptions, client=self.client):
            for k, v in (await self.aextract_properties(request)).items():
                contexts.tag(k, v)
            return await self.get_response(request)

    def process_exception(self, request: Any, exception: BaseException) -> None:
        """Django turns a view's exception into a response before it leaves
        the chain: captured here, inside the request's context."""
        if self.request_filter and not self.request_filter(request):
            return
        if wants_exceptions(self.capture_exceptions, self.client):
            capture_exception(self.client, exception)
