#!/usr/bin/env python3
"""posthog-python's side of the differential test (tests/flags_diff/, issue 10).

Runs inside the venv that run_diff.py made (posthog==7.91.1). Reads the cases
file and prints, for every (case, flag), what posthog-python's local
evaluation decides, in flags_diff_eval's spelling:

    py_eval.py CASES.json > RESULTS.json

"F" false, "T" true, "V:<variant>", "I:<ExceptionName>" when it raises
InconclusiveMatchError or RequiresServerEvaluation (both mean "ask the
server"), "E:<ExceptionName>: <message>" for any other exception.

The path is the one posthog-python's get_feature_flag / get_all_flags take
after definitions are loaded (client._locally_evaluate_flag): the definitions
are published with Client._update_flag_state (what the poller does with a
/flags/definitions body), the person properties get distinct_id as the SDK's
_person_properties_for_local_evaluation adds it, the group properties get
$group_key from _add_local_person_and_group_properties, and the flag is
computed by Client._compute_flag_locally on the published snapshot. No network
request is made (no personal/secret key, send=False).
"""

import json
import logging
import sys
import warnings

import posthog
from posthog.client import Client
from posthog.feature_flags import InconclusiveMatchError, RequiresServerEvaluation


def encode(value):
    if value is True:
        return "T"
    if value is False:
        return "F"
    if isinstance(value, str):
        return "V:" + value
    return "E:unexpected value %r" % (value,)


def main():
    if len(sys.argv) != 2:
        print("usage: py_eval.py CASES.json", file=sys.stderr)
        return 2
    logging.getLogger("posthog").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    client = Client("phc_differential_test", host="http://127.0.0.1:9", send=False,
                    sync_mode=True)
    out = []
    try:
        for suite in data["suites"]:
            d = suite["definitions"]
            client._update_flag_state({"flags": d["flags"],
                                       "group_type_mapping": d.get("group_type_mapping", {}),
                                       "cohorts": d.get("cohorts", {}),
                                       "property_matching_version":
                                           d.get("property_matching_version", 1)})
            snapshot = client._local_evaluation_snapshot()
            rows = []
            for case in suite["cases"]:
                did = case["distinct_id"]
                person = client._person_properties_for_local_evaluation(
                    did, case.get("person_properties") or {})
                person, group_props = client._add_local_person_and_group_properties(
                    case.get("groups") or {}, person, case.get("group_properties") or {})
                row = []
                for flag in d["flags"]:
                    # as _locally_evaluate_flag: the first definition of a key wins lookups
                    definition = snapshot["flags_by_key"].get(flag["key"], flag)
                    try:
                        value = client._compute_flag_locally(
                            definition, did, groups=case.get("groups") or {},
                            person_properties=person, group_properties=group_props,
                            device_id=case.get("device_id"), warn_on_unknown_groups=False,
                            _definition_snapshot=snapshot)
                        row.append(encode(value))
                    except (InconclusiveMatchError, RequiresServerEvaluation) as e:
                        row.append("I:" + type(e).__name__)
                    except Exception as e:  # a crash of the SDK is a difference too
                        row.append("E:%s: %s" % (type(e).__name__, e))
                rows.append(row)
            out.append(rows)
    finally:
        client.shutdown()
    json.dump({"posthog_version": posthog.VERSION, "suites": out}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
