#!/usr/bin/env bash
# Memory of failed logins, bounded in time: a release server on a free 127.0.0.1 port
# with a temporary data dir and 64 administrators (made with the CLI) takes `rounds`
# bursts of `concurrency` simultaneous wrong-password logins, one per account, each from
# its own client address (the server trusts 127.0.0.1 as a proxy and the bench sends
# X-Forwarded-For), so neither the per-account nor the per-address throttle answers
# before argon2 runs: every 401 is one argon2 check. Reads VmRSS (and the peak, VmHWM)
# from /proc/<pid>/status before and after, prints them and appends a dated line to
# bench/results/login_memory.txt.
#
#   bench/login_memory.sh [rounds (default 3, at most 4)] [concurrency (default 64)]
#
# Needs python3 and curl. Goal: RSS after the bursts <= 64 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
concurrency=${2:-64}
# Each round costs every account one failure: stay under the 5 per account.
(( rounds >= 1 && rounds <= 4 )) || { echo "rounds must be 1 to 4" >&2; exit 2; }
(( concurrency >= 1 && concurrency <= 250 )) || { echo "concurrency must be 1 to 250" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

cargo build --release --quiet -p tessera
bin=${CARGO_TARGET_DIR:-target}/release/tessera
work=$(mktemp -d)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
export TESSERA_LOG=warn
data="$work/data"

# The accounts, eight CLI processes at a time.
for i in $(seq 1 "$concurrency"); do
  echo 'the right password, not sent' |
    "$bin" --data-dir "$data" admin create --email "bench$i@example.com" --password-stdin >/dev/null 2>&1 &
  if (( i % 8 == 0 )); then wait; fi
done
wait

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TESSERA_TRUSTED_PROXIES=127.0.0.1 "$bin" --data-dir "$data" serve --listen "127.0.0.1:$port" 2>"$work/serve.log" &
server_pid=$!
address="http://127.0.0.1:$port"
for _ in $(seq 1 200); do curl -sf "$address/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -sf "$address/readyz" >/dev/null

status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$server_pid/status"; }
rss_before=$(status VmRSS)

# Each burst: `concurrency` threads released together, login i for account i from
# address 198.18.<round>.<i>. Prints the answers by status and the wall time.
summary=$(python3 - "$address" "$rounds" "$concurrency" <<'PY'
import json, sys, threading, time, urllib.error, urllib.request
from collections import Counter
address, rounds, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
statuses, times = Counter(), []
def login(r, i, barrier):
    body = json.dumps({"email": f"bench{i}@example.com", "password": f"wrong password {r}"}).encode()
    request = urllib.request.Request(address + "/v1/auth/login", data=body, method="POST", headers={
        "Content-Type": "application/json",
        "X-Forwarded-For": f"198.18.{r}.{i}"})
    barrier.wait()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            code = response.status
    except urllib.error.HTTPError as error:
        code = error.code
    except Exception:
        code = "error"
    statuses[code] += 1
for r in range(rounds):
    barrier = threading.Barrier(concurrency)
    threads = [threading.Thread(target=login, args=(r, i, barrier)) for i in range(1, concurrency + 1)]
    start = time.monotonic()
    for t in threads: t.start()
    for t in threads: t.join()
    times.append(time.monotonic() - start)
print(" ".join(f"{k}={v}" for k, v in sorted(statuses.items(), key=str)),
      "burst_seconds=" + ",".join(f"{t:.2f}" for t in times))
PY
)
sleep 1
rss_after=$(status VmRSS); peak=$(status VmHWM)
checks=$(sed -n 's/.*\b401=\([0-9]*\).*/\1/p' <<<"$summary"); checks=${checks:-0}
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }
line="$(date -u +%FT%TZ) $(git describe --always --dirty 2>/dev/null || echo "?") cpus=$(nproc) ${rounds}x${concurrency} concurrent wrong-password logins: argon2_checks=$checks (answers: $summary) VmRSS before=$(mb "$rss_before") MB after=$(mb "$rss_after") MB peak=$(mb "$peak") MB"
echo "$line"
mkdir -p bench/results
echo "$line" >>bench/results/login_memory.txt
if (( checks != rounds * concurrency )); then
  echo "warning: only $checks of $((rounds * concurrency)) logins ran argon2 (see the answers)" >&2
fi
