#!/usr/bin/env bash
# Builds libposthog and runs examples/demo: a few hundred realistic events
# captured, batched, gzipped and delivered, with the client's counters.
#
#   ./tools/demo.sh                         local: starts the project's ingestion
#                                           server on 127.0.0.1, sends to it, prints
#                                           what it received, stops it
#   POSTHOG_API_KEY=phc_... ./tools/demo.sh sends to a real PostHog project at
#                                           $POSTHOG_HOST [https://us.i.posthog.com]
#
# Environment: BUILD_DIR [build], BUILD_TYPE [RelWithDebInfo], JOBS [2],
# SKIP_SETUP=1 (do not run tools/setup.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
build_dir=${BUILD_DIR:-build}
jobs=${JOBS:-2}

if [[ ${SKIP_SETUP:-0} != 1 ]]; then
  tools/setup.sh
fi

# Reuse an existing tree as configured (its generator cannot change);
# pick Ninja for a new one when available.
gen=()
if [[ ! -f $build_dir/CMakeCache.txt ]] && command -v ninja >/dev/null 2>&1; then
  gen=(-G Ninja)
fi
echo "demo: configuring and building into $build_dir/"
cmake -S . -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
  -DPOSTHOG_BUILD_EXAMPLES=ON -DPOSTHOG_BUILD_TOOLS=ON >/dev/null
cmake --build "$build_dir" -j "$jobs" --target example_demo posthog-ingest-server >/dev/null
demo="$build_dir/examples/demo"
echo

if [[ -n ${POSTHOG_API_KEY:-} ]]; then
  export POSTHOG_HOST=${POSTHOG_HOST:-https://us.i.posthog.com}
  echo "demo: POSTHOG_API_KEY is set: sending to $POSTHOG_HOST (no local server)"
  exec "$demo"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/posthog-demo.XXXXXX")
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$build_dir/tools/posthog-ingest-server" --host 127.0.0.1 --port 0 --port-file "$tmp/port" \
  --quiet >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  [[ -s $tmp/port ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: the ingestion server exited; its log:" >&2
    cat "$tmp/server.log" >&2
    exit 1
  fi
  sleep 0.05
done
[[ -s $tmp/port ]] || { echo "demo: the ingestion server did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$tmp/port")"
echo "demo: POSTHOG_API_KEY is not set: local ingestion server at $url (pid $server_pid)"
echo "      (set POSTHOG_API_KEY, and POSTHOG_HOST if not US cloud, to send to PostHog)"
echo

status=0
"$demo" "$url" || status=$?
exit "$status"
