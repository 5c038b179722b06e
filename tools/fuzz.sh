#!/usr/bin/env bash
# Fuzzes the spool reader (tests/fuzz/fuzz_spool.c) with libFuzzer.
#
#   tools/fuzz.sh [SECONDS]      default 60
#
# Configures build-fuzz/ with clang, ASan+UBSan and coverage instrumentation
# (-fsanitize=fuzzer-no-link), builds libposthog.a there, links the target
# with -fsanitize=fuzzer,address,undefined, and runs it for SECONDS on a
# scratch copy of tests/fuzz/corpus_spool (the committed seeds stay small).
# Crashes (crash-*, leak-*, timeout-*, oom-*) are copied into
# tests/fuzz/corpus_spool/ so that unit_test_spool_corpus replays them.
# Environment: CC_CLANG [clang], JOBS [2], FUZZ_BUILD [build-fuzz].
# Exit status: 0 when no crash was found, 1 otherwise.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
secs=${1:-60}
cc=${CC_CLANG:-clang}
jobs=${JOBS:-2}
bdir=${FUZZ_BUILD:-build-fuzz}
corpus=tests/fuzz/corpus_spool

if [[ ! -f $bdir/CMakeCache.txt ]]; then
  CC=$cc cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPOSTHOG_SANITIZE=address,undefined -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link \
    -DPOSTHOG_BUILD_TESTS=OFF -DPOSTHOG_BUILD_TOOLS=OFF -DPOSTHOG_BUILD_EXAMPLES=OFF \
    -DPOSTHOG_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$bdir" --target posthog_static -j "$jobs" >/dev/null
lib=$(find "$bdir" -maxdepth 2 -name libposthog.a | head -n1)
[[ -n $lib ]] || { echo "libposthog.a not found in $bdir" >&2; exit 2; }
"$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Iinclude -Isrc/core -Isrc/capture -Isrc/delivery -Isrc/spool tests/fuzz/fuzz_spool.c "$lib" -lz -lcurl -lcjson -lpthread \
  -lzstd -lbrotlienc -lbrotlidec -o "$bdir/fuzz_spool"

work=$bdir/fuzz-work
rm -rf "$work"
mkdir -p "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"
rc=0
set +e
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
  "$bdir/fuzz_spool" "$work/corpus" -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
  >"$work/log" 2>&1
st=$?
set -e
grep -E '(INITED|DONE|^stat::|ERROR|SUMMARY|runtime error)' "$work/log" || true
((st == 0)) || { rc=1; echo "fuzz_spool exited with status $st (log: $work/log)" >&2; }
shopt -s nullglob
found=("$work"/artifacts/*)
if ((${#found[@]})); then
  cp "${found[@]}" "$corpus/"
  echo "fuzz_spool: ${#found[@]} finding(s) saved into $corpus/: ${found[*]##*/}" >&2
  rc=1
fi
exit $rc
