#!/usr/bin/env bash
# One-command installs of the Python binding, as a new user does them, each in
# a fresh virtualenv with no LIBPOSTHOG_* in the environment:
#   1. pip install ./bindings/python   builds the C library with CMake itself
#   2. an sdist built from it -> a wheel (built from the sdist alone, which
#      carries the C sources), installed into another fresh venv with CMake
#      and the compiler made unusable: the wheel carries the library
# Each install must load its own bundled copy, create a working client, and
# have the compiled flags accelerator (libposthog._accel) inside the venv,
# used by the client's flag calls.
#
# Usage: bindings/python/test_install.sh     (PYTHON [python3], WORK [mktemp -d])
# Needs a C compiler, CMake, the C library's -dev packages and PyPI access
# (setuptools, build). Exit 0 pass, non-zero fail.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
work="${WORK:-$(mktemp -d -t libposthog-pyinstall.XXXXXX)}"
log() { printf 'python-install: %s\n' "$*"; }
unset LIBPOSTHOG_PATH LIBPOSTHOG_BUILD_DIR LIBPOSTHOG_NO_BUNDLE
export PIP_DISABLE_PIP_VERSION_CHECK=1

# check VENV: the installed package imports without warnings from anywhere,
# loads the copy bundled inside the venv and makes an enabled client
check() {
  local venv=$1
  (cd / && "$venv/bin/python" -W error - "$venv" <<'PY'
import sys
import libposthog
venv = sys.argv[1]
path = libposthog.library_path()
assert path.startswith(venv + "/"), "loads %s, not the copy bundled in %s" % (path, venv)
c = libposthog.Posthog("phc_install_check", host="http://127.0.0.1:9", send=False)
assert not c.disabled, "the client is disabled"
assert c.capture("installed", distinct_id="u1") is not None
accel = libposthog.flags.accelerator()
assert accel and accel.startswith(venv + "/"), \
    "no flags accelerator in %s: %s" % (venv, libposthog.flags.accelerator_status())
gff = c.__dict__.get("get_feature_flag")
assert type(gff).__name__ == "builtin_function_or_method", "flag calls not accelerated: %r" % gff
assert c.get_feature_flag("f", "u1", only_evaluate_locally=True) is None
c.shutdown()
print("python-install: ok: libposthog %s (C %s) from %s, accelerator %s"
      % (libposthog.VERSION, libposthog.library_version(), path, accel))
PY
  )
}

rm -rf "$here/build" "$here"/src/*.egg-info "$here/csrc"
log "work dir $work"

log "1. pip install ./bindings/python into a fresh venv (builds the C library)"
"$python" -m venv "$work/venv1"
"$work/venv1/bin/python" -m pip install -q "$here" >"$work/pip1.log" 2>&1 ||
  { cat "$work/pip1.log"; log "FAIL: pip install ./bindings/python"; exit 1; }
check "$work/venv1"

log "2. sdist -> wheel (from the sdist alone) -> fresh venv without CMake or compiler"
"$work/venv1/bin/python" -m pip install -q build >"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; log "FAIL: pip install build"; exit 1; }
"$work/venv1/bin/python" -m build --sdist --outdir "$work/dist" "$here" >>"$work/build.log" 2>&1 ||
  { cat "$work/build.log"; log "FAIL: sdist"; exit 1; }
rm -rf "$here/build" "$here"/src/*.egg-info "$here/csrc"
sdist=$(ls "$work"/dist/libposthog-*.tar.gz)
tar -tzf "$sdist" >"$work/sdist.list"
grep -q '/csrc/CMakeLists.txt$' "$work/sdist.list" || { log "FAIL: the sdist has no csrc/"; exit 1; }
mkdir -p "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"   # out of the repository: no ../../ to fall back on
"$work/venv1/bin/python" -m pip wheel -q --no-deps -w "$work/wheels" "$work"/unpacked/libposthog-* \
  >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log"; log "FAIL: wheel from the sdist"; exit 1; }
wheel=$(ls "$work"/wheels/libposthog-*.whl)
"$work/venv1/bin/python" -m zipfile -l "$wheel" >"$work/wheel.list"
grep -q 'libposthog/_lib/libposthog.so.0' "$work/wheel.list" ||
  { log "FAIL: $(basename "$wheel") carries no libposthog.so.0"; exit 1; }
case $(basename "$wheel") in *-none-any.whl) log "FAIL: $(basename "$wheel") is tagged pure"; exit 1 ;; esac
grep -q 'libposthog/_accel.abi3.so' "$work/wheel.list" ||
  { log "FAIL: $(basename "$wheel") carries no flags accelerator (_accel.abi3.so)"; exit 1; }
case $(basename "$wheel") in *-cp310-abi3-*.whl) ;; *) log "FAIL: $(basename "$wheel") is not tagged cp310-abi3"; exit 1 ;; esac
log "built $(basename "$wheel")"
"$python" -m venv "$work/venv2"
mkdir -p "$work/nobin"
for t in cmake cc gcc clang make ninja; do printf '#!/bin/sh\necho "%s must not run" >&2; exit 1\n' "$t" >"$work/nobin/$t"; chmod +x "$work/nobin/$t"; done
PATH="$work/nobin:$PATH" CMAKE=false CC=false "$work/venv2/bin/python" -m pip install -q --no-index "$wheel" \
  >"$work/pip2.log" 2>&1 || { cat "$work/pip2.log"; log "FAIL: pip install of the wheel"; exit 1; }
check "$work/venv2"

[[ -n ${WORK:-} ]] || rm -rf "$work"
log "PASS"
