#!/usr/bin/env bash
# Runs PostHog's SDK compliance harness (posthog-sdk-test-harness) against
# libposthog through tests/compliance/adapter, once per (capture mode,
# encoding), with sdk-type "server". Everything listens on 127.0.0.1 only.
#
#   run         adapter env (mode, encoding)  harness suites   tests
#   v1-gzip     v1 gzip                       capture_v1,      all
#                                               feature_flags
#   v1-deflate  v1 deflate                    capture_v1       compression.*
#   v1-zstd     v1 zstd                       capture_v1       compression.*
#   v1-br       v1 br                         capture_v1       compression.*
#   v1-none     v1 none                       capture_v1       compression.*
#   v0-gzip     v0 gzip                       capture, capture_ai  all
#
# The deflate/zstd/br/none runs are restricted to the compression category: the
# harness's mock server only decompresses gzip bodies, so any other test
# would fail there for the mock's sake, and those tests already ran in
# v1-gzip. The harness CLI has no test filter; harness_main.py adds one.
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
# Other environment: COMPLIANCE_RUNS (space-separated subset of the runs
# above, in that order by default), PYTHON (interpreter >= 3.10 for the venv),
# COMPLIANCE_VENV (venv dir [BUILD_DIR/tests/compliance/harness-venv]),
# POSTHOG_ADAPTER_DEBUG=1 (library logs in the adapter logs).
#
# Output in BUILD_DIR/tests/compliance: per run compliance-RUN.log (harness
# text output), compliance-RUN.json (harness report), compliance-RUN.collect.json
# (tests run / left out for lack of a capability), adapter-RUN.log. Then a
# table per run and a last line "N passed, N failed[, N skipped]": passed and
# failed summed over the runs, skipped = applicable (server) tests of the runs'
# suites that no run executed because no configuration declares their
# capability (encoding_br).
#
# Exit status: 0 all applicable tests passed (or skipped: no harness),
# 1 a test failed or a run did not complete, 2 setup error (no adapter
# binary, no Python, pip failed, bad COMPLIANCE_RUNS).
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

# ------------------------------------------------------------- runs
declare -A run_mode=([v1-gzip]=v1 [v1-deflate]=v1 [v1-zstd]=v1 [v1-br]=v1 [v1-none]=v1
                     [v0-gzip]=v0)
declare -A run_encoding=([v1-gzip]=gzip [v1-deflate]=deflate [v1-zstd]=zstd [v1-br]=br
                         [v1-none]=none [v0-gzip]=gzip)
declare -A run_suites=([v1-gzip]="capture_v1 feature_flags" [v1-deflate]=capture_v1 [v1-zstd]=capture_v1
                       [v1-br]=capture_v1 [v1-none]=capture_v1 [v0-gzip]="capture capture_ai")
declare -A run_filter=([v1-gzip]= [v1-deflate]=compression. [v1-zstd]=compression.
                       [v1-br]=compression. [v1-none]=compression. [v0-gzip]=)
read -r -a runs <<<"${COMPLIANCE_RUNS:-v1-gzip v1-deflate v1-zstd v1-br v1-none v0-gzip}"
for r in "${runs[@]}"; do
  if [[ -z ${run_mode[$r]:-} ]]; then
    echo "compliance: unknown run '$r' in COMPLIANCE_RUNS (${!run_mode[*]})" >&2
    exit 2
  fi
done
if (( ${#runs[@]} == 0 )); then echo "compliance: COMPLIANCE_RUNS is empty" >&2; exit 2; fi

# ------------------------------------------------------------- processes
free_port() {
  "$vpy" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

adapter_pid=
stop_adapter() {
  if [[ -n $adapter_pid ]]; then
    kill "$adapter_pid" 2>/dev/null || true
    wait "$adapter_pid" 2>/dev/null || true
    adapter_pid=
  fi
}
trap stop_adapter EXIT
trap 'exit 130' INT TERM

echo "compliance: harness ($harness_mode) ${harness_dir:+at $harness_dir}"
echo "compliance: runs: ${runs[*]}"

# One harness run: $1 = run name. Leaves its files in $out_dir; returns the
# harness's exit status (2 when the adapter did not start).
run_one() {
  local run=$1 mode=${run_mode[$1]} enc=${run_encoding[$1]}
  local adapter_log="$out_dir/adapter-$run.log" log="$out_dir/compliance-$run.log"
  local report="$out_dir/compliance-$run.json" collect="$out_dir/compliance-$run.collect.json"
  rm -f "$report" "$collect" "$log"

  POSTHOG_ADAPTER_CAPTURE_MODE=$mode POSTHOG_ADAPTER_ENCODING=$enc \
    "$adapter" 0 >"$adapter_log" 2>&1 &
  adapter_pid=$!
  local adapter_port=
  for _ in $(seq 1 100); do
    adapter_port=$(sed -n 's/^adapter listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$adapter_log" | head -n1)
    [[ -n $adapter_port ]] && break
    if ! kill -0 "$adapter_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [[ -z $adapter_port ]]; then
    echo "compliance: [$run] the adapter did not start; its log:" >&2
    cat "$adapter_log" >&2
    stop_adapter
    return 2
  fi
  local mock_port
  mock_port=$(free_port)
  echo
  echo "compliance: [$run] capture $mode, encoding $enc, suites ${run_suites[$run]}${run_filter[$run]:+, tests ${run_filter[$run]}*}"
  echo "compliance: [$run] adapter on 127.0.0.1:$adapter_port (log $adapter_log), mock server on 127.0.0.1:$mock_port"

  local args=(run
    --adapter-url "http://127.0.0.1:$adapter_port"
    --mock-port "$mock_port" --mock-url "http://127.0.0.1:$mock_port"
    --sdk-type server --concurrency 1 --report "$report")
  local s
  for s in ${run_suites[$run]}; do args+=(--suite "$s"); done
  if (( ${#extra_args[@]} )); then args+=("${extra_args[@]}"); fi

  local status=0 # pipefail: the harness's status unless tee itself failed
  if [[ $harness_mode == source ]]; then
    # CONTRACT.yaml is looked up relative to the working directory first.
    (cd "$harness_dir" && PYTHONPATH="$harness_dir/src${PYTHONPATH:+:$PYTHONPATH}" \
       COMPLIANCE_TEST_FILTER=${run_filter[$run]} COMPLIANCE_COLLECT_OUT=$collect \
       "$vpy" "$here/harness_main.py" "${args[@]}") 2>&1 | tee "$log" || status=$?
  else
    (cd "$out_dir" && COMPLIANCE_TEST_FILTER=${run_filter[$run]} COMPLIANCE_COLLECT_OUT=$collect \
       "$vpy" "$here/harness_main.py" "${args[@]}") 2>&1 | tee "$log" || status=$?
  fi
  stop_adapter
  return "$status"
}

results="$out_dir/compliance-runs.tsv"
: >"$results"
for run in "${runs[@]}"; do
  start=$(date +%s)
  st=0
  run_one "$run" || st=$?
  printf '%s\t%s\t%s\t%s\n' "$run" "$st" "$(( $(date +%s) - start ))" "${run_suites[$run]}" >>"$results"
done

# ------------------------------------------------------------- summary
"$vpy" - "$out_dir" "$results" <<'PY'
import json, os, sys

out_dir, results = sys.argv[1], sys.argv[2]
rows, failures, total_p, total_f, bad = [], [], 0, 0, False
ran_any, skipped_any = set(), set()
for line in open(results):
    run, status, secs, suites = line.rstrip("\n").split("\t")
    report = os.path.join(out_dir, f"compliance-{run}.json")
    collect = os.path.join(out_dir, f"compliance-{run}.collect.json")
    coll = json.load(open(collect)) if os.path.exists(collect) else {}
    for suite, c in coll.items():
        ran_any.update(f"{suite}.{t}" for t in c["ran"])
        skipped_any.update(f"{suite}.{t}" for t in c["skipped"])
    nskip = sum(len(c["skipped"]) for c in coll.values())
    if not os.path.exists(report):
        rows.append((run, suites, "-", "-", str(nskip), secs, f"ERROR (exit {status}, no report)"))
        bad = True
        continue
    rep = json.load(open(report))
    p, f = rep["summary"]["passed"], rep["summary"]["failed"]
    total_p, total_f = total_p + p, total_f + f
    per_suite = ", ".join(f"{s['name']} {s['passed']}/{s['total']}" for s in rep["suites"]) or "no tests"
    ok = f == 0 and status == "0"
    bad |= not ok
    rows.append((run, suites, str(p), str(f), str(nskip), secs, ("ok" if ok else "FAIL") + f" ({per_suite})"))
    groups = {}
    for s in rep["suites"]:
        for t in s["tests"]:
            if not t["passed"]:
                msg = " ".join((t["message"] or "no message").split())[:160]
                groups.setdefault(msg, []).append(f"{s['name']}.{t['name']}")
    for msg, names in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = names[0] if len(names) == 1 else f"{len(names)} tests, e.g. {names[0]}"
        failures.append(f"  {run}: {shown}: {msg}")

never = sorted(skipped_any - ran_any)
head = ("run", "suites", "passed", "failed", "skipped*", "secs", "result")
widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
print()
print("compliance summary (* skipped: left out for a capability this run does not declare)")
for r in [head] + rows:
    print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
if failures:
    print("failures (grouped by message; details in compliance-RUN.log):")
    print("\n".join(failures))
if never:
    print("not run in any configuration: " + ", ".join(never))
line = f"{total_p} passed, {total_f} failed"
if never:
    line += f", {len(never)} skipped"
print(line)
sys.exit(1 if bad else 0)
PY
