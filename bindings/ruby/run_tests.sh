#!/usr/bin/env bash
# Ruby binding test suite: builds the libposthog gem, installs it into a
# private GEM_HOME and runs the minitest suite (test/) against the local
# ingest server.
#
#   bindings/ruby/run_tests.sh [BUILD_DIR]
#
# BUILD_DIR (argument, else $LIBPOSTHOG_BUILD_DIR, else build/; relative to
# the repository root) is a CMake build tree of libposthog holding
# libposthog.so and tools/posthog-ingest-server.
#
# Installs ruby, ruby-dev and ruby-ffi with apt-get when missing (one
# `apt-get update`, non-interactive; as root or through `sudo -n`).
# Exit status: 0 pass, 77 skip (no Ruby and none can be installed),
# anything else fail. Extra minitest arguments: TESTOPTS="-v -n /fork/".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${1:-${LIBPOSTHOG_BUILD_DIR:-build}}
case $build in /*) ;; *) build="$repo/$build" ;; esac

log() { echo "ruby-tests: $*"; }

# ------------------------------------------------------------- system packages
have_ruby() {
  command -v ruby >/dev/null && command -v gem >/dev/null &&
    ruby -e 'require "ffi"; require "minitest"' >/dev/null 2>&1
}
if ! have_ruby; then
  if ! command -v apt-get >/dev/null; then
    log "SKIP: ruby/ffi/minitest missing and no apt-get to install them"
    exit 77
  fi
  if [[ $(id -u) -eq 0 ]]; then sudo=(); elif sudo -n true 2>/dev/null; then sudo=(sudo -n); else
    log "SKIP: ruby missing and not root (no passwordless sudo) to install it"
    exit 77
  fi
  log "installing ruby ruby-dev ruby-ffi (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q >/dev/null
  "${sudo[@]}" apt-get install -y -q ruby ruby-dev ruby-ffi >/dev/null
  # Debian's ruby ships minitest as a bundled gem; older releases need the package.
  ruby -e 'require "minitest"' >/dev/null 2>&1 ||
    "${sudo[@]}" apt-get install -y -q ruby-minitest >/dev/null
  have_ruby || { log "FAIL: ruby/ffi/minitest still unusable after apt-get install"; exit 1; }
fi

# ------------------------------------------------------------------ C library
[[ -f $build/libposthog.so ]] || { log "FAIL: no $build/libposthog.so (build libposthog first)"; exit 1; }
[[ -x $build/tools/posthog-ingest-server ]] ||
  { log "FAIL: no $build/tools/posthog-ingest-server (build the tools target)"; exit 1; }

# ------------------------------------------------------------ gem build + install
work="$build/ruby-gem"
rm -rf "$work"
mkdir -p "$work/src"
# Build from a copy so the source tree stays clean (the .so is bundled in lib/).
cp -R "$here/lib" "$here/libposthog.gemspec" "$here/README.md" "$work/src/"
rm -rf "$work/src/lib/libposthog/native"
(
  cd "$work/src"
  LIBPOSTHOG_PATH="$build/libposthog.so" gem build libposthog.gemspec >"$work/gem-build.log" 2>&1
) || { cat "$work/gem-build.log"; log "FAIL: gem build"; exit 1; }
gemfile=$(ls "$work"/src/libposthog-*.gem)
log "built $(basename "$gemfile")"

export GEM_HOME="$work/gems"
unset GEM_PATH   # rubygems adds the system dirs (Debian's ruby-ffi) to GEM_HOME
gem install --local --no-document "$gemfile" >"$work/gem-install.log" 2>&1 ||
  { cat "$work/gem-install.log"; log "FAIL: gem install"; exit 1; }
log "installed into $GEM_HOME"

# ------------------------------------------------------------------ run suite
# The tests require the installed gem (no -Ilib): the run checks the
# packaged files and the bundled library. LIBPOSTHOG_PATH is unset so the
# bundled copy is what loads.
unset LIBPOSTHOG_PATH
export LIBPOSTHOG_BUILD_DIR="$build"
export TESTDIR="$here/test"
cd "$work"
ruby -e 'require "libposthog"; puts "ruby-tests: libposthog #{LibPostHog::VERSION} (C #{LibPostHog.native_version}) from #{LibPostHog::Native.library_path}"'
rc=0
# shellcheck disable=SC2086
timeout "${RUBY_TEST_TIMEOUT:-600}" ruby -w -e 'ARGV.shift(ARGV.index("--") + 1) if ARGV.include?("--"); Dir[File.join(ENV.fetch("TESTDIR"), "test_*.rb")].sort.each { |f| require f }' \
  -- ${TESTOPTS:-} 2>&1 | tee "$work/test.log" || rc=$?
if [[ $rc -eq 0 ]]; then log "PASS"; else log "FAIL (rc=$rc)"; fi
exit $rc
