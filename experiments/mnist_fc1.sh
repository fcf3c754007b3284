#!/usr/bin/env bash
# Reproduce Y-Drop Table 2, row MNIST / FC_1, with the project's own commands (issue 7).
#
#   experiments/mnist_fc1.sh [DATA_DIR] [RUNS_DIR]
#   PROCESSES=2 experiments/mnist_fc1.sh   # two processes sharing the cells (SHARD=i/n: _resumable.sh)
#
# Every cell is one `ydrop compare` call; finished cells are skipped, an interrupted
# cell resumes from its last checkpoint, so the script can be stopped and rerun at will
# (run it from the repository root).
# The small result files (config.json, result.json) are copied into docs/results/ after
# each call, so `ydrop table docs/results/mnist-fc1` rebuilds the table from git alone.
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/mnist-fc1}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=mnist-fc1
common=(--dataset mnist --model fc1 --data-dir "$DATA" --out "$RUNS" --seeds "$SEEDS" --no-progress)
# PROCESSES=n, SHARD=i/n, compare (ydrop compare, then export_results), in_copies and seed_runs: see _resumable.sh.
source "$(dirname "$0")/_resumable.sh"
seed_runs

grid() {
  # 1. The paper's row: no dropout, dropout 0.5, Y-Drop with the authors' MNIST pick (alpha 1e-2, K 2).
  compare --methods none,dropout
  compare --methods ydrop --set ydrop.elasticity=0.01 --set ydrop.warmup_epochs=2
  # 2. The rest of the Y-Drop tuning grid (alpha in {1e-3, 1e-2}, K in {1, 2, 3}); picked on validation accuracy.
  for alpha in 0.001 0.01; do
    for k in 1 2 3; do
      compare --methods ydrop --set ydrop.elasticity=$alpha --set ydrop.warmup_epochs=$k
    done
  done
  # 3. The other guided and curriculum methods.
  compare --methods excitation,activation,curriculum
  # 4. Excitation and Activation Dropout with the unbiased per-unit rescale (not the
  #    papers' setting; see docs/results.md, "the rescale").
  compare --methods excitation --set excitation.rescale=inverse
  compare --methods activation --set activation.rescale=inverse
  # 5. The Excitation Dropout paper's placement: the method at the first hidden layer only
  #    (its fc1 / fc6), with dropout 0.5 at the same single layer for reference.
  compare --methods excitation,activation,dropout --set model.dropout_at=first
}

in_copies grid
