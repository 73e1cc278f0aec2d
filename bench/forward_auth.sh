#!/usr/bin/env bash
# Load test of forward-auth, bounded in time, on a release server with 1,000 tokens and
# the example route rules (docs/gateways/tessera.toml):
#  1. GET /v1/forward-auth (valid token, nginx's headers) vs GET /healthz, same server,
#     interleaved;
#  2. nginx -> auth_request -> Tessera -> upstream vs the same nginx -> upstream without
#     auth_request (the upstream is an nginx `return 200`), from docs/gateways/nginx.conf.
# Prints medians and ratios, and the CPU each request costs Tessera and nginx (from
# /proc, so it holds however noisy the box is), and appends them to
# bench/results/forward_auth.txt.
#
#   bench/forward_auth.sh [seconds-per-run (default 8)] [rounds (default 3)] [connections (default 32)]
#
# Needs wrk and nginx (apt-get install wrk nginx).
# Goals (PERFORMANCE.md): forward-auth >= 0.90 x healthz; nginx with auth >= 0.70 x without.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-8}
rounds=${2:-3}
connections=${3:-32}
command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 2; }
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || { echo "nginx is not installed: apt-get install -y nginx" >&2; exit 2; }

cargo build --release --quiet -p tessera
bin=${CARGO_TARGET_DIR:-target}/release/tessera
work=$(mktemp -d)
server_pid=; nginx_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export TESSERA_LOG=warn
data="$work/data"
cp docs/gateways/tessera.toml "$work/tessera.toml"

"$bin" --data-dir "$data" migrate 2>/dev/null
"$bin" --data-dir "$data" resource create article --read find,findOne --write create,update,delete 2>/dev/null
for i in $(seq 1 999); do
  "$bin" --data-dir "$data" token create --name "filler $i" --type read-only --lifespan 30d >/dev/null 2>&1 &
  if (( i % 50 == 0 )); then wait; fi
done
wait
token=$("$bin" --data-dir "$data" token create --name bench --type read-only --lifespan 30d 2>/dev/null)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tessera_port=$(free_port); gateway_port=$(free_port); plain_port=$(free_port); api_port=$(free_port)
TESSERA_LOG=warn "$bin" --config "$work/tessera.toml" --data-dir "$data" serve --listen "127.0.0.1:$tessera_port" 2>"$work/serve.log" &
server_pid=$!
address="http://127.0.0.1:$tessera_port"
for _ in $(seq 1 200); do curl -sf "$address/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "$address/readyz" >/dev/null

# The example nginx config, on bench ports, plus the same proxy without auth_request
# and a trivial upstream.
mkdir -p "$work/nginx/tmp"
sed -e "s/127.0.0.1:8080/127.0.0.1:$tessera_port/; s/127.0.0.1:3000/127.0.0.1:$api_port/; s/listen 127.0.0.1:8000;/listen 127.0.0.1:$gateway_port;/" \
  -e 's/^worker_processes 1;/worker_processes 1;\nworker_rlimit_nofile 4096;/' \
  docs/gateways/nginx.conf | sed '$d' >"$work/nginx/nginx.conf"
cat >>"$work/nginx/nginx.conf" <<NGINX
    server {
        listen 127.0.0.1:$plain_port;
        location / {
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://api;
        }
    }
    server {
        listen 127.0.0.1:$api_port;
        location / { return 200 "ok\n"; }
    }
}
NGINX
[ "$(id -u)" = 0 ] && sed -i '1i user root;' "$work/nginx/nginx.conf"
"$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx.log" &
nginx_pid=$!
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$plain_port/" && break; sleep 0.05; done

# Sanity: the answers we measure are the allowed ones.
curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'X-Original-Method: GET' \
  -H 'X-Original-URI: /api/articles/1' "$address/v1/forward-auth"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$gateway_port/api/articles/1")" = 200 ]

hz=$(getconf CLK_TCK)
# CPU ticks used so far by Tessera, and by nginx (master and workers).
ticks() { awk '{s+=$14+$15} END {print s+0}' "/proc/$server_pid/stat"; }
nginx_ticks() {
  local pids; pids="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
  for pid in $pids; do cat "/proc/$pid/stat" 2>/dev/null; done | awk '{s+=$14+$15} END {print s+0}'
}
# One wrk run: "<req/s> <Tessera CPU us per request> <nginx CPU us per request>".
run() {
  local t0 n0 t1 n1 output
  t0=$(ticks); n0=$(nginx_ticks)
  output=$(wrk -t2 -c"$connections" -d"${duration}s" "$@")
  t1=$(ticks); n1=$(nginx_ticks)
  awk -v t="$((t1 - t0))" -v n="$((n1 - n0))" -v hz="$hz" '
    /requests in/ {c=$1} /Requests\/sec/ {r=$2}
    END {printf "%s %.1f %.1f\n", r, t/hz*1e6/c, n/hz*1e6/c}' <<<"$output"
}
health=(); forward=(); plain=(); gated=(); forward_cpu=(); plain_cpu=(); gated_cpu=(); gated_tessera=()
for _ in $(seq 1 "$rounds"); do
  read -r r _ _ < <(run "$address/healthz"); health+=("$r")
  read -r r c _ < <(run -H "Authorization: Bearer $token" -H 'X-Original-Method: GET' \
    -H 'X-Original-URI: /api/articles/1' "$address/v1/forward-auth")
  forward+=("$r"); forward_cpu+=("$c")
  read -r r _ n < <(run "http://127.0.0.1:$plain_port/api/articles/1"); plain+=("$r"); plain_cpu+=("$n")
  read -r r c n < <(run -H "Authorization: Bearer $token" "http://127.0.0.1:$gateway_port/api/articles/1")
  gated+=("$r"); gated_cpu+=("$n"); gated_tessera+=("$c")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
h=$(median "${health[@]}"); f=$(median "${forward[@]}"); p=$(median "${plain[@]}"); g=$(median "${gated[@]}")
ratio_fa=$(awk -v a="$f" -v b="$h" 'BEGIN {printf "%.3f", a/b}')
ratio_ng=$(awk -v a="$g" -v b="$p" 'BEGIN {printf "%.3f", a/b}')
fc=$(median "${forward_cpu[@]}"); pc=$(median "${plain_cpu[@]}"); gc=$(median "${gated_cpu[@]}"); gt=$(median "${gated_tessera[@]}")
line="$(date -u +%FT%TZ) tokens=1000 wrk -t2 -c$connections -d${duration}s x$rounds (medians): healthz=$h forward-auth=$f ratio=$ratio_fa (Tessera CPU ${fc}us/request); nginx plain=$p nginx+auth_request=$g ratio=$ratio_ng (CPU per request: plain nginx ${pc}us; gated nginx ${gc}us + Tessera ${gt}us) (runs healthz: ${health[*]}; forward-auth: ${forward[*]}; plain: ${plain[*]}; gated: ${gated[*]})"
echo "$line"
mkdir -p bench/results
echo "$line" >>bench/results/forward_auth.txt
