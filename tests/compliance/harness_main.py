"""Launches posthog-sdk-test-harness's CLI with its mock server on loopback.

The harness's `run` command starts its mock PostHog server with
host="0.0.0.0" hard-coded. This wrapper pins that bind address to 127.0.0.1
(the project's tools never listen beyond loopback) and then hands over to the
harness's own CLI unchanged. The harness itself must be importable
(PYTHONPATH pointing at its src/ directory, or an installed package).

Usage: python harness_main.py run --adapter-url ... (any harness CLI args)
"""

import sys

from posthog_test_harness.mock_server import server as _mock_server

_original_run = _mock_server.MockServer.run


def _loopback_run(self, host="127.0.0.1", port=8081, debug=False):
    return _original_run(self, host="127.0.0.1", port=port, debug=debug)


_mock_server.MockServer.run = _loopback_run

from posthog_test_harness.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "posthog-test-harness"
    main()
