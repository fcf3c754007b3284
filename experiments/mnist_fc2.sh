#!/usr/bin/env bash
# Grid 1 of issue 20: Y-Drop's scaling claim, Y-Drop Table 2 row MNIST / FC_2
# (784-2048-2048-2048-10): no dropout, dropout 0.5, Y-Drop at the authors' MNIST
# setting (elasticity 1e-2, K = 2), Y-Drop protocol, seeds 0..SEEDS-1.
#
#   experiments/mnist_fc2.sh [DATA_DIR] [RUNS_DIR]
#   SHARD=0/2 experiments/mnist_fc2.sh & SHARD=1/2 experiments/mnist_fc2.sh   # two processes
#   OMP_NUM_THREADS=1 YDROP=.venv/bin/ydrop nohup experiments/mnist_fc2.sh ../shared/data /work/runs/mnist-fc2 > fc2.log 2>&1 &
#
# Run it from the repository root. Finished cells are skipped and an interrupted cell
# resumes from its last checkpoint, so the script can be stopped and rerun at will.
# After each `ydrop compare` call the finished cells' config.json and result.json are
# copied into docs/results/mnist-fc2/, and a new run starts by seeding RUNS_DIR from
# there, so the grid resumes across sessions and machines from git alone.
#
# Cells are run seed-major: seed 0 of every method, then seed 1, ... (one call per
# method with --seeds 1, then --seeds 2, ...; each call skips the cells already done),
# so a paired comparison per seed comes as early as possible and every finished cell is
# exported as soon as it is done. With SHARD set, the grid is one call instead, so the
# round-robin split of its cells is fixed and balanced.
set -euo pipefail
DATA=${1:-../shared/data}
RUNS=${2:-runs/mnist-fc2}
YDROP=${YDROP:-ydrop}
SEEDS=${SEEDS:-3}
GRID=mnist-fc2
EXPORT="docs/results/$GRID"
common=(--dataset mnist --model fc2 --data-dir "$DATA" --out "$RUNS" --no-progress)
# Several processes (or machines sharing the folder) split the cells through lock files.
if [[ -n "${SHARD:-}" ]]; then common+=(--shard "$SHARD"); fi

# Finished cells only (those with a result.json): an interrupted cell stays in $RUNS.
export_results() {
  (cd "$RUNS" && find . -name result.json) | while read -r f; do
    cell=$(dirname "$f")
    mkdir -p "$EXPORT/$cell"
    cp "$RUNS/$cell/result.json" "$RUNS/$cell/config.json" "$EXPORT/$cell/"
  done
}

# Cells finished in an earlier session (or on another machine) are in git: seed the
# runs folder with them so they are skipped, not trained again.
mkdir -p "$RUNS" "$EXPORT"
cp -rn "$EXPORT"/. "$RUNS"/

# One `ydrop compare` call for METHOD over seeds 0..N-1, then export; extra args follow.
cell() {
  local n=$1 method=$2
  shift 2
  $YDROP compare "${common[@]}" --seeds "$n" --methods "$method" "$@"
  export_results
}
ydrop_set=(--set ydrop.elasticity=0.01 --set ydrop.warmup_epochs=2)   # the authors' MNIST setting

if [[ -n "${SHARD:-}" ]]; then
  cell "$SEEDS" none,dropout,ydrop "${ydrop_set[@]}"
else
  for ((n = 1; n <= SEEDS; n++)); do
    cell "$n" none; cell "$n" dropout; cell "$n" ydrop "${ydrop_set[@]}"
  done
fi
