"""The compiled flags accelerator (libposthog._accel) against the ctypes path:
the same results, the same events, the same requests and the same log lines,
for many generated persons and property dicts and every kind of flag.

Two clients on the same server and definitions: `fast` (accelerated) and
`ref` (made while flags._accel is None: the ctypes path). Skipped when the
package has no accelerator, unless LIBPOSTHOG_REQUIRE_ACCEL=1 (run_tests.sh).
"""

from __future__ import annotations

import enum
import gc
import json
import logging
import os
import random
import uuid
from collections import OrderedDict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

import libposthog
from libposthog import flags as F
from libposthog._serialize import dumps_clean_fast

from test_flags import SECRET, called_events, flags_requests, set_definitions, set_flags

_accel = F._accel
if _accel is None:
    _why = "no compiled accelerator: " + F.accelerator_status()
    if os.environ.get("LIBPOSTHOG_REQUIRE_ACCEL", "") not in ("", "0"):
        raise RuntimeError(_why)
    pytest.skip(_why, allow_module_level=True)


def _props(*filters):
    return [{"key": k, "operator": op, "value": v, "type": "person"} for k, op, v in filters]


DEFS = {
    "flags": [
        {"id": 1, "key": "rollout-30", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 30}]}},
        {"id": 2, "key": "props", "active": True,
         "filters": {"groups": [{"properties": _props(
             ("email", "icontains", "@example"), ("age", "gt", 20),
             ("plan", "exact", ["pro", "team"]), ("country", "is_not", "FR")),
             "rollout_percentage": 100}],
             "payloads": {"true": json.dumps({"tier": 2, "n": [1, 2.5, None]})}}},
        {"id": 3, "key": "mv", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "multivariate": {"variants": [
                         {"key": "a", "rollout_percentage": 34},
                         {"key": "b", "rollout_percentage": 33},
                         {"key": "вариант-✓", "rollout_percentage": 33}]},
                     "payloads": {"a": json.dumps("pa"), "b": json.dumps({"x": 1}),
                                  "вариант-✓": json.dumps(["ü"])}}},
        {"id": 4, "key": "cohort", "active": True,
         "filters": {"groups": [{"properties": [{"key": "id", "value": 7, "type": "cohort"}],
                                 "rollout_percentage": 100}]}},
        {"id": 5, "key": "regex-date", "active": True,
         "filters": {"groups": [
             {"properties": _props(("name", "regex", "^[A-Z]")), "rollout_percentage": 100},
             {"properties": _props(("signup", "is_date_before", "2024-06-01")),
              "rollout_percentage": 50}]}},
        {"id": 6, "key": "company-size", "active": True,
         "filters": {"aggregation_group_type_index": 0,
                     "groups": [{"properties": [{"key": "size", "operator": "gt", "value": 10,
                                                 "type": "group", "group_type_index": 0}],
                                 "rollout_percentage": 100}],
                     "payloads": {"true": json.dumps({"company": True})}}},
        {"id": 7, "key": "bad-payload", "active": True,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}],
                     "payloads": {"true": "not json {"}}},
        {"id": 8, "key": "inactive", "active": False,
         "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}},
        {"id": 9, "key": "needs-prop", "active": True,
         "filters": {"groups": [{"properties": _props(("missing_prop", "exact", "x")),
                                 "rollout_percentage": 100}]}},
        {"id": 10, "key": "ключ-✓", "active": True,
         "filters": {"groups": [{"properties": _props(("plan", "is_set", "is_set")),
                                 "rollout_percentage": 100}],
                     "payloads": {"true": json.dumps("é")}}},
        {"id": 11, "key": "semver", "active": True,
         "filters": {"groups": [{"properties": _props(("app_version", "semver_gte", "1.2.0")),
                                 "rollout_percentage": 100}]}},
    ],
    "group_type_mapping": {"0": "company"},
    "cohorts": {"7": {"type": "OR", "values": [
        {"type": "AND", "values": [{"key": "country", "value": "US", "type": "person"},
                                   {"key": "age", "operator": "gt", "value": 18,
                                    "type": "person"}]},
        {"type": "AND", "values": [{"key": "plan", "value": ["pro", "team"],
                                    "type": "person"}]}]}},
}
KEYS = [f["key"] for f in DEFS["flags"]] + ["no-such-flag"]


class Color(enum.IntEnum):
    RED = 1


class Tag(str):
    pass


def value(rng: random.Random, depth: int = 0):
    """A property value of any type posthog-python users pass."""
    k = rng.randrange(36 if depth < 3 else 26)
    return [
        lambda: "plain",
        lambda: "é✓ключ😀",
        lambda: 'q"uo\\te\n\t\r\b\f\x01\x1f\x7f',
        lambda: "",
        lambda: rng.randrange(-1000, 1000),
        lambda: 2 ** 70 * rng.choice((1, -1)),
        lambda: -(2 ** 63),
        lambda: rng.choice((True, False)),
        lambda: None,
        lambda: rng.uniform(-1e6, 1e6),
        lambda: rng.choice((0.1, -0.0, 1e300, 1e-7, 5e-324, 1.0, 1e16)),
        lambda: rng.choice((float("nan"), float("inf"), float("-inf"))),
        lambda: datetime(2024, 1, 2, 3, 4, 5, rng.randrange(1000000)),
        lambda: datetime(2023, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))),
        lambda: date(2020, 2, 29),
        lambda: Decimal(rng.choice(("1.25", "-0", "1e400", "NaN", "3"))),
        lambda: uuid.UUID(int=rng.getrandbits(128)),
        lambda: b"bytes \xc3\xa9",
        lambda: b"\xff\xfe",
        lambda: "a\ud800b",  # lone surrogate
        lambda: Color.RED,
        lambda: Tag("tag"),
        lambda: object(),
        lambda: 12345678901234567890,
        lambda: "2024-05-01",
        lambda: rng.choice(("1.2.0", "1.10.3", "0.9", "2.0.0-beta")),
        # containers (depth < 3)
        lambda: [value(rng, depth + 1) for _ in range(rng.randrange(4))],
        lambda: tuple(value(rng, depth + 1) for _ in range(rng.randrange(3))),
        lambda: {"k%d" % i: value(rng, depth + 1) for i in range(rng.randrange(4))},
        lambda: {rng.randrange(5), rng.randrange(5)},
        lambda: frozenset(("x", "y")),
        lambda: OrderedDict(a=value(rng, depth + 1)),
        lambda: {1: "int key", "s": 2},
        lambda: {(1, 2): "tuple key"},
        lambda: {"nested": {"deeper": [1, {"x": "é"}]}},
        lambda: [],
    ][k]()


def person(rng: random.Random, i: int):
    pp = {
        "email": rng.choice(("user%d@example.com" % i, "x@other.org", "USER@EXAMPLE.COM")),
        "age": rng.choice((15, 19, 25, 40, "30", 22.5, Decimal("21"), None, True)),
        "plan": rng.choice(("free", "pro", "team", "banned", "")),
        "country": rng.choice(("US", "FR", "DE", "GB")),
        "name": rng.choice(("Alice", "bob", "Émile", "")),
        "signup": rng.choice(("2024-01-01", "2025-01-01", datetime(2023, 1, 1), date(2024, 7, 1))),
        "app_version": rng.choice(("1.2.0", "1.10.3", "0.9", "2.0.0-beta", 3)),
    }
    for _ in range(rng.randrange(4)):
        pp["extra_%d" % rng.randrange(100)] = value(rng)
    if rng.random() < 0.2:
        del pp[rng.choice(sorted(pp))]
    did = rng.choice(("user_%d" % i, "пользователь-%d" % i, "u\t%d" % i, "id %d ✓" % i))
    groups = None
    gprops = None
    if rng.random() < 0.4:
        groups = {"company": rng.choice(("acme", "globex", 42))}
        gprops = {"company": {"size": rng.choice((5, 50, "20", None))}}
    return did, pp, groups, gprops


def same(a, b):
    """Equal values of the same types, recursively (True is not 1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture
def pair(server, make_client, monkeypatch):
    """(fast, ref): an accelerated client and a ctypes one, definitions loaded."""
    set_definitions(server, DEFS)
    fast = make_client(secret_key=SECRET, poll_interval=60)
    with monkeypatch.context() as m:
        m.setattr(F, "_accel", None)
        ref = make_client(secret_key=SECRET, poll_interval=60)
    assert fast.wait_for_flag_definitions(10) and ref.wait_for_flag_definitions(10)
    assert isinstance(fast.__dict__.get("get_feature_flag"), type(len)), "not accelerated"
    assert "get_feature_flag" not in ref.__dict__
    return fast, ref


def both(pair, caplog, name, *args, **kw):
    """Calls `name` on both clients; asserts the same result (types included)
    and the same log records; returns the result."""
    out = []
    for c in pair:
        caplog.clear()
        try:
            r = ("ok", getattr(c, name)(*args, **kw))
        except Exception as e:  # noqa: BLE001 - compared below
            r = ("raised", type(e), str(e))
        out.append((r, [(x.levelno, x.getMessage()) for x in caplog.records]))
    (ra, la), (rb, lb) = out
    assert ra[0] == rb[0] and (same(ra[1], rb[1]) if ra[0] == "ok" else ra == rb), (
        name, args, kw, ra, rb)
    assert la == lb, (name, args, kw, la, lb)
    return ra[1] if ra[0] == "ok" else None


# ------------------------------------------------------------------ JSON text


@pytest.mark.parametrize("seed", range(4))
def test_dumps_matches_python_converter(seed):
    rng = random.Random(seed)
    handled = 0
    for _ in range(2000):
        v = {"k%d" % i: value(rng) for i in range(rng.randrange(6))}
        got = _accel.dumps(v)
        if got is None:
            continue  # left to the Python converter
        handled += 1
        assert got == dumps_clean_fast(v), v
    assert handled > 200  # most generated dicts are handled in C


def test_dumps_leaves_what_it_does_not_handle_to_python():
    for v in ({"s": "a\ud800"}, {1: "x"}, {"t": Tag("x")}, {"e": Color.RED},
              {"o": OrderedDict()}, {"b": b"\xff"}, {"x": object()}):
        assert _accel.dumps(v) is None, v
    deep: dict = {}
    d = deep
    for _ in range(200):
        d["d"] = {}
        d = d["d"]
    assert _accel.dumps(deep) is None
    assert _accel.dumps({"n": float("nan"), "d": Decimal("NaN"), "i": -(2 ** 63)}) == \
        b'{"n":null,"d":null,"i":-9223372036854775808}'
    assert _accel.dumps({"c": "\x00\x1f\"\\é"}) == '{"c":"\\u0000\\u001f\\"\\\\é"}'.encode()


# ------------------------------------------------------------------ results


@pytest.mark.parametrize("seed", range(3))
def test_local_results_and_logs_identical(pair, caplog, seed):
    caplog.set_level(logging.DEBUG, logger="libposthog")
    rng = random.Random(1000 + seed)
    decided = 0
    for i in range(150):
        did, pp, groups, gprops = person(rng, i)
        kw = dict(person_properties=pp, only_evaluate_locally=True)
        if groups is not None:
            kw.update(groups=groups, group_properties=gprops)
        for key in KEYS:
            v = both(pair, caplog, "get_feature_flag", key, did,
                     send_feature_flag_events=False, **kw)
            decided += v is not None
            both(pair, caplog, "feature_enabled", key, did, send_feature_flag_events=False, **kw)
            both(pair, caplog, "get_feature_flag_payload", key, did, **kw)
            both(pair, caplog, "get_feature_flag_payload", key, did,
                 match_value=rng.choice((True, False, "a", "b", "вариант-✓")), **kw)
        both(pair, caplog, "get_all_flags", did, **kw)
        both(pair, caplog, "get_all_flags_and_payloads", did, **kw)
        both(pair, caplog, "get_all_flags", did, flag_keys_to_evaluate=rng.sample(KEYS, 3), **kw)
    assert decided > 150 * 5  # most flags decided locally: the comparison means something


def test_argument_forms_identical(pair, caplog):
    caplog.set_level(logging.DEBUG, logger="libposthog")
    od = OrderedDict(plan="pro", email="a@example.com", age=30, country="US")
    cases = [
        (("props", "u1"), dict(person_properties=od)),
        (("props", 12345), dict(person_properties={"plan": "pro"})),
        (("mv", uuid.UUID(int=5)), {}),
        (("mv", "a\x00b"), {}),
        (("mv\x00", "u1"), {}),
        (("", "u1"), {}),
        (("mv", ""), {}),
        (("mv", None), {}),
        ((7, "u1"), {}),
        (("props", "u1"), dict(person_properties=["plan"])),
        (("props", "u1"), dict(person_properties={(1, 2): "tuple key"})),
        (("props", "u1"), dict(person_properties={"s": "a\ud800"})),
        (("mv", "u1"), dict(device_id="dev-1")),
        (("mv", "u1"), dict(device_id=42)),
        (("mv", "u1"), dict(disable_geoip=False, only_evaluate_locally=1)),
        (("mv", "u1", {"extra": 1}), {}),  # a third positional: TypeError
        (("mv", "u1"), dict(no_such_keyword=1)),
    ]
    for args, kw in cases:
        kw = dict(kw)
        kw.setdefault("only_evaluate_locally", True)
        for name in ("get_feature_flag", "feature_enabled", "get_feature_flag_payload"):
            both(pair, caplog, name, *args, **kw)
    for did in ("u1", 5, None, "", "a\x00"):
        both(pair, caplog, "get_all_flags", did, only_evaluate_locally=True)
    both(pair, caplog, "get_all_flags", "u1", flag_keys_to_evaluate=("mv", "props"),
         only_evaluate_locally=True)
    both(pair, caplog, "get_all_flags", "u1", flag_keys_to_evaluate=["mv", 5],
         only_evaluate_locally=True)
    both(pair, caplog, "get_all_flags", "u1", flag_keys_to_evaluate="mv",
         only_evaluate_locally=True)
    both(pair, caplog, "get_all_flags_and_payloads", "u1", groups=["not", "a", "dict"],
         only_evaluate_locally=True)


def test_debug_clients_raise_the_same(server, make_client, monkeypatch):
    set_definitions(server, DEFS)
    fast = make_client(secret_key=SECRET, poll_interval=60, debug=True)
    with monkeypatch.context() as m:
        m.setattr(F, "_accel", None)
        ref = make_client(secret_key=SECRET, poll_interval=60, debug=True)
    for c in (fast, ref):
        with pytest.raises(TypeError, match="person_properties must be a dict"):
            c.get_feature_flag("props", "u1", person_properties=["x"])
        with pytest.raises(TypeError):
            c.get_all_flags("u1", person_properties={(1,): 2})
        with pytest.raises(TypeError):
            c.get_feature_flag_payload("props", "u1", groups=[1])


def test_disabled_and_collected_clients(server):
    set_definitions(server, DEFS)
    c = libposthog.Posthog("phc_test", host=server.url, secret_key=SECRET, poll_interval=60)
    assert c.wait_for_flag_definitions(10)
    assert c.get_feature_flag("mv", "u1", only_evaluate_locally=True) in ("a", "b", "вариант-✓")
    c.disabled = True  # changed at run time: read at every call
    assert c.get_feature_flag("mv", "u1") is None
    assert c.feature_enabled("mv", "u1") is None
    assert c.get_feature_flag_payload("mv", "u1") is None
    assert c.get_all_flags("u1") == {}
    assert c.get_all_flags_and_payloads("u1") == {"featureFlags": {}, "featureFlagPayloads": {}}
    c.disabled = False
    # a bound method outliving its client answers as for a gone client
    g, e, p, a = c.get_feature_flag, c.feature_enabled, c.get_feature_flag_payload, c.get_all_flags
    handle = c._handle
    c.shutdown()
    del c
    gc.collect()
    assert handle.ptr is None  # freed
    assert g("mv", "u1") is None and e("mv", "u1") is None and p("mv", "u1") is None
    assert a("u1") == {}


def test_subclass_overrides_are_kept(server, make_client):
    class Mine(libposthog.Posthog):
        def get_feature_flag(self, key, distinct_id, **kw):
            return "overridden"

    c = Mine("phc_test", host=server.url, secret_key=SECRET, poll_interval=60)
    try:
        assert c.get_feature_flag("mv", "u1") == "overridden"
        assert c.feature_enabled("mv", "u1") is True  # FlagsMixin's, through the override
        assert "get_feature_flag" not in c.__dict__ and "feature_enabled" not in c.__dict__
        assert "get_all_flags" in c.__dict__  # not overridden: accelerated
    finally:
        c.shutdown()


# ------------------------------------------------------------------ events and requests


def _events(server, client):
    out = []
    for e in called_events(server, client):
        p = {k: v for k, v in e["properties"].items() if k not in ("$lib_version",)}
        out.append((e["distinct_id"], json.dumps(p, sort_keys=True)))
    return sorted(out)


def test_exposure_events_identical(pair, server):
    fast, ref = pair
    rng = random.Random(7)
    calls = []
    for i in range(60):
        did, pp, groups, gprops = person(rng, i)
        kw = dict(person_properties=pp, only_evaluate_locally=True)
        if groups is not None:
            kw.update(groups=groups, group_properties=gprops)
        key = rng.choice(KEYS)
        calls.append((rng.choice(("get_feature_flag", "feature_enabled")), key, did, kw))
        calls.append(("get_feature_flag_payload", key, did,
                      dict(kw, send_feature_flag_events=True)))
    got = {}
    for name, c in (("fast", fast), ("ref", ref)):
        server.reset()
        for _ in range(2):  # the second round is deduplicated
            for meth, key, did, kw in calls:
                getattr(c, meth)(key, did, **kw)
        got[name] = _events(server, c)
    assert got["fast"] == got["ref"]
    assert len(got["fast"]) > 30


def test_remote_requests_identical(pair, server):
    """Flags that cannot be decided locally go to /flags with the same body
    (person_properties converted by C or by Python) and give the same
    answers and events."""
    fast, ref = pair
    rng = random.Random(11)
    persons = [person(rng, i) for i in range(25)]
    got = {}
    for name, c in (("fast", fast), ("ref", ref)):
        server.reset()
        set_flags(server, {"featureFlags": {"needs-prop": "remote-variant"},
                           "featureFlagPayloads": {"needs-prop": json.dumps({"r": 1})}})
        res = []
        for did, pp, groups, gprops in persons:
            kw = dict(person_properties=pp, groups=groups, group_properties=gprops)
            res.append(c.get_feature_flag("needs-prop", did, **kw))
            res.append(c.feature_enabled("needs-prop", did, **kw))
            res.append(c.get_feature_flag_payload("needs-prop", did, **kw))
        bodies = [json.dumps(r["body"], sort_keys=True) for r in flags_requests(server)]
        got[name] = (res, bodies, _events(server, c))
    assert got["fast"][0] == got["ref"][0]
    assert "remote-variant" in got["fast"][0]
    assert got["fast"][1] == got["ref"][1]
    assert len(got["fast"][1]) > 40  # (property dicts libposthog refuses make no request)
    assert got["fast"][2] == got["ref"][2]


def test_before_send_keyboard_interrupt_propagates(server, make_client, monkeypatch):
    """before_send raising KeyboardInterrupt on $feature_flag_called: the event
    is dropped and the interrupt raised from the flag call, on both paths."""
    def before_send(event):
        if event["event"] == "$feature_flag_called":
            raise KeyboardInterrupt
        return event

    set_definitions(server, DEFS)
    fast = make_client(secret_key=SECRET, poll_interval=60, before_send=before_send)
    with monkeypatch.context() as m:
        m.setattr(F, "_accel", None)
        ref = make_client(secret_key=SECRET, poll_interval=60, before_send=before_send)
    for c in (fast, ref):
        assert c.wait_for_flag_definitions(10)
        with pytest.raises(KeyboardInterrupt):
            c.get_feature_flag("mv", "u1")
        with pytest.raises(KeyboardInterrupt):
            c.get_feature_flag_payload("mv", "u2", send_feature_flag_events=True)
        assert c.stats()["dropped_before_send"] == 2
        # nothing left over: the next call without an event is fine
        assert c.get_feature_flag("mv", "u1", send_feature_flag_events=False) is not None
        assert _accel.capture_depth() == 0


def test_accelerator_status():
    assert F.accelerator() and F.accelerator().endswith(".so")
    assert F.accelerator_status().startswith("on (")
    assert libposthog.flags.accelerator() == F.accelerator()


def test_methods_patched_on_the_class_later_are_used(server, make_client, monkeypatch):
    """mock.patch.object(Posthog, ...) after the client was made (a test suite
    patching the module-level client's class) wins over the compiled methods,
    as it does over the Python ones."""
    set_definitions(server, DEFS)
    c = make_client(secret_key=SECRET, poll_interval=60)
    assert c.wait_for_flag_definitions(10)
    assert "get_feature_flag" in c.__dict__
    seen = []

    def fake(self, key, distinct_id, **kw):
        seen.append((key, distinct_id))
        return "patched"

    with monkeypatch.context() as m:
        m.setattr(libposthog.Posthog, "get_feature_flag", fake)
        assert c.get_feature_flag("mv", "u1") == "patched"
        assert c.feature_enabled("mv", "u2") is True  # FlagsMixin's, through the patched one
        assert seen == [("mv", "u1"), ("mv", "u2")]
        m.setattr(libposthog.Posthog, "get_all_flags_and_payloads",
                  lambda self, did, **kw: {"featureFlags": {"x": did}, "featureFlagPayloads": {}})
        assert c.get_all_flags("u3") == {"x": "u3"}
        m.setattr(libposthog.Posthog, "get_feature_flag_payload", lambda self, *a, **kw: 42)
        assert c.get_feature_flag_payload("mv", "u1") == 42
    assert c.get_feature_flag("mv", "u1", only_evaluate_locally=True) in ("a", "b", "вариант-✓")
    assert c.get_feature_flag_payload("props", "u1", only_evaluate_locally=True) is None


def test_signatures_match_the_python_methods(pair):
    import inspect

    fast, ref = pair
    for name in F._ACCEL_METHODS:
        got = inspect.signature(getattr(fast, name))
        want = inspect.signature(getattr(ref, name))
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == \
            [(p.name, p.kind, p.default) for p in want.parameters.values()], name


def test_threads_get_the_answers_of_one_thread(pair, server):
    """Concurrent compiled calls (local ones keep the GIL, those that may go
    to the server release it) answer as the ctypes client does on one
    thread, and each exposure is captured once."""
    import threading

    fast, ref = pair
    set_flags(server, {"featureFlags": {"needs-prop": "remote-variant"}})
    rng = random.Random(5)
    work = []
    for i in range(40):
        did, pp, _, _ = person(rng, i)
        pp = {k: v for k, v in pp.items() if not k.startswith("extra_")}
        for key in ("rollout-30", "mv", "props", "needs-prop"):
            work.append((key, did, pp))
    want = [ref.get_feature_flag(k, d, person_properties=p, send_feature_flag_events=False)
            for k, d, p in work]
    server.reset()
    set_flags(server, {"featureFlags": {"needs-prop": "remote-variant"}})
    got = {}
    errors = []

    def run(t):
        try:
            got[t] = [fast.get_feature_flag(k, d, person_properties=p) for k, d, p in work]
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(got[t] == want for t in range(4))
    ev = called_events(server, fast)
    keys = [(e["distinct_id"], e["properties"]["$feature_flag"]) for e in ev]
    assert len(keys) == len(set(keys)) == len(set((d, k) for k, d, _ in work))
