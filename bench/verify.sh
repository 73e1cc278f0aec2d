#!/usr/bin/env bash
# Load test of the verify hot path: POST /v1/verify against GET /healthz on the same
# release server, interleaved, bounded in time. Prints both req/s and their ratio and
# appends the figures to bench/results/verify.txt.
#
#   bench/verify.sh [seconds-per-run (default 10)] [rounds (default 3)] [connections (default 32)] [wrk threads (default 2)]
#
# wrk runs on the same two cores as the server (as in PERFORMANCE.md), so a POST's extra
# client work shows in the ratio; one wrk thread leaves the server more of the machine.
# BENCH_PIN=1 pins the server to CPU 0 and wrk to CPU 1 (taskset), separating the two.
#
# Needs wrk (apt-get install wrk). Goal (PERFORMANCE.md): verify >= 0.85 x healthz.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-10}
rounds=${2:-3}
connections=${3:-32}
threads=${4:-2}
server_cpu=(); client_cpu=()
if [ "${BENCH_PIN:-0}" = 1 ]; then server_cpu=(taskset -c 0); client_cpu=(taskset -c 1); fi
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
"$bin" --data-dir "$work/data" migrate 2>/dev/null
"$bin" --data-dir "$work/data" resource create article --read find,findOne --write create,update,delete 2>/dev/null
for i in $(seq 1 999); do
  "$bin" --data-dir "$work/data" token create --name "filler $i" --type read-only --lifespan 30d >/dev/null 2>&1 &
  if (( i % 50 == 0 )); then wait; fi
done
wait
token=$("$bin" --data-dir "$work/data" token create --name bench --type custom --permission article.find --lifespan 30d 2>/dev/null)

TESSERA_LOG=info "${server_cpu[@]}" "$bin" --data-dir "$work/data" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
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

ticks() { awk '{print $14+$15}' "/proc/$server_pid/stat"; }
hz=$(getconf CLK_TCK)
# One wrk run: prints "<req/s> <server CPU microseconds per request>".
run() {
  local before after output
  before=$(ticks)
  output=$("${client_cpu[@]}" wrk -t"$threads" -c"$connections" -d"${duration}s" "$@")
  after=$(ticks)
  awk -v b="$before" -v a="$after" -v hz="$hz" '
    /requests in/ {n=$1} /Requests\/sec/ {r=$2}
    END {printf "%s %.1f\n", r, (a-b)/hz*1e6/n}' <<<"$output"
}
health=(); verify=(); health_cpu=(); verify_cpu=()
for round in $(seq 1 "$rounds"); do
  read -r r c < <(run "$address/healthz"); health+=("$r"); health_cpu+=("$c")
  read -r r c < <(run -s "$work/verify.lua" "$address/v1/verify"); verify+=("$r"); verify_cpu+=("$c")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
h=$(median "${health[@]}"); v=$(median "${verify[@]}")
hc=$(median "${health_cpu[@]}"); vc=$(median "${verify_cpu[@]}")
ratio=$(awk -v v="$v" -v h="$h" 'BEGIN {printf "%.3f", v/h}')
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status")

line="$(date -u +%FT%TZ) tokens=1000 pinned=${BENCH_PIN:-0} wrk -t$threads -c$connections -d${duration}s x$rounds (medians): healthz=${h} req/s verify=${v} req/s ratio=${ratio}; server CPU per request: healthz=${hc}us verify=${vc}us; server RSS=${rss_kb}kB (runs healthz: ${health[*]}; verify: ${verify[*]})"
echo "$line"
mkdir -p bench/results
echo "$line" >> bench/results/verify.txt
