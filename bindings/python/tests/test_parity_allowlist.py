"""The parity allow-list itself (parity.py): an unlisted difference fails, an
entry only allows what its scenario, path and rule say, an entry that matched
nothing is reported stale, and a malformed file is refused with what is wrong."""

from __future__ import annotations

import json

import pytest

import parity
from parity import MISSING, AllowList, diff


def _write(tmp_path, allowed, scenarios=("s1", "s2")):
    p = tmp_path / "allowed.json"
    p.write_text(json.dumps({"scenarios": list(scenarios), "allowed": allowed}))
    return p


def test_diff_sees_types_missing_keys_and_list_lengths():
    assert diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 2]}) == []
    assert diff({"a": True}, {"a": 1}) == [("a", True, 1)]
    assert diff({"a": 1.0}, {"a": 1}) == [("a", 1.0, 1)]
    assert diff({"a": 1}, {}) == [("a", 1, MISSING)]
    assert diff({"l": [1]}, {"l": [1, 2]}) == [("l[1]", MISSING, 2)]
    assert diff({"n": float("nan")}, {"n": float("nan")}) == []


def test_unlisted_difference_fails_and_listed_one_passes(tmp_path):
    al = AllowList(_write(tmp_path, [
        {"scenario": "s1", "path": "e/properties.$lib", "rule": "values",
         "values": {"ours": "a", "theirs": "b"}, "reason": "r"}]))
    al.check("s1", {"properties": {"$lib": "a"}}, {"properties": {"$lib": "b"}}, path="e/")
    with pytest.raises(AssertionError, match=r"e/properties.\$lib: ours='a' theirs='c'"):
        al.check("s1", {"properties": {"$lib": "a"}}, {"properties": {"$lib": "c"}}, path="e/")
    with pytest.raises(AssertionError, match="s2"):  # another scenario: not allowed
        al.check("s2", {"properties": {"$lib": "a"}}, {"properties": {"$lib": "b"}}, path="e/")
    with pytest.raises(AssertionError, match="not listed"):
        al.check("s3", {}, {})


def test_rules(tmp_path):
    al = AllowList(_write(tmp_path, [
        {"scenario": "s1", "path": "u", "rule": "uuid", "reason": "r"},
        {"scenario": "s1", "path": "ts", "rule": "timestamp", "reason": "r"},
        {"scenario": "s1", "path": "mine", "rule": "ours_only", "reason": "r"},
        {"scenario": "s1", "path": "x", "rule": "any", "reason": "r"}]))
    u1, u2 = "01a237ec-1668-70f7-8b11-312eb17ba054", "cd2d114b-591b-4116-bfbc-bdcffc9a47f0"
    al.check("s1", {"u": u1}, {"u": u2})
    with pytest.raises(AssertionError):
        al.check("s1", {"u": u1}, {"u": "not-a-uuid"})
    al.check("s1", {"ts": "2024-01-01T10:00:00.123Z"}, {"ts": "2024-01-01T10:00:00.123456+00:00"},
             explicit_ts=True)
    with pytest.raises(AssertionError):  # another instant
        al.check("s1", {"ts": "2024-01-01T10:00:00.124Z"},
                 {"ts": "2024-01-01T10:00:00.123456+00:00"}, explicit_ts=True)
    al.check("s1", {"mine": 1}, {})
    with pytest.raises(AssertionError):  # present only on their side
        al.check("s1", {}, {"mine": 1})
    with pytest.raises(AssertionError):  # "any" needs the field on both sides
        al.check("s1", {"x": 1}, {})


def test_stale_entry_is_reported_once_its_scenarios_ran(tmp_path):
    al = AllowList(_write(tmp_path, [
        {"scenario": "s1", "path": "a", "rule": "any", "reason": "used"},
        {"scenario": "s1", "path": "gone", "rule": "any", "reason": "stale"},
        {"scenario": "*", "path": "gone", "rule": "any", "reason": "s2 did not run"}]))
    assert al.stale() == []
    al.check("s1", {"a": 1}, {"a": 2})
    assert [e["reason"] for e in al.stale()] == ["stale"]
    al.check("s2", {}, {})
    assert [e["reason"] for e in al.stale()] == ["stale", "s2 did not run"]


@pytest.mark.parametrize("entry,message", [
    ({"scenario": "s1", "path": "a", "rule": "nope", "reason": "r"}, "rule 'nope' is not one of"),
    ({"scenario": "s1", "path": "a", "rule": "any"}, "'reason' must be a non-empty string"),
    ({"scenario": "zz", "path": "a", "rule": "any", "reason": "r"}, "matches no name"),
    ({"scenario": "s1", "path": "a", "rule": "values", "reason": "r"}, "needs \"values\""),
])
def test_malformed_entries_are_refused(tmp_path, entry, message):
    with pytest.raises(ValueError, match=message):
        AllowList(_write(tmp_path, [entry]))


def test_repository_allow_list_is_valid():
    parity.load()  # every entry well formed and naming a listed scenario
