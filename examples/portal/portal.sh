#!/usr/bin/env sh
# What a portal backend does, with curl: list the catalog, read a function's
# JSON Schema, invoke it. Needs an invoker token:
#
#   WARDEN_URL=http://127.0.0.1:8080 WARDEN_TOKEN=$(cat warden-demo/portal-token) examples/portal/portal.sh
set -eu
: "${WARDEN_URL:=http://127.0.0.1:8080}"
: "${WARDEN_TOKEN:?set WARDEN_TOKEN to an invoker token (warden-demo/portal-token after warden demo)}"
ORG=${ORG:-acme}
auth="Authorization: Bearer $WARDEN_TOKEN"

echo "== the catalog of $ORG"
curl -sS --fail-with-body "$WARDEN_URL/v1/orgs/$ORG/plugins?limit=20" -H "$auth"
echo

echo "== acme/text-tools: its functions with their JSON Schemas"
curl -sS --fail-with-body "$WARDEN_URL/v1/plugins/$ORG/text-tools" -H "$auth"
echo

echo "== invoke text.count"
curl -sS --fail-with-body -X POST "$WARDEN_URL/v1/plugins/$ORG/text-tools/invoke/text.count" \
    -H "$auth" -H 'Content-Type: application/json' \
    -d '{"args": {"text": "the portal calls plugins"}}'
echo

echo "== a bad argument: 400 with the path that is wrong"
curl -sS -X POST "$WARDEN_URL/v1/plugins/$ORG/text-tools/invoke/text.convert-case" \
    -H "$auth" -H 'Content-Type: application/json' \
    -d '{"args": ["Hello", "shouting"]}'
echo
