#!/usr/bin/env bash
# Builds the fuzz targets and runs each, one after the other, for a bounded number of
# executions (default 10,000,000) or time, with libFuzzer via cargo-fuzz (nightly).
#
#   fuzz/run.sh                      # every target, 10,000,000 executions each
#   fuzz/run.sh 100000               # every target, 100,000 executions each
#   fuzz/run.sh 60s token config     # two targets, 60 seconds each (also 10m, 2h)
#
# Prints each target's executions and exec/s and appends a dated line per target to
# bench/results/fuzz.txt. The committed seeds (fuzz/seeds/<target>) are read, never
# written; what the fuzzer adds goes to fuzz/corpus/<target> and any crash to
# fuzz/artifacts/<target>, both ignored by git. Runs at nice 10, one target at a time.
# FUZZ_SANITIZER=address|none (default none: the product is safe Rust, so a sanitizer
# mostly halves the executions; AddressSanitizer stays one variable away).
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$PWD
RESULTS="$FUZZ_DIR/../bench/results/fuzz.txt"
ALL_TARGETS=(token request_bodies query_strings config route_rules)

budget=${1:-10000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

case "$budget" in
  *s) limit=(-max_total_time="${budget%s}"); what="${budget%s} seconds" ;;
  *m) limit=(-max_total_time=$(( ${budget%m} * 60 ))); what="${budget%m} minutes" ;;
  *h) limit=(-max_total_time=$(( ${budget%h} * 3600 ))); what="${budget%h} hours" ;;
  *[!0-9]*|'') echo "usage: $0 [RUNS|SECONDSs|MINUTESm|HOURSh] [TARGET...]" >&2; exit 2 ;;
  *) limit=(-runs="$budget"); what="$budget executions" ;;
esac
sanitizer=${FUZZ_SANITIZER:-none}

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
# -a: debug assertions and overflow checks, so an arithmetic overflow is a crash too.
fuzz=(nice -n 10 cargo +nightly fuzz)
flags=(-a --sanitizer "$sanitizer")
echo "== building ${targets[*]} (sanitizer: $sanitizer)"
for target in "${targets[@]}"; do
  "${fuzz[@]}" build "${flags[@]}" "$target"
done

commit=$(git -C "$FUZZ_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
status=0
mkdir -p "$(dirname "$RESULTS")"
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  # Longest input: a token in a sentence; a body, a query string, a config file.
  case "$target" in
    token) max_len=512 ;;
    query_strings|route_rules) max_len=2048 ;;
    *) max_len=4096 ;;
  esac
  log=$(mktemp)
  echo "== $target: $what"
  start=$(date +%s)
  {
    rc=0
    "${fuzz[@]}" run "${flags[@]}" "$target" "corpus/$target" "seeds/$target" -- \
      "${limit[@]}" -timeout=10 -max_len=$max_len -print_final_stats=1 || rc=$?
    echo "$rc" >"$log.rc"
  } 2>&1 | tee "$log" |
    { grep -E '^#[0-9]+.*(pulse|DONE)|^(==|SUMMARY|Done)|panicked|Test unit written' || true; }
  rc=$(cat "$log.rc")
  seconds=$(( $(date +%s) - start ))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  # Edges covered and inputs kept at the end of the run (libFuzzer's last status line).
  last=$(grep -E '^#[0-9]+.*(DONE|pulse)' "$log" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$last")
  if [ "$rc" -eq 0 ]; then
    outcome="no crash"
  elif grep -q 'libFuzzer: run interrupted' "$log"; then
    # A signal from outside (SIGINT, SIGTERM): not a finding, but not a full run either.
    status=1
    outcome="INTERRUPTED by a signal (exit $rc), no crash"
  else
    status=1
    grep -A8 -E 'panicked|ERROR: (libFuzzer|AddressSanitizer)' "$log" | head -40 || true
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    outcome="CRASH (exit $rc) ${artifact:-see the log}"
  fi
  line="$(date -u +%Y-%m-%dT%H:%M:%SZ) $target: ${runs:-?} executions in ${seconds}s, ${rate:-?} exec/s, peak RSS ${rss:-?} MB, ${cov:-?} edges, corpus ${corp:-?} inputs, $outcome (cargo-fuzz/libFuzzer, sanitizer $sanitizer, debug assertions, commit $commit, $(nproc) CPUs)"
  echo "$line"
  echo "$line" >> "$RESULTS"
  rm -f "$log" "$log.rc"
done
exit $status
