"""Context parity with posthog-python 7.91.1 beyond test_contexts.py: the
scoped decorator (sync and async), contexts inside asyncio tasks, and the
exception a context captures on exit, with the context's tags, distinct_id
and session. Events compared field by field; differences must be listed in
parity_allowed.json."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import libposthog
from parity import check_events
from test_contexts import _sorted_tags

posthog = pytest.importorskip("posthog")


@pytest.fixture(autouse=True)
def _capture_v0(monkeypatch):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")


def _script(mod: Any, c: Any) -> None:
    @mod.scoped()
    def sync_scoped():
        mod.tag("where", "sync")
        mod.identify_context("scoped-user")
        c.capture("scoped sync")

    @mod.scoped()
    async def async_scoped(i):
        mod.tag("task", i)
        mod.set_context_session("s-%d" % i)
        await asyncio.sleep(0.01)  # the other task runs in between
        c.capture("scoped task %d" % i, distinct_id="t%d" % i)

    async def main():
        await asyncio.gather(async_scoped(1), async_scoped(2))

    sync_scoped()
    asyncio.run(main())
    try:
        with mod.new_context(client=c, capture_exceptions=True):
            mod.tag("request_id", "r-9")
            mod.identify_context("ctx-user")
            mod.set_context_session("sess-9")
            raise ValueError("failed in a context")
    except ValueError:
        pass
    c.capture("after", distinct_id="x")


def test_scoped_async_and_exception_in_context(server, make_client):
    ours = make_client(enable_exception_autocapture=True)
    _script(libposthog, ours)
    ours.flush()
    o = _sorted_tags(server.events())
    server.reset()
    theirs = posthog.Posthog("phc_test", host=server.url, enable_exception_autocapture=True)
    try:
        _script(posthog, theirs)
        theirs.flush()
        t = _sorted_tags(server.wait_events(len(o), timeout=5))
    finally:
        theirs.shutdown()
    assert sorted(e["event"] for e in o) == sorted(
        ["scoped sync", "scoped task 1", "scoped task 2", "$exception", "after"])
    exc = [e for e in o if e["event"] == "$exception"][0]
    assert exc["distinct_id"] == "ctx-user"
    assert exc["properties"]["request_id"] == "r-9"
    check_events(o, t)
