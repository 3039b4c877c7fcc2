#!/usr/bin/env bash
# Soak of Warden as it runs at scale, on one machine, on loopback only:
# a throwaway PostgreSQL, the CNCF distribution registry (Debian's
# docker-registry) as the external registry, three `warden serve` replicas
# (each with its own data directory) and HAProxy in front with health checks
# on /readyz. wrk invokes acme/hello through HAProxy while the script, one
# phase at a time:
#   (a) kills one replica with SIGKILL and restarts it,
#   (b) restarts all three with SIGTERM, one by one (a rolling restart),
#   (c) restarts PostgreSQL,
#   (d) approves, yanks and revokes through one replica while invoking
#       through another, timing how long each change takes to be in force
#       on the other replicas.
# For each phase it prints requests, failures by status, p50 and p99.
# During (a) and (b) it also creates tokens through HAProxy and checks that
# every one the server acknowledged exists afterwards.
#
#   benches/soak/replicas.sh            (SOAK_PHASE_SECONDS=20 by default)
#
# Needs: haproxy, wrk, docker-registry, curl, python3 and PostgreSQL's server
# binaries (Debian: apt-get install haproxy wrk docker-registry curl
# postgresql). Builds `warden` and the hello example (release) if missing.
# Everything it starts is stopped, and its directory removed, when it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
phase=${SOAK_PHASE_SECONDS:-20}

say() { printf 'soak: %s\n' "$*" >&2; }
for tool in haproxy wrk docker-registry curl python3; do
    command -v "$tool" >/dev/null || { say "needs $tool (apt-get install $tool)"; exit 1; }
done
# The real directory of initdb (PATH may hold only links to a few tools).
pgbin=$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)")")
[ -x "$pgbin/pg_ctl" ] && [ -x "$pgbin/createdb" ] || { say "needs PostgreSQL's server binaries (apt-get install postgresql)"; exit 1; }

warden=${WARDEN:-$root/target/release/warden}
[ -x "$warden" ] || { say "building warden (release)"; cargo build --release -p warden; }
hello=$root/target/wasm32-wasip2/release/warden_example_hello.wasm
[ -f "$hello" ] || { say "building the hello example"; cargo build --release --target wasm32-wasip2 -p warden-example-hello; }

work=$(mktemp -d "${TMPDIR:-/tmp}/warden-soak.XXXXXX")
chmod 755 "$work"
pids=()
as_postgres() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
    for pid in "${pids[@]}" "${replica[@]:-}" "${writer_pid:-}" "${wrk_pid:-}"; do
        [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
    done
    as_postgres "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
    [ -n "${SOAK_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
elapsed_ms() { python3 -c "print(round(($(now) - $1) * 1000))"; }

# --- PostgreSQL ---------------------------------------------------------
pg_port=$(free_port)
mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres "$work/pg"
as_postgres "$pgbin/initdb" -D "$work/pg" -U warden -A trust --no-sync -E UTF8 --locale=C >/dev/null
pg_start() {
    as_postgres "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w \
        -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
}
pg_start
as_postgres "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U warden warden
database="postgres://warden@127.0.0.1:$pg_port/warden"

# --- the registry -------------------------------------------------------
registry_port=$(free_port)
cat >"$work/registry.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $work/registry } }
http: { addr: "127.0.0.1:$registry_port" }
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)

# --- three replicas -----------------------------------------------------
(cd "$work" && "$warden" keygen --out admin.key >/dev/null && "$warden" keygen --out alice.key >alice.pub)
od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$work/secrets.key"
chmod 600 "$work/secrets.key"
ports=("$(free_port)" "$(free_port)" "$(free_port)")
replica=()
start_replica() {
    "$warden" serve --listen "127.0.0.1:${ports[$1]}" --data-dir "$work/r$1" \
        --database-url "$database" --registry "127.0.0.1:$registry_port" --registry-insecure \
        --admin-key "$work/admin.key" --secrets-key-file "$work/secrets.key" \
        --shutdown-grace 10s >>"$work/r$1.log" 2>&1 &
    replica[$1]=$!
}
wait_ready() {
    local started i
    started=$(now)
    until curl -sf -o /dev/null "http://127.0.0.1:${ports[$1]}/readyz"; do
        if [ "$(elapsed_ms "$started")" -gt 60000 ]; then say "replica $1 not ready"; tail "$work/r$1.log" >&2; exit 1; fi
        sleep 0.05
    done
}
# All three at the same instant, on an empty database.
for i in 0 1 2; do start_replica "$i"; done
for i in 0 1 2; do wait_ready "$i"; done
tokens=("$work"/r*/admin-token)
[ "${#tokens[@]}" = 1 ] && [ -f "${tokens[0]}" ] || { say "expected one admin-token, found: ${tokens[*]}"; exit 1; }
admin=$(cat "${tokens[0]}")
url() { echo "http://127.0.0.1:${ports[$1]}"; }
cli() { local i=$1; shift; (cd "$work" && WARDEN_URL=$(url "$i") WARDEN_TOKEN=$admin "$warden" "$@"); }
cli 0 key add "$(cat "$work/alice.pub")" --kind publisher --owner alice >/dev/null
cli 0 key add admin.key --kind admin --owner admin >/dev/null
publisher=$(cli 0 token create --name soak-publisher --role publisher --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
portal=$(cli 0 token create --name soak-portal --role invoker --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
publish() {
    printf 'name = "acme/hello"\nversion = "%s"\ncomponent = "%s"\ncapabilities = []\n' "$1" "$hello" >"$work/warden.toml"
    (cd "$work" && WARDEN_URL=$(url 0) WARDEN_TOKEN=$publisher "$warden" publish --key alice.key \
        --registry "127.0.0.1:$registry_port" --registry-insecure >/dev/null)
}
publish 1.0.0
cli 0 approve acme/hello@1.0.0 --key admin.key >/dev/null

# --- HAProxy ------------------------------------------------------------
proxy_port=$(free_port)
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on conn-failure empty-response
frontend warden
    bind 127.0.0.1:$proxy_port
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 1 rise 2
    server r0 127.0.0.1:${ports[0]} check
    server r1 127.0.0.1:${ports[1]} check
    server r2 127.0.0.1:${ports[2]} check
EOF
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
until curl -sf -o /dev/null -X POST "http://127.0.0.1:$proxy_port/v1/plugins/acme/hello/invoke/greet" \
    -H "Authorization: Bearer $portal" -H 'Content-Type: application/json' -d '{"args": "x"}'; do sleep 0.1; done

# --- phases ---------------------------------------------------------------
results=()
# load SECONDS NAME: wrk through HAProxy in the background; `finish` prints.
load() {
    WARDEN_TOKEN=$portal wrk -t2 -c16 -d"$1s" -s benches/soak/status.lua \
        "http://127.0.0.1:$proxy_port/v1/plugins/acme/hello/invoke/greet" >"$work/wrk-$2.txt" 2>&1 &
    wrk_pid=$!
    load_name=$2
}
finish() {
    wait "$wrk_pid"
    results+=("$(python3 - "$work/wrk-$load_name.txt" "$load_name" <<'EOF'
import sys
name = sys.argv[2]
statuses, values = {}, {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3 and parts[0] == "status":
        statuses[int(parts[1])] = int(parts[2])
    elif len(parts) == 2 and parts[0] in ("socket-errors", "requests", "p50-ms", "p99-ms"):
        values[parts[0]] = float(parts[1])
requests = int(values["requests"])
failed = {s: n for s, n in statuses.items() if s >= 400}
errors = int(values["socket-errors"])
lost = sum(failed.values()) + errors
by_status = ", ".join(f"{s}: {n}" for s, n in sorted(failed.items())) or "none"
print(f"| {name} | {requests} | {lost} ({100 * lost / max(requests, 1):.3f}%) | {by_status} | {errors} | {values['p50-ms']:.2f} ms | {values['p99-ms']:.2f} ms |")
EOF
)")
}

# writes NAME: creates tokens through HAProxy, one after another, until
# stopped, noting each one the server acknowledged (201); `writes_checked`
# then looks every acknowledged one up.
writes() {
    (
        n=0
        while :; do
            n=$((n + 1))
            curl -s -o "$work/write.json" -w '%{http_code}' -X POST "http://127.0.0.1:$proxy_port/v1/orgs/acme/tokens" \
                -H "Authorization: Bearer $admin" -H 'Content-Type: application/json' \
                -d "{\"name\": \"soak-$1-$n\", \"role\": \"viewer\"}" >"$work/write.status" || true
            if [ "$(cat "$work/write.status")" = 201 ]; then echo "soak-$1-$n" >>"$work/acknowledged"; fi
            sleep 0.02
        done
    ) &
    writer_pid=$!
}
writes_checked() {
    kill "$writer_pid" 2>/dev/null || true
    wait "$writer_pid" 2>/dev/null || true
    local listed acknowledged lost
    listed=$(curl -s "$(url 0)/v1/orgs/acme/tokens" -H "Authorization: Bearer $admin")
    acknowledged=$(wc -l <"$work/acknowledged")
    lost=$(echo "$listed" | python3 -c '
import json, sys
names = {t["name"] for t in json.load(sys.stdin)}
print(sum(1 for line in open(sys.argv[1]) if line.strip() not in names))' "$work/acknowledged")
    writes_line="$acknowledged writes acknowledged during phases a and b, $lost of them lost"
}

: >"$work/acknowledged"
say "phase a: one replica killed with SIGKILL and restarted"
writes a
load "$phase" kill
sleep $((phase / 4))
kill -9 "${replica[1]}"
sleep 2
start_replica 1
wait_ready 1
finish

say "phase b: rolling restart with SIGTERM, one replica at a time"
kill "$writer_pid" 2>/dev/null || true
wait "$writer_pid" 2>/dev/null || true
writes b
load $((phase + 10)) rolling
sleep 2
for i in 0 1 2; do
    kill -TERM "${replica[$i]}"
    wait "${replica[$i]}" || { say "replica $i did not exit 0"; exit 1; }
    start_replica "$i"
    wait_ready "$i"
    sleep 1
done
finish

writes_checked

say "phase c: PostgreSQL restarted"
load "$phase" postgres
sleep $((phase / 4))
as_postgres "$pgbin/pg_ctl" -D "$work/pg" -m fast -w restart \
    -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c max_connections=200" >/dev/null
finish

say "phase d: changes through one replica, invocations through another"
load "$phase" changes
changes=()
# until_on REPLICA CHECK...: milliseconds until CHECK (a command) succeeds
# against REPLICA.
invoke_on() {
    curl -s -X POST "$(url "$1")/v1/plugins/acme/hello/invoke/greet" \
        -H "Authorization: Bearer $2" -H 'Content-Type: application/json' -d '{"args": "x"}'
}
in_force() {
    local what=$1 started=$2 check=$3 i
    for i in 1 2; do
        until eval "$check $i"; do sleep 0.01; done
        changes+=("| $what | replica $i | $(elapsed_ms "$started") ms |")
    done
}
publish 1.1.0
started=$(now)
cli 0 approve acme/hello@1.1.0 --key admin.key >/dev/null
runs_1_1() { invoke_on "$1" "$admin" | grep -q '"version":"1.1.0"'; }
in_force "approve 1.1.0" "$started" runs_1_1
started=$(now)
cli 0 yank acme/hello@1.1.0 --reason soak >/dev/null
runs_1_0() { invoke_on "$1" "$admin" | grep -q '"version":"1.0.0"'; }
in_force "yank 1.1.0" "$started" runs_1_0
doomed=$(cli 0 token create --name soak-doomed --role invoker --json)
doomed_secret=$(echo "$doomed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["secret"])')
doomed_id=$(echo "$doomed" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for i in 1 2; do invoke_on "$i" "$doomed_secret" | grep -q Hello; done
started=$(now)
cli 0 token revoke "$doomed_id" >/dev/null
refused() { invoke_on "$1" "$doomed_secret" | grep -q token_revoked; }
in_force "revoke a token" "$started" refused
finish

echo
echo "Three replicas behind HAProxy, wrk -t2 -c16 invoking acme/hello ($(nproc) cores):"
echo
echo "| phase | requests | failed | failed by status | socket errors | p50 | p99 |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
echo
echo "Writes: $writes_line (tokens created through HAProxy, each looked up afterwards)."
echo
echo "Changes made through replica 0, in force on the others after:"
echo
echo "| change | on | after |"
echo "|---|---|---|"
printf '%s\n' "${changes[@]}"
