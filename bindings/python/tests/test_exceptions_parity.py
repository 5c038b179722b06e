"""Error tracking parity with posthog-python 7.91.1 (from PyPI).

The same exception is captured by a libposthog client and by a
posthog-python client, both pointed at the local ingestion server; the
$exception events that arrive are compared field by field: every property
and in $exception_list every entry, mechanism and frame (filename, abs_path,
function, module, lineno, pre_context / context_line / post_context,
in_app); the differences allowed are listed in parity_allowed.json. Skipped when posthog-python cannot be imported (PyPI unreachable
when the test venv was made).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any, Callable, Dict, List

import pytest

import exc_samples
from parity import ALLOWED, current_scenario

posthog = pytest.importorskip("posthog")


@pytest.fixture(autouse=True)
def _capture_v0(monkeypatch):
    """Both libraries read POSTHOG_CAPTURE_MODE: compare v0 with v0."""
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")


def test_posthog_python_is_the_compared_version():
    from posthog.version import VERSION

    if VERSION != "7.91.1":
        pytest.skip("compared with posthog-python %s, not 7.91.1" % VERSION)


def _exceptions(events: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [e for e in events if e["event"] == "$exception"]


def _both(server, make_client, fn: Callable[[Any], Any], **kw):
    """fn(client) on libposthog, then on posthog-python (the same line, so a
    never-raised exception gets the same stack); both clients' events."""
    ours = make_client(**kw)
    theirs = posthog.Posthog("phc_test", host=server.url, **kw)
    results = []
    events = []
    try:
        for c in (ours, theirs):  # ours first: posthog-python marks what it captured
            results.append(fn(c))
            c.flush()
            events.append(_exceptions(server.wait_events(1)))
            server.reset()
    finally:
        theirs.shutdown()
    return events[0], events[1], results


def _compare(o: Dict[str, Any], t: Dict[str, Any], random_did: bool = False) -> None:
    """Every field, $exception_list entry, mechanism and frame compared; every
    difference must be allowed by parity_allowed.json for this test."""
    assert o["event"] == t["event"] == "$exception"
    if random_did:
        assert o["distinct_id"] != t["distinct_id"]
    ALLOWED.check(current_scenario(), o, t, path="$exception/")


def _one_each(server, make_client, fn, **kw):
    o, t, res = _both(server, make_client, fn, **kw)
    assert len(o) == len(t) == 1, (o, t)
    assert res[0] == o[0]["uuid"] and isinstance(res[1], str)
    return o[0], t[0]


def test_raise_from_chain(server, make_client):
    e = exc_samples.caught(lambda: exc_samples.load("x"))
    o, t = _one_each(server, make_client, lambda c: c.capture_exception(
        e, distinct_id="user-1", properties={"order": 42}))
    _compare(o, t)
    lst = o["properties"]["$exception_list"]
    assert [x["type"] for x in lst] == ["AppError", "ValueError"]
    assert lst[1]["mechanism"]["source"] == "cause"
    assert o["properties"]["$exception_level"] == "error"


def test_implicit_context_chain_and_groups(server, make_client):
    e = exc_samples.caught(exc_samples.handle_context)
    o, t = _one_each(server, make_client, lambda c: c.capture_exception(e, distinct_id="u"))
    _compare(o, t)
    assert [x["type"] for x in o["properties"]["$exception_list"]] == [
        "KeyError", "AppError", "ValueError"]
    if sys.version_info >= (3, 11):
        g = exc_samples.caught(exc_samples.group)
        o, t = _one_each(server, make_client, lambda c: c.capture_exception(g, distinct_id="u"))
        _compare(o, t)
        lst = o["properties"]["$exception_list"]
        assert lst[0]["mechanism"]["is_exception_group"] is True
        assert [x["mechanism"].get("source") for x in lst[1:]] == ["member", "member", "cause"]
        assert lst[1]["mechanism"]["meta"] == {"errno": {"number": 2}}


def test_never_raised_gets_the_callers_stack(server, make_client):
    e = exc_samples.AppError("never raised")
    o, t = _one_each(server, make_client, lambda c: c.capture_exception(e, distinct_id="u"))
    _compare(o, t)
    ex = o["properties"]["$exception_list"][0]
    assert ex["mechanism"]["synthetic"] is True
    frames = ex["stacktrace"]["frames"]
    assert frames[-1]["function"] == "<lambda>"  # the call, not libposthog's frames
    assert not any((f["module"] or "").startswith("libposthog") for f in frames)
    assert any(f.get("in_app") is False for f in frames)  # pytest, in site-packages


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # both warn of $exception_level
def test_the_exception_being_handled_and_options(server, make_client):
    def capture(c):
        try:
            exc_samples.parse("nope")
        except ValueError:
            return c.capture_exception(None, distinct_id=42, groups={"company": "acme"},
                                       timestamp="2024-05-01T10:00:00+00:00",
                                       properties={"$exception_level": "warning", "k": [1]},
                                       disable_geoip=False)

    o, t = _one_each(server, make_client, capture)
    _compare(o, t)
    assert o["properties"]["$exception_level"] == "warning"
    assert o["properties"]["$groups"] == {"company": "acme"}
    assert o["timestamp"].startswith("2024-05-01T10:00:00")


def test_in_app_modules_and_project_root(server, make_client):
    e = exc_samples.caught(lambda: exc_samples.load("x"))
    o, t = _one_each(server, make_client, lambda c: c.capture_exception(e, distinct_id="u"),
                     in_app_modules=["exc_samples"], project_root="/nonexistent-root")
    _compare(o, t)
    frames = [f for x in o["properties"]["$exception_list"] for f in x["stacktrace"]["frames"]]
    assert {f["in_app"] for f in frames if f["module"] == "exc_samples"} == {True}
    assert all("in_app" not in f for f in frames if f["module"] != "exc_samples")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_threading_excepthook_both_installed(server, make_client):
    before = threading.excepthook
    ours = make_client(enable_exception_autocapture=True)
    theirs = posthog.Posthog("phc_test", host=server.url, enable_exception_autocapture=True)
    seen = []
    try:
        t = threading.Thread(target=lambda: exc_samples.load("thread"), name="worker")
        # the original hook prints to stderr; keep the output quiet
        theirs_hook = threading.excepthook
        assert theirs_hook is not before
        t.start()
        t.join()
        ours.flush()
        theirs.flush()
        seen = _exceptions(server.wait_events(2))
    finally:
        theirs.shutdown()
        ours.shutdown()
    assert threading.excepthook is before
    by_lib = {e["properties"]["$lib"]: e for e in seen}
    assert set(by_lib) == {"libposthog-python", "posthog-python"}
    o, t = by_lib["libposthog-python"], by_lib["posthog-python"]
    _compare(o, t, random_did=True)
    p = o["properties"]
    assert p["$exception_level"] == "error"
    assert p["$exception_source"] == "python.threading_excepthook"
    assert p["$exception_list"][0]["mechanism"]["type"] == "onuncaughtexception"
    assert p["$exception_list"][0]["mechanism"]["handled"] is False


SCRIPT = """\
import os
import sys

if sys.argv[1] == "ours":
    import libposthog as lib
else:
    import posthog as lib
client = lib.Posthog("phc_test", host=os.environ["PH_URL"], enable_exception_autocapture=True,
                     sync_mode=True)


def fail(what):
    raise RuntimeError("uncaught " + what)


fail("in main")
"""


def test_sys_excepthook_uncaught_in_main(server, tmp_path):
    (tmp_path / "app.py").write_text(SCRIPT)
    env = dict(os.environ, PH_URL=server.url, POSTHOG_CAPTURE_MODE="v0")
    env.pop("PYTHONPATH", None)
    events = {}
    for which in ("ours", "theirs"):
        r = subprocess.run([sys.executable, "app.py", which], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, r.stderr
        # the previous hook (the interpreter's) still printed the traceback
        assert "RuntimeError: uncaught in main" in r.stderr
        ev = _exceptions(server.wait_events(1))
        assert len(ev) == 1, (which, ev, r.stderr)
        events[which] = ev[0]
        server.reset()
    o, t = events["ours"], events["theirs"]
    _compare(o, t, random_did=True)
    p = o["properties"]
    assert p["$exception_level"] == "fatal"
    assert p["$exception_source"] == "python.sys_excepthook"
    frames = p["$exception_list"][0]["stacktrace"]["frames"]
    assert [f["function"] for f in frames] == ["<module>", "fail"]
    assert frames[1]["context_line"] == '    raise RuntimeError("uncaught " + what)'
    assert all(f["in_app"] is True and f["filename"] == "app.py" for f in frames)
