#!/usr/bin/env bash
# Load test of the invocation API against a running `warden demo`:
#   cargo run --release -p warden -- demo &      # wait for the curl line
#   benches/load/invoke.sh [URL] [FUNCTION PATH] [DURATION]
# Needs wrk (apt-get install wrk). Prints the latency distribution; wrk adds a
# "Non-2xx or 3xx responses" line if any request failed.
set -euo pipefail
url=${1:-http://127.0.0.1:8080}
path=${2:-/v1/plugins/acme/hello/invoke/greet}
duration=${3:-10s}
here=$(cd "$(dirname "$0")" && pwd)
export WARDEN_TOKEN=${WARDEN_TOKEN:-$(cat warden-demo/portal-token)}
wrk --latency -t2 -c16 -d"$duration" -s "$here/invoke.lua" "$url$path"
