#!/usr/bin/env bash
# The token list's queries as they were before the count limit (an exact count, and a
# name search always narrowed to its FTS5 candidates) for each filter, timed by sqlite3
# against a Tessera SQLite database, e.g. one that `tessera token import` filled with a
# million tokens (see bench/import.sh for the input it generates). It shows why the
# list now counts only to 10,000; bench/scale.sh times `GET /v1/tokens` as it runs now,
# over HTTP, on both backends.
#
#   bench/list-queries.sh DATA_DIR
#
# Prints each query's wall time and appends them to bench/results/list-queries.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:?usage: bench/list-queries.sh DATA_DIR}/tessera.db
now=$(date +%s%3N)
week=$((now - 7 * 86400000))
tokens=$(sqlite3 "$db" "SELECT COUNT(*) FROM tokens")
fts="tokens.rowid IN (SELECT rowid FROM token_names WHERE token_names MATCH"
page="ORDER BY created_at DESC, id DESC LIMIT 51"
queries=(
  "q=customer 12345|kind='api' AND name_key LIKE '%customer 12345%' ESCAPE '\\' AND $fts '\"customer 12345\"')"
  "q=customer (every row)|kind='api' AND name_key LIKE '%customer%' ESCAPE '\\' AND $fts '\"customer\"')"
  "q=12 (short: no trigram)|kind='api' AND name_key LIKE '%12%' ESCAPE '\\'"
  "status=active|kind='api' AND status='active' AND (expires_at IS NULL OR expires_at > $now)"
  "status=disabled|kind='api' AND status='disabled'"
  "status=expired|kind='api' AND expires_at <= $now"
  "created last 7 days|kind='api' AND created_at >= $week"
  "type=read-only|kind='api' AND token_type='read-only'"
  "external_id=cus_500000|kind='api' AND external_id='cus_500000'"
)
mkdir -p bench/results
for entry in "${queries[@]}"; do
  label=${entry%%|*}
  where=${entry#*|}
  for what in count page; do
    if [ "$what" = count ]; then sql="SELECT COUNT(*) FROM tokens WHERE $where;"
    else sql="SELECT id FROM tokens WHERE $where $page;"; fi
    start=$(date +%s%N)
    sqlite3 "$db" "$sql" >/dev/null
    ms=$(( ($(date +%s%N) - start) / 1000000 ))
    line="$(date -u +%FT%TZ) list-sql backend=sqlite tokens=$tokens filter=\"$label\" query=$what ms=$ms"
    echo "$line"
    echo "$line" >> bench/results/list-queries.txt
  done
done
