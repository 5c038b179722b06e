"""Celery: ``PosthogCeleryIntegration(client=...).instrument()``,
posthog-python's integration under the binding's package.

- The publisher's context (distinct_id, session, tags) travels with the task
  in its headers (X-POSTHOG-DISTINCT-ID / -SESSION-ID / -CONTEXT-TAGS) and the
  worker runs the task in a fresh context holding it, tagged with the task's
  celery_* properties (propagate_context).
- Lifecycle events "celery task published / started / success / failure /
  retry" with celery_task_id, celery_task_name, celery_state,
  celery_hostname, celery_exchange, celery_routing_key, celery_queue,
  celery_retry_count, celery_version, celery_task_duration_ms (at the end),
  error_type / error_message (failure), celery_reason (retry)
  (capture_task_lifecycle_events); task_filter(name, properties) -> False
  skips a task.
- A failing task's exception goes to capture_exception (capture_exceptions).
- shutdown() disconnects the signals and flushes (also at worker process
  shutdown and at exit).
"""

from __future__ import annotations

import atexit
import json
import logging
import time
from typing import Any, Callable, Dict, Optional

from .. import contexts
from ._common import DISTINCT_ID_HEADER, SESSION_ID_HEADER, capture_exception

log = logging.getLogger("libposthog")

CONTEXT_DISTINCT_ID_HEADER = DISTINCT_ID_HEADER
CONTEXT_SESSION_ID_HEADER = SESSION_ID_HEADER
CONTEXT_TAGS_HEADER = "X-POSTHOG-CONTEXT-TAGS"


class PosthogCeleryIntegration:
    """See the module docstring; the keywords are posthog-python's."""

    def __init__(self, client: Any = None, capture_exceptions: bool = True,
                 capture_task_lifecycle_events: bool = True, propagate_context: bool = True,
                 task_filter: Optional[Callable[[Optional[str], Dict[str, Any]], bool]] = None):
        self.client = client
        self.capture_exceptions = capture_exceptions
        self.capture_task_lifecycle_events = capture_task_lifecycle_events
        self.propagate_context = propagate_context
        self.task_filter = task_filter
        self._instrumented = False
        self._shut_down = False
        self._signals: Any = None
        self._celery_version: Optional[str] = None

    _HANDLERS = (("task_prerun", "_on_task_prerun"), ("task_success", "_on_task_success"),
                 ("task_failure", "_on_task_failure"), ("task_retry", "_on_task_retry"),
                 ("before_task_publish", "_on_before_task_publish"),
                 ("after_task_publish", "_on_after_task_publish"),
                 ("worker_process_shutdown", "_on_worker_process_shutdown"))

    def instrument(self) -> None:
        """Connects the Celery signal handlers (once)."""
        if self._instrumented:
            return
        from celery import __version__ as celery_version
        from celery import signals

        self._shut_down = False
        self._signals = signals
        self._celery_version = celery_version
        for sig, handler in self._HANDLERS:
            getattr(signals, sig).connect(getattr(self, handler), weak=False)
        atexit.register(self.shutdown)
        self._instrumented = True

    def _disconnect(self) -> None:
        if not self._instrumented or not self._signals:
            return
        for sig, handler in self._HANDLERS:
            getattr(self._signals, sig).disconnect(getattr(self, handler))
        self._signals = None
        self._instrumented = False

    def uninstrument(self) -> None:
        self._disconnect()
        atexit.unregister(self.shutdown)

    def shutdown(self) -> None:
        """Disconnects the handlers and flushes what was captured."""
        if self._shut_down:
            return
        try:
            self._disconnect()
            if self.client is not None:
                self.client.flush()
            else:
                contexts._package()["flush"]()
            self.uninstrument()
            self._shut_down = True
        except Exception:
            log.exception("libposthog: shutting the Celery integration down failed")

    def _on_worker_process_shutdown(self, *args: Any, **kwargs: Any) -> None:
        self.shutdown()

    # ------------------------------------------------------------ publisher

    def _on_before_task_publish(self, *args: Any, **kwargs: Any) -> None:
        try:
            headers = kwargs.get("headers")
            if not self.propagate_context or not isinstance(headers, dict):
                return
            add: Dict[str, str] = {}
            did = contexts.get_context_distinct_id()
            sid = contexts.get_context_session_id()
            tags = contexts.get_tags()
            if did:
                add[CONTEXT_DISTINCT_ID_HEADER] = did
            if sid:
                add[CONTEXT_SESSION_ID_HEADER] = sid
            if tags:
                add[CONTEXT_TAGS_HEADER] = json.dumps(tags, default=str)
            if add:
                headers.update(add)
                # Celery protocol 2 hands the worker only the nested headers
                headers.setdefault("headers", {}).update(add)
        except Exception:
            log.exception("libposthog: propagating the context to a Celery task failed")

    def _on_after_task_publish(self, *args: Any, **kwargs: Any) -> None:
        try:
            if not self.capture_task_lifecycle_events:
                return
            name = kwargs.get("sender")  # the task's name here
            headers = kwargs.get("headers")
            headers = headers if isinstance(headers, dict) else {}
            props = {
                "celery_task_id": headers.get("id"),
                "celery_task_name": name,
                "celery_state": "published",
                "celery_exchange": kwargs.get("exchange"),
                "celery_routing_key": kwargs.get("routing_key"),
                "celery_hostname": None,
                "celery_retry_count": headers.get("retries"),
                "celery_version": self._celery_version,
            }
            if self._should_track(name, props):
                self._capture("celery task published", props)
        except Exception:
            log.exception("libposthog: the Celery 'published' event failed")

    # ------------------------------------------------------------ worker

    def _on_task_prerun(self, *args: Any, **kwargs: Any) -> None:
        scope = None
        try:
            task_id = kwargs.get("task_id")
            if not task_id:
                return
            sender = kwargs.get("sender")
            request = getattr(sender, "request", None)
            headers = self._headers(request)
            props = self._task_properties(sender, task_id, "started")
            if request is not None:
                scope = contexts.new_context(fresh=True, capture_exceptions=False,
                                             client=self.client)
                scope.__enter__()
                request._posthog_ctx = scope
                request._posthog_start = time.monotonic()
            if headers.get(CONTEXT_DISTINCT_ID_HEADER):
                contexts.identify_context(str(headers[CONTEXT_DISTINCT_ID_HEADER]))
            if headers.get(CONTEXT_SESSION_ID_HEADER):
                contexts.set_context_session(str(headers[CONTEXT_SESSION_ID_HEADER]))
            # the task's own celery_* values win over propagated tags
            for k, v in {**self._propagated_tags(headers), **props}.items():
                contexts.tag(k, v)
            if self.capture_task_lifecycle_events and \
                    self._should_track(props.get("celery_task_name"), props):
                self._capture("celery task started", props)
        except Exception:
            log.exception("libposthog: Celery task_prerun failed")
            if scope is not None:
                scope.__exit__(None, None, None)

    def _on_task_success(self, *args: Any, **kwargs: Any) -> None:
        self._task_end("success", None, **kwargs)

    def _on_task_failure(self, *args: Any, **kwargs: Any) -> None:
        self._task_end("failure", None, **kwargs)

    def _on_task_retry(self, *args: Any, **kwargs: Any) -> None:
        self._task_end("retry", {"celery_reason": str(kwargs.get("reason"))}, **kwargs)

    def _task_end(self, state: str, extra: Optional[Dict[str, Any]], **kwargs: Any) -> None:
        sender = kwargs.get("sender")
        request = getattr(sender, "request", None)
        try:
            task_id = kwargs.get("task_id")
            if task_id is None:
                task_id = getattr(request, "id", None)
            props = self._task_properties(sender, task_id, state)
            props.update(extra or {})
            start = getattr(request, "_posthog_start", None)
            if start is not None:
                props["celery_task_duration_ms"] = round((time.monotonic() - start) * 1000.0, 3)
            exc = kwargs.get("exception")
            if exc:
                props["error_type"] = type(exc).__name__
                props["error_message"] = str(exc)
            track = False
            if self.capture_task_lifecycle_events or (exc and self.capture_exceptions):
                track = self._should_track(props.get("celery_task_name"), props)
            if exc and self.capture_exceptions and track:
                capture_exception(self.client, exc)
            if self.capture_task_lifecycle_events and track:
                self._capture("celery task %s" % state, props)
        except Exception:
            log.exception("libposthog: Celery %s handling failed", state)
        finally:
            scope = getattr(request, "_posthog_ctx", None)
            if scope is not None:
                request._posthog_ctx = None
                scope.__exit__(None, None, None)

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _headers(request: Any) -> Dict[str, Any]:
        if request is None:
            return {}
        headers = getattr(request, "headers", None)
        if isinstance(headers, dict):
            return headers
        if isinstance(request, dict) and isinstance(request.get("headers"), dict):
            return request["headers"]
        return {}

    @staticmethod
    def _propagated_tags(headers: Dict[str, Any]) -> Dict[str, Any]:
        raw = headers.get(CONTEXT_TAGS_HEADER)
        if not isinstance(raw, (str, bytes, bytearray)):
            return {}
        try:
            parsed = json.loads(raw)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}

    def _task_properties(self, sender: Any, task_id: Any, state: str) -> Dict[str, Any]:
        request = getattr(sender, "request", None)
        info = getattr(request, "delivery_info", None)
        info = info if isinstance(info, dict) else {}
        return {
            "celery_task_id": task_id,
            "celery_task_name": getattr(sender, "name", None),
            "celery_state": state,
            "celery_hostname": getattr(request, "hostname", None),
            "celery_exchange": info.get("exchange"),
            "celery_routing_key": info.get("routing_key"),
            "celery_queue": info.get("queue"),
            "celery_retry_count": getattr(request, "retries", None),
            "celery_version": self._celery_version,
        }

    def _should_track(self, name: Optional[str], props: Dict[str, Any]) -> bool:
        return bool(self.task_filter(name, props)) if self.task_filter else True

    def _capture(self, event: str, props: Dict[str, Any]) -> None:
        if self.client is not None:
            self.client.capture(event, properties=props)
        else:
            contexts._package()["capture"](event, properties=props)


__all__ = ["PosthogCeleryIntegration"]
