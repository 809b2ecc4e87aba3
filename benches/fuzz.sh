#!/usr/bin/env bash
# Coverage-guided fuzzing of every file parser (kernels-tests/fuzz/targets.rs) with cargo-fuzz
# (libFuzzer) on stable Rust, without sanitizers: a panic, an abort, a timeout (10 s) or more
# than 2 GB of memory for one input is a finding, saved under kernels-tests/fuzz/artifacts/.
#   benches/fuzz.sh [RUNS] [TARGET...]      (default 1000000 executions of each target)
# Each target starts from, and adds what it finds to, kernels-tests/fuzz/corpus/<target>/,
# which CI replays (kernels-tests/fuzz_corpus.rs). A summary line per target goes to
# runs/fuzz/summary.txt; full logs beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-1000000}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(idx cifar stl10 image recipe checkpoint case spiking_recipe)
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
dir=kernels-tests/fuzz
mkdir -p runs/fuzz
cargo fuzz build --fuzz-dir "$dir" --sanitizer none --release "${targets[@]:0:1}" >/dev/null 2>&1 || true
for t in "${targets[@]}"; do
  log="runs/fuzz/$t.log"
  new="runs/fuzz/new-$t"
  rm -rf "$new"; mkdir -p "$new"
  started=$(date +%s)
  # New inputs go to a scratch corpus; the saved one is read only, then merged (minimised).
  status=0
  cargo fuzz run --fuzz-dir "$dir" --sanitizer none --release "$t" "$new" "$dir/corpus/$t" -- \
    -runs="$runs" -timeout=10 -rss_limit_mb=2048 -max_len=32768 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  seconds=$(( $(date +%s) - started ))
  # Keep the smallest set of inputs that covers what the saved and the new inputs cover.
  merged="runs/fuzz/merged-$t"
  rm -rf "$merged"; mkdir -p "$merged"
  if cargo fuzz run --fuzz-dir "$dir" --sanitizer none --release "$t" "$merged" "$dir/corpus/$t" "$new" \
       -- -merge=1 -max_len=32768 >>"$log" 2>&1; then
    find "$dir/corpus/$t" -type f ! -name 'crash-*' -delete
    cp "$merged"/* "$dir/corpus/$t/"
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  verdict=$([ "$status" -eq 0 ] && echo "no crash" || echo "FINDING (exit $status), see $log")
  echo "$t: ${execs:-?} executions in ${seconds}s, ${cov:-cov ?}, $verdict" | tee -a runs/fuzz/summary.txt
done
