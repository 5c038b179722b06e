"""A custom transport (transport= keyword, posthog_options_set_transport):
every request goes through a Python callable instead of libcurl."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

from libposthog import TransportRequest, TransportResponse


def _forward(req: TransportRequest) -> TransportResponse:
    """Carries the request over urllib (no libcurl)."""
    headers = dict(h.split(": ", 1) for h in req.headers)
    r = urllib.request.Request(req.url, data=req.body, method=req.method, headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=req.timeout) as resp:
            return TransportResponse(resp.status, resp.read(), resp.headers.get("Retry-After"),
                                     resp.headers.get("ETag"))
    except urllib.error.HTTPError as e:
        return TransportResponse(e.code, e.read(), e.headers.get("Retry-After"),
                                 e.headers.get("ETag"))


def test_sync_transport_delivers_v1(server, make_client):
    kinds = []

    def transport(req):
        kinds.append(req.kind)
        assert req.method == "POST" and req.url.startswith(server.url)
        assert any(h.lower().startswith("content-encoding:") for h in req.headers)
        return _forward(req)

    c = make_client(capture_mode="v1", transport=transport)
    for i in range(20):
        c.capture("e", distinct_id="u", properties={"i": i})
    c.flush()
    assert len(server.events()) == 20
    assert kinds and set(kinds) == {"capture"}
    assert server.requests()[0]["protocol"] == "v1"


def test_later_completion_from_a_thread_and_retry_after(server, make_client):
    server.faults([{"status": 503}, {"status": 429, "retry_after": "1"}])
    threads = []

    def transport(req):
        t = threading.Thread(target=lambda: req.complete(*_forward(req)))
        threads.append(t)
        t.start()
        return None  # answered later

    c = make_client(transport=transport, max_retries=3)
    for i in range(5):
        c.capture("e", distinct_id="u", properties={"i": i})
    c.flush()
    for t in threads:
        t.join()
    assert len(server.events()) == 5
    assert server.summary()["requests"] == 3
    assert server.summary()["duplicate_uuids"] == 0


def test_raising_transport_is_a_failure_and_retried(server, make_client):
    calls = []

    def transport(req):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("broker down")
        return _forward(req)

    c = make_client(transport=transport, max_retries=3)
    c.capture("e", distinct_id="u")
    c.flush()
    assert len(calls) == 2
    assert len(server.events()) == 1
