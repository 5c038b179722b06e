#!/usr/bin/env bash
# Builds a venv, installs the libposthog Python binding (bundling the .so of
# an existing CMake build) plus its test dependencies, and runs pytest.
#
# Usage: bindings/python/run_tests.sh [PYTEST_ARGS...]
#   LIBPOSTHOG_BUILD_DIR  CMake build dir holding libposthog.so* and
#                         tools/posthog-ingest-server [<repo>/build]
#   LIBPOSTHOG_PY_VENV    venv to create/reuse [$LIBPOSTHOG_BUILD_DIR/py-venv]
#   PYTHON                interpreter for the venv [python3]
#   LIBPOSTHOG_NO_ACCEL=1 build and test without the compiled flags accelerator
#                         (else the installed package must have it, and the
#                         flags tests run both with it and with ctypes)
# Exits non-zero when anything fails, including pytest collecting no tests.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${LIBPOSTHOG_BUILD_DIR:-$repo/build}"
case "$build" in /*) ;; *) build="$repo/$build" ;; esac
venv="${LIBPOSTHOG_PY_VENV:-$build/py-venv}"
python="${PYTHON:-python3}"

log() { printf 'python-bindings: %s\n' "$*"; }

if ! ls "$build"/libposthog.so* >/dev/null 2>&1; then
  log "no libposthog.so in $build: build the C library first, e.g."
  log "  cmake -S $repo -B $build && cmake --build $build"
  exit 2
fi
server="${LIBPOSTHOG_INGEST_SERVER:-$build/tools/posthog-ingest-server}"
if [ ! -x "$server" ]; then
  log "no ingest server at $server (built with the C library's tools)"
  exit 2
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating venv $venv"
  "$python" -m venv "$venv"
fi
vpy="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$vpy" -m pip install -q --upgrade pip >/dev/null 2>&1 || true

log "installing the binding (bundling $build/libposthog.so*)"
rm -rf "$here/build" "$here"/src/*.egg-info
LIBPOSTHOG_BUILD_DIR="$build" "$vpy" -m pip install -q --force-reinstall --no-deps "$here"
rm -rf "$here/build" "$here"/src/*.egg-info
"$vpy" -m pip install -q -r "$here/requirements-test.txt"

# The installed package must use the library bundled into it.
unset LIBPOSTHOG_PATH
bundled="$(cd / && "$vpy" -c 'import libposthog; print(libposthog.library_path())')"
case "$bundled" in
  "$venv"/*) log "library: $bundled" ;;
  *) log "error: the installed package loads $bundled, not its bundled copy"; exit 1 ;;
esac

accel="$(cd / && "$vpy" -c 'import libposthog.flags as f; print(f.accelerator_status())')"
log "flags accelerator: $accel"
if [ "${LIBPOSTHOG_NO_ACCEL:-0}" = 0 ]; then
  case "$accel" in
    on*) export LIBPOSTHOG_REQUIRE_ACCEL=1 ;;  # its tests must run, not skip
    *) log "error: the installed package has no flags accelerator (see pip's output)"; exit 1 ;;
  esac
fi

export LIBPOSTHOG_BUILD_DIR="$build" LIBPOSTHOG_INGEST_SERVER="$server"
cd "$here"
set +e
"$vpy" -m pytest -p no:cacheprovider "$@" tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  log "pytest collected no tests: failing"
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  log "pytest failed (exit $rc)"
  exit "$rc"
fi
log "all tests passed"
