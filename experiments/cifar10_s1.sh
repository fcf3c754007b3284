#!/usr/bin/env bash
# Grid 2 of issue 20: CIFAR-10 / S_1 (the cuda-convnet layers-80sec CNN + a 2 x 1024 FC
# head), Y-Drop protocol (SGD momentum 0.9, lr 0.01, batch 64, 25 % validation split,
# early stopping on validation loss, patience 10, at most 60 epochs) with the paper's
# augmentation (random crop with padding 4 + horizontal flip, `augment=true`):
#   - Y-Drop Table 2 row S_1, the method after both hidden FC layers: no dropout,
#     dropout 0.5, Y-Drop at the authors' setting (elasticity 1e-2, K = 2);
#   - the Excitation Dropout paper's placement, the first FC layer only
#     (`model.dropout_at=first`): dropout 0.5, Excitation Dropout, Activation Dropout.
#
#   experiments/cifar10_s1.sh [DATA_DIR] [RUNS_DIR]
#   PROCESSES=2 experiments/cifar10_s1.sh   # two processes sharing the cells (SHARD=i/n: _resumable.sh)
#   OMP_NUM_THREADS=1 YDROP=.venv/bin/ydrop nohup experiments/cifar10_s1.sh ../shared/data /work/runs/cifar10-s1 > s1.log 2>&1 &
#
# DATA_DIR must hold cifar-10/cifar-10-python.tar.gz (or its extracted batches).
# Resumable across sessions (see experiments/_resumable.sh): finished cells go to
# docs/results/cifar10-s1/ after each call and are skipped on the next run.
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/cifar10-s1}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=cifar10-s1
common=(--dataset cifar10 --model s1 --data-dir "$DATA" --out "$RUNS" --no-progress --set augment=true)
source "$(dirname "$0")/_resumable.sh"
seed_runs

# Y-Drop Table 2, row S_1: the method after every hidden FC layer.
table2() { cells "$1" none,dropout,ydrop --set ydrop.elasticity=0.01 --set ydrop.warmup_epochs=2; }
# The Excitation Dropout paper's placement: first FC layer only.
first_fc() { cells "$1" dropout,excitation,activation --set model.dropout_at=first; }

seed_major table2 first_fc
