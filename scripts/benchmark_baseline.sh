#!/usr/bin/env bash
# The README's benchmark table: the DeepLab v3+ baseline (Xception-65, the papers' backbone) at the test suite's
# input size (64x64) and at the paper's training crop (512x512, Grapy-ML stage 1), CPU (and GPU when present).
# Short on purpose (1 warm-up + 3 timed iterations, batch 2 for training): a few minutes on 2 CPU cores.
# Usage: scripts/benchmark_baseline.sh [extra overrides]; writes logs/benchmark/runs/<date>/benchmark.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
"$PY" -m humanparse.benchmark model=deeplabv3plus data=lip \
  "benchmark.sizes={test:[64,64]}" benchmark.add_input_size=false \
  benchmark.train_batch_size=2 benchmark.infer_batch_size=1 benchmark.warmup=1 benchmark.iters=3 "$@"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
