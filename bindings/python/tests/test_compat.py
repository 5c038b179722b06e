"""posthog-python compatibility details: keywords of features the binding
lacks, numeric timestamps, super_properties precedence, the exit deadline."""

from __future__ import annotations

import datetime as dt
import logging

import libposthog
from libposthog import client as client_mod


def test_keywords_of_missing_features_warn(make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="libposthog")
    make_client(enable_local_evaluation=True, privacy_mode=False, thread=2)  # defaults: quiet
    warned = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in warned if "does not have" in r.getMessage()]
    caplog.clear()
    make_client(privacy_mode=True, capture_trace_context=True, enable_local_evaluation=False,
                traces={"service_name": "x"})
    msgs = [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "does not have" in r.getMessage()]
    assert len(msgs) == 1, caplog.text
    for k in ("privacy_mode=True", "capture_trace_context=True", "enable_local_evaluation=False",
              "traces={'service_name': 'x'}"):
        assert k in msgs[0]


def test_numeric_timestamp_is_refused_not_1970(server, make_client, caplog):
    c = make_client()
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    assert c.capture("secs", distinct_id="u", timestamp=1700000000)
    assert c.capture("ms", distinct_id="u", timestamp=1700000000000)
    assert c.capture("float", distinct_id="u", timestamp=0.5)
    c.flush()
    ev = server.events()
    assert [e["event"] for e in ev] == ["secs", "ms", "float"]
    for e in ev:  # the current time, not 1970 (nor 2023, nor the year 55000)
        ts = dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00"))
        assert ts >= before
    assert caplog.text.count("a number is not accepted") == 3
    assert "datetime" in caplog.text and "ISO 8601" in caplog.text


def test_super_properties_do_not_override_the_events_own(server, make_client):
    # the same precedence as the C library's super_properties option and the
    # Ruby binding: the event's own properties win
    c = make_client(super_properties={"plan": "free", "app": "web"},
                    options={"super_properties": {"env": "prod", "app": "c-level"}})
    c.capture("e", distinct_id="u", properties={"plan": "pro", "env": "dev"})
    c.capture("f", distinct_id="u")
    c.flush()
    e, f = server.events()
    assert e["properties"]["plan"] == "pro" and e["properties"]["env"] == "dev"
    assert e["properties"]["app"] == "web"  # the Python-level super properties over the C ones
    assert f["properties"]["plan"] == "free" and f["properties"]["env"] == "prod"


def test_exit_waits_no_longer_than_posthog_python(make_client, monkeypatch):
    asked = {}
    real = client_mod._Handle.shutdown

    def record(self, timeout_ms=-1):
        asked[id(self)] = timeout_ms
        return real(self, timeout_ms)

    monkeypatch.setattr(client_mod._Handle, "shutdown", record)
    a = make_client()
    b = make_client()
    configured = make_client(options={"shutdown_timeout_ms": 3000})
    client_mod._shutdown_all_at_exit()
    # one shared deadline of posthog-python's 1 s for the default clients
    assert client_mod.ATEXIT_TIMEOUT_S == 1.0
    for c in (a, b):
        assert 0 <= asked[id(c._handle)] <= 1000
    assert asked[id(configured._handle)] == 3000  # configured: its own
    assert libposthog.Posthog is client_mod.Posthog
