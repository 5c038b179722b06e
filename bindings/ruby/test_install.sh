#!/usr/bin/env bash
# One-command installs of the Ruby binding, as a new user does them, each in
# a fresh GEM_HOME with no LIBPOSTHOG_* in the environment:
#   1. gem build (a source gem carrying the C sources) + gem install: the
#      extension step builds libposthog.so with CMake
#   2. a platform gem bundling that library, installed where CMake and the
#      compiler are unusable: nothing is compiled
# Each install must load its own library and deliver through a client.
#
# Usage: bindings/ruby/test_install.sh    (WORK [mktemp -d])
# Needs ruby, gem, ruby-ffi (system gem), a C compiler, CMake and the C
# library's -dev packages. Exit 0 pass, 77 skip (no ruby), else fail.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=${WORK:-$(mktemp -d -t libposthog-rbinstall.XXXXXX)}
log() { echo "ruby-install: $*"; }
command -v gem >/dev/null && ruby -e 'require "ffi"' 2>/dev/null ||
  { log "SKIP: no ruby/gem/ffi"; exit 77; }
unset LIBPOSTHOG_PATH LIBPOSTHOG_BUILD_DIR LIBPOSTHOG_BUNDLE GEM_PATH
log "work dir $work"

# check GEM_HOME: the installed gem loads the library inside GEM_HOME and
# a client makes events (test_mode: kept in memory, not sent)
check() {
  (cd / && GEM_HOME=$1 ruby -w - "$1" <<'RB'
require 'libposthog'
home = ARGV[0]
path = LibPostHog::Native.library_path
path.start_with?(home + '/') or abort "ruby-install: loads #{path}, not the copy in #{home}"
c = LibPostHog::Client.new(api_key: 'phc_install_check', host: 'http://127.0.0.1:9', test_mode: true)
c.capture(distinct_id: 'u1', event: 'installed') or abort 'ruby-install: capture failed'
c.shutdown
puts "ruby-install: ok: libposthog #{LibPostHog::VERSION} (C #{LibPostHog.native_version}) from #{path}"
RB
  )
}

cleanup_tree() { rm -rf "$here/ext/libposthog/csrc" "$here/lib/libposthog/native" "$here"/libposthog-*.gem; }
cleanup_tree
log "1. gem build + gem install of the source gem into a fresh GEM_HOME (builds the C library)"
(cd "$here" && gem build libposthog.gemspec) >"$work/build1.log" 2>&1 ||
  { cat "$work/build1.log"; cleanup_tree; log "FAIL: gem build"; exit 1; }
mkdir -p "$work/gems"
mv "$here"/libposthog-*.gem "$work/gems/"
cleanup_tree
srcgem=$(ls "$work"/gems/libposthog-*.gem)
case $srcgem in *-x86_64-*|*-aarch64-*|*-linux*) log "FAIL: $srcgem is a platform gem"; exit 1 ;; esac
GEM_HOME="$work/home1" gem install --local --no-document "$srcgem" >"$work/install1.log" 2>&1 ||
  { cat "$work/install1.log"; log "FAIL: gem install (source gem)"; exit 1; }
check "$work/home1"

log "2. a platform gem bundling that library, installed without CMake or compiler"
built=$(GEM_HOME="$work/home1" ruby -e 'require "libposthog"; puts LibPostHog::Native.library_path')
(cd "$here" && LIBPOSTHOG_PATH="$built" gem build libposthog.gemspec) >"$work/build2.log" 2>&1 ||
  { cat "$work/build2.log"; cleanup_tree; log "FAIL: gem build (platform)"; exit 1; }
mkdir -p "$work/platform"
mv "$here"/libposthog-*.gem "$work/platform/"
cleanup_tree
platgem=$(ls "$work"/platform/libposthog-*.gem)
mkdir -p "$work/nobin"
for t in cmake cc gcc clang make ninja; do printf '#!/bin/sh\necho "%s must not run" >&2; exit 1\n' "$t" >"$work/nobin/$t"; chmod +x "$work/nobin/$t"; done
PATH="$work/nobin:$PATH" GEM_HOME="$work/home2" gem install --local --no-document "$platgem" \
  >"$work/install2.log" 2>&1 || { cat "$work/install2.log"; log "FAIL: gem install (platform gem)"; exit 1; }
check "$work/home2"

[[ -n ${WORK:-} ]] || rm -rf "$work"
log "PASS"
