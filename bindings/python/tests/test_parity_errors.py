"""Bad input parity with posthog-python 7.91.1: the same bad calls on both
clients; compared per call are what it returns (a uuid, None, or the exception
it raises), the highest level it logs (loggers "libposthog" / "posthog"), and
then the events that arrive. Differences must be listed in
parity_allowed.json."""

from __future__ import annotations

import logging
import uuid as uuidlib
import warnings
from typing import Any, Callable, Dict, List, Tuple

import pytest

from parity import ALLOWED, check_events, current_scenario

posthog = pytest.importorskip("posthog")


@pytest.fixture(autouse=True)
def _capture_v0(monkeypatch):
    monkeypatch.setenv("POSTHOG_CAPTURE_MODE", "v0")


class _Levels(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.max = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.max = max(self.max, record.levelno)


def _outcome(f: Callable[[], Any]) -> Dict[str, Any]:
    h = _Levels()
    loggers = [logging.getLogger("libposthog"), logging.getLogger("posthog")]
    for lg in loggers:
        lg.addHandler(h)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                r = f()
                ret: Any = "<uuid>" if isinstance(r, str) and _is_uuid(r) else r
            except Exception as e:  # noqa: BLE001 - what raises is compared
                ret = "raises %s" % type(e).__name__
    finally:
        for lg in loggers:
            lg.removeHandler(h)
    # WARNING or above is what an application's default logging shows
    return {"returns": ret, "logs": logging.getLevelName(h.max) if h.max >= logging.WARNING
            else None}


def _is_uuid(s: str) -> bool:
    try:
        uuidlib.UUID(s)
        return True
    except ValueError:
        return False


BATCH_BREAKERS: List[Tuple[str, Callable[[Any], Any]]] = [
    ("good before", lambda c: c.capture("good before", distinct_id="u")),
    ("event None", lambda c: c.capture(None, distinct_id="u")),
    ("event int", lambda c: c.capture(5, distinct_id="u")),
    ("event empty", lambda c: c.capture("", distinct_id="u")),
    ("set properties list", lambda c: c.set(distinct_id="u", properties=[1])),
    ("good after", lambda c: c.capture("good after", distinct_id="u")),
]

BAD_CALLS: List[Tuple[str, Callable[[Any], Any]]] = [
    ("properties list", lambda c: c.capture("props list", distinct_id="u", properties=[1])),
    ("properties str", lambda c: c.capture("props str", distinct_id="u", properties="x")),
    ("timestamp not a date", lambda c: c.capture("bad ts", distinct_id="u",
                                                 timestamp="not a date")),
    ("groups list", lambda c: c.capture("groups list", distinct_id="u", groups=["a"])),
    ("uuid not a uuid", lambda c: c.capture("bad uuid", distinct_id="u", uuid="nope")),
    ("group_identify no key", lambda c: c.group_identify("company", None)),
    ("alias no distinct_id", lambda c: c.alias("prev", None)),
    ("flag key None", lambda c: c.get_feature_flag(None, "u")),
    ("flag distinct_id None", lambda c: c.get_feature_flag("k", None)),
]


def _both(server, make_client, calls):
    outcomes = []
    events = []
    for make in (make_client, lambda: posthog.Posthog("phc_test", host=server.url)):
        server.reset()
        c = make()
        try:
            outcomes.append({label: _outcome(lambda f=f: f(c)) for label, f in calls})
            c.flush()
            if events:
                server.wait_events(len(events[0]), timeout=5)
        finally:
            c.shutdown()
        events.append(server.events())
    return outcomes, events


def test_bad_calls(server, make_client):
    outcomes, events = _both(server, make_client, BAD_CALLS)
    ALLOWED.check(current_scenario(), outcomes[0], outcomes[1], path="call/")
    check_events(events[0], events[1])


def test_invalid_events_among_good_ones(server, make_client):
    """Events the server refuses (no name, a number as name, $set not an
    object) between two
    good ones: what each client returns and logs, and what arrives."""
    outcomes, events = _both(server, make_client, BATCH_BREAKERS)
    assert [e["event"] for e in events[0]] == ["good before", "5", "good after"]
    ALLOWED.check(current_scenario(), outcomes[0], outcomes[1], path="call/")
    check_events(events[0], events[1])
