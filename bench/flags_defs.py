#!/usr/bin/env python3
"""The feature-flag benchmark's input (issue 10): definitions and persons.

    flags_defs.py OUT.json

Writes {"definitions": <a /flags/definitions body with 100 flags>,
"persons": [{"distinct_id", "person_properties"}, ...], "workloads": {...}}.
Deterministic (no randomness), so every client in a run and every run
evaluates the same thing. ph-bench-flags (C), flags_bench.py (posthog-python
and libposthog's Python binding) and flags_bench.js (posthog-node) all read
this one file.

Workloads (the keys they evaluate):
  rollout       "rollout-only": 50% rollout, no property filter
  props5        five property filters (icontains, gt, exact list, is_not,
                starts_with), all true for most persons so all five run
  multivariate  three variants (34/33/33) behind a 100% condition
  cohort        a cohort (OR of two ANDs)
  all100        every flag: the four above plus 96 more of the same shapes
                and regex / three-filter / two-condition flags
Only operators that posthog-python, posthog-node and libposthog all evaluate
locally are used, and no person ever lacks a property a flag reads, so every
client decides every flag locally (the scripts check that nothing is
inconclusive).
"""

import json
import sys

NFLAGS = 100
NPERSONS = 1024

PROPS5 = [
    {"key": "email", "operator": "icontains", "value": "@example.com", "type": "person"},
    {"key": "age", "operator": "gt", "value": 17, "type": "person"},
    {"key": "country", "operator": "exact", "value": ["US", "CA", "GB", "DE", "FR"],
     "type": "person"},
    {"key": "plan", "operator": "is_not", "value": "banned", "type": "person"},
    {"key": "email", "operator": "starts_with", "value": "user", "type": "person"},
]

COHORT = {"type": "OR", "values": [
    {"type": "AND", "values": [
        {"key": "country", "value": "US", "type": "person"},
        {"key": "age", "operator": "gt", "value": 18, "type": "person"}]},
    {"type": "AND", "values": [
        {"key": "plan", "value": ["pro", "team"], "type": "person"}]}]}


def shape(kind):
    if kind == "rollout":
        return {"groups": [{"properties": [], "rollout_percentage": 50}]}
    if kind == "props5":
        return {"groups": [{"properties": PROPS5, "rollout_percentage": 100}]}
    if kind == "multivariate":
        return {"groups": [{"properties": [], "rollout_percentage": 100}],
                "multivariate": {"variants": [
                    {"key": "a", "rollout_percentage": 34},
                    {"key": "b", "rollout_percentage": 33},
                    {"key": "c", "rollout_percentage": 33}]}}
    if kind == "cohort":
        return {"groups": [{"properties": [{"key": "id", "value": 1, "type": "cohort"}],
                            "rollout_percentage": 100}]}
    if kind == "regex":
        return {"groups": [{"properties": [
            {"key": "email", "operator": "regex", "value": "^user[0-9]+@example\\.com$",
             "type": "person"}], "rollout_percentage": 100}]}
    if kind == "props3":
        return {"groups": [{"properties": PROPS5[:3], "rollout_percentage": 80}]}
    if kind == "twoconds":
        return {"groups": [
            {"properties": [{"key": "plan", "value": "enterprise", "type": "person"}],
             "rollout_percentage": 100},
            {"properties": [], "rollout_percentage": 30}]}
    raise KeyError(kind)


FILLER = ("rollout", "props5", "multivariate", "cohort", "regex", "props3", "twoconds")


def build():
    flags = []
    for i, kind in enumerate(("rollout", "props5", "multivariate", "cohort")):
        flags.append({"id": i + 1, "key": kind, "name": kind, "active": True,
                      "filters": shape(kind), "deleted": False,
                      "ensure_experience_continuity": False})
    for i in range(len(flags), NFLAGS):
        kind = FILLER[i % len(FILLER)]
        flags.append({"id": i + 1, "key": "flag-%d-%s" % (i, kind), "name": kind,
                      "active": True, "filters": shape(kind), "deleted": False,
                      "ensure_experience_continuity": False})
    plans = ["free", "pro", "team", "enterprise"]
    countries = ["US", "CA", "GB", "DE", "FR", "JP"]
    persons = []
    for i in range(NPERSONS):
        persons.append({"distinct_id": "user_%d" % i, "person_properties": {
            "email": "user%d@example.com" % i, "age": 18 + i % 60, "plan": plans[i % 4],
            "country": countries[i % 6]}})
    return {"definitions": {"flags": flags, "group_type_mapping": {"0": "company"},
                            "cohorts": {"1": COHORT}},
            "persons": persons,
            "workloads": {"rollout": "rollout", "props5": "props5",
                          "multivariate": "multivariate", "cohort": "cohort", "all100": None}}


def main():
    if len(sys.argv) != 2:
        print("usage: flags_defs.py OUT.json", file=sys.stderr)
        return 2
    with open(sys.argv[1], "w") as f:
        json.dump(build(), f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
