#!/usr/bin/env bash
# Installs the system packages libposthog needs to build, test and run its
# demo on Debian/Ubuntu. Idempotent: asks dpkg first and only runs
# `apt-get update` + `apt-get install` when something is missing, so it
# takes well under a second when everything is present.
#
# Usage: tools/setup.sh [--cross] [EXTRA_PACKAGE...]
#   --cross: also what `tools/test.sh cross` needs: Debian's cross compilers
#   for armhf, arm64 and s390x, qemu-user, and (multiarch: the architectures
#   are added to dpkg) the armhf and arm64 -dev packages of the libraries.
#   s390x's libraries are unpacked by tools/cross-sysroot.sh instead.
#   Extra packages (arguments, or $POSTHOG_EXTRA_PACKAGES, space separated)
#   are installed along with the list below.
#
# Non-interactive (DEBIAN_FRONTEND=noninteractive, no stdin needed, CI=true
# is fine). Runs apt-get directly as root, through `sudo -n` otherwise.
# On a system without apt-get/dpkg it only reports which tools are missing.
set -euo pipefail

# ------------------------------------------------------------------ packages
# The one list of system packages. Add new ones here (one per line, with why).
PACKAGES=(
  build-essential        # gcc, make, libc headers
  cmake                  # build system (>= 3.16)
  ninja-build            # faster builds; the scripts fall back to make without it
  pkg-config             # finds libcurl/libcjson/check; tests libposthog.pc
  libcurl4-openssl-dev   # HTTP transport
  zlib1g-dev             # gzip of request bodies
  libcjson-dev           # JSON validation
  check                  # unit/integration test framework
  libsubunit-dev         # Check's pkg-config file links -lsubunit
  clang                  # ASan+UBSan and TSan builds
  libclang-rt-dev        # their runtimes and libFuzzer's (only a Recommends of clang,
                         # and we install without recommends)
  valgrind               # memcheck of the unit tests
  ca-certificates        # TLS to a real PostHog host (only a Recommends of libcurl)
  python3                # compliance harness, bindings
  python3-venv           # compliance harness runs in a venv
  # libcurl's private dependencies: `pkg-config --static --libs libposthog`
  # (tests/install) names them and the linker needs their -dev files.
  libssl-dev libnghttp2-dev libidn2-dev librtmp-dev libssh2-1-dev libpsl-dev
  libkrb5-dev libldap-dev
  libzstd-dev            # capture v1's default compression (zstd); also a libcurl dependency
  libbrotli-dev          # capture v1's "br" compression, the local server's br decoding
  # Ruby bindings (bindings/ruby): interpreter, headers, the ffi gem.
  ruby ruby-dev ruby-ffi
)

# tools/test.sh cross (with --cross).
CROSS_PACKAGES=(
  gcc-arm-linux-gnueabihf gcc-aarch64-linux-gnu gcc-s390x-linux-gnu  # cross compilers
  qemu-user              # runs the tests of each architecture (no binfmt needed)
)
CROSS_MULTIARCH=(armhf arm64)     # their -dev packages come through dpkg multiarch
CROSS_SYSROOT_ARCHES=(s390x)      # only package lists (tools/cross-sysroot.sh)
CROSS_ARCH_PACKAGES=(
  libc6-dev zlib1g-dev libcurl4-openssl-dev libcjson-dev check libsubunit-dev
  libzstd-dev libbrotli-dev
  libatomic1             # the ARMv6 build's libatomic at run time (qemu)
)

log() { printf 'setup: %s\n' "$*"; }

cross=0
if [[ ${1:-} == --cross ]]; then
  cross=1
  shift
fi

# shellcheck disable=SC2206  # word splitting of the env list is intended
extra=(${POSTHOG_EXTRA_PACKAGES:-})
want=("${PACKAGES[@]}" "${extra[@]}" "$@")
update_needed=0
if ((cross)); then
  want+=("${CROSS_PACKAGES[@]}")
  for a in "${CROSS_MULTIARCH[@]}"; do
    for p in "${CROSS_ARCH_PACKAGES[@]}"; do want+=("$p:$a"); done
  done
fi

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "not a Debian/Ubuntu system (no dpkg/apt-get): install the equivalents of"
  log "  ${want[*]}"
  missing_tools=()
  for t in cc cmake pkg-config; do
    command -v "$t" >/dev/null 2>&1 || missing_tools+=("$t")
  done
  if ((${#missing_tools[@]})); then
    log "missing tools: ${missing_tools[*]}"
    exit 1
  fi
  exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then as_root=(sudo -n); fi

if ((cross)); then
  foreign=" $(dpkg --print-foreign-architectures | tr '\n' ' ') "
  for a in "${CROSS_MULTIARCH[@]}" "${CROSS_SYSROOT_ARCHES[@]}"; do
    if [[ $foreign != *" $a "* ]]; then
      log "adding the $a architecture to dpkg"
      "${as_root[@]}" dpkg --add-architecture "$a"
      update_needed=1
    fi
  done
fi

# One dpkg-query call for the whole list; absent packages print nothing
# on stdout (an error on stderr), installed ones print "name ii" (with
# ":arch" for a multiarch package once foreign architectures exist).
host_arch=$(dpkg --print-architecture)
installed=$(dpkg-query -W -f='${binary:Package} ${db:Status-Abbrev}\n' "${want[@]}" 2>/dev/null || true)
missing=()
for p in "${want[@]}"; do
  q=${p//+/\\+}
  if [[ $p == *:* ]]; then re="^$q ii"; else re="^$q(:$host_arch)? ii"; fi
  if ! grep -qE "$re" <<<"$installed"; then
    missing+=("$p")
  fi
done

if ((update_needed && ${#missing[@]} == 0)); then
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get -qq -o DPkg::Lock::Timeout=300 update </dev/null >/dev/null
fi
if ((${#missing[@]} == 0)); then
  log "all ${#want[@]} packages present"
  exit 0
fi

if [[ $(id -u) -ne 0 ]] && ! command -v sudo >/dev/null 2>&1; then
  log "need root (or sudo) to install: ${missing[*]}"
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_opts=(-y -qq -o Dpkg::Use-Pty=0 -o DPkg::Lock::Timeout=300 --no-install-recommends)
log "installing: ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get -qq -o DPkg::Lock::Timeout=300 update </dev/null >/dev/null
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install "${apt_opts[@]}" "${missing[@]}" </dev/null >/dev/null
log "done"
