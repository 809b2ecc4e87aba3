#!/usr/bin/env bash
# One prepared check of hebb on a machine with a real GPU, needing only the release binary and
# a Vulkan loader (no Rust toolchain). Within about 10 minutes of GPU time it runs:
#   1. `hebb info` (adapters, the device policy, limits);
#   2. conformance: every family, then the golden cases (the authors' numbers);
#   3. `bench gemm`, `bench rules`, `bench roofline` and `bench train softhebb-cifar10`;
#   4. one full softhebb-cifar10 Hebbian epoch per layer (50,000 images; needs --cifar) and one
#      classifier epoch;
#   5. krotov-mnist on the bundled MNIST, its 200 Hebbian epochs, for as long as its budget lasts.
# Every step has a time budget: a training step past it gets SIGTERM, checkpoints and says how
# far it got (its metrics.json). Every output lands in one folder, with summary.md listing each
# step's command, exit status and wall time, and gpu_check.tar.gz holding it all, ready for
# BENCHMARKS.md and RESULTS.md.
#
# Usage: benches/gpu_check.sh [--quick] [--hebb BIN] [--out DIR] [--cifar DIR] [--debs DIR]
#   --quick      the same steps on tiny sizes (CI runs this on lavapipe, so the script cannot rot)
#   --hebb BIN   the hebb binary (default: target/release/hebb, else `hebb` on PATH)
#   --out DIR    output folder (default: gpu-check-<date>); must not exist yet
#   --cifar DIR  CIFAR-10 binary batches (cifar-10-batches-bin); without it step 4 is skipped
#   --debs DIR   Debian packages of the Vulkan loader (libvulkan1 ...) to unpack into / when
#                the machine has no libvulkan.so.1 (root only)
# Extra arguments after `--` go to every hebb command (e.g. `-- --backend vulkan`).
set -uo pipefail
cd "$(dirname "$0")/.."

quick=0
hebb=""
out=""
cifar=""
debs=""
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --hebb) hebb="$2"; shift ;;
    --out) out="$2"; shift ;;
    --cifar) cifar="$2"; shift ;;
    --debs) debs="$2"; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "gpu_check.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "$hebb" ]; then
  if [ -x target/release/hebb ]; then hebb=target/release/hebb; else hebb=$(command -v hebb || true); fi
fi
[ -n "$hebb" ] && [ -x "$hebb" ] || { echo "gpu_check.sh: no hebb binary (give --hebb BIN)" >&2; exit 2; }
out="${out:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}"
[ -e "$out" ] && { echo "gpu_check.sh: $out already exists; give another --out" >&2; exit 2; }
mkdir -p "$out"
if [ -n "$cifar" ] && [ ! -e "$cifar/data_batch_1.bin" ]; then
  echo "gpu_check.sh: --cifar $cifar holds no data_batch_1.bin (expected cifar-10-batches-bin)" >&2
  exit 2
fi

# The Vulkan loader, where the machine lacks one: unpack the given Debian packages.
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1'; then
  if [ -n "$debs" ]; then
    for f in "$debs"/*.deb; do dpkg -x "$f" /; done
    ldconfig
  else
    echo "note: no libvulkan.so.1 on this machine and no --debs given; hebb may find no adapter" >&2
  fi
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

summary="$out/summary.md"
{
  echo "# hebb GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "binary: \`$hebb\` ($("$hebb" --version 2>/dev/null || echo 'version unknown')), mode: $([ $quick = 1 ] && echo quick || echo full)"
  echo
  echo "| step | command | exit | wall s |"
  echo "|---|---|---|---|"
} > "$summary"
failures=0

# step NAME BUDGET_S CMD...: runs CMD with hebb's extra arguments, stdout+stderr into NAME.log;
# past BUDGET_S it gets SIGTERM (training checkpoints and stops), 30 s later SIGKILL.
step() {
  local name=$1 budget=$2; shift 2
  local start end rc
  echo "== $name: $*"
  start=$(date +%s.%N)
  timeout --signal=TERM --kill-after=30 "$budget" "$@" "${extra[@]}" > "$out/$name.log" 2>&1
  rc=$?
  end=$(date +%s.%N)
  local wall
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  local status=$rc
  if [ $rc = 124 ]; then status="124 (budget of ${budget} s reached)"; fi
  echo "| $name | \`$*\` | $status | $wall |" >> "$summary"
  tail -n 3 "$out/$name.log"
  # A training step stopped at its budget is expected in full mode; anything else non-zero fails.
  if [ $rc != 0 ] && ! { [ $rc = 124 ] && [ "${name#train-}" != "$name" ]; }; then
    failures=$((failures + 1))
  fi
}

if [ $quick = 1 ]; then
  step info 60 "$hebb" info
  step conformance 300 "$hebb" conformance --only pool,norm,layout --json "$out/conformance.json"
  step cases 300 "$hebb" conformance --cases kernels-tests/cases --json "$out/cases.json"
  step bench-gemm 120 "$hebb" bench gemm --sizes 64 --no-naive --samples 1 --sample-seconds 0.01 --json "$out/bench-gemm.json"
  step bench-rules 300 "$hebb" bench rules --only "model_6l conv2" --no-naive --samples 1 --sample-seconds 0.01 --json "$out/bench-rules.json"
  step bench-roofline 300 "$hebb" bench roofline --sizes 128 --only "model_6l conv2" --samples 1 --sample-seconds 0.01 --json "$out/bench-roofline.json"
  step bench-train 300 "$hebb" bench train default --steps 1
  if [ -n "$cifar" ]; then
    step train-softhebb-cifar10 600 "$hebb" train softhebb-cifar10 --seed 0 --data "$cifar" --limit 20 --epochs 1 --quiet --out "$out/softhebb-cifar10"
  fi
  step train-krotov-mnist 300 "$hebb" train krotov-mnist --limit 200 --hebbian-epochs 1 --epochs 1 --quiet --out "$out/krotov-mnist"
else
  step info 60 "$hebb" info
  step conformance 240 "$hebb" conformance --json "$out/conformance.json"
  step cases 120 "$hebb" conformance --cases kernels-tests/cases --json "$out/cases.json"
  step bench-gemm 120 "$hebb" bench gemm --json "$out/bench-gemm.json"
  step bench-rules 120 "$hebb" bench rules --json "$out/bench-rules.json"
  step bench-roofline 120 "$hebb" bench roofline --json "$out/bench-roofline.json"
  step bench-train 90 "$hebb" bench train softhebb-cifar10 --profile --json "$out/bench-train.json"
  if [ -n "$cifar" ]; then
    step train-softhebb-cifar10 300 "$hebb" train softhebb-cifar10 --seed 0 --data "$cifar" --epochs 1 --quiet --checkpoint-every 30 --out "$out/softhebb-cifar10"
  else
    echo "| train-softhebb-cifar10 | skipped: no --cifar | | |" >> "$summary"
  fi
  step train-krotov-mnist 180 "$hebb" train krotov-mnist --quiet --checkpoint-every 30 --out "$out/krotov-mnist"
fi

{
  echo
  echo "$failures step(s) failed."
  for run in "$out"/softhebb-cifar10 "$out"/krotov-mnist; do
    if [ -e "$run/metrics.json" ]; then
      echo
      echo "$(basename "$run"): \`metrics.json\` holds its epochs; last log lines:"
      echo '```'
      tail -n 4 "$out/train-$(basename "$run").log"
      echo '```'
    fi
  done
} >> "$summary"
# One archive of everything (the device tool brings back at most 8 files).
tar -czf "$out.tar.gz" -C "$(dirname "$out")" "$(basename "$out")" && mv "$out.tar.gz" "$out/gpu_check.tar.gz"
cat "$summary"
[ $failures = 0 ]
