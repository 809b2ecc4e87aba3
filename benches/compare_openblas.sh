#!/usr/bin/env bash
# One run, one machine: numpy/OpenBLAS sgemm, then `hebb bench gemm` on the same shapes, then
# OpenBLAS again (so CPU frequency drift shows). Needs numpy (`pip install numpy`).
# Usage: benches/compare_openblas.sh [hebb bench gemm options, e.g. --backend vulkan]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT_DIR:-target/bench}
mkdir -p "$out"
cargo build --release --quiet
python3 benches/openblas_sgemm.py > "$out/openblas_before.jsonl"
./target/release/hebb bench gemm --json "$out/hebb_gemm.json" "$@"
python3 benches/openblas_sgemm.py > "$out/openblas_after.jsonl"
cat "$out/openblas_before.jsonl" "$out/openblas_after.jsonl"
