"""Contexts, as posthog-python 7.x/8 has them (``posthog.new_context`` ...).

A context is a scope (a ``with new_context():`` block, or a function under
``@scoped()``) holding tags, a distinct_id and a session id. Every event
captured inside it, by any client, carries them the way posthog-python
applies them:

- ``capture``: the tags become properties (the event's own properties and
  the SDK's system context win over them), ``$context_tags`` lists the tag
  names, and ``$session_id`` is the context's session unless the properties
  set one; without a distinct_id the context's is used (a person event, not
  personless).
- ``set`` / ``set_once``: the same properties go into ``$set`` /
  ``$set_once`` (posthog-python does that too); the context's distinct_id.
- ``group_identify`` / ``alias``: only ``$session_id``.

Scopes nest: a child inherits its parent's tags (its own win), distinct_id
and session unless ``fresh=True``. The current scope lives in a
``contextvars.ContextVar``, so threads and asyncio tasks each see their own
(a new thread starts outside any context, a task starts in a copy of its
creator's), and a forked child starts outside any context.

An exception leaving a context is captured (``capture_exception``) when the
scope's ``capture_exceptions`` is on (default: the client's
``enable_exception_autocapture``), then re-raised.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

_generation = 0  # bumped in a forked child: scopes from before the fork are gone


class ContextScope:
    """One scope; its getters follow the parent chain unless it is fresh."""

    def __init__(self, parent: Optional["ContextScope"] = None, fresh: bool = False,
                 capture_exceptions: bool = False, client: Any = None) -> None:
        self.parent = parent
        self.fresh = fresh
        self.capture_exceptions = capture_exceptions
        self.client = client
        self.session_id: Optional[str] = None
        self.distinct_id: Optional[str] = None
        self.device_id: Optional[str] = None
        self.tags: Dict[str, Any] = {}
        self._generation = _generation

    def _inherits(self) -> bool:
        return self.parent is not None and not self.fresh

    def get_session_id(self) -> Optional[str]:
        if self.session_id is not None:
            return self.session_id
        return self.parent.get_session_id() if self._inherits() else None  # type: ignore[union-attr]

    def get_distinct_id(self) -> Optional[str]:
        if self.distinct_id is not None:
            return self.distinct_id
        return self.parent.get_distinct_id() if self._inherits() else None  # type: ignore[union-attr]

    def get_device_id(self) -> Optional[str]:
        if self.device_id is not None:
            return self.device_id
        return self.parent.get_device_id() if self._inherits() else None  # type: ignore[union-attr]

    def collect_tags(self) -> Dict[str, Any]:
        """The tags of this scope and its ancestors; the innermost win."""
        tags = self.parent.collect_tags() if self._inherits() else {}  # type: ignore[union-attr]
        tags.update(self.tags)
        return tags


_current: contextvars.ContextVar[Optional[ContextScope]] = contextvars.ContextVar(
    "libposthog_context", default=None
)


def _after_fork_in_child() -> None:
    global _generation
    _generation += 1
    _current.set(None)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def current() -> Optional[ContextScope]:
    """The innermost active scope of this thread / task, or None."""
    scope = _current.get()
    if scope is not None and scope._generation != _generation:
        return None
    return scope


def _package() -> Dict[str, Any]:
    """The package's namespace: its settings and default client."""
    import sys

    mod = sys.modules.get(__name__.rpartition(".")[0])
    return vars(mod) if mod is not None else {}


def _default_capture_exceptions(client: Any) -> bool:
    if client is not None:
        return bool(getattr(client, "enable_exception_autocapture", False))
    module = _package()
    default = module.get("default_client")
    value = getattr(default, "enable_exception_autocapture", None) if default else None
    if isinstance(value, bool):
        return value
    return bool(module.get("enable_exception_autocapture", False))


def _capture_exception(scope: ContextScope, exc: BaseException) -> None:
    target: Any = scope.client
    if target is None:
        module = _package()
        target = module.get("default_client") or None
        fn = getattr(target, "capture_exception", None) or module.get("capture_exception")
    else:
        fn = getattr(target, "capture_exception", None)
    if fn is None:
        import logging

        logging.getLogger("libposthog").warning(
            "libposthog: new_context(capture_exceptions=True): this client has no "
            "capture_exception; the %s was not captured", type(exc).__name__)
        return
    try:
        fn(exc)
    except Exception:  # never replace the application's exception
        pass


@contextmanager
def new_context(fresh: bool = False, capture_exceptions: Optional[bool] = None,
                client: Any = None) -> Iterator[None]:
    """A new context scope for the ``with`` block (see the module docstring).

    fresh: start empty instead of inheriting the parent's tags, distinct_id
    and session. capture_exceptions: capture an exception leaving the block
    before re-raising it (None: the client's enable_exception_autocapture).
    client: the client that captures those exceptions (None: the default
    client); events keep going through whichever client captures them."""
    parent = current()
    generation = _generation
    resolved = (capture_exceptions if capture_exceptions is not None
                else _default_capture_exceptions(client))
    scope = ContextScope(parent, fresh, resolved, client)
    token = _current.set(scope)
    try:
        yield
    except Exception as e:
        if scope.capture_exceptions:
            _capture_exception(scope, e)
        raise
    finally:
        if generation == _generation:
            try:
                _current.reset(token)
            except ValueError:  # left in another context (a generator moved across tasks)
                _current.set(parent)


def scoped(fresh: bool = False, capture_exceptions: Optional[bool] = None) -> Callable[[F], F]:
    """Decorator: runs the function (or coroutine function) in a new_context()."""

    def decorator(func: F) -> F:
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with new_context(fresh=fresh, capture_exceptions=capture_exceptions):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with new_context(fresh=fresh, capture_exceptions=capture_exceptions):
                return func(*args, **kwargs)

        return cast(F, wrapper)

    return decorator


def tag(key: str, value: Any) -> None:
    """Adds a tag to the current context (nothing outside a context)."""
    scope = current()
    if scope is not None:
        scope.tags[key] = value


def get_tags() -> Dict[str, Any]:
    """A copy of the current context's tags (with the inherited ones)."""
    scope = current()
    return scope.collect_tags() if scope is not None else {}


def identify_context(distinct_id: str) -> None:
    """Events of this context (and its children) without a distinct_id get
    this one, as person events."""
    scope = current()
    if scope is not None:
        scope.distinct_id = distinct_id


def set_context_session(session_id: str) -> None:
    """Events of this context (and its children) get $session_id."""
    scope = current()
    if scope is not None:
        scope.session_id = session_id


def set_context_device_id(device_id: str) -> None:
    """Records a device id on the current context (get_context_device_id);
    events are not changed by it, as in posthog-python's capture."""
    scope = current()
    if scope is not None:
        scope.device_id = device_id


def get_context_session_id() -> Optional[str]:
    scope = current()
    return scope.get_session_id() if scope is not None else None


def get_context_distinct_id() -> Optional[str]:
    scope = current()
    return scope.get_distinct_id() if scope is not None else None


def get_context_device_id() -> Optional[str]:
    scope = current()
    return scope.get_device_id() if scope is not None else None


# ------------------------------------------------------------------ used by the client


def apply(properties: Dict[str, Any]) -> Dict[str, Any]:
    """posthog-python's add_context_tags, without changing the caller's
    dict: the tags under the properties, $context_tags, $session_id."""
    scope = current()
    if scope is None:
        return properties
    tags = scope.collect_tags()
    out = dict(tags)
    out.update(properties)
    out["$context_tags"] = list(tags)  # the SDK's, as in posthog-python
    if "$session_id" not in out:
        session = scope.get_session_id()
        if session:
            out["$session_id"] = session
    return out


def session_property() -> Dict[str, Any]:
    """{"$session_id": ...} of the current context, or {}."""
    session = get_context_session_id()
    return {"$session_id": str(session)} if session else {}
