#!/usr/bin/env bash
# The HTTP invoke path side by side with its ceiling, in one run:
#   cargo build --release -p warden -p warden-benches
#   benches/load/compare.sh [DURATION]        # default 10s per measurement
# Starts a bare axum server returning the same JSON (target/release/ceiling)
# and `warden demo` (hello.greet, SQLite, in a temporary data directory), then
# runs wrk against each in turn at 1, 16 and 64 connections and prints a
# Markdown table with the ratio warden/ceiling. Needs wrk (apt-get install
# wrk). wrk shares the machine's cores with the server, for both.
set -euo pipefail
duration=${1:-10s}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
here="$root/benches/load"
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$bin/ceiling" 127.0.0.1:18081 >"$work/ceiling.log" 2>&1 &
pids+=($!)
(cd "$root" && "$bin/warden" demo --listen 127.0.0.1:18080 --data-dir "$work/demo") >"$work/demo.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
    grep -q "curl" "$work/demo.log" 2>/dev/null && break
    if ! kill -0 "${pids[1]}" 2>/dev/null; then cat "$work/demo.log" >&2; exit 1; fi
    sleep 0.5
done
grep -q "curl" "$work/demo.log" || { echo "warden demo did not come up" >&2; cat "$work/demo.log" >&2; exit 1; }
export WARDEN_TOKEN
WARDEN_TOKEN=$(cat "$work/demo/portal-token")
path=/v1/plugins/acme/hello/invoke/greet

# requests/s, p50, p99 (ms), failed responses, socket errors (wrk-summary.py).
measure() {
    local url=$1 connections=$2 threads=2 out
    [ "$connections" -lt 2 ] && threads=1
    out=$(wrk --latency -t"$threads" -c"$connections" -d"$duration" -s "$here/invoke.lua" "$url$path")
    python3 "$here/wrk-summary.py" <<<"$out"
}

echo "| connections | ceiling req/s | ceiling p50 / p99 | warden req/s | warden p50 / p99 | ratio | failed |"
echo "|---|---|---|---|---|---|---|"
for connections in 1 16 64; do
    read -r c_rps c_p50 c_p99 c_bad _ < <(measure http://127.0.0.1:18081 "$connections")
    read -r w_rps w_p50 w_p99 w_bad w_sock < <(measure http://127.0.0.1:18080 "$connections")
    ratio=$(python3 -c "print(f'{$w_rps / $c_rps:.2f}')")
    echo "| $connections | $c_rps | $c_p50 / $c_p99 ms | $w_rps | $w_p50 / $w_p99 ms | $ratio | $((c_bad + w_bad)) (socket errors: $w_sock) |"
done
