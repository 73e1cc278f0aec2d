#!/usr/bin/env bash
# Load test of the verify hot path: POST /v1/verify against GET /healthz on the same
# release server, interleaved, bounded in time. Prints both req/s and their ratio and
# appends the figures to bench/results/verify.txt.
#
#   bench/verify.sh [seconds-per-run (default 10)] [rounds (default 3)] [connections (default 32)]
#
# Needs wrk (apt-get install wrk). Goal (PERFORMANCE.md): verify >= 0.85 x healthz.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10}
rounds=${2:-3}
connections=${3:-32}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 2; }

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
"$bin" --data-dir "$work/data" resource create article --read find,findOne --write create,update,delete 2>/dev/null
for i in $(seq 1 999); do
  "$bin" --data-dir "$work/data" token create --name "filler $i" --type read-only --lifespan 30d >/dev/null 2>&1 &
  (( i % 50 == 0 )) && wait
done
wait
token=$("$bin" --data-dir "$work/data" token create --name bench --type custom --permission article.find --lifespan 30d 2>/dev/null)

"$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
server_pid=$!
for _ in $(seq 1 200); do
  grep -q 'listening on http://' "$work/serve.log" && break
  sleep 0.05
done
address=$(grep -o 'http://[0-9.:]*' "$work/serve.log" | head -1)
[ -n "$address" ] || { echo "server did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }
curl -sf "$address/readyz" >/dev/null

cat >"$work/verify.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"token":"$token","permission":"article.find"}'
LUA
# The answer must be valid, or we would be measuring the refusal path.
curl -sf -d "{\"token\":\"$token\",\"permission\":\"article.find\"}" "$address/v1/verify" | grep -q '"valid":true'

rate() { awk '/Requests\/sec/ {print $2}'; }
health=(); verify=()
for round in $(seq 1 "$rounds"); do
  health+=("$(wrk -t2 -c"$connections" -d"${duration}s" "$address/healthz" | rate)")
  verify+=("$(wrk -t2 -c"$connections" -d"${duration}s" -s "$work/verify.lua" "$address/v1/verify" | rate)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
h=$(median "${health[@]}"); v=$(median "${verify[@]}")
ratio=$(awk -v v="$v" -v h="$h" 'BEGIN {printf "%.3f", v/h}')
cpu_seconds=$(awk '{print ($14+$15)/100}' "/proc/$server_pid/stat")

line="$(date -u +%FT%TZ) tokens=1000 wrk -t2 -c$connections -d${duration}s x$rounds: healthz=${h} req/s verify=${v} req/s ratio=${ratio} (runs healthz: ${health[*]}; verify: ${verify[*]}) server_cpu_total=${cpu_seconds}s"
echo "$line"
mkdir -p bench/results
echo "$line" >> bench/results/verify.txt
