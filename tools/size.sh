#!/usr/bin/env bash
# Size of the shared library as a device ships it: builds libposthog.so for
# armhf and arm64 (cmake/toolchain-*.cmake, Debian's cross compilers and
# multiarch -dev packages: tools/setup.sh --cross) in two configurations and
# prints a table of the stripped sizes.
#
#   default  every feature the top-level CMakeLists.txt builds by default
#   minimal  every POSTHOG_WITH_<X> option the top-level CMakeLists.txt
#            declares among ZSTD, BROTLI, CURL, SPOOL and CRASH_HANDLER, OFF
#            (an option not declared yet is left out, and named)
#
# Usage: tools/size.sh [ARCH...]        (default: armhf arm64)
# Environment: SIZE_BUILD_TYPES [MinSizeRel] (e.g. "MinSizeRel Release"),
# SIZE_BUILD_DIR [build-size], JOBS [2], SKIP_SETUP=1.
# Targets (issue 13): minimal armhf <= 48 KiB, default <= 96 KiB.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
JOBS=${JOBS:-2}
out=${SIZE_BUILD_DIR:-build-size}
read -r -a types <<<"${SIZE_BUILD_TYPES:-MinSizeRel}"
arches=("$@")
((${#arches[@]})) || arches=(armhf arm64)
[[ ${SKIP_SETUP:-0} == 1 ]] || tools/setup.sh --cross >&2

minimal=()
absent=()
for opt in ZSTD BROTLI CURL SPOOL CRASH_HANDLER; do
  if grep -qE "option\(POSTHOG_WITH_$opt\b" CMakeLists.txt; then
    minimal+=("-DPOSTHOG_WITH_$opt=OFF")
  else
    absent+=("POSTHOG_WITH_$opt")
  fi
done

triple() { case $1 in armhf) echo arm-linux-gnueabihf ;; arm64) echo aarch64-linux-gnu ;;
                      s390x) echo s390x-linux-gnu ;; *) echo "unknown arch $1" >&2; return 1 ;; esac; }

rows=()
for arch in "${arches[@]}"; do
  t=$(triple "$arch")
  for type in "${types[@]}"; do
    for conf in default minimal; do
      dir="$out/$arch-$type-$conf"
      args=()
      [[ $conf == minimal ]] && args=("${minimal[@]}")
      cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchain-$arch.cmake" \
        -DCMAKE_BUILD_TYPE="$type" -DPOSTHOG_BUILD_TESTS=OFF -DPOSTHOG_BUILD_EXAMPLES=OFF \
        -DPOSTHOG_BUILD_TOOLS=OFF -DPOSTHOG_BUILD_BENCH=OFF -DPOSTHOG_WERROR=ON \
        "${args[@]}" >/dev/null
      cmake --build "$dir" -j "$JOBS" --target posthog >/dev/null
      so=$(readlink -f "$dir/libposthog.so")
      "$t-strip" --strip-unneeded -o "$dir/libposthog.stripped.so" "$so"
      bytes=$(stat -c %s "$dir/libposthog.stripped.so")
      needed=$("$t-readelf" -d "$so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')
      rows+=("$arch|$type|$conf|$bytes|$needed")
    done
  done
done

printf '\n| arch | build type | configuration | stripped .so | KiB | NEEDED |\n|---|---|---|---:|---:|---|\n'
for r in "${rows[@]}"; do
  IFS='|' read -r arch type conf bytes needed <<<"$r"
  printf '| %s | %s | %s | %s | %s | %s|\n' "$arch" "$type" "$conf" "$bytes" \
    "$(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1024}')" "$needed"
done
printf '\nminimal = %s\n' "${minimal[*]}"
((${#absent[@]} == 0)) || printf 'not declared by this CMakeLists.txt (so not in minimal): %s\n' "${absent[*]}"
