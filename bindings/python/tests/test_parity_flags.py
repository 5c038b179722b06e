"""Feature flag parity with posthog-python 7.91.1: the same flag calls on both
clients, remote (against the ingestion server's scripted /flags answer) and
local (definitions from /api/feature_flag/local_evaluation), compared by the
values returned and their Python types, and by the $feature_flag_called
events that arrive; through the compiled accelerator and the ctypes path
(conftest's flags_path). Differences must be listed in parity_allowed.json."""

from __future__ import annotations

import json
import warnings
from typing import Any, Callable, Dict, List, Tuple

import pytest

from parity import ALLOWED, check_events, current_scenario
from test_flags import DEFINITIONS, SECRET, V2, set_definitions, set_flags

posthog = pytest.importorskip("posthog")


@pytest.fixture(autouse=True)
def _capture_v0(monkeypatch):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")


def _plain(v: Any) -> Any:
    """A FeatureFlagResult (each library has its own class) as its fields."""
    if hasattr(v, "get_value") and hasattr(v, "enabled"):
        return {"FeatureFlagResult": {k: getattr(v, k) for k in
                                      ("key", "enabled", "variant", "payload", "reason")}}
    return v


def _run(server, make_client, calls: List[Tuple[str, Callable[[Any], Any]]],
         ours_kw: Dict[str, Any], their_kw: Dict[str, Any], setup: Callable[[], Any],
         ready: Callable[[Any], Any] = None):
    """Each call on libposthog then on posthog-python (setup() scripts the
    server's answers after each reset); returns
    ({label: our value}, {label: their value}, our events, their events)."""
    out = []
    for make in (lambda: make_client(**ours_kw),
                 lambda: posthog.Posthog("phc_test", host=server.url, **their_kw)):
        server.reset()
        setup()
        c = make()
        try:
            if ready:
                ready(c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                values = {label: _plain(f(c)) for label, f in calls}
            c.flush()
            # posthog-python's flush() returns once the queue is empty, maybe
            # before the server has recorded the batch: wait for as many
            if out:
                server.wait_events(len(out[0][1]), timeout=5)
        finally:
            c.shutdown()
        out.append((values, server.events()))
    (ov, oe), (tv, te) = out
    return ov, tv, oe, te


def _flag_calls(did: str, keys: List[str], **kw) -> List[Tuple[str, Callable[[Any], Any]]]:
    calls = []
    for k in keys:
        calls += [
            ("get_feature_flag(%s)" % k, lambda c, k=k: c.get_feature_flag(k, did, **kw)),
            ("feature_enabled(%s)" % k, lambda c, k=k: c.feature_enabled(k, did, **kw)),
            ("get_feature_flag_payload(%s)" % k,
             lambda c, k=k: c.get_feature_flag_payload(k, did, **kw)),
            ("get_feature_flag_result(%s)" % k,
             lambda c, k=k: c.get_feature_flag_result(k, did, **kw)),
        ]
    calls += [
        ("get_all_flags", lambda c: c.get_all_flags(did, **kw)),
        ("get_all_flags_and_payloads", lambda c: c.get_all_flags_and_payloads(did, **kw)),
    ]
    return calls


def test_remote_flags(server, make_client, flags_path):
    calls = _flag_calls("u1", ["beta", "exp", "off", "missing"])
    calls.append(("get_feature_flag(beta, groups)",
                  lambda c: c.get_feature_flag("beta", "u2", groups={"company": "acme"})))
    ov, tv, oe, te = _run(server, make_client, calls, {}, {}, lambda: set_flags(server, V2))
    ALLOWED.check(current_scenario(), ov, tv, path="return/")
    check_events(oe, te)


def test_remote_flags_v1_answer(server, make_client, flags_path):
    body = {"featureFlags": {"beta": True, "exp": "variant-b", "off": False},
            "featureFlagPayloads": {"beta": json.dumps({"color": "blue"}), "exp": "[1, 2]"},
            "errorsWhileComputingFlags": False}
    calls = _flag_calls("u1", ["beta", "exp", "off"])
    ov, tv, oe, te = _run(server, make_client, calls, {}, {}, lambda: set_flags(server, body))
    ALLOWED.check(current_scenario(), ov, tv, path="return/")
    check_events(oe, te)


def test_remote_flags_server_error(server, make_client, flags_path):
    calls = _flag_calls("u1", ["beta"])
    ov, tv, oe, te = _run(server, make_client, calls, {}, {},
                          lambda: set_flags(server, {"error": "boom"}, status=500))
    ALLOWED.check(current_scenario(), ov, tv, path="return/")
    check_events(oe, te)


def test_local_flags(server, make_client, flags_path):
    def setup():
        set_definitions(server, DEFINITIONS)
        set_flags(server, {"featureFlags": {"needs-server": True}})

    pro = {"person_properties": {"plan": "pro"}}
    calls = _flag_calls("user_1", ["simple-50", "pro-only"], **pro)
    calls += [
        ("pro-only free", lambda c: c.get_feature_flag("pro-only", "u2",
                                                       person_properties={"plan": "free"})),
        ("needs-server only local",
         lambda c: c.get_feature_flag("needs-server", "u1", only_evaluate_locally=True)),
        ("needs-server", lambda c: c.get_feature_flag("needs-server", "u1")),
        ("all flags, every property",
         lambda c: c.get_all_flags("user_1", person_properties={"plan": "pro", "country": "FR"})),
    ]

    def ready(c):
        if hasattr(c, "wait_for_flag_definitions"):
            assert c.wait_for_flag_definitions(10) is True
        else:
            c.load_feature_flags()

    ov, tv, oe, te = _run(server, make_client, calls,
                          {"secret_key": SECRET, "poll_interval": 60},
                          {"secret_key": SECRET, "poll_interval": 60}, setup, ready=ready)
    assert ov["get_feature_flag(simple-50)"] is True
    ALLOWED.check(current_scenario(), ov, tv, path="return/")
    check_events(oe, te)
