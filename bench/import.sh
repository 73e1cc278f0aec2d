#!/usr/bin/env bash
# Bulk creation: `tessera token import` of N generated tokens into a fresh installation
# (SQLite in a temp dir, or the PostgreSQL database BENCH_POSTGRES_URL names, in a fresh
# schema), release build. Prints the wall time, tokens per second and the resulting
# database size, and appends them to bench/results/import.txt.
#
#   bench/import.sh [tokens (default 1000000)] [batch size (default 1000)]
#
# BENCH_KEEP=DIR keeps the installation for another bench (bench/scale.sh): DIR holds
# data/, tokens.jsonl and secrets.jsonl and is not removed; with PostgreSQL the schema
# is BENCH_SCHEMA (created here, dropped by the caller).
#
# Each line is a read-only token with a lifespan, an external id and a small metadata
# object, as a team giving every customer a token would import them. Bounded: the
# import runs under a timeout of 15 minutes (BENCH_IMPORT_TIMEOUT seconds).
set -euo pipefail
cd "$(dirname "$0")/.."

count=${1:-1000000}
batch=${2:-1000}
# BENCH_BIN names a tessera binary already built (to compare builds); else a release
# build of this checkout.
bin=${BENCH_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet -p tessera
  bin=${CARGO_TARGET_DIR:-target}/release/tessera
fi
keep=${BENCH_KEEP:-}
work=${keep:-$(mktemp -d)}
mkdir -p "$work"
schema=
cleanup() {
  [ -n "$keep" ] && return
  if [ -n "$schema" ]; then psql "$BENCH_POSTGRES_URL" -qc "DROP SCHEMA $schema CASCADE" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
export TESSERA_LOG=warn

backend=sqlite
args=(--data-dir "$work/data")
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  backend=postgres
  schema=${BENCH_SCHEMA:-bench_import_$$}
  psql "$BENCH_POSTGRES_URL" -qc "CREATE SCHEMA $schema" >/dev/null
  separator='?'; case "$BENCH_POSTGRES_URL" in *\?*) separator='&';; esac
  args+=(--database-url "${BENCH_POSTGRES_URL}${separator}options=-c%20search_path%3D$schema")
fi
"$bin" "${args[@]}" migrate >/dev/null 2>&1

python3 - "$count" > "$work/tokens.jsonl" <<'PY'
import json, sys
for n in range(int(sys.argv[1])):
    print(json.dumps({"name": f"customer {n}", "type": "read-only", "lifespan": "90d",
                      "external_id": f"cus_{n}", "metadata": {"plan": "pro"}}))
PY

start=$(date +%s.%N)
timeout "${BENCH_IMPORT_TIMEOUT:-900}" "$bin" "${args[@]}" token import "$work/tokens.jsonl" --batch-size "$batch" \
  --out "$work/secrets.jsonl" 2>"$work/import.log"
end=$(date +%s.%N)
imported=$(wc -l < "$work/secrets.jsonl")
seconds=$(python3 -c "print(f'{$end - $start:.1f}')")
rate=$(python3 -c "print(int($imported / ($end - $start)))")
size=
if [ "$backend" = sqlite ]; then size=$(du -sh "$work/data" | cut -f1); fi

line="$(date -u +%FT%TZ) import backend=$backend tokens=$imported batch=$batch seconds=$seconds tokens_per_second=$rate${size:+ data_dir=$size} cpus=$(nproc)"
echo "$line"
mkdir -p bench/results
echo "$line" >> bench/results/import.txt
[ "$imported" = "$count" ] || { echo "imported $imported of $count" >&2; cat "$work/import.log" >&2; exit 1; }
