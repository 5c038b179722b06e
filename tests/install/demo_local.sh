#!/usr/bin/env bash
# ctest example_demo_local: runs examples/demo against a fresh local
# ingestion server (tools/posthog-ingest-server) on 127.0.0.1. The demo
# exits non-zero unless every valid event reached the server exactly once.
# Usage: demo_local.sh SERVER_BINARY [EMULATOR...] DEMO_BINARY
# (a cross build puts qemu-user and its arguments before the demo).
set -euo pipefail
server=$1
shift
demo=("$@")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/posthog-demo-test.XXXXXX")
pid=
cleanup() {
  if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
"$server" --host 127.0.0.1 --port 0 --port-file "$tmp/port" --quiet >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 200); do
  [[ -s $tmp/port ]] && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/server.log"; exit 1; }
  sleep 0.05
done
[[ -s $tmp/port ]] || { echo "server did not start"; exit 1; }
env -u POSTHOG_API_KEY -u POSTHOG_HOST "${demo[@]}" "http://127.0.0.1:$(cat "$tmp/port")"
