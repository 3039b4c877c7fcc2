#!/usr/bin/env bash
# The catalog at 100,000 plugins, on SQLite and on PostgreSQL, in one run:
#   cargo build --release -p warden
#   benches/load/catalog.sh [POSTGRES_ADMIN_URL] [DURATION]
# For each database: starts `warden serve` on a fresh data directory (and a
# fresh PostgreSQL database created through POSTGRES_ADMIN_URL, e.g.
# postgres://postgres:pw@127.0.0.1:5432/postgres; without it only SQLite is
# measured), inserts 100,000 plugins into org acme (1% of descriptions mention
# CSV), then runs wrk (-c8, or CONNECTIONS) on the first page and on searches: a common
# text, a rare one at the end of the name order (`tool-099999`), one that
# matches nothing, a two-character one, and one whose trigrams are all
# common but which matches nothing (`plugin text`). Prints a Markdown table.
set -euo pipefail
admin_url=${1:-}
duration=${2:-5s}
connections=${CONNECTIONS:-8}
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${CARGO_TARGET_DIR:-$root/target}/release
here="$root/benches/load"
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

insert_sql() {
    # 100,000 rows in one statement each database understands.
    cat <<'SQL'
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
INSERT INTO plugins (org, name, description, config, created_at, updated_at)
SELECT 'acme', 'tool-' || substr('000000' || i, -6, 6),
       CASE WHEN i % 100 = 0 THEN 'Converts CSV files, plugin number ' || i
            ELSE 'A plugin that transforms text, number ' || i END,
       '{}', 0, 0 FROM n;
SQL
}

run_one() {
    local label=$1 database_url=$2
    local data="$work/$label"
    local args=(serve --listen 127.0.0.1:18090 --data-dir "$data")
    [ -n "$database_url" ] && args+=(--database-url "$database_url")
    "$bin/warden" "${args[@]}" >"$work/$label.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do
        grep -q "warden listening" "$work/$label.log" 2>/dev/null && break
        sleep 0.2
    done
    if [ -z "$database_url" ]; then
        python3 - "$data/warden.db" "$(insert_sql)" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); db.execute("PRAGMA busy_timeout = 10000")
db.execute(sys.argv[2].replace("substr('000000' || i, -6, 6)", "substr('000000' || i, -6)")); db.commit()
PY
    else
        insert_sql | sed "s/substr('000000' || i, -6, 6)/lpad(i::text, 6, '0')/" | psql -q "$database_url"
        psql -q "$database_url" -c "ANALYZE plugins"
    fi
    export WARDEN_TOKEN
    WARDEN_TOKEN=$(cat "$data/admin-token")
    for query in "limit=20" "q=csv&limit=20" "q=tool-099999&limit=20" "q=nothing-like-it&limit=20" "q=zz&limit=20" "q=plugin%20text&limit=20"; do
        out=$(wrk --latency -t$(( connections > 1 ? 2 : 1 )) -c"$connections" -d"$duration" -s "$here/get.lua" "http://127.0.0.1:18090/v1/orgs/acme/plugins?$query")
        read -r rps p50 p99 bad _ < <(python3 "$here/wrk-summary.py" <<<"$out")
        echo "| $label | \`$query\` | $rps | $p50 ms | $p99 ms | $bad |"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

echo "| database | query | requests/s | p50 | p99 | failed |"
echo "|---|---|---|---|---|---|"
run_one sqlite ""
if [ -n "$admin_url" ]; then
    name="warden_bench_$$"
    psql -q "$admin_url" -c "CREATE DATABASE $name"
    run_one postgres "${admin_url%/*}/$name"
    psql -q "$admin_url" -c "DROP DATABASE $name" || true
fi
