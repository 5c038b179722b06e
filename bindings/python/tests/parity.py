"""The parity suite's comparison: every difference between what libposthog and
posthog-python did for the same script must be listed in parity_allowed.json.

check(scenario, ours, theirs) walks both values (events, return values, logs)
and collects every difference as (path, ours, theirs); a difference is allowed
only by an entry of parity_allowed.json whose scenario and path patterns match
and whose rule holds. Unlisted differences fail the test. Entries that matched
nothing once every scenario they name has run fail the session (conftest), so
the list cannot rot.

Paths: "<event name>/properties.$lib" for an event's fields (check_events),
"return/<label>.<key>" for other values. Patterns are fnmatch globs (a
literal "[" is written "[[]").

Rules an entry can give:
  any             both sides have the field; the values may differ
  uuid            both values are UUID strings
  timestamp       both ISO 8601 UTC (ours "...sssZ"); same instant to the
                  millisecond when the script gave it, else within 30 s
  ours_only       the field (or event) exists only in what libposthog did
  theirs_only     the field (or event) exists only in what posthog-python did
  values          {"ours": X, "theirs": Y}: exactly these two values
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import uuid as uuidlib
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

ALLOWED_FILE = Path(__file__).with_name("parity_allowed.json")
RULES = {"any", "uuid", "timestamp", "ours_only", "theirs_only", "values"}


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()

Diff = Tuple[str, Any, Any]


def load(path: Path = ALLOWED_FILE) -> Dict[str, Any]:
    """Reads and validates the allow-list; a malformed entry is an error."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, list) or not all(isinstance(s, str) for s in scenarios):
        raise ValueError("%s: 'scenarios' must be a list of scenario names" % path)
    for i, e in enumerate(data.get("allowed", [])):
        where = "%s: allowed[%d]" % (path, i)
        for k in ("scenario", "path", "rule", "reason"):
            if not isinstance(e.get(k), str) or not e[k]:
                raise ValueError("%s: '%s' must be a non-empty string" % (where, k))
        if e["rule"] not in RULES:
            raise ValueError("%s: rule %r is not one of %s" % (where, e["rule"], sorted(RULES)))
        if e["rule"] == "values" and not (isinstance(e.get("values"), dict)
                                          and set(e["values"]) == {"ours", "theirs"}):
            raise ValueError("%s: rule 'values' needs \"values\": {\"ours\": .., \"theirs\": ..}"
                             % where)
        if not fnmatch.filter(scenarios, e["scenario"]):
            raise ValueError("%s: scenario %r matches no name in 'scenarios'" % (where, e["scenario"]))
    return data


def diff(ours: Any, theirs: Any, path: str = "") -> List[Diff]:
    """Every leaf where the two differ. Types count: True != 1, 1 != 1.0."""
    out: List[Diff] = []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in sorted(set(ours) | set(theirs), key=str):
            p = "%s.%s" % (path, k) if path else str(k)
            out += diff(ours.get(k, MISSING), theirs.get(k, MISSING), p)
        return out
    if isinstance(ours, (list, tuple)) and isinstance(theirs, (list, tuple)) \
            and type(ours) is type(theirs):
        for i in range(max(len(ours), len(theirs))):
            out += diff(ours[i] if i < len(ours) else MISSING,
                        theirs[i] if i < len(theirs) else MISSING, "%s[%d]" % (path, i))
        return out
    if type(ours) is not type(theirs) or ours != theirs:
        # NaN never equals itself: the same NaN is no difference
        if isinstance(ours, float) and isinstance(theirs, float) and ours != ours \
                and theirs != theirs:
            return out
        out.append((path, ours, theirs))
    return out


def _is_uuid(s: Any) -> bool:
    try:
        return isinstance(s, str) and str(uuidlib.UUID(s)) == s
    except ValueError:
        return False


def _ts(s: Any) -> Optional[dt.datetime]:
    if not isinstance(s, str):
        return None
    try:
        t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.utcoffset() == dt.timedelta(0) else None


def _rule_holds(e: Dict[str, Any], o: Any, t: Any, explicit_ts: bool) -> bool:
    rule = e["rule"]
    if rule == "ours_only":
        return o is not MISSING and t is MISSING
    if rule == "theirs_only":
        return o is MISSING and t is not MISSING
    if o is MISSING or t is MISSING:
        return False
    if rule == "any":
        return True
    if rule == "uuid":
        return _is_uuid(o) and _is_uuid(t)
    if rule == "values":
        v = e["values"]
        return diff(o, v["ours"]) == [] and diff(t, v["theirs"]) == []
    if rule == "timestamp":
        ot, tt = _ts(o), _ts(t)
        if ot is None or tt is None or not o.endswith("Z"):
            return False
        if explicit_ts:
            return ot == tt.replace(microsecond=tt.microsecond // 1000 * 1000)
        return abs((ot - tt).total_seconds()) < 30
    return False


class AllowList:
    def __init__(self, path: Path = ALLOWED_FILE):
        data = load(path)
        self.path = path
        self.scenarios: List[str] = data["scenarios"]
        self.entries: List[Dict[str, Any]] = data.get("allowed", [])
        self.used: Set[int] = set()
        self.ran: Set[str] = set()

    def unexplained(self, scenario: str, diffs: Sequence[Diff],
                    explicit_ts: bool = False) -> List[Diff]:
        """The differences no entry allows; marks the entries that allowed one."""
        if scenario not in self.scenarios:
            raise AssertionError("scenario %r is not listed in %s 'scenarios'"
                                 % (scenario, self.path.name))
        self.ran.add(scenario)
        left = []
        for d in diffs:
            p, o, t = d
            hit = None
            for i, e in enumerate(self.entries):
                if fnmatch.fnmatchcase(scenario, e["scenario"]) \
                        and fnmatch.fnmatchcase(p, e["path"]) \
                        and _rule_holds(e, o, t, explicit_ts):
                    hit = i
                    break
            if hit is None:
                left.append(d)
            else:
                self.used.add(hit)
        return left

    def check(self, scenario: str, ours: Any, theirs: Any, path: str = "",
              explicit_ts: bool = False) -> None:
        """Fails on any difference no entry allows; `path` prefixes every path
        ("<event name>/" for one event)."""
        diffs = [(path + p, a, b) for p, a, b in diff(ours, theirs)]
        left = self.unexplained(scenario, diffs, explicit_ts)
        if left:
            raise AssertionError(
                "scenario %r: differences from posthog-python not in %s:\n%s" % (
                    scenario, self.path.name,
                    "\n".join("  %s: ours=%r theirs=%r" % d for d in left)))

    def stale(self) -> List[Dict[str, Any]]:
        """Entries that matched nothing although every scenario they name ran."""
        out = []
        for i, e in enumerate(self.entries):
            names = fnmatch.filter(self.scenarios, e["scenario"])
            if i not in self.used and names and all(n in self.ran for n in names):
                out.append(e)
        return out


ALLOWED = AllowList()


def current_scenario() -> str:
    """The running test as "file.py::test_name" (parameters dropped)."""
    name = os.environ.get("PYTEST_CURRENT_TEST", "")
    name = name.rsplit(" (", 1)[0].split("[", 1)[0]
    return name.rsplit("/", 1)[-1]


def by_event(events: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Events keyed by name ($feature_flag_called by "name:flag:distinct_id"),
    numbered "name#2" in arrival order when repeated."""
    out: Dict[str, Dict[str, Any]] = {}
    for e in events:
        k = e["event"]
        if k == "$feature_flag_called":
            k = "%s:%s:%s" % (k, (e.get("properties") or {}).get("$feature_flag"),
                              e.get("distinct_id"))
        n, base = 1, k
        while k in out:
            n += 1
            k = "%s#%d" % (base, n)
        out[k] = e
    return out


def check_events(ours: List[Dict[str, Any]], theirs: List[Dict[str, Any]],
                 explicit_ts: bool = False, scenario: Optional[str] = None) -> None:
    """Compares the events that arrived, field by field, matched by name."""
    scenario = scenario or current_scenario()
    o, t = by_event(ours), by_event(theirs)
    diffs: List[Diff] = []
    for name in list(o) + [n for n in t if n not in o]:
        if name not in o or name not in t:
            diffs.append((name, o.get(name, MISSING), t.get(name, MISSING)))
            continue
        for p, a, b in diff(o[name], t[name]):
            diffs.append(("%s/%s" % (name, p), a, b))
    left = ALLOWED.unexplained(scenario, diffs, explicit_ts)
    if left:
        raise AssertionError(
            "scenario %r: differences from posthog-python not in %s:\n%s" % (
                scenario, ALLOWED.path.name,
                "\n".join("  %s: ours=%r theirs=%r" % d for d in left)))
