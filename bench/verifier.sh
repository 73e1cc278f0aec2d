#!/usr/bin/env bash
# Criterion bench of the embedded verifier (crates/tessera-verifier/benches/cache_hit.rs):
# a cache hit (parse + checksum, keyed digest, lookup, freshness), a malformed string
# refused without I/O, and a miss (POST /v1/verify over loopback to a Tessera server
# in the same process). One thread calls, so a hit's throughput is per core.
# Appends the medians to bench/results/verifier.txt.
#
#   bench/verifier.sh
#
# Goal (PERFORMANCE.md): a cache hit >= 1,000,000 verifications/s per core.
set -euo pipefail
cd "$(dirname "$0")/.."

out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench -p tessera-verifier --bench cache_hit -- --noplot 2>/dev/null | tee "$out"

# "verifier/hit  time: [low median high]" then "thrpt: [low median high]".
median() { # bench name, field (time|thrpt)
  grep -A2 "^verifier/$1" "$out" | grep "$2:" | head -1 | sed -E 's/.*\[[^ ]+ [^ ]+ ([^ ]+ [^ ]+) .*/\1/' || true
}
line="$(date -u +%Y-%m-%dT%H:%M:%SZ) cores=$(nproc) (medians) hit: $(median hit time), $(median hit thrpt); malformed: $(median malformed time), $(median malformed thrpt); miss: $(median miss time), $(median miss thrpt)"
echo "$line" | tee -a bench/results/verifier.txt
