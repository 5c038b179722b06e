#!/usr/bin/env python3
"""Generator of the differential test's inputs (tests/flags_diff/, issue 10).

Seeded and deterministic: the same seed gives byte-identical output.

    gen_cases.py [--seed N] [--suites S] [--flags F] [--persons P] > cases.json

Writes {"seed": N, "suites": [{"definitions": <a /flags/definitions body>,
"cases": [{distinct_id, device_id, person_properties, groups,
group_properties}, ...]}, ...]}; every case is evaluated against every flag of
its suite.

What is generated: person and group properties of every JSON type (strings
with and without non-ASCII letters, integers, non-integral floats, numeric
strings, booleans, "true"/"false" strings, null, lists, objects), every
property operator that posthog-python 7.91.1 implements the way the server
does (exact, is_not, is_set, is_not_set, icontains, not_icontains,
starts_with, not_starts_with, ends_with, not_ends_with, regex, not_regex, gt,
gte, lt, lte, is_date_before, is_date_after, semver_eq/neq/gt/gte/lt/lte,
semver_tilde, semver_caret, semver_wildcard), cohorts (nested AND/OR,
negation, in / not_in / exact, cohorts referencing cohorts, static cohorts
missing from the definitions), flag dependencies (true, false, a variant,
with the server's dependency_chain), multivariate flags (with and without
variant overrides, tables that do not reach 100%), fractional rollouts,
early_exit, holdouts, feature_enrollment, group flags, mixed targeting,
device_id bucketing, inactive and experience-continuity flags.

What is NOT generated, because posthog-python and the server (whom the engine
follows) disagree by design; each exclusion cites the difference in
docs/flags.md section 7 or 8 (engine notes) and /work/shared/docs/flags.md
section 3.4 (SDK survey), see EXCLUDED below.
"""

import argparse
import json
import random
import sys

# Operator exclusions and value restrictions, each a documented server-vs-SDK
# disagreement. The driver prints this list with its summary.
EXCLUDED = [
    "operators icontains_multi, not_icontains_multi, between, not_between, is_date_exact: "
    "posthog-python has none of them (unknown operator -> inconclusive), the engine evaluates "
    "them as the server does (docs/flags.md 7 #6)",
    "property_matching_version other than 1 and 2: posthog-python matches as 1, the engine "
    "leaves exact/is_not undecided (an unknown matching rule; docs/flags.md)",
    "semver values with an upper-case 'V' prefix: the server strips only 'v' "
    "(docs/flags.md 5), posthog-python both; "
    "semver with a pre-release, build metadata or leading zeros, non-string or invalid semver "
    "values, wildcards without '*' or with '*' in the middle or alone: posthog-python keeps "
    "major.minor.patch only and rejects leading zeros (inconclusive), the server uses the "
    "semver crate (docs/flags.md 7 #5, shared flags.md 3.4)",
    "date values that are numbers (epoch seconds for the server), texts without digits, "
    "impossible dates and free-form dates: posthog-python answers inconclusive, the server "
    "false or its dateparser (docs/flags.md 7 #18, 8.4)",
    "integral floats (1.0) and floats in exponent form: cJSON keeps no number text "
    "(docs/flags.md 8.3)",
    "'inf'/'nan' numeric strings: Rust's f64 grammar reads them, posthog-python does not "
    "(docs/flags.md 5 gt/lt row)",
    "exact/is_not where both sides hold non-ASCII letters: Unicode lower-casing "
    "(docs/flags.md 8.2); regex on non-ASCII values (docs/flags.md 6, bytes vs code points); "
    "inline flags such as (?i) (posthog-python defers every (?x) but (?:...))",
    "filters.version != 1, super_groups: posthog-python ignores them (docs/flags.md 7 #7, #22)",
    "feature_enrollment on a group flag: posthog-python inconclusive, the server reads the "
    "person (docs/flags.md 7 #24)",
    "a group type index missing from group_type_mapping: posthog-python inconclusive, the "
    "server false/no_group_type (docs/flags.md 7 #11)",
    "device_id bucketing without a device id: posthog-python inconclusive, the server out of "
    "rollout (docs/flags.md 7 #16): every case carries a device_id",
    "dependency chains with a member that is undecidable for the person: posthog-python "
    "evaluates every member of dependency_chain and answers inconclusive if any is, even one "
    "the answer does not need (RequiresServerEvaluation of a static cohort propagates too); "
    "the engine evaluates what the answer needs: dependency targets are flags decidable for "
    "every person; "
    "missing, cyclic or empty dependency chains: posthog-python inconclusive, the server "
    "false/missing_dependency (docs/flags.md 7 #12); dependencies on group flags "
    "(posthog-python evaluates them on the dependant's properties)",
    "an undecidable condition before a matching one in a multivariate or early_exit flag: the "
    "engine answers inconclusive where the server may have matched the first one, "
    "posthog-python takes the later match (docs/flags.md 7 #9): such flags read only "
    "properties every person has",
    "a static cohort (an id the definitions do not carry) before another condition: "
    "posthog-python stops at it (RequiresServerEvaluation: inconclusive), the engine lets a "
    "later match give the value when the static one could not give another "
    "(docs/flags.md 4 'Inconclusive conditions', 7 #9): static cohorts only in last conditions",
    "holdouts on group flags: without the group the engine has no bucketing id for the "
    "holdout and answers inconclusive (docs/flags.md 4 step 8), posthog-python false "
    "before looking at the holdout",
    "property types other than person/group/cohort/flag (posthog-python matches behavioral "
    "filters as person properties, the server cannot locally)",
]

CORE_PERSON_KEYS = ("email", "plan", "age", "country")
OPTIONAL_PERSON_KEYS = ("name", "score", "count", "is_beta", "app_version", "signup_date",
                        "tags", "meta", "nullable", "ref")
GROUP_TYPES = {"0": "company", "1": "project"}
CORE_GROUP_KEYS = ("size", "industry")
OPTIONAL_GROUP_KEYS = ("tier", "founded")

PLANS = ["free", "pro", "team", "enterprise", "PRO", "Team"]
COUNTRIES = ["US", "CA", "GB", "DE", "us", "FR"]
NAMES_ASCII = ["alice", "Bob", "carol", "DAVE", "eve"]
NAMES_NON_ASCII = ["José", "Zoë", "Łukasz", "日本語", "Ærø"]
SEMVERS = ["1.2.3", "2.0.0", "0.9.1", "1.10.0", "v1.2.3", "3.4", "5", " 2.1.0 ", "0.0.7",
           "1.2.10", "v2.3.4", "10.0.1"]
SEMVER_FILTERS = ["1.2.3", "2", "0.9", "1.10.0", "2.1.0", "0.0.7", "1.2", "3.4.0", "0.1.0"]
WILDCARDS = ["1.*", "1.2.*", "2.*.*", "0.*", "1.10.*", "3.*"]
DATE_VALUES = ["2024-06-01", "2024-06-01T10:00:00Z", "2023-01-15T08:30:00+01:00",
               "2024-06-01 10:00:00", "2022-12-31T23:59:59.123Z", "2025-02-28T12:00:00-05:00",
               "2019-07-04", "2026-01-20T00:00:00Z", "2021-03-10T06:00:00+00:00"]
DATE_FILTERS = ["2024-01-01", "2023-06-15T12:00:00Z", "2025-03-01T00:00:00+02:00",
                "2024-06-01", "2024-06-01T10:00:00Z", "-7d", "-30d", "-6m", "-1y", "-2w",
                "-48h", "-3y", "12m", "-100d"]
REGEXES = ["^user[0-9]+@example\\.com$", "@example\\.(com|org)$", "^(alice|bob)", "\\d{2,}",
           "^[A-Z]", "pro|team", "^$", "[", "a{2}", "\\w+@\\w+", "^\\s*$", "x*", "\\bpro\\b",
           "(?=a)", "^[^@]+@test", "(ab)+", "^.{3,6}$", "\\.org$", "^u", "1$", ""]
TEXT_FRAGMENTS = ["@example", "EXAMPLE.com", "user", "pro", "PRO", "o", "", "us", "test.org",
                  "z", "1", "null", "tru", "[", "\"a\""]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.safe = False
        self.dependable = []

    # ---------------------------------------------------------------- values

    def email(self):
        r = self.r
        return r.choice(["user%d@example.com" % r.randrange(50), "Alice@Example.COM",
                         "bob@test.org", "carol@example.org", "dave+x@mail.example.com",
                         "eve@EXAMPLE.com", "noat"])

    def person_value(self, key):
        r = self.r
        if key == "email":
            return self.email()
        if key == "plan":
            return r.choice(PLANS)
        if key == "age":
            return r.choice([r.randrange(0, 90), r.randrange(0, 90), str(r.randrange(10, 80)),
                             r.randrange(10, 60) + r.choice([0.5, 0.25, 0.75]), "unknown"])
        if key == "country":
            return r.choice(COUNTRIES)
        if key == "name":
            return r.choice(NAMES_ASCII + NAMES_NON_ASCII)
        if key == "score":
            return r.choice([r.randrange(-100, 100) + 0.5, r.randrange(0, 1000), "12.5", "-3",
                             ".5", "7.", "1e3", "abc", True, None])
        if key == "count":
            return r.choice([r.randrange(0, 20), str(r.randrange(0, 20)), 0, -1])
        if key == "is_beta":
            return r.choice([True, False, "true", "false", "TRUE", "False", "yes", 1, 0])
        if key == "app_version":
            return r.choice(SEMVERS)
        if key == "signup_date":
            return r.choice(DATE_VALUES)
        if key == "tags":
            return r.choice([["a", "b"], ["pro"], [], [1, 2], [True]])
        if key == "meta":
            return r.choice([{"a": 1, "b": "x"}, {}, {"k": [1, "z"]}, {"plan": "pro"}])
        if key == "nullable":
            return r.choice([None, "x", None])
        if key == "ref":
            return r.choice(["", "google", "Google.com", "0", "false"])
        raise KeyError(key)

    def group_value(self, key):
        r = self.r
        if key == "size":
            return r.choice([r.randrange(1, 5000), str(r.randrange(1, 500)), "large"])
        if key == "industry":
            return r.choice(["tech", "Finance", "health", "TECH", "retail"])
        if key == "tier":
            return r.choice(["gold", "silver", None, 3])
        if key == "founded":
            return r.choice(DATE_VALUES)
        raise KeyError(key)

    # ---------------------------------------------------------------- filters

    def filter_value(self, key, op, group):
        """A filter value for op on key that both implementations read the same way."""
        r = self.r
        if op in ("exact", "is_not"):
            pool = self.exact_pool(key, group)
            if r.random() < 0.35:
                return r.sample(pool, min(len(pool), r.randrange(1, 4)))
            return r.choice(pool)
        if op in ("is_set", "is_not_set"):
            return r.choice(["is_set", None])
        if op.endswith("icontains") or "starts_with" in op or "ends_with" in op:
            return r.choice(TEXT_FRAGMENTS + [r.choice(PLANS), r.choice(COUNTRIES), 5])
        if op.endswith("regex"):
            # \b and lookaround are undecidable for both; not in strict flags (EXCLUDED)
            return r.choice(REGEXES if not self.safe else [x for x in REGEXES if x not in ("\\bpro\\b", "(?=a)")])
        if op in ("gt", "gte", "lt", "lte"):
            return r.choice([r.randrange(0, 80), r.randrange(-50, 500) + 0.5, str(r.randrange(0, 60)),
                             "12.5", 18, 0])
        if op.startswith("is_date"):
            return r.choice(DATE_FILTERS)
        if op == "semver_wildcard":
            return r.choice(WILDCARDS)
        if op.startswith("semver"):
            return r.choice(SEMVER_FILTERS)
        raise KeyError(op)

    def exact_pool(self, key, group):
        r = self.r
        if group:
            return {"size": [10, "10", 250, "large"], "industry": ["tech", "FINANCE", "retail"],
                    "tier": ["gold", "silver", 3], "founded": ["2019-07-04"],
                    "$group_key": ["acme", "globex", "123", 7]}[key]
        return {
            "email": ["user1@example.com", "alice@example.com", "BOB@test.org", "noat"],
            "plan": ["pro", "team", "Free", "enterprise"],
            "age": [30, "42", 18, 25.5, "25.5"],
            "country": ["US", "ca", "GB", "de"],
            "name": NAMES_ASCII + ["jose"],  # ASCII only: see EXCLUDED (Unicode lower-casing)
            "score": [12.5, "12.5", 100, "abc", True],
            "count": [0, "3", 7],
            "is_beta": [True, False, "true", "False", "yes", 1],
            "app_version": ["1.2.3", "v1.2.3", "5"],
            "signup_date": ["2024-06-01"],
            "tags": ["a", '["a","b"]', "[]"],
            "meta": ['{"a":1,"b":"x"}', "{}"],
            "nullable": ["x", "null"],
            "ref": ["", "google", "0", "false"],
            "distinct_id": ["user_1", "user_7", "USER_3"],
        }[key] + ([r.choice([True, False])] if r.random() < 0.1 else [])

    def operators_for(self, key, safe):
        """Operators that make sense for key (others appear too, less often)."""
        ops_text = ["exact", "is_not", "icontains", "not_icontains", "starts_with",
                    "not_starts_with", "ends_with", "not_ends_with"]
        ops_num = ["gt", "gte", "lt", "lte"]
        if key == "app_version":
            ops = ["semver_eq", "semver_neq", "semver_gt", "semver_gte", "semver_lt",
                   "semver_lte", "semver_tilde", "semver_caret", "semver_wildcard", "exact"]
        elif key in ("signup_date", "founded"):
            ops = ["is_date_before", "is_date_after", "is_set"]
        elif key in ("age", "score", "count", "size"):
            ops = ops_num * 2 + ["exact", "is_not", "icontains"]
        else:
            ops = ops_text + ["regex", "not_regex"]
        if key == "name":
            ops = [o for o in ops if not o.endswith("regex")]  # see EXCLUDED (non-ASCII regex)
        ops = ops + ["is_set", "is_not_set"]
        if not safe and self.r.random() < 0.15:
            # an operator of another family on this key (numbers on text, text on numbers)
            ops = ops_text + ops_num + ["regex"]
        return ops

    def prop_filter(self, group_index, safe):
        """One property filter. group_index: None for person, else the group type index."""
        r = self.r
        if group_index is None:
            keys = list(CORE_PERSON_KEYS) * 2 + (["distinct_id"] if r.random() < 0.1 else [])
            if not safe:
                keys += list(OPTIONAL_PERSON_KEYS)
        else:
            keys = list(CORE_GROUP_KEYS) * 2 + ["$group_key"]
            if not safe:
                keys += list(OPTIONAL_GROUP_KEYS)
        key = r.choice(keys)
        self.safe = safe
        ops = self.operators_for(key, safe)
        if safe:
            ops = [o for o in ops if o != "is_not_set"]  # absent -> inconclusive never here
        op = r.choice(ops)
        if op in ("gt", "gte", "lt", "lte") and key in ("email", "plan", "country", "name", "$group_key",
                                                        "industry", "distinct_id"):
            pass  # numbers on text: false for both (no number in the value)
        if op.startswith("semver") and key != "app_version":
            op = "exact"
        if op.startswith("is_date") and key not in ("signup_date", "founded"):
            op = "is_set"
        f = {"key": key, "operator": op, "type": "person" if group_index is None else "group"}
        if group_index is not None:
            f["group_type_index"] = group_index
        if op == "exact" and r.random() < 0.2:
            del f["operator"]  # the default operator is exact
        v = self.filter_value(key, op, group_index is not None)
        f["value"] = v
        if r.random() < 0.05:
            f["negation"] = False
        return f

    # ---------------------------------------------------------------- cohorts

    def cohort_group(self, depth, safe, cohort_ids):
        r = self.r
        entries = []
        for _ in range(r.randrange(0 if depth else 1, 4)):
            x = r.random()
            if depth < 2 and x < 0.25:
                entries.append(self.cohort_group(depth + 1, safe, cohort_ids))
            elif cohort_ids and x < 0.35:
                entries.append({"key": "id", "type": "cohort", "value": r.choice(cohort_ids),
                                "operator": r.choice(["in", "not_in", "exact"]),
                                "negation": r.random() < 0.2})
            else:
                f = self.prop_filter(None, safe)
                if r.random() < 0.25:
                    f["negation"] = True
                entries.append(f)
        if depth and not entries and r.random() < 0.5:
            return {}
        return {"type": r.choice(["AND", "OR"]), "values": entries}

    # ---------------------------------------------------------------- flags

    def suite(self, si, nflags, npersons):
        r = self.r
        self.dependable = []
        cohorts, safe_cohorts = {}, []
        ids = []
        for ci in range(6):
            cid = str(100 + si * 10 + ci)
            safe = ci < 3
            cohorts[cid] = self.cohort_group(0, safe, [int(c) for c in ids if int(c) in safe_cohorts or not safe])
            ids.append(cid)
            if safe:
                safe_cohorts.append(int(cid))
        cohort_ids = [int(c) for c in cohorts]
        static_id = 9000 + si  # never in the definitions: a static cohort

        flags = []
        for i in range(nflags):
            key = "s%d-flag-%d" % (si, i)
            x = r.random()
            group_index = None
            if x < 0.2:
                group_index = r.choice([0, 1])
            multivariate = r.random() < 0.3
            early_exit = r.random() < 0.12
            nconds = r.choice([1, 1, 2, 2, 3])
            # Dependable flags are decidable for every person (core keys, decidable cohorts
            # and dependencies, no experience continuity or enrollment): only they are
            # dependency targets, see EXCLUDED (dependency chains).
            dependable = group_index is None and r.random() < 0.35
            # see EXCLUDED (undecidable before matching): strict flags read core keys only
            safe = dependable or ((multivariate or early_exit) and nconds > 1)
            filters = {"groups": []}
            if group_index is not None:
                filters["aggregation_group_type_index"] = group_index
            variants = []
            if multivariate:
                n = r.randrange(2, 5)
                cuts = sorted(r.sample(range(1, 100), n - 1))
                pcts = [b - a for a, b in zip([0] + cuts, cuts + [100])]
                if r.random() < 0.15:
                    pcts[-1] = max(0, pcts[-1] - 10)  # the table does not reach 100%
                if r.random() < 0.2:
                    pcts = [round(p - 0.5, 1) if j == 0 else p for j, p in enumerate(pcts)]
                variants = [{"key": "v%d" % j, "name": "Variant %d" % j, "rollout_percentage": p}
                            for j, p in enumerate(pcts)]
                filters["multivariate"] = {"variants": variants}
            for ci in range(nconds):
                cond = {"properties": []}
                mixed = group_index is None and not safe and r.random() < 0.08
                cond_group = group_index
                if mixed:
                    cond_group = r.choice([0, 1])
                    cond["aggregation_group_type_index"] = cond_group
                for _ in range(r.choice([0, 1, 1, 2, 3])):
                    y = r.random()
                    if cond_group is None and y < 0.12:
                        pool = safe_cohorts if safe else cohort_ids
                        cond["properties"].append({"key": "id", "type": "cohort",
                                                   "value": r.choice(pool),
                                                   "operator": r.choice(["in", "not_in", "exact"])})
                    elif cond_group is None and not safe and y < 0.15 and ci == nconds - 1:
                        # last condition only: see EXCLUDED (static cohorts)
                        cond["properties"].append({"key": "id", "type": "cohort", "value": static_id})
                    elif cond_group is None and y < 0.25 and self.dependable:
                        dep = self.dependency(flags)
                        if dep:
                            cond["properties"].append(dep)
                    else:
                        cond["properties"].append(self.prop_filter(cond_group, safe))
                z = r.random()
                if z < 0.25:
                    pass  # no rollout_percentage: 100%
                elif z < 0.45:
                    cond["rollout_percentage"] = 100
                elif z < 0.5:
                    cond["rollout_percentage"] = 0
                elif z < 0.6:
                    cond["rollout_percentage"] = None
                else:
                    cond["rollout_percentage"] = r.choice([r.randrange(1, 100), round(r.uniform(0, 100), 1),
                                                           0.1, 99.9, 50])
                if variants and r.random() < 0.25:
                    cond["variant"] = r.choice([v["key"] for v in variants] + ["nope"])
                filters["groups"].append(cond)
            if early_exit:
                filters["early_exit"] = True
            if group_index is None and r.random() < 0.06:  # see EXCLUDED (holdouts)
                filters["holdout"] = {"id": r.randrange(1, 50),
                                      "exclusion_percentage": r.choice([10, 50, 100, 0, 33.3])}
            if group_index is None and not dependable and r.random() < 0.05:
                filters["feature_enrollment"] = True
            if r.random() < 0.2:
                filters["payloads"] = {"true": json.dumps({"on": True})}
            flag = {"id": si * 1000 + i + 1, "team_id": 1, "name": "flag %d" % i, "key": key,
                    "filters": filters, "deleted": False, "active": r.random() > 0.08,
                    "ensure_experience_continuity": not dependable and r.random() < 0.03}
            if group_index is None and r.random() < 0.06:
                flag["bucketing_identifier"] = "device_id"
            flags.append(flag)
            if dependable and not has_mixed(flag):
                self.dependable.append(flag)
        definitions = {"flags": flags, "group_type_mapping": dict(GROUP_TYPES), "cohorts": cohorts}
        # every other suite: strict exact matching ("true" is text, not a boolean)
        if si % 2:
            definitions["property_matching_version"] = 2

        cases = []
        for p in range(npersons):
            did = r.choice(["user_%d" % p, "user_%d" % p, "USER_%d" % p, "u-%d-%d" % (si, p),
                            "ñandú-%d" % p, str(10000 + p)])
            props = {k: self.person_value(k) for k in CORE_PERSON_KEYS}
            for k in OPTIONAL_PERSON_KEYS:
                if r.random() < 0.7:
                    props[k] = self.person_value(k)
            if r.random() < 0.1:
                props["distinct_id"] = "override-%d" % p
            for f in flags:
                if f["filters"].get("feature_enrollment") and r.random() < 0.6:
                    props["$feature_enrollment/" + f["key"]] = r.choice([True, False, "true", "false"])
            groups, gprops = {}, {}
            for gname in GROUP_TYPES.values():
                if r.random() < 0.75:
                    groups[gname] = r.choice(["acme", "globex", "initech-%d" % p, 123, "123"])
                    gp = {k: self.group_value(k) for k in CORE_GROUP_KEYS}
                    for k in OPTIONAL_GROUP_KEYS:
                        if r.random() < 0.7:
                            gp[k] = self.group_value(k)
                    gprops[gname] = gp
            order = list(props.items())
            r.shuffle(order)
            cases.append({"distinct_id": did, "device_id": "dev-%d-%d" % (si, r.randrange(1000)),
                          "person_properties": dict(order), "groups": groups,
                          "group_properties": gprops})
        return {"definitions": definitions, "cases": cases}

    def dependency(self, flags):
        """A flag_evaluates_to filter on an earlier dependable flag, with the server's chain."""
        r = self.r
        cands = self.dependable
        target = r.choice(cands)
        values = [True, False]
        for v in (target["filters"].get("multivariate") or {}).get("variants", []):
            values.append(v["key"])
        return {"key": target["key"], "type": "flag", "operator": "flag_evaluates_to",
                "value": r.choice(values), "dependency_chain": chain(target, flags)}


def has_mixed(flag):
    """Whether a condition of flag has its own aggregation (mixed targeting): posthog-python
    evaluates dependencies without the groups (EXCLUDED: dependencies on group flags)."""
    return any("aggregation_group_type_index" in c for c in flag["filters"].get("groups") or [])


def chain(target, flags):
    """Dependencies of target (transitively) in evaluation order, target last."""
    by_key = {f["key"]: f for f in flags}
    order, seen = [], set()

    def visit(f):
        if f["key"] in seen:
            return
        seen.add(f["key"])
        for cond in f["filters"].get("groups") or []:
            for p in cond.get("properties") or []:
                if p.get("type") == "flag" and p["key"] in by_key:
                    visit(by_key[p["key"]])
        order.append(f["key"])

    visit(target)
    return order


def generate(seed, suites, nflags, npersons):
    g = Gen(seed)
    return {"seed": seed, "suites": [g.suite(si, nflags, npersons) for si in range(suites)]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--suites", type=int, default=6)
    ap.add_argument("--flags", type=int, default=50)
    ap.add_argument("--persons", type=int, default=50)
    a = ap.parse_args()
    json.dump(generate(a.seed, a.suites, a.flags, a.persons), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
