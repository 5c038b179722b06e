"""Fork parity with posthog-python 7.91.1: a process captures, forks, the
child captures and flushes or just exits (as a pre-fork server's worker does), the parent
captures again after the child exited. Each library runs the same script in a
fresh interpreter; the events that arrive are compared, differences listed in
parity_allowed.json."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from parity import check_events

posthog = pytest.importorskip("posthog")

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

SCRIPT = textwrap.dedent("""
    import importlib, os, sys
    mod = importlib.import_module(sys.argv[1])
    c = mod.Posthog("phc_test", host=sys.argv[2])
    c.capture("parent before fork", distinct_id="p", properties={"n": 1})
    pid = os.fork()
    if pid == 0:
        c.capture("child after fork", distinct_id="c", properties={"n": 2})
        if sys.argv[3] == "flush":
            c.flush()
        sys.exit(0)  # "exit": relies on the client's exit handling
    _, status = os.waitpid(pid, 0)
    c.capture("parent after fork", distinct_id="p", properties={"child_status": status})
    c.shutdown()
""")


def _run(server, module: str, child: str):
    server.reset()
    env = dict(os.environ, POSTHOG_CAPTURE_MODE="v0")
    r = subprocess.run([sys.executable, "-c", SCRIPT, module, server.url, child], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return server.wait_events(3, timeout=5)


@pytest.mark.parametrize("child", ["flush", "exit"])
def test_capture_across_fork(server, child):
    ours = _run(server, "libposthog", child)
    assert sorted(e["event"] for e in ours) == [
        "child after fork", "parent after fork", "parent before fork"]
    theirs = _run(server, "posthog", child)
    check_events(ours, theirs)
