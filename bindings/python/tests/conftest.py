"""Fixtures: the project's local ingestion server (tools/ingest-server).

The server binary is $LIBPOSTHOG_INGEST_SERVER, else
$LIBPOSTHOG_BUILD_DIR/tools/posthog-ingest-server, else <repo>/build/tools/...
It listens on 127.0.0.1 on a free port (--port-file) and is stopped with
SIGTERM at the end of the session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

REPO = Path(__file__).resolve().parents[3]


def _server_binary() -> Path:
    env = os.environ.get("LIBPOSTHOG_INGEST_SERVER")
    if env:
        return Path(env)
    build = Path(os.environ.get("LIBPOSTHOG_BUILD_DIR") or REPO / "build")
    return build / "tools" / "posthog-ingest-server"


class IngestServer:
    def __init__(self, binary: Path):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix="ph-ingest-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port-file", port_file, "--quiet"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if self.proc.poll() is not None:
                raise RuntimeError(
                    "ingest server exited: %s" % self.proc.stderr.read().decode(errors="replace")
                )
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError("ingest server did not write its port file")
            time.sleep(0.01)
        with open(port_file) as f:
            self.port = int(f.read().strip())
        self.url = "http://127.0.0.1:%d" % self.port

    # ------------------------------------------------------------ control API

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        self._call("POST", "/_control/reset")
        self._call("POST", "/_control/faults", {"script": []})

    def faults(self, script: List[Dict[str, Any]]) -> None:
        self._call("POST", "/_control/faults", {"script": script})

    def events(self) -> List[Dict[str, Any]]:
        return self._call("GET", "/_control/events")["events"]

    def requests(self) -> List[Dict[str, Any]]:
        return self._call("GET", "/_control/requests")["requests"]

    def summary(self) -> Dict[str, Any]:
        return self._call("GET", "/_control/summary")

    def wait_events(self, n: int, timeout: float = 10.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            ev = self.events()
            if len(ev) >= n or time.monotonic() > deadline:
                return ev
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def ingest_server():
    binary = _server_binary()
    if not binary.exists():
        pytest.fail(
            "ingest server not found at %s: build it (cmake --build BUILD) and set "
            "LIBPOSTHOG_BUILD_DIR or LIBPOSTHOG_INGEST_SERVER" % binary
        )
    s = IngestServer(binary)
    yield s
    s.stop()


@pytest.fixture
def server(ingest_server: IngestServer) -> IngestServer:
    """The session's server, emptied (records and fault script) for this test."""
    ingest_server.reset()
    return ingest_server


@pytest.fixture
def make_client(server: IngestServer):
    """Builds libposthog clients pointed at the server; shuts them down after."""
    from libposthog import Posthog

    made = []

    def make(**kw):
        kw.setdefault("host", server.url)
        # The suites written for /batch/ pin capture v0 (the library's default
        # is v1; test_capture_options.py covers v1 and the default).
        if "POSTHOG_CAPTURE_MODE" not in os.environ:  # tests of the env var set it
            kw.setdefault("capture_mode", os.environ.get("LIBPOSTHOG_TEST_CAPTURE_MODE", "v0"))
        key = kw.pop("project_api_key", "phc_test")
        c = Posthog(key, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()


@pytest.fixture(params=["accel", "ctypes"])
def flags_path(request, monkeypatch):
    """Runs a flags test twice: with the compiled accelerator (libposthog._accel)
    and with the ctypes path (clients made while flags._accel is None are not
    accelerated). Without an accelerator the "accel" run is skipped, or fails
    when LIBPOSTHOG_REQUIRE_ACCEL=1 (run_tests.sh sets it: the installed
    package must have one)."""
    from libposthog import flags

    if request.param == "ctypes":
        monkeypatch.setattr(flags, "_accel", None)
    elif flags._accel is None:
        msg = "no compiled accelerator: " + flags.accelerator_status()
        if os.environ.get("LIBPOSTHOG_REQUIRE_ACCEL", "") not in ("", "0"):
            pytest.fail(msg)
        pytest.skip(msg)
    return request.param


@pytest.fixture(scope="session", autouse=True)
def parity_allowlist_not_stale():
    """After the session: an entry of parity_allowed.json that matched no
    difference although every scenario it names ran fails the run, so the
    allow-list cannot keep differences that are gone."""
    yield
    from parity import ALLOWED

    stale = ALLOWED.stale()
    if stale:
        pytest.fail("parity_allowed.json entries that matched nothing (remove them):\n%s" % "\n".join(
            "  %s %s (%s)" % (e["scenario"], e["path"], e["rule"]) for e in stale))
