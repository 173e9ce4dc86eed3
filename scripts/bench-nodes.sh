#!/usr/bin/env bash
# One node vs two on one PostgreSQL: `cohort bench ingest --url` against each node.
set -euo pipefail
BIN=$(realpath "${BIN:-./target/release/cohort}")
PG=${PG:-postgres://postgres@127.0.0.1:55450}
SECS=${SECS:-10}
run_node() { # name port roles
  mkdir -p /tmp/nodes/$1
  (cd /tmp/nodes/$1 && COHORT_DATABASE__URL=$PG/$DB COHORT_SERVER__LISTEN=127.0.0.1:$2 COHORT_LOG__LEVEL=warn \
    COHORT_SERVER__ROLES="$3" exec "$BIN" serve) > /tmp/nodes/$1.log 2>&1 &
  NODES+=($!)
  for i in $(seq 100); do curl -sf http://127.0.0.1:$2/healthz >/dev/null && return; sleep 0.2; done; echo "node $1 did not start"; exit 1
}
# Only the nodes this script started: other `cohort serve` processes on the
# machine (a test run, another bench) are left alone.
NODES=()
stop_nodes() { [ ${#NODES[@]} -eq 0 ] || kill -TERM "${NODES[@]}" 2>/dev/null || true; wait "${NODES[@]}" 2>/dev/null || true; NODES=(); }
trap stop_nodes EXIT
rm -rf /tmp/nodes; mkdir -p /tmp/nodes
DB=nodes1; psql -q $PG/postgres -c "drop database if exists $DB" -c "create database $DB"
run_node a 18081 '["http","workers"]'
KEY=$(grep -o 'wk_[A-Za-z0-9_]*' /tmp/nodes/a.log | head -1)
echo "== one node"; "$BIN" bench ingest --url http://127.0.0.1:18081 --write-key "$KEY" --seconds $SECS | grep -E "ingest|ceiling"
stop_nodes
DB=nodes2; psql -q $PG/postgres -c "drop database if exists $DB" -c "create database $DB"
run_node a 18081 '["http","workers"]'
KEY=$(grep -o 'wk_[A-Za-z0-9_]*' /tmp/nodes/a.log | head -1)
run_node b 18082 '["http","workers"]'
echo "== two nodes (a client each, at once)"
"$BIN" bench ingest --url http://127.0.0.1:18081 --write-key "$KEY" --seconds $SECS --connections 8 | grep -E "ingest|ceiling" | sed 's/^/a: /' &
CLIENT_A=$!
"$BIN" bench ingest --url http://127.0.0.1:18082 --write-key "$KEY" --seconds $SECS --connections 8 | grep -E "ingest|ceiling" | sed 's/^/b: /'
wait $CLIENT_A
stop_nodes
