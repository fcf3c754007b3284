#!/usr/bin/env bash
# Grid 3 of issue 20: the cheap score. Y-Drop with score="gradxact" (gradient x
# activation, from the core-v2 issue) on MNIST FC_1 at the setting picked on validation
# for conductance (elasticity 1e-2, K = 3), Y-Drop protocol, seeds 0..SEEDS-1: to be
# read against the committed conductance rows of docs/results/mnist-fc1 (same seeds,
# same protocol; `ydrop table docs/results/mnist-fc1` has none, dropout and
# ydrop(elasticity=0.01, warmup_epochs=3)).
#
#   experiments/mnist_fc1_gradxact.sh [DATA_DIR] [RUNS_DIR]
#   PROCESSES=2 experiments/mnist_fc1_gradxact.sh   # two processes sharing the cells (SHARD=i/n: _resumable.sh)
#
# Needs a ydrop with the "gradxact" score registered (the run fails at once otherwise).
# Resumable across sessions (see experiments/_resumable.sh): finished cells go to
# docs/results/mnist-fc1-gradxact/ after each call and are skipped on the next run.
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/mnist-fc1-gradxact}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=mnist-fc1-gradxact
common=(--dataset mnist --model fc1 --data-dir "$DATA" --out "$RUNS" --no-progress)
source "$(dirname "$0")/_resumable.sh"
seed_runs

gradxact() { cells "$1" ydrop --set ydrop.score=gradxact --set ydrop.elasticity=0.01 --set ydrop.warmup_epochs=3; }

seed_major gradxact
