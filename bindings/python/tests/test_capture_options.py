"""Client options (capture_mode, capture_compression, disable_geoip,
historical_migration) and per-event capture options (process_person_profile,
cookieless_mode, disable_skew_correction, product_tour_id, no distinct_id),
checked on what the local ingestion server received.

The library's default is capture v1; the tests of v0 payloads pass
capture_mode="v0".
"""

from __future__ import annotations

import ctypes
import os
import logging
import uuid as uuidlib

import pytest

import libposthog
from libposthog import CaptureCompression, CaptureMode, PosthogError, _native
from libposthog.client import _COMPRESSION_ALIASES, _MODE_ALIASES, _canonical

OPTION_KEYS = ("$process_person_profile", "$cookieless_mode", "$ignore_sent_at", "$product_tour_id")


def _v0_kwargs():
    """Client kwargs for capture v0 (/batch/)."""
    return {"capture_mode": "v0"}


def _uuid(s) -> bool:
    try:
        return str(uuidlib.UUID(s)) == s
    except (TypeError, ValueError):
        return False


def _only_request(server):
    reqs = [r for r in server.requests() if r["status"] == 200]
    assert len(reqs) == 1, reqs
    return reqs[0]


# ------------------------------------------------------------------ ABI


def test_capture_options_struct_matches_the_header():
    co = _native.CaptureOptions
    if ctypes.sizeof(ctypes.c_void_p) == 8:  # LP64: offsetof() of posthog.h
        assert ctypes.sizeof(co) == 72
        assert [getattr(co, f).offset for f, _ in co._fields_] == [0, 8, 16, 24, 32, 40, 44, 48, 56, 64]
    assert (_native.UNSET, _native.TRUE, _native.FALSE) == (0, 1, 2)
    assert [_native.tristate(v) for v in (None, True, False, 1, 0)] == [0, 1, 2, 1, 2]


# ------------------------------------------------------------------ per-event options


def test_per_event_options_as_properties_in_v0(server, make_client):
    c = make_client(**_v0_kwargs())
    u1 = c.capture("all", distinct_id="u", process_person_profile=False, cookieless_mode=True,
                   disable_skew_correction=True, product_tour_id="tour-1")
    c.capture("true flags", distinct_id="u", process_person_profile=True, cookieless_mode=False,
              disable_skew_correction=False)
    c.capture("none", distinct_id="u")
    c.capture("properties win", distinct_id="u", process_person_profile=False,
              product_tour_id="from-arg",
              properties={"$process_person_profile": True, "$product_tour_id": "from-props"})
    c.flush()
    req = _only_request(server)
    assert req["path"] == "/batch/"
    ev = {e["event"]: e for e in server.events()}
    assert ev["all"]["uuid"] == u1
    p = ev["all"]["properties"]
    assert p["$process_person_profile"] is False
    assert p["$cookieless_mode"] is True
    assert p["$ignore_sent_at"] is True
    assert p["$product_tour_id"] == "tour-1"
    assert ev["all"]["distinct_id"] == "u"
    p = ev["true flags"]["properties"]
    assert (p["$process_person_profile"], p["$cookieless_mode"], p["$ignore_sent_at"]) == (
        True, False, False)
    assert "$product_tour_id" not in p
    assert not set(OPTION_KEYS) & set(ev["none"]["properties"])
    p = ev["properties win"]["properties"]
    assert p["$process_person_profile"] is True and p["$product_tour_id"] == "from-props"


def test_per_event_options_durable(server, make_client, tmp_path):
    c = make_client(storage_path=str(tmp_path / "spool"), **_v0_kwargs())
    u = c.capture_durable("durable", distinct_id="u", process_person_profile=False,
                          cookieless_mode=True, disable_skew_correction=True,
                          product_tour_id="tour-2")
    assert _uuid(u)
    anon = c.capture_durable("durable anon")
    assert _uuid(anon)
    c.flush()
    ev = {e["event"]: e for e in server.wait_events(2)}
    p = ev["durable"]["properties"]
    assert ev["durable"]["uuid"] == u
    assert (p["$process_person_profile"], p["$cookieless_mode"], p["$ignore_sent_at"],
            p["$product_tour_id"]) == (False, True, True, "tour-2")
    assert _uuid(ev["durable anon"]["distinct_id"])
    assert ev["durable anon"]["properties"]["$process_person_profile"] is False


def test_module_level_capture_takes_event_options(server, monkeypatch):
    monkeypatch.setattr(libposthog, "default_client", None)
    monkeypatch.setattr(libposthog, "api_key", "phc_test")
    monkeypatch.setattr(libposthog, "host", server.url)
    monkeypatch.setattr(libposthog, "capture_mode", _v0_kwargs().get("capture_mode"))
    try:
        assert libposthog.capture("mod", distinct_id="u", cookieless_mode=True)
        libposthog.flush()
    finally:
        libposthog.shutdown()
    (e,) = server.events()
    assert e["properties"]["$cookieless_mode"] is True


# ------------------------------------------------------------------ no distinct_id


def test_capture_without_distinct_id_is_personless(server, make_client):
    c = make_client(**_v0_kwargs())
    rets = [
        c.capture("no id"),
        c.capture("empty id", distinct_id=""),
        c.capture("none id", distinct_id=None),
        c.capture("anon with profile", process_person_profile=True),
        c.capture("anon with prop", properties={"$process_person_profile": True}),
    ]
    assert all(_uuid(r) for r in rets)
    c.flush()
    ev = server.events()
    assert [e["event"] for e in ev] == ["no id", "empty id", "none id", "anon with profile",
                                        "anon with prop"]
    dids = [e["distinct_id"] for e in ev]
    assert all(_uuid(d) for d in dids) and len(set(dids)) == len(dids)
    assert [e["properties"]["$process_person_profile"] for e in ev] == [
        False, False, False, True, True]
    assert [e["uuid"] for e in ev] == rets


def test_default_distinct_id_option_is_used_when_none_given(server, make_client):
    c = make_client(options={"default_distinct_id": "service-1"}, **_v0_kwargs())
    c.capture("no id")
    c.capture("own id", distinct_id="u")
    c.flush()
    a, b = server.events()
    assert a["distinct_id"] == "service-1" and "$process_person_profile" not in a["properties"]
    assert b["distinct_id"] == "u"


# ------------------------------------------------------------------ client options


def test_disable_geoip_client_default_and_per_call(server, make_client):
    on = make_client(**_v0_kwargs())  # posthog-python's default: disable_geoip=True
    on.capture("default", distinct_id="u")
    on.capture("call enables geoip", distinct_id="u", disable_geoip=False)
    off = make_client(disable_geoip=False, **_v0_kwargs())
    off.capture("client geoip on", distinct_id="u")
    off.capture("call disables geoip", distinct_id="u", disable_geoip=True)
    on.flush()
    off.flush()
    ev = {e["event"]: e["properties"] for e in server.events()}
    assert ev["default"]["$geoip_disable"] is True
    assert "$geoip_disable" not in ev["call enables geoip"]
    assert "$geoip_disable" not in ev["client geoip on"]
    assert ev["call disables geoip"]["$geoip_disable"] is True


def test_disable_geoip_c_option_passes_through(server, make_client):
    c = make_client(disable_geoip=False, options={"disable_geoip": True}, **_v0_kwargs())
    c.capture("e", distinct_id="u")
    c.flush()
    (e,) = server.events()
    assert e["properties"]["$geoip_disable"] is True


def test_historical_migration_reaches_the_request(server, make_client):
    c = make_client(historical_migration=True, **_v0_kwargs())
    c.capture("old", distinct_id="u", timestamp="2020-01-01T00:00:00Z")
    c.flush()
    req = _only_request(server)
    assert req["body"]["historical_migration"] is True
    server.reset()
    c2 = make_client(**_v0_kwargs())
    c2.capture("new", distinct_id="u")
    c2.flush()
    assert _only_request(server)["body"]["historical_migration"] is False


def test_option_aliases_like_posthog_python():
    assert _canonical(CaptureMode.V1, _MODE_ALIASES) == "v1"
    assert _canonical("legacy", _MODE_ALIASES) == "v0"
    assert _canonical(" Analytics_V1 ", _MODE_ALIASES) == "v1"
    assert _canonical("v7", _MODE_ALIASES) == "v7"  # left for the C library to refuse
    assert _canonical(CaptureCompression.ZSTD, _COMPRESSION_ALIASES) == "zstd"
    assert _canonical("identity", _COMPRESSION_ALIASES) == "none"
    assert _canonical("GZIP", _COMPRESSION_ALIASES) == "gzip"


def test_capture_mode_is_passed_to_the_library(server, make_client):
    for mode in ("v0", "v1"):
        assert _native.option_status("capture_mode", mode) == _native.OK
    for mode, path in ((CaptureMode.V0, "/batch/"), ("legacy", "/batch/"),
                       (CaptureMode.V1, "/i/v1/analytics/events")):
        server.reset()
        c = make_client(capture_mode=mode)
        c.capture("e", distinct_id="u")
        c.flush()
        assert _only_request(server)["path"] == path, mode


def test_capture_compression_is_passed_to_the_library(server, make_client):
    v0 = _v0_kwargs()
    for comp, gz in (("none", False), ("identity", False), (CaptureCompression.GZIP, True)):
        server.reset()
        c = make_client(capture_compression=comp, **v0)
        c.capture("e", distinct_id="u")
        c.flush()
        req = _only_request(server)
        assert req["path"] == "/batch/"
        assert req["gzip"] is gz, comp
        assert ("content-encoding" in req["headers"]) is gz


def test_gzip_flag_never_breaks_the_client(server, make_client, caplog):
    # posthog-python: without capture_compression the gzip flag picks the
    # encoding; a library without `compression` still honours gzip=False.
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        c = make_client(debug=True, gzip=False, **_v0_kwargs())
    assert "compression" not in caplog.text
    c.capture("e", distinct_id="u")
    c.flush()
    req = _only_request(server)
    assert req["gzip"] is False and "content-encoding" not in req["headers"]


def test_capture_mode_from_the_environment(server, make_client, monkeypatch, caplog):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "legacy")  # posthog-python's alias of v0
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        c = make_client(debug=True)  # an env setting never breaks the client
    c.capture("e", distinct_id="u")
    c.flush()
    assert _only_request(server)["path"] == "/batch/"
    caplog.clear()
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "nonsense")
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        make_client()
    assert "Unrecognized POSTHOG_CAPTURE_MODE='nonsense'" in caplog.text


def test_compression_from_the_environment(server, make_client, monkeypatch, caplog):
    monkeypatch.setenv("POSTHOG_CAPTURE_COMPRESSION", "identity")
    with caplog.at_level(logging.WARNING, logger="libposthog"):
        c = make_client(debug=True, **_v0_kwargs())
    c.capture("e", distinct_id="u")
    c.flush()
    assert _only_request(server)["gzip"] is False


# ------------------------------------------------------------------ capture v1


def _v1_request(server):
    reqs = [r for r in server.requests() if r["path"].startswith("/i/v1/analytics/events")]
    assert reqs, [r["path"] for r in server.requests()]
    return reqs[-1]


def test_v1_lifts_event_options_into_options(server, make_client):
    c = make_client(capture_mode="v1", capture_compression="gzip")
    c.capture("all", distinct_id="u", process_person_profile=False, cookieless_mode=True,
              disable_skew_correction=True, product_tour_id="tour-1")
    c.capture("none", distinct_id="u")
    c.capture("anon")
    c.flush()
    req = _v1_request(server)
    assert req["headers"].get("authorization") == "Bearer phc_test"
    assert req["headers"].get("content-encoding") == "gzip"
    ev = {e["event"]: e for e in req["body"]["batch"]}
    assert ev["all"]["options"] == {"process_person_profile": False, "cookieless_mode": True,
                                    "disable_skew_correction": True, "product_tour_id": "tour-1"}
    for e in ev.values():
        assert not set(OPTION_KEYS) & set(e["properties"]), e
    assert ev["none"]["options"] == {}
    assert ev["anon"]["options"] == {"process_person_profile": False}
    assert _uuid(ev["anon"]["distinct_id"])


def test_v1_compression_choices(server, make_client):
    for comp, encoding in (("none", None), ("gzip", "gzip"), ("deflate", "deflate")):
        server.reset()
        c = make_client(capture_mode=CaptureMode.V1, capture_compression=comp)
        c.capture("e", distinct_id="u")
        c.flush()
        assert _v1_request(server)["headers"].get("content-encoding") == encoding, comp


def test_v1_historical_migration(server, make_client):
    c = make_client(capture_mode="v1", historical_migration=True)
    c.capture("old", distinct_id="u", timestamp="2020-01-01T00:00:00Z")
    c.flush()
    assert _v1_request(server)["body"]["historical_migration"] is True


def test_v0_refuses_v1_only_compression():
    with pytest.raises(PosthogError):
        libposthog.Posthog("phc_test", host="http://127.0.0.1:9", debug=True,
                           capture_mode="v0", capture_compression="zstd").shutdown()


def test_v1_is_the_default(server):
    """No capture_mode anywhere: the library's default, capture v1 with zstd."""
    from libposthog import Posthog

    os.environ.pop("POSTHOG_CAPTURE_MODE", None)
    c = Posthog("phc_test", host=server.url)
    c.capture("default-mode", distinct_id="u", properties={"$session_id": "s1"})
    c.flush()
    c.shutdown()
    req = _v1_request(server)
    assert req["headers"].get("authorization") == "Bearer phc_test"
    assert req["headers"].get("content-encoding") == "zstd"
    from libposthog.client import LIB_NAME

    assert req["headers"].get("posthog-sdk-info", "").startswith(LIB_NAME + "/")
    ev = req["body"]["batch"][0]
    assert ev["event"] == "default-mode" and ev["session_id"] == "s1"
    assert "$session_id" not in ev["properties"] and "$lib" not in ev["properties"]


def test_capture_ai_uses_the_ai_endpoint(server, make_client):
    """capture_ai posts to the AI endpoint in its own batch; capture() never
    reroutes an $ai_* name (posthog-python's capture_ai)."""
    c = make_client(capture_mode="v1")
    u = c.capture_ai("$ai_generation", distinct_id="u", properties={"$ai_model": "m"})
    c.capture("$ai_span", distinct_id="u")
    c.flush()
    by_path = {r["path"]: r for r in server.requests()}
    assert set(by_path) == {"/i/v1/ai/events", "/i/v1/analytics/events"}
    ai = by_path["/i/v1/ai/events"]["body"]["batch"]
    assert [e["uuid"] for e in ai] == [u] and ai[0]["event"] == "$ai_generation"
    assert by_path["/i/v1/analytics/events"]["body"]["batch"][0]["event"] == "$ai_span"
