#!/usr/bin/env bash
# Benchmark libposthog against the official SDKs (issue 5), one command:
#
#   tools/bench.sh [N] [RUNS]        N events per run [200000], RUNS per client [3]
#
# 1. builds a Release (-O2) tree in build-bench/ (library, ingest server,
#    bench/ programs);
# 2. installs posthog-node (npm) and posthog-python (PyPI) into
#    build-bench/deps/ if missing, plus libposthog's Python binding from
#    bindings/python (reported "n/a" when it does not install or import);
# 3. runs bench/run.py: every client against a fresh local ingest server on
#    127.0.0.1, latency histogram, flusher breakdown (with the zlib and zstd
#    floors), memory bound with the server down. Capture v1: libposthog in v1
#    with zstd, gzip and none and in v0 with gzip (library options through
#    ph-bench --opt capture_mode=... --opt compression=...), posthog-python
#    with capture_mode="v1" and posthog-node with POSTHOG_CAPTURE_MODE=v1, next
#    to the existing rows; a client that refuses an option is reported
#    "n/a (option unsupported)", and the v1 rows are n/a while the ingest
#    server answers 404 on /i/v1/analytics/events;
# 4. feature flags (issue 10): local evaluation of the same definitions
#    (bench/flags_defs.py) by libposthog from C (engine and public API,
#    ph-bench-flags), its Python binding, posthog-python and posthog-node, p50
#    and p99 per call, with ratios and the issue's targets, plus the capture
#    cost with local evaluation on and off (bench/flags_report.py);
#    BENCH_ONLY=flags runs this section alone (bench/results/flags.md);
# 5. prints the report and writes bench/results/latest.md (+ latest.json).
#
# Environment: BENCH_BUILD_DIR [build-bench], BENCH_DEPS_DIR [$BENCH_BUILD_DIR/deps],
# POSTHOG_NODE_VERSION [5.70.0], POSTHOG_PYTHON_VERSION [7.91.1] (pinned so
# runs compare), BENCH_ONLY (comma list of c-typed, c-json, c-v1-zstd, c-v1-gzip,
# c-v1-none, c-v0-gzip, py-binding, node, node-v1, python, python-v1, flags;
# "flags" alone runs only the feature-flag section), BENCH_FLAGS_ITERS (timed C
# calls per flag workload [200000]),
# BENCH_FORCE_V1=1 (run the v1 rows without probing the ingest server for v1),
# PYTHON [python3], BENCH_REV (a commit to build instead of the work tree's
# src/; the bench/ harness still comes from the work tree). Needs tools/setup.sh's packages, node + npm, python3 + venv.
set -euo pipefail

N="${1:-200000}"
RUNS="${2:-3}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BENCH_BUILD_DIR:-$repo/build-bench}"
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
deps="${BENCH_DEPS_DIR:-$build/deps}"
node_ver="${POSTHOG_NODE_VERSION:-5.70.0}"
py_ver="${POSTHOG_PYTHON_VERSION:-7.91.1}"
python="${PYTHON:-python3}"

log() { printf 'bench: %s\n' "$*" >&2; }

case "$N" in ''|*[!0-9]*) log "N must be a number"; exit 2 ;; esac
case "$RUNS" in ''|*[!0-9]*) log "RUNS must be a number"; exit 2 ;; esac
[ "$N" -ge 1000 ] || { log "N must be >= 1000"; exit 2; }
[ "$RUNS" -ge 1 ] || { log "RUNS must be >= 1"; exit 2; }

# ------------------------------------------------------------------ build
# BENCH_REV=<commit>: build the library at that commit (git archive into
# $build/src-tree) with this work tree's bench/ harness laid over it, e.g. to
# compare commits or to measure while src/ has uncommitted edits.
srcdir="$repo"
if [ -n "${BENCH_REV:-}" ]; then
  rev="$(git -C "$repo" rev-parse --verify "${BENCH_REV}^{commit}")" ||
    { log "BENCH_REV=$BENCH_REV is not a commit"; exit 2; }
  srcdir="$build/src-tree"
  log "building libposthog at ${rev:0:12} (harness from the work tree)"
  rm -rf "$srcdir"
  mkdir -p "$srcdir"
  git -C "$repo" archive "$rev" | tar -x -C "$srcdir"
  rm -rf "$srcdir/bench"
  mkdir -p "$srcdir/bench"
  cp -a "$repo/bench/CMakeLists.txt" "$repo"/bench/*.c "$repo"/bench/*.h "$srcdir/bench/"
  build="$build/rev-build"
fi
gen=()
command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
if [ -f "$build/CMakeCache.txt" ] && [ "$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build/CMakeCache.txt")" != "$srcdir" ]; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
mkdir -p "$build"
log "configuring $build (Release, -O2)"
cmake -S "$srcdir" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" -DPOSTHOG_BUILD_TESTS=OFF \
  -DPOSTHOG_BUILD_EXAMPLES=OFF -DPOSTHOG_BUILD_TOOLS=ON -DPOSTHOG_BUILD_BENCH=ON \
  -DPOSTHOG_WERROR=OFF -DPOSTHOG_SANITIZE= >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
log "building $build"
cmake --build "$build" --parallel "$(nproc)" \
  --target posthog posthog_static posthog-ingest-server ph-bench ph-bench-flusher ph-bench-durability ph-bench-fork \
    ph-bench-flags \
  >"$build/build.log" 2>&1 ||
  { tail -50 "$build/build.log" >&2; log "build failed (uncommitted src/ edits? try BENCH_REV=HEAD)"; exit 1; }

# ------------------------------------------------------------------ peer SDKs
mkdir -p "$deps"
node_modules="$deps/node/node_modules"
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  have="$(node -p "try{require('$node_modules/posthog-node/package.json').version}catch(e){''}" 2>/dev/null || true)"
  if [ "$have" != "$node_ver" ]; then
    log "installing posthog-node@$node_ver into $deps/node"
    mkdir -p "$deps/node"
    [ -f "$deps/node/package.json" ] || echo '{"name":"libposthog-bench-deps","private":true}' >"$deps/node/package.json"
    npm install --prefix "$deps/node" --no-audit --no-fund --silent "posthog-node@$node_ver" >&2 ||
      log "npm install failed: posthog-node will be n/a"
  fi
else
  log "node/npm not found: posthog-node will be n/a"
fi

venv="$deps/py-venv"
vpy="$venv/bin/python"
if [ ! -x "$vpy" ]; then
  log "creating venv $venv"
  "$python" -m venv "$venv" || log "venv creation failed: Python clients will be n/a"
fi
if [ -x "$vpy" ]; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  have="$("$vpy" -c 'import importlib.metadata as m; print(m.version("posthog"))' 2>/dev/null || true)"
  if [ "$have" != "$py_ver" ]; then
    log "installing posthog==$py_ver into $venv"
    "$vpy" -m pip install -q "posthog==$py_ver" >&2 || log "pip install posthog failed: n/a"
  fi
  # libposthog's binding: reinstalled every time (it bundles this build's .so).
  # Built from a copy so nothing is written into bindings/python.
  if [ -f "$repo/bindings/python/pyproject.toml" ] || [ -f "$repo/bindings/python/setup.py" ]; then
    src="$build/py-binding-src"
    rm -rf "$src"
    mkdir -p "$src"
    cp -a "$repo/bindings/python/." "$src/"
    rm -rf "$src/build" "$src"/src/*.egg-info
    if LIBPOSTHOG_BUILD_DIR="$build" "$vpy" -m pip install -q --force-reinstall --no-deps "$src" >"$build/binding.log" 2>&1 &&
       (cd / && "$vpy" -c 'import libposthog' 2>>"$build/binding.log"); then
      log "libposthog Python binding installed"
    else
      log "libposthog Python binding does not install/import (see $build/binding.log): n/a"
      "$vpy" -m pip uninstall -q -y libposthog >/dev/null 2>&1 || true
    fi
    rm -rf "$src"
  else
    log "no bindings/python: libposthog Python binding n/a"
  fi
fi

# ------------------------------------------------------------------ run
args=(--n "$N" --runs "$RUNS" --build "$build" --python "$vpy" --node-modules "$node_modules"
      --out "$repo/bench/results/latest.md")
[ -n "${BENCH_ONLY:-}" ] && args+=(--only "$BENCH_ONLY")
[ -n "${BENCH_FLAGS_ITERS:-}" ] && args+=(--flags-iters "$BENCH_FLAGS_ITERS")
[ "${BENCH_FORCE_V1:-0}" = 1 ] && args+=(--force-v1)
[ -n "${BENCH_REV:-}" ] && args+=(--rev "${rev:0:12} (BENCH_REV=$BENCH_REV)")
exec "$python" "$repo/bench/run.py" "${args[@]}"
