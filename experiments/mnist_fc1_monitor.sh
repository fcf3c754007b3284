#!/usr/bin/env bash
# The early-stopping rule (docs/results.md section 5; a follow-up of issue 20's finding
# on S_1, where Excitation Dropout's validation loss ended its run while its accuracy
# still rose): MNIST FC_1, Y-Drop protocol, at the Excitation paper's placement (first
# hidden layer, `model.dropout_at=first`): dropout 0.5, Excitation and Activation
# Dropout, seeds 0..SEEDS-1, each trained twice: testing the epoch of the lowest
# validation loss (`monitor=val_loss`, the protocol's rule) and of the highest
# validation accuracy (`monitor=val_acc`). Both are trained here by the same code, as
# runs are not bit-identical across code versions and hosts (the committed rows of
# docs/results/mnist-fc1 are the same cells, trained by older code on another host).
# The monitor is not part of a run's folder name, so each has its own runs folder:
# RUNS_DIR/val_loss and RUNS_DIR/val_acc.
#
#   experiments/mnist_fc1_monitor.sh [DATA_DIR] [RUNS_DIR]
#   PROCESSES=2 experiments/mnist_fc1_monitor.sh   # two processes sharing the cells (SHARD=i/n: _resumable.sh)
#
# Resumable across sessions (see experiments/_resumable.sh): finished cells go to
# docs/results/mnist-fc1-monitor/ after each call and are skipped on the next run.
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/mnist-fc1-monitor}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=mnist-fc1-monitor
common=(--dataset mnist --model fc1 --data-dir "$DATA" --no-progress)
source "$(dirname "$0")/_resumable.sh"
seed_runs

by_loss() { cells "$1" dropout,excitation,activation --set model.dropout_at=first --out "$RUNS/val_loss"; }
by_accuracy() {
  cells "$1" dropout,excitation,activation --set model.dropout_at=first --set monitor=val_acc --out "$RUNS/val_acc"
}

seed_major by_loss by_accuracy
