"""Payload parity with posthog-python 7.x (from PyPI).

Each scenario makes the same calls on a libposthog client and on a
posthog-python client, both pointed at the local ingestion server, and compares
what arrived field by field.

Every difference is allowed only by an entry of parity_allowed.json (see
parity.py): an unlisted difference fails, and an entry that no longer matches
anything fails the session. Transport details (sent_at, headers, gzip) are not
compared here.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional

import pytest

from parity import ALLOWED, current_scenario

posthog = pytest.importorskip("posthog")

UTC = dt.timezone.utc


@dataclass
class Point:
    x: int
    y: float


class Model:
    """Pydantic-like: posthog-python's clean() calls model_dump()."""

    def model_dump(self):
        return {"a": 1, "when": dt.date(2020, 5, 17)}


@pytest.fixture(autouse=True)
def _capture_v0(monkeypatch):
    """posthog-python 7.x sends capture v0 unless told otherwise, libposthog v1
    once its C library has it: both read POSTHOG_CAPTURE_MODE, so compare v0
    with v0 (a libposthog without capture_mode speaks only v0 anyway)."""
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")


def _props_zoo() -> Dict[str, Any]:
    return {
        "str": "héllo ✓ \"quoted\" \n",
        "int": 12345678901234,
        "neg": -7,
        "float": 3.25,
        "bool": True,
        "none": None,
        "decimal": Decimal("12.50"),
        "uuid": uuidlib.UUID("12345678-1234-5678-1234-567812345678"),
        "naive_dt": dt.datetime(2021, 3, 4, 5, 6, 7, 891011),
        "aware_dt": dt.datetime(2021, 3, 4, 5, 6, 7, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "date": dt.date(2022, 12, 31),
        "set": {"only"},
        "frozenset": frozenset([3]),
        "tuple": (1, "two", 3.0),
        "deque": deque([1, 2]),
        "list": [1, [2, [3, {"deep": dt.date(2020, 1, 1)}]]],
        "nested": {"a": {"b": {"c": [Decimal("1.5"), None, True]}}},
        "bytes": b"raw bytes",
        "bad_bytes": b"\xff\xfe",
        "object": object(),
        "nan": float("nan"),
        "inf": float("inf"),
        "dataclass": Point(1, 2.5),
        "model": Model(),
        "empty_dict": {},
        "empty_list": [],
        "$set": {"inner": 1},
    }


def _parse_ts(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def _is_uuid(s: Any) -> bool:
    try:
        return isinstance(s, str) and str(uuidlib.UUID(s)) == s
    except ValueError:
        return False


def _run(server, make_ours, calls: List[Callable[[Any], Any]], their_kwargs: Dict[str, Any]):
    """Runs calls on both clients; returns (ours, theirs, our_returns, their_returns)."""
    ours = make_ours()
    our_ret = [c(ours) for c in calls]
    ours.flush()
    our_events = server.events()
    server.reset()

    theirs = posthog.Posthog("phc_test", host=server.url, **their_kwargs)
    try:
        their_ret = [c(theirs) for c in calls]
        theirs.flush()
        their_events = server.wait_events(sum(1 for r in their_ret if r))
    finally:
        theirs.shutdown()
    return our_events, their_events, our_ret, their_ret


def _compare(o: Dict[str, Any], t: Dict[str, Any], *, random_did=False, same_uuid=False,
             explicit_ts=False, scenario: Optional[str] = None) -> None:
    """Compares one event field by field; every difference must be allowed for
    this scenario (the calling test) by parity_allowed.json."""
    assert o["event"] == t["event"]
    if random_did:
        assert _is_uuid(o["distinct_id"]) and _is_uuid(t["distinct_id"])
    if same_uuid:
        assert o["uuid"] == t["uuid"]
    ALLOWED.check(scenario or current_scenario(), o, t, path=o["event"] + "/",
                  explicit_ts=explicit_ts)


def test_capture_value_conversion(server, make_client):
    ts = dt.datetime(2024, 2, 29, 23, 59, 58, 765432, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    u = uuidlib.UUID("0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a5b")
    calls = [
        lambda c: c.capture("zoo", distinct_id="user-1", properties=_props_zoo(), timestamp=ts,
                            uuid=u),
    ]
    o, t, oret, tret = _run(server, make_client, calls, {})
    assert len(o) == len(t) == 1
    assert oret == tret == [str(u)]
    _compare(o[0], t[0], same_uuid=True, explicit_ts=True)


def test_capture_variants(server, make_client):
    far_naive = dt.datetime(2020, 6, 1, 12, 0, 0, 123456)  # naive, not "now": taken as UTC
    calls = [
        lambda c: c.capture("int id", distinct_id=42),
        lambda c: c.capture("uuid id", distinct_id=uuidlib.UUID(int=7)),
        lambda c: c.capture("float id", distinct_id=1.5, properties={"p": 1}),
        lambda c: c.capture("naive far", distinct_id="u", timestamp=far_naive),
        lambda c: c.capture("iso string", distinct_id="u", timestamp="2023-07-01T10:00:00+0200"),
        lambda c: c.capture("iso Z", distinct_id="u", timestamp="2023-07-01T10:00:00.5Z"),
        lambda c: c.capture("groups", distinct_id="u", groups={"company": "acme", "team": 5}),
        lambda c: c.capture("geoip on", distinct_id="u", disable_geoip=False),
        lambda c: c.capture("geoip off", distinct_id="u", disable_geoip=True),
        lambda c: c.capture("user process flag", distinct_id="u",
                            properties={"$process_person_profile": True}),
        lambda c: c.capture("$pageview", distinct_id="u", properties={"$current_url": "https://x"}),
    ]
    o, t, oret, tret = _run(server, make_client, calls, {})
    assert len(o) == len(t) == len(calls)
    assert all(_is_uuid(r) for r in oret) and all(_is_uuid(r) for r in tret)
    for i, (a, b) in enumerate(zip(o, t)):
        _compare(a, b, explicit_ts=i in (3, 4, 5))


def test_capture_naive_now_is_local_time(server, make_client):
    calls = [lambda c: c.capture("now", distinct_id="u", timestamp=dt.datetime.now())]
    o, t, _, _ = _run(server, make_client, calls, {})
    _compare(o[0], t[0])
    # both read datetime.now() as local time: the instant is "now" in UTC
    assert abs((_parse_ts(o[0]["timestamp"]) - dt.datetime.now(UTC)).total_seconds()) < 30


def test_personless_capture(server, make_client):
    calls = [
        lambda c: c.capture("anon"),
        lambda c: c.capture("anon empty id", distinct_id=""),
        lambda c: c.capture("anon keeps flag", properties={"$process_person_profile": True}),
    ]
    o, t, _, _ = _run(server, make_client, calls, {})
    assert len(o) == len(t) == 3
    for a, b in zip(o, t):
        _compare(a, b, random_did=True)
    assert o[0]["properties"]["$process_person_profile"] is False
    assert o[2]["properties"]["$process_person_profile"] is True


def test_person_and_group_calls(server, make_client):
    ts = dt.datetime(2024, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)
    calls = [
        lambda c: c.set(distinct_id="u1", properties={"name": "Max", "when": dt.date(2020, 1, 2)}),
        lambda c: c.set(distinct_id=99, properties={"n": Decimal("2")}, timestamp=ts,
                        uuid="0190a0b1-c2d3-7e4f-8a9b-0c1d2e3f4a51"),
        lambda c: c.set_once(distinct_id="u1", properties={"first": {"a", }}),
        lambda c: c.alias("anon-123", "u1"),
        lambda c: c.alias(5, 6, disable_geoip=False),
        lambda c: c.group_identify("company", "acme", {"name": "Acme", "size": 11},
                                   distinct_id="u1"),
        lambda c: c.group_identify("company", 42, distinct_id="u1", timestamp=ts),
    ]
    o, t, oret, tret = _run(server, make_client, calls, {})
    assert len(o) == len(t) == len(calls)
    for i, (a, b) in enumerate(zip(o, t)):
        _compare(a, b, explicit_ts=i in (1, 6), same_uuid=i == 1)


def test_group_identify_without_distinct_id(server, make_client):
    calls = [lambda c: c.group_identify("company", "acme")]
    o, t, _, _ = _run(server, make_client, calls, {})
    _compare(o[0], t[0], random_did=True)


def test_calls_that_send_nothing(server, make_client):
    calls = [
        lambda c: c.set(distinct_id="u1", properties={}),
        lambda c: c.set(properties={"a": 1}),  # personless set does nothing
        lambda c: c.set_once(distinct_id="u1"),
        lambda c: c.alias("", "u1"),
        lambda c: c.alias("prev", None),
        lambda c: c.group_identify("", "k"),
        lambda c: c.group_identify("t", ""),
    ]
    o, t, oret, tret = _run(server, make_client, calls, {})
    assert o == [] and t == []
    assert oret == tret == [None] * len(calls)


def test_super_properties_and_historical_migration(server, make_client):
    sp = {"app": "web", "$lib_version": "9.9", "plan": "free", "when": "x"}
    calls = [
        lambda c: c.capture("e", distinct_id="u", properties={"plan": "pro", "own": 1}),
        lambda c: c.set(distinct_id="u", properties={"x": 1}),
    ]
    o, t, _, _ = _run(
        server,
        lambda: make_client(super_properties=sp, historical_migration=True),
        calls,
        {"super_properties": sp, "historical_migration": True},
    )
    # intended difference: the event's own properties win over super
    # properties, as in the C library and the Ruby binding (posthog-python
    # lets super properties override them)
    assert o[0]["properties"]["plan"] == "pro"
    assert t[0]["properties"]["plan"] == "free"
    for a, b in zip(o, t):
        _compare(a, b)


def test_request_body_shape(server, make_client):
    c = make_client(historical_migration=True)
    c.capture("e", distinct_id="u")
    c.flush()
    (req,) = server.requests()
    assert req["path"] == "/batch/"
    body = req["body"]
    assert set(body) == {"api_key", "historical_migration", "sent_at", "batch"}
    assert body["api_key"] == "phc_test" and body["historical_migration"] is True
    assert _parse_ts(body["sent_at"]).utcoffset() == dt.timedelta(0)


def test_before_send_receives_same_shape(server, make_client):
    seen: Dict[str, Any] = {}

    def bs(side):
        def f(msg):
            seen[side] = msg
            return msg

        return f

    ours = make_client(before_send=bs("ours"))
    ours.capture("e", distinct_id="u", properties={"a": 1})
    theirs = posthog.Posthog("phc_test", host=server.url, before_send=bs("theirs"))
    theirs.capture("e", distinct_id="u", properties={"a": 1})
    theirs.shutdown()
    assert set(seen["ours"]) == set(seen["theirs"])
    assert seen["ours"]["properties"]["a"] == 1
    assert set(seen["ours"]["properties"]) == set(seen["theirs"]["properties"])
