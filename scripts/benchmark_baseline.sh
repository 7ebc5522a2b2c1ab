#!/usr/bin/env bash
# The README's benchmark table: the DeepLab v3+ baseline (Xception-65, the papers' backbone) at the test suite's
# input size (64x64) and at the paper's training crop (512x512, Grapy-ML stage 1), plus the `make demo` model
# (ResNet-18-D encoder at 128x128) and CorrPM; CPU, and the GPU too when there is one.
# Short on purpose (1 warm-up + 5 timed iterations, batch 2 for training): about 5 minutes on 2 CPU cores.
# Usage: scripts/benchmark_baseline.sh [extra overrides]; writes logs/benchmark/runs/<date>/benchmark.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python}
common=(benchmark.train_batch_size=2 benchmark.infer_batch_size=1 benchmark.warmup=1 benchmark.iters=5)
"$PY" -m humanparse.benchmark model=deeplabv3plus data=lip "benchmark.sizes={test:[64,64]}" \
  benchmark.add_input_size=false "${common[@]}" "$@"
"$PY" -m humanparse.benchmark experiment=demo benchmark.add_paper_size=false "${common[@]}" "$@"
# CorrPM (ResNet-101, 71.6 M parameters) at the test size and its paper input (384x384)
"$PY" -m humanparse.benchmark model=corrpm data=lip "benchmark.sizes={test:[64,64]}" \
  benchmark.add_input_size=false "${common[@]}" "$@"
