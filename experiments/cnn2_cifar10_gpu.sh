#!/usr/bin/env bash
# Excitation Dropout Tables 4 / 6, CNN-2 on CIFAR-10, on one GPU (issue 20): dropout at
# fc1, dropout at fc1 and fc2, Excitation Dropout at fc1, Activation Dropout at fc1;
# Adam, lr 1e-3 then 1e-4 after 25K iterations, weight decay 5e-3, batch 100, 100K
# iterations, bf16 autocast and channels-last. See experiments/cnn2_cifar10_gpu.py.
#
#   experiments/cnn2_cifar10_gpu.sh [DATA_DIR] [RUNS_DIR] [extra options of the .py]
#   SEEDS=5 experiments/cnn2_cifar10_gpu.sh ../shared/data runs/cnn2-cifar10-gpu    # the paper's 5 models
#
# Run it from the repository root. Finished runs are skipped; their config.json and
# result.json are copied to docs/results/cnn2-cifar10-gpu/ (and seeded back from there
# on a fresh clone), so `ydrop table docs/results/cnn2-cifar10-gpu` prints the table.
set -euo pipefail
if [[ -n "${SHARD:-}" || ${PROCESSES:-1} != 1 ]]; then
  # The .py runs its cells in one process, without run locks: two processes would train the same cells.
  echo "cnn2_cifar10_gpu.sh: SHARD=${SHARD:-} PROCESSES=${PROCESSES:-1} is not supported (one GPU runs the four" \
       "cells in minutes); run it once, in one process" >&2
  exit 2
fi
DATA=${1:-../shared/data}
RUNS=${2:-runs/cnn2-cifar10-gpu}
shift $(( $# < 2 ? $# : 2 ))
PYTHON=${PYTHON:-python}
SEEDS=${SEEDS:-1}
GRID=cnn2-cifar10-gpu
common=()
source "$(dirname "$0")/_resumable.sh"
seed_runs
"$PYTHON" "$(dirname "$0")/cnn2_cifar10_gpu.py" --data-dir "$DATA" --out "$RUNS" --seeds "$SEEDS" \
  --device cuda --bf16 --channels-last "$@"
export_results
