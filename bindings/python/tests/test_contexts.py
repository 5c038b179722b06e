"""Contexts (new_context, tag, identify_context, set_context_session, scoped)
applied to captures as posthog-python applies them, compared field by field
with posthog-python's own contexts, and isolated per thread and asyncio task."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, List

import pytest

import libposthog
from test_parity import _compare, _run

posthog = pytest.importorskip("posthog")


def _sorted_tags(events: List[dict]) -> List[dict]:
    # posthog-python sends $context_tags from a set: the order is arbitrary
    for e in events:
        for where in (e.get("properties") or {}, e.get("$set") or {}, e.get("$set_once") or {}):
            if isinstance(where.get("$context_tags"), list):
                where["$context_tags"] = sorted(where["$context_tags"])
    return events


def _scenario(mod: Any) -> List[Any]:
    """The same calls, made through `mod`'s contexts (libposthog or posthog)."""

    def run(c):
        rets = []
        with mod.new_context(capture_exceptions=False):
            mod.tag("request_id", "r-1")
            mod.tag("plan", "free")
            mod.identify_context("ctx-user")
            mod.set_context_session("sess-1")
            rets.append(c.capture("in context"))
            rets.append(c.capture("explicit wins", distinct_id="other",
                                  properties={"plan": "pro", "$session_id": "mine"}))
            with mod.new_context(capture_exceptions=False):
                mod.tag("inner", 1)
                mod.tag("plan", "team")  # the inner scope's tag wins
                rets.append(c.capture("nested"))
            with mod.new_context(fresh=True, capture_exceptions=False):
                mod.tag("only", True)
                rets.append(c.capture("fresh: personless, no session"))
            rets.append(c.set(properties={"email": "a@b.c"}))
            rets.append(c.set_once(properties={"first": 1}))
            rets.append(c.group_identify("company", "acme", {"n": 1}, distinct_id="u"))
            rets.append(c.alias("prev", "ctx-user"))
        rets.append(c.capture("outside", distinct_id="u"))
        return rets

    return [run]


def test_contexts_match_posthog_python(server, make_client, monkeypatch):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")
    ours = make_client()
    our_ret = _scenario(libposthog)[0](ours)
    ours.flush()
    o = _sorted_tags(server.events())
    server.reset()
    theirs = posthog.Posthog("phc_test", host=server.url)
    try:
        their_ret = _scenario(posthog)[0](theirs)
        theirs.flush()
        t = _sorted_tags(server.wait_events(sum(1 for r in their_ret if r)))
    finally:
        theirs.shutdown()
    assert [e["event"] for e in o] == [e["event"] for e in t]
    assert len(o) == 9
    for i, (a, b) in enumerate(zip(o, t)):
        _compare(a, b, random_did=a["event"].startswith("fresh"))
    assert o[0]["distinct_id"] == "ctx-user"
    assert o[0]["properties"]["request_id"] == "r-1"
    assert o[0]["properties"]["$session_id"] == "sess-1"
    assert o[0]["properties"]["$context_tags"] == ["plan", "request_id"]
    assert "$process_person_profile" not in o[0]["properties"]  # a person event
    assert o[1]["properties"]["plan"] == "pro" and o[1]["properties"]["$session_id"] == "mine"
    assert o[2]["properties"]["plan"] == "team"
    assert o[3]["properties"]["$process_person_profile"] is False
    assert "$session_id" not in o[3]["properties"]


def test_contexts_are_per_thread_and_per_task(server, make_client):
    c = make_client()
    barrier = threading.Barrier(4)

    def worker(i):
        with libposthog.new_context():
            libposthog.tag("worker", i)
            libposthog.identify_context("user-%d" % i)
            barrier.wait()  # every thread is inside its own context now
            c.capture("thread")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def task(i):
        with libposthog.new_context():
            libposthog.tag("task", i)
            await asyncio.sleep(0.01)  # the other tasks run in between
            c.capture("task", distinct_id="t%d" % i)

    @libposthog.scoped()
    async def decorated():
        libposthog.tag("decorated", True)
        await asyncio.sleep(0)
        c.capture("decorated", distinct_id="d")

    async def main():
        await asyncio.gather(*(task(i) for i in range(4)), decorated())

    asyncio.run(main())
    c.capture("after", distinct_id="x")  # outside any context: nothing applied
    c.flush()
    ev = server.events()
    threads_ev = [e for e in ev if e["event"] == "thread"]
    assert sorted(e["distinct_id"] for e in threads_ev) == ["user-%d" % i for i in range(4)]
    for e in threads_ev:
        assert e["distinct_id"] == "user-%d" % e["properties"]["worker"]
        assert e["properties"]["$context_tags"] == ["worker"]
    tasks_ev = [e for e in ev if e["event"] == "task"]
    assert sorted((e["distinct_id"], e["properties"]["task"]) for e in tasks_ev) == \
        [("t%d" % i, i) for i in range(4)]
    assert all("decorated" not in e["properties"] for e in tasks_ev)
    dec = [e for e in ev if e["event"] == "decorated"][0]
    assert dec["properties"]["decorated"] is True and "task" not in dec["properties"]
    after = [e for e in ev if e["event"] == "after"][0]
    assert "$context_tags" not in after["properties"] and "$session_id" not in after["properties"]
    assert libposthog.get_tags() == {}


def test_scoped_sync_and_getters():
    @libposthog.scoped()
    def inner():
        libposthog.tag("a", 1)
        libposthog.set_context_session("s")
        libposthog.identify_context("d")
        return (libposthog.get_tags(), libposthog.get_context_session_id(),
                libposthog.get_context_distinct_id())

    assert inner() == ({"a": 1}, "s", "d")
    assert libposthog.get_tags() == {} and libposthog.get_context_session_id() is None
    libposthog.tag("outside", 1)  # no context: nothing, as posthog-python
    assert libposthog.get_tags() == {}


def test_new_context_captures_the_exception_when_asked(server, make_client):
    calls = []

    class Recorder:
        enable_exception_autocapture = True

        def capture_exception(self, e):
            calls.append(e)

    rec = Recorder()
    with pytest.raises(ValueError):
        with libposthog.new_context(client=rec):  # the client's autocapture setting
            raise ValueError("boom")
    with pytest.raises(KeyError):
        with libposthog.new_context(client=rec, capture_exceptions=False):
            raise KeyError("no")
    assert [type(e) for e in calls] == [ValueError]
