#!/usr/bin/env bash
# Grid 1 of issue 20: Y-Drop's scaling claim, Y-Drop Table 2 row MNIST / FC_2
# (784-2048-2048-2048-10): no dropout, dropout 0.5, Y-Drop at the authors' MNIST
# setting (elasticity 1e-2, K = 2), Y-Drop protocol (SGD momentum 0.9, lr 0.01,
# batch 64, 25 % validation split, early stopping on validation loss with patience 10,
# at most 60 epochs), seeds 0..SEEDS-1 (default 3).
#
#   experiments/mnist_fc2.sh [DATA_DIR] [RUNS_DIR]
#   PROCESSES=2 experiments/mnist_fc2.sh   # two processes sharing the cells (SHARD=i/n: _resumable.sh)
#   OMP_NUM_THREADS=1 YDROP=.venv/bin/ydrop nohup experiments/mnist_fc2.sh ../shared/data /work/runs/mnist-fc2 > fc2.log 2>&1 &
#
# Run it from the repository root. Finished cells are skipped and an interrupted cell
# resumes from its last checkpoint, so the script can be stopped and rerun at will.
# Resumable across sessions (see experiments/_resumable.sh): finished cells' config.json
# and result.json go to docs/results/mnist-fc2/ after each call and are skipped on the
# next run. Cells run seed-major: seed 0 of none, dropout, Y-Drop, then seed 1, ...
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/mnist-fc2}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=mnist-fc2
common=(--dataset mnist --model fc2 --data-dir "$DATA" --out "$RUNS" --no-progress)
source "$(dirname "$0")/_resumable.sh"
seed_runs

table2() { cells "$1" none,dropout,ydrop --set ydrop.elasticity=0.01 --set ydrop.warmup_epochs=2; }   # the authors' MNIST setting

seed_major table2
