"""Launches posthog-sdk-test-harness's CLI with its mock server on loopback.

The harness's `run` command starts its mock PostHog server with
host="0.0.0.0" hard-coded. This wrapper pins that bind address to 127.0.0.1
(the project's tools never listen beyond loopback) and then hands over to the
harness's own CLI unchanged. The harness itself must be importable
(PYTHONPATH pointing at its src/ directory, or an installed package).

Two additions, both through the environment, for run.sh (the harness CLI
has no test filter of its own):

  COMPLIANCE_TEST_FILTER   comma-separated prefixes of "category.test" names
                           (e.g. "compression."); only matching tests run
  COMPLIANCE_COLLECT_OUT   a path: writes JSON {suite: {"ran": [...],
                           "skipped": [...]}}, where "skipped" are the tests
                           (sdk type and filter applied) that the harness left
                           out because the adapter lacks a capability

Usage: python harness_main.py run --adapter-url ... (any harness CLI args)
"""

import json
import os
import sys

from posthog_test_harness.mock_server import server as _mock_server
from posthog_test_harness.tests.suites import contract_suite as _contract_suite

_original_run = _mock_server.MockServer.run


def _loopback_run(self, host="127.0.0.1", port=8081, debug=False):
    return _original_run(self, host="127.0.0.1", port=port, debug=debug)


_mock_server.MockServer.run = _loopback_run

_filters = [f for f in os.environ.get("COMPLIANCE_TEST_FILTER", "").split(",") if f]
_collect_out = os.environ.get("COMPLIANCE_COLLECT_OUT")
_collected = {}
_original_collect = _contract_suite.ContractTestSuite.collect_tests


def _all_requirements(suite_def):
    reqs = set()

    def add(r):
        if isinstance(r, str):
            reqs.add(r)
        elif isinstance(r, list):
            reqs.update(r)

    add(suite_def.get("requires"))
    for category in suite_def.get("categories", {}).values():
        for test in category.get("tests", []):
            add(test.get("requires"))
    return reqs


def _selected(tests):
    if not _filters:
        return tests
    return [t for t in tests if any(t[0].startswith(f) for f in _filters)]


def _filtered_collect(self, sdk_type="server", capabilities=None):
    tests = _selected(_original_collect(self, sdk_type, capabilities))
    if _collect_out:
        everything = set(capabilities or []) | _all_requirements(self.suite_def)
        possible = _selected(_original_collect(self, sdk_type, sorted(everything)))
        ran = [t[0] for t in tests]
        _collected[self.name] = {
            "ran": ran,
            "skipped": [t[0] for t in possible if t[0] not in ran],
        }
        with open(_collect_out, "w") as f:
            json.dump(_collected, f, indent=2)
    return tests


_contract_suite.ContractTestSuite.collect_tests = _filtered_collect

from posthog_test_harness.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "posthog-test-harness"
    main()
