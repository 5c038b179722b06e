"""Behaviour of the libposthog Python client against the local ingestion server."""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import uuid as uuidlib

import pytest

import libposthog
from libposthog import APIError, Posthog, PosthogError


def _names(events):
    return [e["event"] for e in events]


def test_library_loads():
    path = libposthog.library_path()
    assert path and os.path.exists(path)
    assert libposthog.library_version().count(".") == 2


def test_every_method_delivers(server, make_client):
    c = make_client()
    rets = [
        c.capture("e1", distinct_id="u", properties={"a": 1}),
        c.set(distinct_id="u", properties={"x": 1}),
        c.set_once(distinct_id="u", properties={"y": 2}),
        c.alias("old", "u"),
        c.group_identify("company", "acme", {"n": 1}, distinct_id="u"),
    ]
    c.flush()
    ev = server.events()
    assert _names(ev) == ["e1", "$set", "$set_once", "$create_alias", "$groupidentify"]
    assert [e["uuid"] for e in ev] == rets  # the returned uuid is the event's
    assert ev[1]["$set"] == {"x": 1} and ev[2]["$set_once"] == {"y": 2}
    assert ev[3]["properties"]["alias"] == "u" and ev[3]["distinct_id"] == "old"
    assert ev[4]["properties"]["$group_set"] == {"n": 1}
    assert c.stats()["sent"] == 5


def test_explicit_uuid_and_invalid_uuid(server, make_client, caplog):
    c = make_client()
    u = uuidlib.uuid4()
    assert c.capture("a", distinct_id="u", uuid=u) == str(u)
    assert c.capture("b", distinct_id="u", uuid=str(u).upper()) == str(u)
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        r = c.capture("c", distinct_id="u", uuid="not-a-uuid")
    assert r and r != "not-a-uuid" and "Invalid event uuid" in caplog.text
    c.flush()
    assert len(server.events()) == 3


def test_errors_do_not_raise(server, make_client, caplog):
    c = make_client()
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        assert c.capture("", distinct_id="u") is None  # empty event name
        assert c.capture("e", distinct_id="u", properties={("tuple", "key"): 1}) is None
        assert c.capture("e", distinct_id="u", properties="not a dict") is None  # type: ignore
        assert c.capture("e", distinct_id="u\x00x") is None
        assert c.capture("e", distinct_id="u", timestamp="yesterday") is not None  # now
    assert "refused" in caplog.text and "Invalid timestamp" in caplog.text
    c.flush()
    assert _names(server.events()) == ["e"]


def test_debug_raises(server, make_client):
    c = make_client(debug=True)
    with pytest.raises(PosthogError) as ei:
        c.capture("", distinct_id="u")
    assert ei.value.status == 2  # POSTHOG_E_INVALID_EVENT
    with pytest.raises(TypeError):
        c.capture("e", distinct_id="u", properties={("tuple", "key"): 1})
    with pytest.raises(PosthogError):
        make_client(debug=True, options={"no_such_option": 1})


def test_bad_options_are_logged_not_raised(server, make_client, caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        c = make_client(options={"no_such_option": 1, "flush_at": "zero"},
                        storage_path=str(tmp_path / "spool"), durability="fsync")
    # a valid storage_path is taken; a bad durability value is logged, not raised
    assert "storage_path" not in caplog.text and "durability" in caplog.text
    assert "no_such_option" in caplog.text
    assert c.capture("e", distinct_id="u")
    c.flush()
    assert len(server.events()) == 1


def test_unknown_posthog_python_keywords_accepted(server, make_client):
    c = make_client(personal_api_key="phx_x", poll_interval=10, enable_local_evaluation=False,
                    feature_flags_request_timeout_seconds=1, thread=2)
    assert c.capture("e", distinct_id="u", send_feature_flags=True)
    with pytest.raises(TypeError):
        Posthog("phc_test", host=server.url, not_a_keyword=1)


def test_options_passthrough(server, make_client):
    c = make_client(gzip=False, options={"gzip_level": 9, "max_retries": 0})
    c.capture("e", distinct_id="u")
    c.flush()
    (req,) = server.requests()
    assert req["gzip"] is False
    c2 = make_client()
    server.reset()
    c2.capture("e", distinct_id="u")
    c2.flush()
    assert server.requests()[0]["gzip"] is True


def test_flush_interval_sends_without_flush(server, make_client):
    c = make_client(flush_interval=0.05)
    c.capture("e", distinct_id="u")
    assert len(server.wait_events(1, timeout=5)) == 1


def test_flush_at(server, make_client):
    c = make_client(flush_at=3, flush_interval=60)
    for i in range(3):
        c.capture("e%d" % i, distinct_id="u")
    assert len(server.wait_events(3, timeout=5)) == 3


def test_on_error_called_on_400(server, make_client):
    calls = []
    done = threading.Event()

    def on_error(err, batch):
        calls.append((err, batch, threading.current_thread() is threading.main_thread()))
        done.set()

    c = make_client(on_error=on_error, max_retries=0)
    server.faults([{"status": 400}])
    u = c.capture("doomed", distinct_id="u", properties={"k": "v"})
    c.flush()
    assert done.wait(5)
    (err, batch, on_main) = calls[0]
    assert isinstance(err, APIError) and isinstance(err, Exception)
    assert err.status == 400 and err.reason == "rejected" and err.count == 1
    assert [e["uuid"] for e in batch] == [u]
    assert batch[0]["event"] == "doomed" and batch[0]["properties"]["k"] == "v"
    assert not on_main  # it runs on libposthog's flusher thread
    assert c.stats()["dropped_rejected"] == 1


def test_on_error_after_retries_and_handler_errors_are_contained(server, make_client, caplog):
    seen = []

    def on_error(err, batch):
        seen.append(err)
        c.flush()  # a lifecycle call from the callback must not deadlock
        raise RuntimeError("handler bug")

    c = make_client(on_error=on_error, max_retries=1, options={"retry_backoff_ms": 1})
    server.faults([{"status": 503}, {"status": 503}])
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        c.capture("e", distinct_id="u")
        c.flush()
    assert len(seen) == 1 and seen[0].reason == "retries_exhausted" and seen[0].status == 503
    assert "on_error handler failed" in caplog.text


def test_retry_then_success_delivers_once(server, make_client):
    c = make_client(options={"retry_backoff_ms": 1})
    server.faults([{"status": 500}])
    u = c.capture("e", distinct_id="u")
    c.flush()
    ev = server.events()
    assert [e["uuid"] for e in ev] == [u]


def test_before_send_modify(server, make_client):
    def bs(msg):
        msg["properties"]["added"] = True
        msg["properties"].pop("secret", None)
        msg["event"] = msg["event"].upper()
        return msg

    c = make_client(before_send=bs)
    u = c.capture("renamed", distinct_id="u", properties={"secret": "x", "keep": 1})
    c.flush()
    (e,) = server.events()
    assert e["event"] == "RENAMED" and e["uuid"] == u
    assert e["properties"]["added"] is True and "secret" not in e["properties"]
    assert e["properties"]["keep"] == 1


def test_before_send_drop_and_errors(server, make_client, caplog):
    def bs(msg):
        if msg["event"] == "drop me":
            return None
        if msg["event"] == "boom":
            raise ValueError("bug in before_send")
        if msg["event"] == "not a dict":
            return ["x"]
        return msg

    c = make_client(before_send=bs)
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        assert c.capture("drop me", distinct_id="u") is None
        assert c.capture("boom", distinct_id="u") is None
        assert c.capture("not a dict", distinct_id="u") is None
        assert c.capture("kept", distinct_id="u") is not None
    assert "Error in before_send callback" in caplog.text
    c.flush()
    assert _names(server.events()) == ["kept"]
    assert c.stats()["dropped_before_send"] == 3


def test_before_send_keeps_numbers_and_refuses_what_posthog_cannot_store(
    server, make_client, caplog
):
    # libposthog copies the replacement as written: a big int stays exact (it
    # went through C doubles before: 9.00719925474099e+15); a replacement the
    # library refuses is dropped as invalid, with the reason logged.
    def bs(msg):
        if msg["event"] == "nameless":
            msg["event"] = ""
        else:
            msg["properties"]["big"] = 9007199254740993
        return msg

    c = make_client(before_send=bs)
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        assert c.capture("exact", distinct_id="u") is not None
        assert c.capture("nameless", distinct_id="u") is None
    c.flush()
    (e,) = server.events()
    assert e["properties"]["big"] == 9007199254740993
    assert isinstance(e["properties"]["big"], int)
    assert "refuses" in caplog.text
    assert c.stats()["dropped_invalid"] == 1


def test_before_send_sees_set_and_timestamp(server, make_client):
    seen = []
    c = make_client(before_send=lambda m: seen.append(m) or m)
    c.set(distinct_id="u", properties={"plan": "pro"})
    c.flush()
    assert seen[0]["$set"] == {"plan": "pro"} and seen[0]["event"] == "$set"
    assert seen[0]["timestamp"].endswith("Z")
    assert server.events()[0]["$set"] == {"plan": "pro"}


def test_sync_mode_delivers_before_returning(server, make_client):
    c = make_client(sync_mode=True, flush_interval=60)
    for i in range(3):
        u = c.capture("s%d" % i, distinct_id="u")
        ev = server.events()  # no flush(): already delivered
        assert len(ev) == i + 1 and ev[-1]["uuid"] == u


def test_sync_mode_with_spool_returns_while_unreachable(make_client, tmp_path):
    # PostHog unreachable (nothing listens on the port): each sync capture
    # returns once its event is safe in the spool, not when the spool drains
    # (which would be never while the endpoint stays down)
    import socket
    import threading

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    c = make_client(host="http://127.0.0.1:%d" % port, sync_mode=True, flush_interval=60,
                    storage_path=str(tmp_path / "spool"), max_retries=1)
    uuids = []
    t = threading.Thread(target=lambda: uuids.extend(c.capture("e%d" % i, distinct_id="u")
                                                     for i in range(3)), daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "sync_mode capture blocked while PostHog is unreachable"
    assert len(uuids) == 3 and all(uuids)
    st = c.stats()
    assert st["spooled"] == 3 and st["spool_pending"] == 3 and st["dropped_total"] == 0


def test_capture_durable_is_on_disk_before_returning(server, make_client, tmp_path):
    spool = tmp_path / "spool"
    c = make_client(storage_path=str(spool), flush_interval=60)
    u = c.capture_durable("purchase", distinct_id="u", properties={"amount": 9.5})
    assert u is not None
    files = [p for p in spool.iterdir() if p.name.endswith(".spool")]
    assert files, "the event is in a spool file when the call returns"
    assert u.encode() in b"".join(p.read_bytes() for p in files)
    c.flush()
    ev = [e for e in server.events() if e["event"] == "purchase"]
    assert len(ev) == 1 and ev[0]["uuid"] == u and ev[0]["properties"]["amount"] == 9.5
    assert c.stats()["spool_pending"] == 0
    # without storage_path it cannot be made durable: None, logged, not raised
    assert make_client().capture_durable("purchase", distinct_id="u") is None


def test_spool_segment_options(server, make_client, tmp_path):
    # issue 13: the spool appends to one segment; its fsync interval and file
    # cap are plain options (passed through options=)
    spool = tmp_path / "spool"
    c = make_client(storage_path=str(spool), flush_interval=60,
                    options={"spool_fsync_interval_ms": 0, "spool_max_files": 4})
    uuids = [c.capture_durable("durable%d" % i, distinct_id="u") for i in range(3)]
    assert all(uuids)
    files = [p for p in spool.iterdir() if p.name.endswith(".spool")]
    assert len(files) == 1, "three durable captures are appended to one segment"
    c.flush()
    assert sorted(e["uuid"] for e in server.events()) == sorted(uuids)
    assert not [p for p in spool.iterdir() if p.name.endswith(".spool")]


def test_disabled(server, make_client):
    c = make_client(disabled=True)
    assert c.capture("e", distinct_id="u") is None
    assert c.set(distinct_id="u", properties={"a": 1}) is None
    c.flush()
    c.disabled = False  # like posthog-python, a plain attribute
    assert c.capture("e2", distinct_id="u") is not None
    c.flush()
    assert _names(server.events()) == ["e2"]


def test_send_false_and_empty_key(server, make_client, caplog):
    c = make_client(send=False)
    assert c.capture("e", distinct_id="u") is not None  # like posthog-python
    c.flush()
    with caplog.at_level(logging.ERROR, logger="libposthog"):
        k = make_client(project_api_key="  ")
    assert k.disabled and "api_key is empty" in caplog.text
    assert k.capture("e", distinct_id="u") is None
    k.flush()
    assert server.events() == []


def test_shutdown_then_capture(server, make_client, caplog):
    c = make_client()
    c.capture("before", distinct_id="u")
    c.shutdown()
    assert _names(server.events()) == ["before"]  # shutdown delivered it
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        assert c.capture("after", distinct_id="u") is None
    assert "shut down" in caplog.text
    c.shutdown()  # idempotent
    c.join()


def test_threads_capture_concurrently(server, make_client):
    c = make_client(flush_at=50)
    per_thread, nthreads = 300, 8
    out = [[] for _ in range(nthreads)]
    start = threading.Barrier(nthreads)

    def worker(i):
        start.wait()
        for j in range(per_thread):
            out[i].append(c.capture("t", distinct_id="u%d" % i, properties={"j": j}))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    c.flush()
    returned = [u for lst in out for u in lst]
    assert None not in returned and len(set(returned)) == per_thread * nthreads
    ev = server.events()
    assert sorted(e["uuid"] for e in ev) == sorted(returned)
    s = server.summary()
    assert s["events"] == per_thread * nthreads and s["duplicate_uuids"] == 0
    # per thread, the order of capture is kept
    for i in range(nthreads):
        js = [e["properties"]["j"] for e in ev if e["distinct_id"] == "u%d" % i]
        assert js == list(range(per_thread))


def _fork_child(fn):
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            code = 0 if fn() else 3
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_fork_child_delivers_its_own_and_parent_not_duplicated(server, make_client):
    c = make_client(flush_interval=60, flush_at=1000)
    parent_before = [c.capture("parent-before", distinct_id="p", properties={"i": i})
                     for i in range(5)]  # still queued at fork time

    def child():
        u = c.capture("child", distinct_id="c")
        c.flush()
        return u is not None and c.stats()["sent"] == 1

    assert _fork_child(child) == 0
    parent_after = c.capture("parent-after", distinct_id="p")
    c.flush()
    ev = server.events()
    names = _names(ev)
    assert names.count("child") == 1
    assert names.count("parent-before") == 5 and names.count("parent-after") == 1
    assert sorted(e["uuid"] for e in ev if e["event"].startswith("parent")) == sorted(
        parent_before + [parent_after])
    assert server.summary()["duplicate_uuids"] == 0


def test_fork_with_callbacks_and_repeated_forks(server, make_client):
    sent_by = []
    c = make_client(before_send=lambda m: (m["properties"].__setitem__("pid", os.getpid()), m)[1],
                    on_error=lambda e, b: sent_by.append(e))

    def child():
        ok = c.capture("child", distinct_id="c") is not None
        c.flush()
        return ok

    c.capture("parent", distinct_id="p")
    codes = [_fork_child(child) for _ in range(3)]
    assert codes == [0, 0, 0]
    c.flush()
    ev = server.events()
    assert _names(ev).count("child") == 3 and _names(ev).count("parent") == 1
    pids = {e["properties"]["pid"] for e in ev if e["event"] == "child"}
    assert len(pids) == 3 and os.getpid() not in pids


@pytest.fixture
def module_client(server):
    """Module-level settings pointed at the server; restored afterwards."""
    saved = {k: getattr(libposthog, k) for k in
             ("api_key", "host", "debug", "disabled", "sync_mode", "before_send",
              "super_properties", "on_error", "default_client")}
    libposthog.default_client = None
    libposthog.api_key = "phc_module"
    libposthog.host = server.url
    yield libposthog
    if libposthog.default_client is not None:
        libposthog.default_client.shutdown()
    for k, v in saved.items():
        setattr(libposthog, k, v)


def test_module_level_api(server, module_client):
    ph = module_client
    ph.super_properties = {"from_module": True}
    u = ph.capture("mod", distinct_id="u", properties={"a": 1})
    assert u and ph.default_client is not None
    ph.set(distinct_id="u", properties={"x": 1})
    ph.set_once(distinct_id="u", properties={"y": 1})
    ph.alias("prev", "u")
    ph.group_identify("company", "acme", {"n": 1})
    ph.flush()
    ev = server.events()
    assert _names(ev) == ["mod", "$set", "$set_once", "$create_alias", "$groupidentify"]
    assert ev[0]["uuid"] == u and ev[0]["properties"]["from_module"] is True
    # the module-level client runs at the library's default: capture v1
    assert server.requests()[0]["headers"]["authorization"] == "Bearer phc_module"
    ph.disabled = True
    assert ph.capture("off", distinct_id="u") is None
    ph.disabled = False
    ph.shutdown()


def test_module_level_client_reused_in_fork_child(server, module_client):
    ph = module_client
    ph.capture("parent", distinct_id="p")
    client = ph.default_client

    def child():
        u = ph.capture("child", distinct_id="c")
        ph.flush()
        return ph.default_client is client and u is not None

    assert _fork_child(child) == 0
    ph.flush()
    assert sorted(_names(server.events())) == ["child", "parent"]


def test_module_level_lazily_disabled_without_key(server, module_client):
    module_client.api_key = None
    assert module_client.capture("e", distinct_id="u") is None
    assert module_client.default_client.disabled


def test_collected_client_delivers_and_frees(server):
    c = Posthog("phc_test", host=server.url, flush_interval=60)
    c.capture("gc", distinct_id="u")
    del c
    gc.collect()
    assert _names(server.wait_events(1, timeout=5)) == ["gc"]


def test_debug_logging_from_flusher(server, make_client, caplog):
    c = make_client(debug=True)
    with caplog.at_level(logging.DEBUG, logger="libposthog"):
        c.capture("e", distinct_id="u")
        c.flush()
        time.sleep(0.05)
    assert any("sent 1 events" in r.getMessage() for r in caplog.records)


def _run_python(code: str, server):
    import subprocess
    import sys

    env = dict(os.environ, PH_URL=server.url)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=60)


def test_exit_delivers_queued_events(server):
    # No flush()/shutdown(): the atexit hook shuts the client down, delivering.
    r = _run_python(
        "import os, libposthog\n"
        "c = libposthog.Posthog('phc_test', host=os.environ['PH_URL'], flush_interval=60)\n"
        "for i in range(10): c.capture('exit', distinct_id='u', properties={'i': i})\n"
        "libposthog.api_key = 'phc_test'; libposthog.host = os.environ['PH_URL']\n"
        "libposthog.capture('module-exit', distinct_id='u')\n",
        server,
    )
    assert r.returncode == 0, r.stderr
    names = _names(server.wait_events(11, timeout=10))
    assert names.count("exit") == 10 and names.count("module-exit") == 1


def test_exit_with_daemon_threads_capturing(server):
    # Daemon threads still capturing while the interpreter exits: no crash, no hang.
    r = _run_python(
        "import os, threading, libposthog\n"
        "c = libposthog.Posthog('phc_test', host=os.environ['PH_URL'],\n"
        "                       on_error=lambda e, b: None, before_send=lambda m: m)\n"
        "def spin():\n"
        "    while True: c.capture('spin', distinct_id='u')\n"
        "for _ in range(4): threading.Thread(target=spin, daemon=True).start()\n"
        "import time; time.sleep(0.2)\n",
        server,
    )
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert server.summary()["duplicate_uuids"] == 0


def test_network_state_down_holds_up_delivers(server, make_client):
    c = make_client(flush_interval=0.05)
    assert c.set_network_state(False)
    for i in range(6):
        c.capture("net%d" % i, distinct_id="u")
    assert c.flush(timeout_seconds=0.3) is False  # held, not lost
    assert server.summary()["requests"] == 0
    st = c.stats()
    assert st["network_down"] == 1 and st["network_down_periods"] == 1
    assert st["requests"] == 0 and st["retries"] == 0 and st["dropped_total"] == 0
    assert c.set_network_state(True)
    assert c.flush(timeout_seconds=10) is True
    assert sorted(_names(server.events())) == ["net%d" % i for i in range(6)]
    st = c.stats()
    assert st["network_down"] == 0 and st["sent"] == 6 and st["retries"] == 0
    with pytest.raises(TypeError, match="True .network back. or False"):
        c.set_network_state("down")


def test_memory_budget(server, make_client):
    # the C option, through the keyword: the queue's ring is half of it
    from libposthog import _native

    c = make_client(memory_budget=262144, capture_mode="v1")
    lib = _native.load()
    assert lib.posthog_get_stat(c._handle.ptr, b"memory_budget") == 262144
    assert lib.posthog_get_stat(c._handle.ptr, b"queue_capacity_bytes") == 131072
    for i in range(200):
        c.capture("small", distinct_id="u", properties={"i": i})
    c.flush()
    assert len(server.events()) == 200
