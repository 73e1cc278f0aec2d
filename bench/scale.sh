#!/usr/bin/env bash
# Tessera at scale: for each size, seed a fresh installation with `tessera token import`
# (bench/import.sh, the same generated tokens: read-only, 90 days, an external id and a
# small metadata object), start `tessera serve` (release build) and measure
#   - start-up: from spawning the server to the first `/readyz` 200;
#   - RSS after start (VmRSS from /proc, once ready) and, for every size after the
#     first, the index's bytes per token: (RSS - RSS of the first size) / (tokens - first);
#   - POST /v1/verify req/s with wrk (a valid imported token, with a permission);
#   - p50/p99 of GET /v1/tokens for each list filter (wrk --latency, one connection,
#     signed in as an admin with the session cookie; n is how many requests were timed:
#     a filter slower than --seconds is timed once or twice). The names are "customer
#     N", N in import order, so at a million `q=r 10` matches 11,111 tokens among the
#     oldest 11% and `q=r 1` 111,111 old ones: the newest-first page must reach far back.
# One line per size and backend is appended to bench/results/scale.txt.
#
#   bench/scale.sh [--postgres URL] [--sizes "1000 1000000"] [--seconds 5] [--keep DIR]
#
# --keep DIR keeps each size's installation (DIR/<backend>-<size>; on PostgreSQL also the
# schema bench_scale_keep_<size>, not dropped) and, when one is there already, measures
# it again instead of importing (to compare builds with BENCH_BIN on the same data).
# Drop such a schema by hand when done.
# --postgres URL (or BENCH_POSTGRES_URL) runs on PostgreSQL, each size in a fresh schema
# this script creates and drops; without it, SQLite in a temp dir. BENCH_BIN names a
# tessera binary already built (to compare builds). Bounded: each import runs under a
# 30-minute timeout, start-up under 5 minutes, every wrk run for --seconds.
# Needs wrk, curl, python3 (and psql for PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."

postgres=${BENCH_POSTGRES_URL:-}
sizes="1000 1000000"
seconds=5
keep=
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) postgres=$2; shift 2;;
    --sizes) sizes=$2; shift 2;;
    --seconds) seconds=$2; shift 2;;
    --keep) keep=$2; shift 2;;
    *) echo "usage: bench/scale.sh [--postgres URL] [--sizes \"1000 1000000\"] [--seconds 5] [--keep DIR]" >&2; exit 2;;
  esac
done
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 2; }

given_bin=${BENCH_BIN:-}
bin=$given_bin
if [ -z "$bin" ]; then
  cargo build --release --quiet -p tessera
  bin=${CARGO_TARGET_DIR:-target}/release/tessera
fi
export BENCH_BIN=$bin
export TESSERA_LOG=warn
export BENCH_IMPORT_TIMEOUT=1800
backend=sqlite; [ -n "$postgres" ] && backend=postgres

root=$(mktemp -d)
server_pid=
schema=
stop_server() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  server_pid=
}
drop_schema() {
  if [ -n "$schema" ]; then psql "$postgres" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true; fi
  schema=
}
# A kept schema (--keep) stays, also when a measurement fails part way.
cleanup() { stop_server; [ -n "$keep" ] || drop_schema; rm -rf "$root"; }
trap cleanup EXIT

mkdir -p bench/results
first_rss=; first_size=
for size in $sizes; do
  work="$root/$size"
  [ -n "$keep" ] && work="$keep/$backend-$size"
  reused=
  args=(--data-dir "$work/data")
  if [ "$backend" = postgres ]; then
    schema="bench_scale_$$_$size"
    [ -n "$keep" ] && schema="bench_scale_keep_$size"
    separator='?'; case "$postgres" in *\?*) separator='&';; esac
    args+=(--database-url "${postgres}${separator}options=-c%20search_path%3D$schema")
    if [ -n "$keep" ] && [ -s "$work/secrets.jsonl" ]; then
      reused=1
    else
      BENCH_KEEP="$work" BENCH_SCHEMA="$schema" BENCH_POSTGRES_URL="$postgres" bench/import.sh "$size" >/dev/null
    fi
  elif [ -n "$keep" ] && [ -s "$work/secrets.jsonl" ]; then
    reused=1
  else
    BENCH_KEEP="$work" BENCH_POSTGRES_URL= bench/import.sh "$size" >/dev/null
  fi
  if [ -z "$reused" ]; then
    "$bin" "${args[@]}" resource create article --read find,findOne --write create,update,delete >/dev/null 2>&1
    printf 'bench-password-1234\n' | "$bin" "${args[@]}" admin create --email bench@example.com --password-stdin >/dev/null 2>&1
  fi
  token=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["token"])' "$work/secrets.jsonl")

  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  address="http://127.0.0.1:$port"
  start=$(date +%s%N)
  TESSERA_LOG=info "$bin" "${args[@]}" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
  server_pid=$!
  ready=
  for _ in $(seq 1 6000); do
    if curl -sf -o /dev/null "$address/readyz"; then ready=1; break; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$ready" ] || { echo "server did not become ready:" >&2; tail -20 "$work/serve.log" >&2; exit 1; }
  startup=$(python3 -c "print(f'{($(date +%s%N) - $start) / 1e9:.2f}')")
  sleep 1
  rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")
  hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
  per_token=
  if [ -n "$first_rss" ]; then
    per_token=$(( (rss_kb - first_rss) * 1024 / (size - first_size) ))
  else
    first_rss=$rss_kb; first_size=$size
  fi

  body="{\"token\":\"$token\",\"permission\":\"article.find\"}"
  curl -sf -d "$body" "$address/v1/verify" | grep -q '"valid":true' \
    || { echo "the imported token does not verify" >&2; exit 1; }
  cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$body'
LUA
  verify=$(wrk -t2 -c32 -d"${seconds}s" -s "$work/verify.lua" "$address/v1/verify" | awk '/Requests\/sec/ {print $2}')
  rss_after_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")

  cookie=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"email":"bench@example.com","password":"bench-password-1234"}' "$address/v1/auth/login" \
    | sed -n 's/^[Ss]et-[Cc]ookie: \(tessera_session=[^;]*\).*/\1/p')
  [ -n "$cookie" ] || { echo "could not sign in" >&2; exit 1; }
  lists=""
  for filter in "q=customer%2012345" "q=customer" "q=12" "q=r%2010" "q=r%201" "status=active" "status=disabled" \
      "status=expired" "created=last-7-days" "created=older-than-30-days" "type=read-only" \
      "external_id=cus_$((size / 2))" ""; do
    curl -sf -o /dev/null -H "Cookie: $cookie" "$address/v1/tokens?$filter" \
      || { echo "GET /v1/tokens?$filter failed" >&2; exit 1; }
    # wrk's default 2 s timeout would drop (and not time) a query slower than that.
    read -r p50 p99 n < <(wrk -t1 -c1 -d"${seconds}s" --timeout 30s --latency -H "Cookie: $cookie" "$address/v1/tokens?$filter" \
      | awk '$1 == "50%" {a=$2} $1 == "99%" {b=$2} /requests in/ {n=$1} END {print a, b, n}')
    lists+=" [${filter:-none}] p50=$p50 p99=$p99 n=$n;"
  done
  stop_server

  line="$(date -u +%FT%TZ) scale backend=$backend tokens=$size${reused:+ (reused installation)} bin=$("$bin" --version 2>/dev/null | tr ' ' '-')@$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo +dirty)${given_bin:+ BENCH_BIN=$given_bin} cpus=$(nproc) load=$(cut -d' ' -f1 /proc/loadavg): startup_to_ready_s=$startup rss_after_start_mb=$((rss_kb / 1024)) peak_rss_mb=$((hwm_kb / 1024))${per_token:+ index_bytes_per_token=$per_token} verify_wrk_t2_c32_${seconds}s=${verify} req/s rss_after_verify_mb=$((rss_after_kb / 1024)); GET /v1/tokens (wrk -c1 --latency):$lists"
  echo "$line"
  echo "$line" >> bench/results/scale.txt
  if [ -n "$keep" ]; then schema=; else drop_schema; rm -rf "$work"; fi
done
