#!/usr/bin/env bash
# The early-stopping rule (follow-up of issue 20's finding on S_1, where Excitation
# Dropout's validation loss ended its run while its accuracy still rose): MNIST FC_1,
# Y-Drop protocol, with the tested epoch and early stopping on the highest validation
# accuracy (`--set monitor=val_acc`) instead of the lowest validation loss. Dropout 0.5,
# Excitation and Activation Dropout, at the Excitation paper's placement (first hidden
# layer, `model.dropout_at=first`) and after both hidden layers, seeds 0..SEEDS-1: to be
# read against the committed val_loss rows of docs/results/mnist-fc1 (same seeds, same
# cells otherwise).
#
#   experiments/mnist_fc1_monitor.sh [DATA_DIR] [RUNS_DIR]
#   SHARD=0/2 experiments/mnist_fc1_monitor.sh & SHARD=1/2 experiments/mnist_fc1_monitor.sh
#
# Resumable across sessions (see experiments/_resumable.sh): finished cells go to
# docs/results/mnist-fc1-monitor/ after each call and are skipped on the next run.
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/mnist-fc1-monitor}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=mnist-fc1-monitor
common=(--dataset mnist --model fc1 --data-dir "$DATA" --out "$RUNS" --no-progress --set monitor=val_acc)
source "$(dirname "$0")/_resumable.sh"
seed_runs

first_fc() { cells "$1" dropout,excitation,activation --set model.dropout_at=first; }
both_fc() { cells "$1" dropout,excitation,activation; }

seed_major first_fc both_fc
