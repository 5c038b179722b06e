"""Feature flags through the binding (posthog-python's API) against the local
ingestion server's /flags and /flags/definitions endpoints."""

from __future__ import annotations

import gc
import json
import weakref

import pytest

import libposthog
from libposthog import FeatureFlagEvaluations, FeatureFlagResult

V1 = {
    "featureFlags": {"beta": True, "exp": "variant-b", "off": False},
    "featureFlagPayloads": {"beta": json.dumps({"color": "blue"}), "exp": "[1, 2]"},
    "errorsWhileComputingFlags": False,
}

V2 = {
    "flags": {
        "beta": {
            "key": "beta", "enabled": True, "variant": None,
            "reason": {"code": "condition_match", "condition_index": 0,
                       "description": "Matched condition set 1"},
            "metadata": {"id": 5, "version": 3, "payload": json.dumps({"n": 1}),
                         "has_experiment": False},
        },
        "exp": {
            "key": "exp", "enabled": True, "variant": "test",
            "reason": {"code": "condition_match", "description": "Matched condition set 2"},
            "metadata": {"id": 6, "version": 1, "payload": json.dumps("plain text")},
        },
        "off": {
            "key": "off", "enabled": False, "variant": None,
            "reason": {"code": "no_condition_match", "description": "No matching condition set"},
            "metadata": {"id": 7, "version": 1, "payload": None},
        },
    },
    "errorsWhileComputingFlags": False,
    "requestId": "req-42",
    "evaluatedAt": 1766000000000,
}

SECRET = "phs_flags_secret"

# every test here runs with the compiled accelerator and with ctypes
pytestmark = pytest.mark.usefixtures("flags_path")

DEFINITIONS = {
    "flags": [
        {"id": 1, "key": "simple-50", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]}},
        {"id": 2, "key": "pro-only", "active": True,
         "filters": {"groups": [{"properties": [{"key": "plan", "value": "pro",
                                                 "operator": "exact", "type": "person"}],
                                 "rollout_percentage": 100}],
                     "payloads": {"true": json.dumps({"tier": 2})}}},
        {"id": 3, "key": "needs-server", "active": True,
         "filters": {"groups": [{"properties": [{"key": "country", "value": "FR",
                                                 "operator": "exact", "type": "person"}],
                                 "rollout_percentage": 100}]}},
    ],
    "group_type_mapping": {},
    "cohorts": {},
}


# ------------------------------------------------------------------ helpers


def set_flags(server, body=None, status=200, responses=None):
    cfg = {"default": {"status": status, "body": body if body is not None else {}}}
    if responses is not None:
        cfg["responses"] = responses
    server._call("POST", "/_control/flags", cfg)


def flags_requests(server):
    return server._call("GET", "/_control/flags/requests")["requests"]


def set_definitions(server, body, secret_key=SECRET):
    server._call("POST", "/_control/flags/definitions", {"body": body, "secret_key": secret_key})


def definitions_requests(server):
    return server._call("GET", "/_control/flags/definitions/requests")["requests"]


def called_events(server, client):
    client.flush()
    return [e for e in server.events() if e["event"] == "$feature_flag_called"]


# ------------------------------------------------------------------ remote values


def test_v1_shape_values(server, make_client):
    set_flags(server, V1)
    c = make_client()
    assert c.get_feature_flag("beta", "u1") is True
    assert c.get_feature_flag("exp", "u1") == "variant-b"
    assert c.get_feature_flag("off", "u1") is False
    assert c.get_feature_flag("missing", "u1") is None
    assert c.feature_enabled("exp", "u1") is True
    assert c.feature_enabled("off", "u1") is False
    assert c.feature_enabled("missing", "u1") is None
    # one /flags request per call, asking for that key only
    reqs = flags_requests(server)
    assert len(reqs) == 7
    assert reqs[0]["path"].startswith("/flags") and reqs[0]["query"] == "v=2"
    assert reqs[0]["body"]["distinct_id"] == "u1"
    assert reqs[0]["body"]["token"] == "phc_test"
    assert reqs[0]["body"]["flag_keys_to_evaluate"] == ["beta"]


def test_v2_shape_result_and_payloads(server, make_client):
    set_flags(server, V2)
    c = make_client()
    r = c.get_feature_flag_result("beta", "u1")
    assert isinstance(r, FeatureFlagResult)
    assert (r.key, r.enabled, r.variant, r.payload, r.reason) == (
        "beta", True, None, {"n": 1}, "Matched condition set 1")
    assert r.get_value() is True
    r = c.get_feature_flag_result("exp", "u1")
    assert (r.enabled, r.variant, r.payload) == (True, "test", "plain text")
    assert r.get_value() == "test"
    r = c.get_feature_flag_result("off", "u1")
    assert (r.enabled, r.variant, r.payload) == (False, None, None)
    assert c.get_feature_flag_result("missing", "u1") is None


def test_payload_decoding(server, make_client):
    set_flags(server, V1)
    c = make_client()
    assert c.get_feature_flag_payload("beta", "u1") == {"color": "blue"}
    assert c.get_feature_flag_payload("exp", "u1") == [1, 2]
    assert c.get_feature_flag_payload("off", "u1") is None
    assert c.get_feature_flag_payload("missing", "u1") is None
    # match_value: the payload only when the flag has that value
    assert c.get_feature_flag_payload("exp", "u1", match_value="variant-b") == [1, 2]
    assert c.get_feature_flag_payload("exp", "u1", match_value="other") is None
    # payload reads capture no event by default
    assert called_events(server, c) == []
    assert c.get_feature_flag_payload("beta", "u1", send_feature_flag_events=True) == {
        "color": "blue"}
    assert len(called_events(server, c)) == 1


def test_all_flags_and_payloads(server, make_client):
    set_flags(server, V1)
    c = make_client()
    assert c.get_all_flags("u1") == {"beta": True, "exp": "variant-b", "off": False}
    both = c.get_all_flags_and_payloads("u1")
    assert both == {
        "featureFlags": {"beta": True, "exp": "variant-b", "off": False},
        "featureFlagPayloads": {"beta": json.dumps({"color": "blue"}), "exp": "[1, 2]"},
    }
    assert c.get_all_flags("u1", flag_keys_to_evaluate=["exp"]) == {"exp": "variant-b"}
    assert flags_requests(server)[-1]["body"]["flag_keys_to_evaluate"] == ["exp"]
    assert called_events(server, c) == []  # listing flags is not an exposure


# ------------------------------------------------------------------ $feature_flag_called


def test_feature_flag_called_once_with_properties(server, make_client):
    set_flags(server, V2)
    c = make_client()
    for _ in range(3):
        assert c.get_feature_flag("beta", "u1") is True
    assert c.feature_enabled("beta", "u1") is True  # same (user, flag, value): deduped
    ev = called_events(server, c)
    assert len(ev) == 1
    p = ev[0]["properties"]
    assert ev[0]["distinct_id"] == "u1"
    assert p["$feature_flag"] == "beta"
    assert p["$feature_flag_response"] is True
    assert p["$feature/beta"] is True
    assert p["locally_evaluated"] is False
    assert p["$feature_flag_id"] == 5
    assert p["$feature_flag_version"] == 3
    assert p["$feature_flag_reason"] == "Matched condition set 1"
    assert p["$feature_flag_request_id"] == "req-42"
    assert p["$feature_flag_payload"] == {"n": 1}
    assert "$feature_flag_error" not in p
    # another user, another flag: new events; send_feature_flag_events=False: none
    c.get_feature_flag("beta", "u2")
    c.get_feature_flag("exp", "u1")
    c.get_feature_flag("off", "u3", send_feature_flag_events=False)
    ev = called_events(server, c)
    assert sorted((e["distinct_id"], e["properties"]["$feature_flag"]) for e in ev) == [
        ("u1", "beta"), ("u1", "exp"), ("u2", "beta")]
    assert [e["properties"]["$feature_flag_response"] for e in ev
            if e["properties"]["$feature_flag"] == "exp"] == ["test"]


def test_client_option_send_feature_flag_events(server, make_client):
    set_flags(server, V1)
    c = make_client(send_feature_flag_events=False)
    assert c.get_feature_flag("beta", "u1") is True
    assert called_events(server, c) == []
    # the per-call argument wins
    assert c.get_feature_flag("beta", "u1", send_feature_flag_events=True) is True
    assert len(called_events(server, c)) == 1


def test_groups_in_request_and_event(server, make_client):
    set_flags(server, V1)
    c = make_client()
    assert c.get_feature_flag("beta", "u1", groups={"company": "acme"},
                              person_properties={"plan": "pro"},
                              group_properties={"company": {"size": 50}}) is True
    body = flags_requests(server)[0]["body"]
    assert body["groups"] == {"company": "acme"}
    assert body["person_properties"] == {"plan": "pro"}
    assert body["group_properties"]["company"]["size"] == 50
    ev = called_events(server, c)
    assert len(ev) == 1 and ev[0]["properties"]["$groups"] == {"company": "acme"}
    # other groups: another exposure
    c.get_feature_flag("beta", "u1", groups={"company": "other"})
    assert len(called_events(server, c)) == 2


def test_disable_geoip(server, make_client):
    set_flags(server, V1)
    c = make_client()  # posthog-python's default: disable_geoip=True
    c.get_feature_flag("beta", "u1")
    c.get_feature_flag("exp", "u1", disable_geoip=False)
    reqs = flags_requests(server)
    assert reqs[0]["body"]["geoip_disable"] is True
    assert reqs[1]["body"]["geoip_disable"] is False
    ev = {e["properties"]["$feature_flag"]: e["properties"] for e in called_events(server, c)}
    assert ev["beta"]["$geoip_disable"] is True
    c2 = make_client(disable_geoip=False)
    c2.get_feature_flag("beta", "u9")
    assert flags_requests(server)[-1]["body"]["geoip_disable"] is False


def test_server_error_gives_none_never_raises(server, make_client):
    set_flags(server, {"type": "server_error"}, status=500)
    c = make_client()
    assert c.get_feature_flag("beta", "u1") is None
    assert c.feature_enabled("beta", "u1") is None
    assert c.get_feature_flag_payload("beta", "u1") is None
    assert c.get_feature_flag_result("beta", "u1") is None
    assert c.get_all_flags("u1") == {}
    assert c.get_all_flags_and_payloads("u1") == {"featureFlags": {}, "featureFlagPayloads": {}}
    snap = c.evaluate_flags("u1")
    assert snap.keys == [] and snap.error == "api_error_500"
    assert snap.is_enabled("beta") is False and snap.is_enabled("beta", default_value=True)
    # the exposure says what went wrong
    ev = called_events(server, c)
    assert ev and all(e["properties"]["$feature_flag_response"] is None for e in ev)
    assert {e["properties"]["$feature_flag_error"] for e in ev} == {"api_error_500"}


def test_timeout_gives_none(server, make_client):
    set_flags(server, V1, responses=[{"delay_ms": 3000}, {"delay_ms": 3000}])
    c = make_client(feature_flags_request_timeout_seconds=0.2,
                    feature_flags_request_max_retries=0)
    assert c.get_feature_flag("beta", "u1") is None
    ev = called_events(server, c)
    assert ev[0]["properties"]["$feature_flag_error"] == "timeout"


def test_bad_arguments_are_refused_not_raised(server, make_client, caplog):
    set_flags(server, V1)
    c = make_client()
    assert c.get_feature_flag("beta", "u1", person_properties=["not", "a", "dict"]) is None
    assert "person_properties must be a dict" in caplog.text
    assert c.get_feature_flag("beta", None) is None  # no distinct_id: no request
    assert flags_requests(server) == []


def test_disabled_client_makes_no_request(server, make_client):
    set_flags(server, V1)
    c = make_client(disabled=True)
    assert c.get_feature_flag("beta", "u1") is None
    assert c.get_all_flags("u1") == {}
    assert c.evaluate_flags("u1").keys == []
    assert flags_requests(server) == []


# ------------------------------------------------------------------ snapshots


def test_evaluate_flags_snapshot(server, make_client):
    set_flags(server, V2)
    c = make_client()
    snap = c.evaluate_flags("u1", person_properties={"plan": "pro"})
    assert isinstance(snap, FeatureFlagEvaluations)
    assert len(flags_requests(server)) == 1  # one request for every flag
    assert "flag_keys_to_evaluate" not in flags_requests(server)[0]["body"]
    assert sorted(snap.keys) == ["beta", "exp", "off"]
    # creating it and reading payloads/keys: no event
    assert snap.get_flag_payload("beta") == {"n": 1}
    assert snap.get_flag_payload("exp") == "plain text"
    assert called_events(server, c) == []
    assert snap.is_enabled("beta") is True
    assert snap.is_enabled("beta") is True
    assert snap.get_flag("exp") == "test"
    assert snap.get_flag("off") is False
    assert snap.get_flag("missing") is None
    assert snap.is_enabled("missing", default_value=True) is True
    assert len(flags_requests(server)) == 1  # reads never ask the server again
    ev = called_events(server, c)
    by_flag = {e["properties"]["$feature_flag"]: e["properties"] for e in ev}
    assert sorted(by_flag) == ["beta", "exp", "missing", "off"]  # once each
    assert by_flag["missing"]["$feature_flag_error"] == "flag_missing"
    assert by_flag["exp"]["$feature_flag_request_id"] == "req-42"

    acc = snap.only_accessed()
    assert sorted(acc.keys) == ["beta", "exp", "off"]
    only = snap.only(["beta", "nope"])
    assert only.keys == ["beta"]
    assert only.get_flag("exp") is None  # left out of the view
    # capture(flags=...) carries the values the code branched on
    c.capture("checkout", distinct_id="u1", flags=only)
    c.capture("page", distinct_id="u1", flags=snap)
    c.flush()
    ev = {e["event"]: e["properties"] for e in server.events()}
    assert ev["checkout"]["$feature/beta"] is True
    assert "$feature/exp" not in ev["checkout"]
    assert ev["checkout"]["$active_feature_flags"] == ["beta"]
    assert ev["page"]["$feature/exp"] == "test" and ev["page"]["$feature/off"] is False
    assert ev["page"]["$active_feature_flags"] == ["beta", "exp"]
    assert len(flags_requests(server)) == 1


def test_snapshot_flag_keys_and_empty(server, make_client):
    set_flags(server, V1)
    c = make_client()
    snap = c.evaluate_flags("u1", flag_keys=["beta", "exp"])
    assert flags_requests(server)[0]["body"]["flag_keys_to_evaluate"] == ["beta", "exp"]
    assert sorted(snap.keys) == ["beta", "exp"]
    empty = c.evaluate_flags()  # no distinct_id: empty, no request, no events
    assert empty.keys == [] and empty.is_enabled("beta") is False
    assert len(flags_requests(server)) == 1
    assert called_events(server, c) == []


def test_snapshot_outlives_client_reference_and_is_freed(server, make_client):
    set_flags(server, V1)
    c = make_client()
    snap = c.evaluate_flags("u1")
    view = snap.only(["beta"])
    holder = weakref.ref(snap._snapshot)
    del snap
    gc.collect()
    assert holder() is not None  # the view still holds the C snapshot
    assert view.is_enabled("beta") is True
    del view
    gc.collect()
    assert holder() is None  # freed (posthog_flags_free ran in its finalizer)
    assert len(called_events(server, c)) == 1


def test_send_feature_flags_on_capture(server, make_client):
    set_flags(server, V1)
    c = make_client()
    c.capture("signed_up", distinct_id="u1", send_feature_flags=True)
    c.flush()
    ev = [e for e in server.events() if e["event"] == "signed_up"][0]["properties"]
    assert ev["$feature/beta"] is True and ev["$feature/exp"] == "variant-b"
    assert ev["$active_feature_flags"] == ["beta", "exp"]
    assert called_events(server, c) == []


# ------------------------------------------------------------------ local evaluation


def test_local_evaluation_with_secret_key(server, make_client):
    set_definitions(server, DEFINITIONS)
    set_flags(server, {"featureFlags": {"needs-server": True}})
    c = make_client(secret_key=SECRET, poll_interval=60)
    assert c.wait_for_flag_definitions(10) is True
    dreqs = definitions_requests(server)
    assert dreqs and dreqs[0]["headers"]["authorization"] == "Bearer " + SECRET
    assert c.get_feature_flag("simple-50", "user_1") is True  # rollout, hash 0.097
    assert c.get_feature_flag("pro-only", "u1", person_properties={"plan": "pro"}) is True
    assert c.get_feature_flag("pro-only", "u2", person_properties={"plan": "free"}) is False
    assert c.get_feature_flag_payload("pro-only", "u1", person_properties={"plan": "pro"}) == {
        "tier": 2}
    assert flags_requests(server) == []  # all decided locally
    # a flag that cannot be decided locally (property not given) asks the server
    assert c.get_feature_flag("needs-server", "u1") is True
    reqs = flags_requests(server)
    assert len(reqs) == 1 and reqs[0]["body"]["flag_keys_to_evaluate"] == ["needs-server"]
    # only_evaluate_locally: never a request
    assert c.get_feature_flag("needs-server", "u1", only_evaluate_locally=True) is None
    assert len(flags_requests(server)) == 1
    ev = {(e["distinct_id"], e["properties"]["$feature_flag"]): e["properties"]
          for e in called_events(server, c)}
    assert ev[("user_1", "simple-50")]["locally_evaluated"] is True
    assert ev[("user_1", "simple-50")]["$feature_flag_reason"] == "Evaluated locally"
    assert ev[("u1", "needs-server")]["locally_evaluated"] is False


def test_local_snapshot_and_all_flags(server, make_client):
    set_definitions(server, DEFINITIONS)
    set_flags(server, {"featureFlags": {"needs-server": False}})
    c = make_client(personal_api_key=SECRET)  # the older name of secret_key
    assert c.wait_for_flag_definitions(10) is True
    flags = c.get_all_flags("user_1", person_properties={"plan": "pro", "country": "FR"})
    assert flags == {"simple-50": True, "pro-only": True, "needs-server": True}
    assert flags_requests(server) == []
    snap = c.evaluate_flags("user_1", person_properties={"plan": "pro"})
    assert snap.get_flag("needs-server") is False  # from the server
    assert snap.get_flag("pro-only") is True  # local
    assert len(flags_requests(server)) == 1


def test_load_feature_flags_reloads(server, make_client, caplog):
    set_definitions(server, DEFINITIONS)
    c = make_client(secret_key=SECRET)
    assert c.wait_for_flag_definitions(10) is True
    n = len(definitions_requests(server))
    c.load_feature_flags()
    assert len(definitions_requests(server)) == n + 1
    plain = make_client()
    plain.load_feature_flags()  # no secret key: a warning, nothing raised
    assert "personal_api_key" in caplog.text


def test_bad_secret_key_is_reported(server, make_client, caplog):
    c = make_client(secret_key="phc_not_a_secret")
    assert "secret_key" in caplog.text
    assert c.wait_for_flag_definitions(0) is False


# ------------------------------------------------------------------ module level


def test_module_level_flags(server):
    saved = {k: getattr(libposthog, k) for k in ("api_key", "host", "default_client",
                                                 "secret_key", "personal_api_key")}
    libposthog.default_client = None
    libposthog.api_key = "phc_module"
    libposthog.host = server.url
    try:
        set_flags(server, V1)
        assert libposthog.get_feature_flag("exp", "u1") == "variant-b"
        assert libposthog.feature_enabled("beta", "u1") is True
        assert libposthog.get_feature_flag_payload("beta", "u1") == {"color": "blue"}
        assert libposthog.get_feature_flag_result("exp", "u1").variant == "variant-b"
        assert libposthog.get_all_flags("u1")["off"] is False
        assert libposthog.get_all_flags_and_payloads("u1")["featureFlagPayloads"]["exp"] == "[1, 2]"
        assert libposthog.evaluate_flags("u1").is_enabled("beta") is True
        libposthog.load_feature_flags()  # no secret key: logged, nothing raised
    finally:
        if libposthog.default_client is not None:
            libposthog.default_client.shutdown()
        for k, v in saved.items():
            setattr(libposthog, k, v)


@pytest.mark.parametrize("key", ["beta", "exp"])
def test_debug_client_does_not_raise_on_server_errors(server, make_client, key):
    set_flags(server, {"oops": True}, status=500)
    c = make_client(debug=True)
    assert c.get_feature_flag(key, "u1") is None


def test_snapshot_read_from_threads_reports_once(server, make_client):
    import threading

    set_flags(server, V1)
    c = make_client()
    snap = c.evaluate_flags("u1")
    results = []

    def reader():
        for _ in range(50):
            results.append((snap.is_enabled("beta"), snap.get_flag("exp")))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {(True, "variant-b")}
    ev = called_events(server, c)
    assert sorted(e["properties"]["$feature_flag"] for e in ev) == ["beta", "exp"]


def test_before_send_sees_and_can_drop_the_exposure(server, make_client):
    seen = []

    def before_send(event):
        seen.append(event["event"])
        return None if event["event"] == "$feature_flag_called" else event

    errors = []
    set_flags(server, V1)
    c = make_client(before_send=before_send, on_error=lambda e, batch: errors.append(e))
    assert c.get_feature_flag("beta", "u1") is True
    c.capture("kept", distinct_id="u1")
    c.flush()
    assert seen == ["$feature_flag_called", "kept"]
    assert [e["event"] for e in server.events()] == ["kept"]
    assert c.stats()["dropped_before_send"] == 1
    assert errors == []  # a drop at capture, like capture()'s own
    # dropped, so not remembered: the next read offers it again
    assert c.get_feature_flag("beta", "u1") is True
    assert seen.count("$feature_flag_called") == 2


# ------------------------------------------------------------------ one-flag fast path

LONG_VARIANT = "v" * 300  # longer than the fast path's variant buffer

FAST_DEFINITIONS = {
    "flags": [
        {"id": 11, "key": "long-mv", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "multivariate": {"variants": [{"key": LONG_VARIANT,
                                                    "rollout_percentage": 100}]}}},
        {"id": 12, "key": "short-mv", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "multivariate": {"variants": [{"key": "blue",
                                                    "rollout_percentage": 100}]}}},
        DEFINITIONS["flags"][1],  # pro-only
    ],
    "group_type_mapping": {},
    "cohorts": {},
}


def test_fast_path_long_variant_whole_and_one_event(server, make_client):
    set_definitions(server, FAST_DEFINITIONS)
    c = make_client(secret_key=SECRET, poll_interval=60)
    assert c.wait_for_flag_definitions(10) is True
    assert c.get_feature_flag("long-mv", "u1") == LONG_VARIANT
    assert c.get_feature_flag("long-mv", "u1", send_feature_flag_events=False) == LONG_VARIANT
    assert c.feature_enabled("long-mv", "u2") is True
    ev = [e["properties"] for e in called_events(server, c) if e["distinct_id"] == "u1"]
    assert len(ev) == 1 and ev[0]["$feature_flag_response"] == LONG_VARIANT
    assert flags_requests(server) == []


def test_fast_path_reentrant_from_before_send(server, make_client):
    """A flag read from before_send (on the caller's thread, while the outer
    read is still in C) does not disturb the outer read's result."""
    inner = []

    def before_send(event):
        if event["event"] == "$feature_flag_called" and not inner:
            inner.append(c.get_feature_flag("short-mv", "u9", send_feature_flag_events=False))
            inner.append(c.get_feature_flag("pro-only", "u9", person_properties={"plan": "x"},
                                            send_feature_flag_events=False))
        return event

    set_definitions(server, FAST_DEFINITIONS)
    c = make_client(secret_key=SECRET, poll_interval=60, before_send=before_send)
    assert c.wait_for_flag_definitions(10) is True
    assert c.get_feature_flag("long-mv", "u1") == LONG_VARIANT
    assert inner == ["blue", False]
    assert c.get_feature_flag("pro-only", "u1", person_properties={"plan": "pro"}) is True
    assert c.get_feature_flag("pro-only", "u1", person_properties=None,
                              only_evaluate_locally=True) is None


def test_fast_path_argument_forms_match_snapshot_path(server, make_client):
    set_definitions(server, FAST_DEFINITIONS)
    c = make_client(secret_key=SECRET, poll_interval=60)
    assert c.wait_for_flag_definitions(10) is True
    from collections import OrderedDict

    # non-dict mappings, non-str ids, NUL in an id: the same answers as before
    assert c.get_feature_flag("pro-only", "u1", person_properties=OrderedDict(plan="pro")) is True
    assert c.get_feature_flag("short-mv", 12345) == "blue"
    assert c.get_feature_flag("short-mv", "a\x00b") is None  # refused, logged
    assert c.get_feature_flag("no-such-flag", "u1", only_evaluate_locally=True) is None
    with pytest.raises(TypeError):
        make_client(secret_key=SECRET, debug=True).get_feature_flag(
            "pro-only", "u1", person_properties=["plan"])


@pytest.mark.parametrize("value", [
    {"plan": "pro", "n": 1, "ok": True, "none": None, "f": 1.5},
    {"nested": {"a": [1, 2, {"b": "c"}]}, "t": (1, 2)},
    {"when": __import__("datetime").datetime(2024, 1, 2, 3, 4, 5)},
    {"nan": float("nan"), "inf": float("inf")},
    {"bytes": b"abc", "set": {1}},
    {"surrogate": "a\ud800b", "uni": "é✓"},
    {1: "int key", "d": __import__("decimal").Decimal("1.5")},
])
def test_dumps_clean_fast_matches_dumps_clean(value):
    from libposthog._serialize import dumps, clean, dumps_clean_fast

    assert dumps_clean_fast(value) == dumps(clean(value))
