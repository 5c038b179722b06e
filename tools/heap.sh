#!/usr/bin/env bash
# Heap table of the library (issue 13): for each memory budget, the heap the
# library holds idle after posthog_client_new and its peak under a flood of
# 10,000 events (flat out, then paced so nothing is refused), counted through
# posthog_set_allocator by bench/ph_heap.c, plus the queue's ring and the
# flusher's stack high-water mark. The transport (libcurl) is not counted.
#
#   tools/heap.sh                                  host build in build-heap/
#   BUDGETS="0 131072 262144 1048576" tools/heap.sh
#   BUILD_DIR=build-armhf RUNNER="qemu-arm -L /" tools/heap.sh   (Debian multiarch libs)
#
# BUILD_DIR   the tree holding bench/ph-heap (built here with --target ph-heap;
#             a cross tree: cmake -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-armhf.cmake)
# HOST_BUILD  the host tree for the ingestion server [build-heap, or BUILD_DIR
#             when there is no RUNNER]
# RUNNER      prefix for ph-heap (qemu-user for a cross build) [none]
# BUDGETS     memory_budget values, 0 = unset (defaults) [0 131072 262144 1048576]
# CODECS      compressions [default gzip]  (default: zstd in v1, gzip below ~200 KiB)
# EVENTS      events per flood [10000]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-heap}
RUNNER=${RUNNER:-}
HOST_BUILD=${HOST_BUILD:-$([ -n "$RUNNER" ] && echo build-heap || echo "$BUILD_DIR")}
BUDGETS=${BUDGETS:-0 131072 262144 1048576}
CODECS=${CODECS:-default gzip}
EVENTS=${EVENTS:-10000}
JOBS=${JOBS:-2}

configure() { # dir [cmake args]
  local d=$1; shift
  [ -f "$d/CMakeCache.txt" ] || cmake -S . -B "$d" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
}
if [ -z "$RUNNER" ] || [ "$BUILD_DIR" = "$HOST_BUILD" ]; then configure "$BUILD_DIR"; fi
configure "$HOST_BUILD"
cmake --build "$BUILD_DIR" -j "$JOBS" --target ph-heap >/dev/null
cmake --build "$HOST_BUILD" -j "$JOBS" --target posthog-ingest-server >/dev/null

tmp=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
"$HOST_BUILD/tools/posthog-ingest-server" --host 127.0.0.1 --port 0 --port-file "$tmp/port" \
  --quiet --no-store >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { echo "heap: the ingestion server did not start" >&2; cat "$tmp/server.log" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$tmp/port")"

kib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1024 }'; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

arch=$($RUNNER "$BUILD_DIR/bench/ph-heap" --arch 2>/dev/null || uname -m)
echo "libposthog heap ($arch${RUNNER:+, via $RUNNER}), $EVENTS-event floods; KiB"
echo
echo "| memory_budget | compression | idle heap | peak heap | ring | peak + ring | within | flusher stack used | flat out: captured / refused | paced: delivered |"
echo "|---|---|---|---|---|---|---|---|---|---|"
status=0
for b in $BUDGETS; do
  for codec in $CODECS; do
    args=("$url" --budget "$b" --events "$EVENTS")
    [ "$codec" = default ] || args+=(--compression "$codec")
    flat=$($RUNNER "$BUILD_DIR/bench/ph-heap" "${args[@]}" 2>"$tmp/err") || true
    paced=$($RUNNER "$BUILD_DIR/bench/ph-heap" "${args[@]}" --pace 2>>"$tmp/err") || true
    if [ -z "$flat" ] || [ -z "$paced" ]; then
      echo "| $b | $codec | error: $(head -c 200 "$tmp/err" | tr '\n' ' ') |"; status=1; continue
    fi
    pk=$(field peak_heap "$flat"); pk2=$(field peak_heap "$paced")
    [ "$pk2" -gt "$pk" ] && pk=$pk2
    ring=$(field ring "$flat"); total=$((pk + ring))
    within="-"
    if [ "$b" != 0 ]; then
      if [ "$total" -le "$b" ]; then within=yes; else within=NO; status=1; fi
    fi
    for r in "$flat" "$paced"; do
      [ "$(field leaked "$r")" = 0 ] || { echo "heap: leaked: $r" >&2; status=1; }
      [ "$(field sent "$r")" = "$(field captured "$r")" ] || { echo "heap: undelivered: $r" >&2; status=1; }
    done
    su=$(field stack_used "$flat")
    if [ "$su" -ge 0 ]; then su=$(kib "$su"); else su="n/a"; fi # qemu-user: no mincore view
    label=$([ "$b" = 0 ] && echo "unset (defaults)" || echo "$b ($(kib "$b"))")
    echo "| $label | $codec | $(kib "$(field idle_heap "$flat")") | $(kib "$pk") | $(kib "$ring") | $(kib "$total") | $within | $su of $(kib "$(field stack_size "$flat")") | $(field captured "$flat") / $(field queue_full "$flat") | $(field sent "$paced") |"
  done
done
exit $status
