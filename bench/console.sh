#!/usr/bin/env bash
# Server-side render time of the admin console's pages with many tokens: a release
# server over SQLite seeded with N API tokens (default 10,000; rows cloned in SQL from
# one real token, with random ids and digests and creation dates spread over 60 days),
# then each page fetched R times over loopback by curl with a signed-in session.
# Prints the median, p95 and max of each page, the tokens page's weight (HTML + CSS +
# JS + icon), and appends them to bench/results/console.txt.
#
#   bench/console.sh [tokens (default 10000)] [requests per page (default 30)]
#
# Goal (PERFORMANCE.md): every page <= 50 ms with 10k tokens; tokens page < 100 KB.
set -euo pipefail
cd "$(dirname "$0")/.."

tokens=${1:-10000}
requests=${2:-30}
command -v sqlite3 >/dev/null || { echo "sqlite3 is not installed: apt-get install -y sqlite3" >&2; exit 2; }

cargo build --release --quiet -p tessera
bin=target/release/tessera
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export TESSERA_LOG=warn
data="$work/data"

echo 'correct horse battery' | "$bin" --data-dir "$data" admin create --email bench@example.com --password-stdin 2>/dev/null
"$bin" --data-dir "$data" resource create article --read find,findOne --write create,update,delete 2>/dev/null
"$bin" --data-dir "$data" token create --name "bench template" --type custom --permission article.find --lifespan 90d >/dev/null 2>&1
echo "seeding $tokens tokens…" >&2
sqlite3 "$data/tessera.db" <<SQL
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $tokens - 1)
INSERT INTO tokens
SELECT
  lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-7' || substr(lower(hex(randomblob(2))), 2)
    || '-8' || substr(lower(hex(randomblob(2))), 2) || '-' || lower(hex(randomblob(6))),
  t.kind, 'bench token ' || n.i, 'bench token ' || n.i, 'seeded for the console bench',
  t.token_type, t.permissions, t.project, t.owner_id,
  CASE WHEN n.i % 10 = 0 THEN 'disabled' ELSE 'active' END,
  t.lifespan, t.expires_at, t.api_version, t.hint, randomblob(32), NULL, NULL,
  t.created_at - (n.i % 60) * 86400000 - n.i, t.created_by, t.updated_at,
  CASE WHEN n.i % 3 = 0 THEN t.created_at - n.i * 1000 ELSE NULL END,
  t.rate_limit_requests, t.rate_limit_seconds, t.revision
FROM n, (SELECT * FROM tokens WHERE name = 'bench template') AS t;
-- Rows inserted by hand reach the name search only this way (migration 0006).
INSERT INTO token_names (token_names) VALUES ('rebuild');
SQL

TESSERA_LOG=info "$bin" --data-dir "$data" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 400); do
  grep -q 'listening on http://' "$work/serve.log" && break
  sleep 0.05
done
address=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
[ -n "$address" ] || { echo "server did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
curl -sf "$address/readyz" >/dev/null

jar="$work/jar"
curl -sf -c "$jar" -o /dev/null -d 'email=bench@example.com&password=correct+horse+battery' "$address/admin/login"
id=$(sqlite3 "$data/tessera.db" "SELECT id FROM tokens WHERE name = 'bench token 5000' OR name = 'bench template' ORDER BY name LIMIT 1")
pages=(
  "/admin/tokens"
  "/admin/tokens?q=token+42&status=active"
  "/admin/tokens?created=last-30-days&sort=-created_at"
  "/admin/tokens?status=disabled&sort=name"
  "/admin/tokens?sort=last_used_at"
  "/admin/tokens/new"
  "/admin/tokens/$id"
  "/admin/resources"
  "/admin/projects"
  "/admin/users"
  "/admin/roles"
  "/admin/audit"
  "/admin/profile"
  # The JSON API with the same query, for comparison: the store's share of the time.
  "/v1/tokens?status=disabled&sort=name"
  "/v1/tokens?q=token+42&status=active"
)
line="$(date -u +%FT%TZ) tokens=$tokens requests=$requests (ms: median p95 max)"
printf '%-60s %8s %8s %8s\n' page median p95 max
for page in "${pages[@]}"; do
  times=()
  for _ in $(seq 1 "$requests"); do
    code_time=$(curl -s -b "$jar" -o /dev/null -w '%{http_code} %{time_total}' "$address$page")
    [ "${code_time%% *}" = 200 ] || { echo "$page answered ${code_time%% *}" >&2; exit 1; }
    times+=("${code_time#* }")
  done
  read -r median p95 max < <(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1*1000}
    END {printf "%.1f %.1f %.1f\n", a[int((NR+1)/2)], a[int(NR*0.95+0.5)], a[NR]}')
  printf '%-60s %8s %8s %8s\n' "$page" "$median" "$p95" "$max"
  line+="; $page $median $p95 $max"
done

html=$(curl -s -b "$jar" "$address/admin/tokens" | wc -c)
assets=0
for asset in $(curl -s -b "$jar" "$address/admin/tokens" | grep -o '/admin/assets/[0-9a-f]*/[a-z.]*' | sort -u); do
  assets=$((assets + $(curl -s "$address$asset" | wc -c)))
done
weight=$(( (html + assets) / 1024 ))
echo "tokens page weight: HTML ${html} B + assets ${assets} B = ${weight} KiB (uncompressed)"
line+="; tokens page weight ${weight} KiB"
mkdir -p bench/results
echo "$line" >>bench/results/console.txt
