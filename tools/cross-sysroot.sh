#!/usr/bin/env bash
# Unpacks Debian's packages of a foreign architecture into a private
# sysroot, for a cross build that cannot use multiarch: Multi-Arch: same
# packages must have the host's exact version, and when the host carries
# security updates that the foreign archive lacks (s390x here: the
# security mirror serves amd64, arm64 and armhf only), apt refuses them.
# Nothing is installed into dpkg's database: `apt-get download` and
# `dpkg-deb -x`, with the dependencies resolved by apt-cache.
#
# Usage: tools/cross-sysroot.sh ARCH DIR PACKAGE...
#   e.g. tools/cross-sysroot.sh s390x /var/cache/libposthog-cross/s390x libcurl4-openssl-dev
# Prints DIR. Idempotent: DIR/.packages records what was unpacked (names
# and versions); when the same set would be unpacked again it returns at
# once. Needs `dpkg --add-architecture ARCH` and its package lists (apt-get
# update), which tools/setup.sh --cross does.
set -euo pipefail
arch=$1 root=$2
shift 2
(($#)) || { echo "usage: $0 ARCH DIR PACKAGE..." >&2; exit 2; }

# Fast path: the same request, and no package list newer than the sysroot.
if [[ -f $root/.packages && -f $root/.request && $(cat "$root/.request") == "$*" &&
      -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newer "$root/.packages" -print -quit) ]]; then
  echo "$root"
  exit 0
fi

want=()
for p in "$@"; do want+=("$p:$arch"); done
# Every package the list needs, of this architecture (virtual packages are
# shown as <name> and left out, as are Architecture: all ones: none of them
# matters for building and running).
mapfile -t pkgs < <(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${want[@]}" 2>/dev/null |
  grep -E "^[a-z0-9][^ ]*:$arch\$" | sort -u)
((${#pkgs[@]})) || { echo "cross-sysroot: apt-cache knows none of: ${want[*]} (dpkg --add-architecture $arch; apt-get update)" >&2; exit 1; }
stamp=$(apt-cache policy "${pkgs[@]}" 2>/dev/null | awk '/^[^ ]/{p=$1} /Candidate:/{print p, $2}')
if [[ -f $root/.packages && $(cat "$root/.packages") == "$stamp" ]]; then
  printf '%s\n' "$*" >"$root/.request"
  touch "$root/.packages"
  echo "$root"
  exit 0
fi

echo "cross-sysroot: unpacking ${#pkgs[@]} $arch packages into $root" >&2
rm -rf "$root.tmp"
mkdir -p "$root.tmp/.debs"
# (as root, apt would drop to its _apt user, who cannot write here)
(cd "$root.tmp/.debs" && apt-get download -qq -o APT::Sandbox::User=root "${pkgs[@]}" >/dev/null)
for d in "$root.tmp"/.debs/*.deb; do dpkg-deb -x "$d" "$root.tmp"; done
rm -rf "$root.tmp/.debs"
# Absolute symlinks (libfoo.so -> /lib/<triplet>/libfoo.so.1) would point
# into the host: make them point inside the sysroot.
while IFS= read -r -d '' l; do
  t=$(readlink "$l")
  [[ $t == /* ]] && ln -sfn "$root$t" "$l"
done < <(find "$root.tmp" -type l -print0)
printf '%s\n' "$stamp" >"$root.tmp/.packages"
printf '%s\n' "$*" >"$root.tmp/.request"
rm -rf "$root"
mv "$root.tmp" "$root"
echo "$root"
