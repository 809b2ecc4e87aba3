#!/usr/bin/env bash
# Crash safety of `hebb train` at 20 random points: a small run is killed with SIGKILL at
# points spread over its Hebbian and classifier stages (the first also killed again during its
# resume) and stopped once with SIGTERM; every one must resume to the uninterrupted run's
# weights and accuracy, bit for bit. CI runs the same test at 3 points.
#   benches/crash_safety.sh [POINTS]        (HEBB_SEED=N reproduces a placement)
set -euo pipefail
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
HEBB_CRASH_POINTS="${1:-20}" HEBB_TEST_BACKENDS="${HEBB_TEST_BACKENDS:-vulkan}" \
  cargo test --release --locked --test kernels crash:: -- --nocapture
