#!/usr/bin/env bash
# Change propagation across a two-node cluster on PostgreSQL: N tokens are created on
# node A, then each is disabled on A and node B's POST /v1/verify is polled until it
# refuses the token. Prints p50/p99/max of the delay (from the disable's 2xx on A to the
# first refusal on B, and from sending the disable) and appends the figures to
# bench/results/propagation.txt. Stops by itself (each change is given 5 s at most).
#
#   bench/propagation.sh [changes (default 1000)] [client threads (default 4)]
#
# PostgreSQL: TESSERA_BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test);
# the run gets a fresh schema, dropped at the end. Needs psql and python3.
# Goal: every change within 1 s (the SPEC bound); p99 <= 250 ms.
set -euo pipefail
cd "$(dirname "$0")/.."

changes=${1:-1000}
threads=${2:-4}
base_url=${TESSERA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
for tool in psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 2; }
done

cargo build --release --quiet -p tessera
bin=$PWD/target/release/tessera
work=$(mktemp -d)
schema="tessera_bench_$(od -An -N8 -tx8 /dev/urandom | tr -d ' \n')"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  psql "$base_url" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$base_url" -qc "CREATE SCHEMA $schema" >/dev/null
case $base_url in *\?*) sep='&' ;; *) sep='?' ;; esac
url="${base_url}${sep}options=-c%20search_path%3D${schema}"

export TESSERA_LOG=warn
tessera() { "$bin" --data-dir "$work/data" --database-url "$url" "$@"; }
email=bench@example.com
printf 'bench password %s\n' "$schema" >"$work/password"
tessera admin create --email "$email" --password-stdin <"$work/password" 2>/dev/null

# Starts a node logging to $1; sets $address to its http://host:port.
start_node() {
  local log=$1
  # Each change makes B refuse at least once from this one address: lift the failure
  # throttle, or B would answer `rate_limited` after 600 refusals a minute.
  TESSERA_LOG=info,sqlx=warn TESSERA_VERIFY_FAILURES_PER_MINUTE=100000000 "$bin" --data-dir "$work/data" --database-url "$url" \
    serve --listen 127.0.0.1:0 2>"$log" &
  pids+=($!)
  address=
  for _ in $(seq 1 200); do
    grep -q 'listening on http://' "$log" && break
    sleep 0.05
  done
  address=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -1 | sed 's/listening on //')
  [ -n "$address" ] || { echo "node did not start:" >&2; cat "$log" >&2; exit 1; }
  curl -sf "$address/readyz" >/dev/null
}
start_node "$work/a.log"; node_a=$address
start_node "$work/b.log"; node_b=$address
echo "node A $node_a, node B $node_b, schema $schema; $changes changes, $threads client threads" >&2

if ! summary=$(python3 -B bench/propagation.py "$node_a" "$node_b" "$email" "$work/password" "$changes" "$threads"); then
  echo "the benchmark failed; node logs:" >&2
  tail -n 20 "$work/a.log" "$work/b.log" >&2
  exit 1
fi

line="$(date -u +%FT%TZ) two nodes, PostgreSQL $(psql "$base_url" -Atc 'SHOW server_version'), default change_poll_milliseconds (LISTEN/NOTIFY wake-ups): $summary"
echo "$line"
mkdir -p bench/results
echo "$line" >>bench/results/propagation.txt
