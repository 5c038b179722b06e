"""Error tracking in the Python binding (capture_exception, exception
autocapture), checked on what the local ingestion server received. The
comparison with posthog-python is test_exceptions_parity.py; these run
without it."""

from __future__ import annotations

import importlib
import logging
import sys
import threading

import pytest

import exc_samples
import libposthog
from libposthog import exceptions

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


def _exceptions(server, n=1):
    return [e for e in server.wait_events(n) if e["event"] == "$exception"]


@pytest.mark.parametrize("mode", ["v0", "v1"])
def test_chain_shape(server, make_client, mode):
    c = make_client(capture_mode=mode)
    e = exc_samples.caught(exc_samples.handle_context)
    u = c.capture_exception(e, distinct_id="u", properties={"plan": "pro"})
    c.flush()
    (ev,) = _exceptions(server)
    assert ev["uuid"] == u and ev["distinct_id"] == "u"
    p = ev["properties"]
    assert p["plan"] == "pro" and p["$exception_level"] == "error"
    if mode == "v0":  # v1 names the library in a header
        assert p["$lib"] == "libposthog-python"
    lst = p["$exception_list"]
    # the caught exception first, then what it was raised during / from
    assert [(x["type"], x["module"]) for x in lst] == [
        ("KeyError", None), ("AppError", "exc_samples"), ("ValueError", None)]
    assert lst[0]["mechanism"] == {"exception_id": 0, "type": "generic", "handled": True,
                                   "synthetic": False}
    assert lst[1]["mechanism"] == {"exception_id": 1, "source": "context", "parent_id": 0,
                                   "type": "chained", "synthetic": False}
    assert lst[2]["mechanism"]["source"] == "cause" and lst[2]["mechanism"]["parent_id"] == 1
    assert lst[1]["value"] == "could not load 'x'"
    frames = lst[1]["stacktrace"]["frames"]
    assert [f["function"] for f in frames] == ["handle_context", "load"]  # outermost first
    f = frames[-1]
    assert f["platform"] == "python" and f["module"] == "exc_samples"
    assert f["filename"] == "exc_samples.py" and f["abs_path"] == exc_samples.__file__
    assert f["context_line"] == '        raise AppError("could not load %r" % value) from e'
    assert f["pre_context"][-1] == "    except ValueError as e:" and len(f["pre_context"]) == 5
    assert len(f["post_context"]) == 5
    assert f["in_app"] is True  # under the project root (the working directory)
    assert lst[0]["stacktrace"]["type"] == "raw"


def test_nothing_to_capture_and_bad_arguments(server, make_client, caplog):
    c = make_client()
    caplog.set_level(logging.DEBUG, logger="libposthog")
    assert c.capture_exception() is None
    assert "No exception information available" in caplog.text
    assert c.capture_exception("not an exception") is None
    assert "must be an exception instance, an exc_info tuple or None" in caplog.text
    with pytest.raises(TypeError, match="not str"):
        make_client(debug=True).capture_exception("not an exception")
    c.flush()
    assert _exceptions(server, 0) == []


def test_captured_once(server, make_client):
    c = make_client()
    e = exc_samples.caught(lambda: exc_samples.parse("x"))
    assert c.capture_exception(e, distinct_id="u") is not None
    assert c.capture_exception(e, distinct_id="u") is None  # already captured
    c.flush()
    assert len(_exceptions(server)) == 1


def test_exc_info_tuple_and_level_and_disabled(server, make_client):
    c = make_client()
    try:
        exc_samples.parse("x")
    except ValueError:
        info = sys.exc_info()
    with pytest.warns(DeprecationWarning, match=r"\$exception_level"):
        u = c.capture_exception(info, distinct_id="u", properties={"$exception_level": "info"})
    assert make_client(disabled=True).capture_exception(info) is None
    c.flush()
    (ev,) = _exceptions(server)
    assert ev["uuid"] == u and ev["properties"]["$exception_level"] == "info"
    assert ev["properties"]["$exception_list"][0]["stacktrace"]["frames"][-1]["function"] == "parse"


def test_long_source_lines_are_null(server, make_client, tmp_path, monkeypatch):
    src = "def boom():\n    x = 1  # " + "y" * 1100 + "\n    raise ValueError(x)\n"
    (tmp_path / "longline_mod.py").write_text(src)
    monkeypatch.syspath_prepend(str(tmp_path))
    mod = importlib.import_module("longline_mod")
    c = make_client()
    c.capture_exception(exc_samples.caught(mod.boom), distinct_id="u")
    c.flush()
    (ev,) = _exceptions(server)
    f = ev["properties"]["$exception_list"][0]["stacktrace"]["frames"][-1]
    assert f["context_line"] == "    raise ValueError(x)"
    assert f["pre_context"] == ["def boom():", None]  # > 1024 bytes: null, as posthog-python


def test_before_send_sees_the_exception(server, make_client):
    seen = []

    def bs(msg):
        seen.append(msg)
        msg["properties"]["checked"] = True
        return msg

    c = make_client(before_send=bs)
    c.capture_exception(exc_samples.caught(lambda: exc_samples.load("x")), distinct_id="u")
    c.flush()
    (ev,) = _exceptions(server)
    assert seen[0]["event"] == "$exception"
    assert seen[0]["properties"]["$exception_list"] == ev["properties"]["$exception_list"]
    assert ev["properties"]["checked"] is True


def test_log_captured_exceptions(server, make_client, caplog):
    c = make_client(log_captured_exceptions=True)
    caplog.set_level(logging.ERROR, logger="libposthog")
    c.capture_exception(exc_samples.caught(lambda: exc_samples.parse("q")), distinct_id="u")
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records)


def test_threading_excepthook_captures_and_chains(server, make_client):
    before = threading.excepthook
    calls = []

    def previous(args):
        calls.append(args.exc_type)

    threading.excepthook = previous
    try:
        c = make_client(enable_exception_autocapture=True)
        assert threading.excepthook is not previous
        t = threading.Thread(target=lambda: exc_samples.load("t"))
        t.start()
        t.join()
        c.flush()
        (ev,) = _exceptions(server)
        assert calls == [exc_samples.AppError]  # the previous hook still ran
        p = ev["properties"]
        assert p["$exception_level"] == "error"
        assert p["$exception_source"] == "python.threading_excepthook"
        assert p["$exception_list"][0]["mechanism"] == {
            "type": "onuncaughtexception", "handled": False, "exception_id": 0,
            "synthetic": False}
        c.shutdown()
        assert threading.excepthook is previous  # put back
    finally:
        threading.excepthook = before


def test_closed_hook_in_the_middle_is_skipped(server, make_client):
    before_sys, before_thread = sys.excepthook, threading.excepthook
    try:
        first = make_client(enable_exception_autocapture=True)
        second = make_client(enable_exception_autocapture=True)
        first.shutdown()  # its hook stays under second's, but captures nothing
        assert threading.excepthook == second.exception_capture.threading_excepthook
        t = threading.Thread(target=lambda: exc_samples.parse("t"))
        t.start()
        t.join()
        second.flush()
        assert len(_exceptions(server)) == 1
        second.shutdown()
        assert sys.excepthook is before_sys and threading.excepthook is before_thread
    finally:
        sys.excepthook, threading.excepthook = before_sys, before_thread


def test_sys_excepthook_in_process(server, make_client, capsys):
    before = sys.excepthook
    c = make_client(enable_exception_autocapture=True)
    try:
        e = exc_samples.caught(lambda: exc_samples.load("main"))
        sys.excepthook(type(e), e, e.__traceback__)  # what the interpreter calls
        c.flush()
        (ev,) = _exceptions(server)
        assert ev["properties"]["$exception_level"] == "fatal"
        assert ev["properties"]["$exception_source"] == "python.sys_excepthook"
        assert "AppError: could not load 'main'" in capsys.readouterr().err  # previous hook
    finally:
        c.shutdown()
    assert sys.excepthook is before


def test_module_level(server, monkeypatch):
    monkeypatch.setattr(libposthog, "default_client", None)
    monkeypatch.setattr(libposthog, "api_key", "phc_test")
    monkeypatch.setattr(libposthog, "host", server.url)
    monkeypatch.setattr(libposthog, "capture_mode", "v0")
    monkeypatch.setattr(libposthog, "in_app_modules", ["exc_samples"])
    try:
        u = libposthog.capture_exception(exc_samples.caught(lambda: exc_samples.parse("m")),
                                         distinct_id="u")
        libposthog.flush()
        (ev,) = _exceptions(server)
        assert ev["uuid"] == u
        assert libposthog.default_client.in_app_modules == ["exc_samples"]
    finally:
        libposthog.shutdown()


def test_levels_and_limits():
    assert exceptions.normalize_level("CRITICAL") == "fatal"
    assert exceptions.normalize_level("warn") == "warning"
    assert exceptions.normalize_level("panic") is None

    def deep(n):
        if n == 0:
            raise ValueError(0)
        try:
            deep(n - 1)
        except ValueError as e:
            raise ValueError(n) from e

    e = exc_samples.caught(lambda: deep(80))
    lst = exceptions.exception_list((type(e), e, e.__traceback__))
    assert len(lst) == exceptions.MAX_EXCEPTIONS == 50
    # a cycle (a.__context__ is b, b.__context__ is a) ends
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert [x["value"] for x in exceptions.exception_list((ValueError, a, None))] == ["a", "b"]


def test_debug_bad_level_property_kept(server, make_client):
    # the caller's $exception_level is sent as given (posthog-python lets it replace)
    c = make_client(debug=True)
    with pytest.warns(DeprecationWarning):
        c.capture_exception(exc_samples.caught(lambda: exc_samples.parse("x")), distinct_id="u",
                            properties={"$exception_level": "custom"})
    c.flush()
    (ev,) = _exceptions(server)
    assert ev["properties"]["$exception_level"] == "custom"
