#!/usr/bin/env bash
# Runs PostHog's SDK compliance harness (posthog-sdk-test-harness) against
# libposthog through tests/compliance/adapter, restricted to what libposthog
# implements: sdk-type "server", suite "capture" (capability capture_v0),
# plus encoding_gzip. Everything listens on 127.0.0.1 only.
#
# Usage: tests/compliance/run.sh [BUILD_DIR] [-- extra harness 'run' args]
#   BUILD_DIR   CMake build tree holding tests/compliance/adapter [./build]
#
# Where the harness comes from, first match wins:
#   1. $POSTHOG_HARNESS_DIR, a source checkout of PostHog/posthog-sdk-test-harness
#   2. <repo>/.harness/posthog-sdk-test-harness (git-ignored)
#   3. pip install posthog-sdk-test-harness (not published on PyPI as of
#      harness v1.0.0; tried in case it appears)
# Without one the script prints SKIP and exits 0 (COMPLIANCE_REQUIRE=1: exit 1).
# A checkout is made with:
#   git clone https://github.com/PostHog/posthog-sdk-test-harness .harness/posthog-sdk-test-harness
#
# Other environment: PYTHON (interpreter >= 3.10 for the venv),
# COMPLIANCE_VENV (venv dir [BUILD_DIR/tests/compliance/harness-venv]),
# POSTHOG_ADAPTER_DEBUG=1 (library logs in the adapter log).
#
# Exit status: 0 all applicable tests passed (or skipped: no harness),
# 1 a test failed, 2 setup error (no adapter binary, no Python, pip failed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

build_dir="$repo/build"
if [[ $# -gt 0 && $1 != -- ]]; then build_dir=$1; shift; fi
if [[ $# -gt 0 && $1 == -- ]]; then shift; fi
extra_args=("$@")
if [[ ! -d $build_dir ]]; then echo "compliance: no build dir $build_dir" >&2; exit 2; fi
build_dir=$(cd "$build_dir" && pwd)

out_dir="$build_dir/tests/compliance"
adapter="$out_dir/adapter"
if [[ ! -x $adapter ]]; then
  echo "compliance: $adapter not found; build the 'adapter' target first" >&2
  exit 2
fi

skip() {
  echo "compliance: SKIP: $*"
  if [[ ${COMPLIANCE_REQUIRE:-0} == 1 ]]; then exit 1; fi
  exit 0
}

# ------------------------------------------------------------- python + venv
pick_python() {
  local c
  for c in "${PYTHON:-}" python3.12 python3.11 python3.10 python3; do
    [[ -n $c ]] || continue
    command -v "$c" >/dev/null 2>&1 || continue
    if "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}
py=$(pick_python) || { echo "compliance: need Python >= 3.10" >&2; exit 2; }

venv=${COMPLIANCE_VENV:-$out_dir/harness-venv}
if [[ ! -x $venv/bin/python ]]; then
  "$py" -m venv "$venv" || { echo "compliance: cannot create venv $venv" >&2; exit 2; }
fi
vpy="$venv/bin/python"

harness_dir=${POSTHOG_HARNESS_DIR:-$repo/.harness/posthog-sdk-test-harness}
harness_mode=
if [[ -f $harness_dir/CONTRACT.yaml && -d $harness_dir/src/posthog_test_harness ]]; then
  harness_mode=source
  # The harness's own dependencies (its pyproject.toml); the harness itself
  # runs from the checkout via PYTHONPATH, so no build backend is needed.
  if [[ ! -f $venv/.deps-installed ]]; then
    "$vpy" -m pip install --quiet 'flask>=3.0.0' 'aiohttp>=3.9.0' 'click>=8.1.0' 'pyyaml>=6.0.0' \
      || { echo "compliance: pip install of the harness dependencies failed" >&2; exit 2; }
    touch "$venv/.deps-installed"
  fi
elif "$vpy" -c 'import posthog_test_harness' 2>/dev/null \
     || "$vpy" -m pip install --quiet posthog-sdk-test-harness 2>/dev/null; then
  harness_mode=installed
else
  skip "posthog-sdk-test-harness not found (not on PyPI; set POSTHOG_HARNESS_DIR or clone it into $repo/.harness/posthog-sdk-test-harness)"
fi

# ------------------------------------------------------------- processes
free_port() {
  "$vpy" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

adapter_log="$out_dir/adapter.log"
adapter_pid=
cleanup() {
  if [[ -n $adapter_pid ]]; then
    kill "$adapter_pid" 2>/dev/null || true
    wait "$adapter_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$adapter" 0 >"$adapter_log" 2>&1 &
adapter_pid=$!
adapter_port=
for _ in $(seq 1 100); do
  adapter_port=$(sed -n 's/^adapter listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$adapter_log" | head -n1)
  [[ -n $adapter_port ]] && break
  if ! kill -0 "$adapter_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [[ -z $adapter_port ]]; then
  echo "compliance: the adapter did not start; its log:" >&2
  cat "$adapter_log" >&2
  exit 2
fi
mock_port=$(free_port)

echo "compliance: harness ($harness_mode) ${harness_dir:+at $harness_dir}"
echo "compliance: adapter on 127.0.0.1:$adapter_port (log $adapter_log), mock server on 127.0.0.1:$mock_port"

report="$out_dir/compliance-report.md"
args=(run
  --adapter-url "http://127.0.0.1:$adapter_port"
  --mock-port "$mock_port" --mock-url "http://127.0.0.1:$mock_port"
  --sdk-type server --suite capture --concurrency 1
  --report "$report")
if (( ${#extra_args[@]} )); then args+=("${extra_args[@]}"); fi

status=0
if [[ $harness_mode == source ]]; then
  # CONTRACT.yaml is looked up relative to the working directory first.
  (cd "$harness_dir" && PYTHONPATH="$harness_dir/src${PYTHONPATH:+:$PYTHONPATH}" \
     "$vpy" "$here/harness_main.py" "${args[@]}") || status=$?
else
  (cd "$out_dir" && "$vpy" "$here/harness_main.py" "${args[@]}") || status=$?
fi

if [[ $status -ne 0 ]]; then
  echo "compliance: FAILED (harness exit $status); adapter log: $adapter_log, report: $report" >&2
  exit 1
fi
echo "compliance: all applicable tests passed; report: $report"
