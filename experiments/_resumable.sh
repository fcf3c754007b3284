# Shared by the grid scripts of issue 20 (sourced, not run): a grid that resumes across
# sessions from git. Before sourcing, set GRID (the folder name under docs/results/),
# RUNS (the runs folder, outside git), YDROP (the ydrop command), SEEDS, and the array
# `common` (the `ydrop compare` arguments shared by every call: dataset, model, data dir,
# --out "$RUNS", or per call a folder below $RUNS). Run the scripts from the repository root.
#
# - Cells finished earlier (in another session or on another machine) are committed under
#   docs/results/$GRID/ (config.json + result.json, no checkpoints); `seed_runs` copies
#   them into $RUNS, where `ydrop compare` finds their result.json and skips them.
# - An interrupted cell resumes from its last checkpoint in $RUNS.
# - `export_results` copies every finished cell (one with a result.json) back into
#   docs/results/$GRID/, after each call.
# - PROCESSES=n runs n copies of the grid at once in $RUNS: each copy makes every
#   `ydrop compare` call, and each call takes the next cell that no other copy holds (lock
#   files make sure no cell is trained twice). With --no-wait a call leaves the cells
#   another copy trains to it and the copy goes on to its next call, so no copy idles at
#   the end of a call while another finishes that call's last cell, and the copies end
#   about together even where cells take unequal times.
# - SHARD=i/n runs the i-th of n fixed parts of the cells (split by count, not by hours):
#   for splitting a grid between runs folders or machines that are merged afterwards.

EXPORT="docs/results/$GRID"
PROCESSES=${PROCESSES:-1}
if [[ ! $PROCESSES =~ ^[1-9][0-9]*$ ]]; then
  echo "PROCESSES=$PROCESSES: allowed: a whole number >= 1 (the copies of the grid run at once)" >&2
  exit 2
fi
if [[ -n "${SHARD:-}" && $PROCESSES -gt 1 ]]; then
  echo "SHARD=$SHARD with PROCESSES=$PROCESSES: give one of them (PROCESSES balances the cells itself)" >&2
  exit 2
fi
if [[ -n "${SHARD:-}" ]]; then common+=(--shard "$SHARD"); fi
no_wait=()  # (--no-wait) inside a copy of in_copies

# compare ARGS...: `ydrop compare` with the shared and the given arguments, then export_results.
compare() {
  $YDROP compare "${common[@]}" "${no_wait[@]}" "$@"
  export_results
}

# in_copies COMMAND...: COMMAND (a function making the grid's compare calls) in $PROCESSES
# copies at once, their calls with --no-wait; a failed copy fails the script. The last
# call of each command to end finds all its cells finished and writes complete tables.
in_copies() {
  if ((PROCESSES == 1)); then
    "$@"
    return
  fi
  local pids=() pid k
  for ((k = 0; k < PROCESSES; k++)); do
    (no_wait=(--no-wait); "$@") &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

# Whether each row's cells go to one `ydrop compare` call (SHARD, PROCESSES > 1).
one_call() { [[ -n "${SHARD:-}" || $PROCESSES -gt 1 ]]; }

# Each file copied under a temporary name, then renamed: copies exporting at once, or an
# interrupted export, never leave a half-written file in docs/results.
export_results() {
  (cd "$RUNS" && find . -name result.json) | while read -r f; do
    cell=$(dirname "$f")
    mkdir -p "$EXPORT/$cell"
    for name in config.json result.json; do
      tmp="$EXPORT/$cell/.$name.$BASHPID"  # ($$ is the same in every copy: a subshell keeps it)
      cp "$RUNS/$cell/$name" "$tmp" && mv -f "$tmp" "$EXPORT/$cell/$name"
    done
  done
}

# (A loop rather than `cp -rn`, whose exit status on skipped files differs between
# coreutils versions.)
seed_runs() {
  mkdir -p "$RUNS" "$EXPORT"
  find "$EXPORT" -name '.*.json.*' -delete  # an export's temporary file, left by an interrupted run
  (cd "$EXPORT" && find . -name result.json) | while read -r f; do
    cell=$(dirname "$f")
    if [[ ! -e "$RUNS/$cell/result.json" ]]; then
      mkdir -p "$RUNS/$cell"
      cp "$EXPORT/$cell/config.json" "$EXPORT/$cell/result.json" "$RUNS/$cell/"
    fi
  done
}

# cells N METHODS [ARGS...]: the cells of METHODS (comma-separated) over seeds 0..N-1.
# With SHARD or PROCESSES > 1: one `ydrop compare` call, so that the processes share all
# the row's cells. Otherwise one call per method, so each finished cell is exported as
# soon as it is done; a `--set M.key=value` for a method M of METHODS goes only to M's call.
cells() {
  local n=$1 methods=$2 m i
  shift 2
  if one_call; then
    compare --seeds "$n" --methods "$methods" "$@"
    return
  fi
  local -a all args
  IFS=, read -ra all <<< "$methods"
  for m in "${all[@]}"; do
    args=()
    for ((i = 1; i <= $#; i++)); do
      local a=${!i}
      if [[ $a == --set && $i -lt $# ]]; then
        local j=$((i + 1)) v scope
        v=${!j}
        scope=${v%%.*}
        i=$j
        if [[ $v == *.* && ",$methods," == *",$scope,"* && $scope != "$m" ]]; then continue; fi
        args+=(--set "$v")
      else
        args+=("$a")
      fi
    done
    compare --seeds "$n" --methods "$m" "${args[@]}"
  done
}

# seed_major ROW...: each ROW names a function `ROW N` that runs its cells with
# `cells N ...`. In one process: every row with N = 1, then N = 2, ..., N = SEEDS (each
# call skips the cells already done), so seed 0 of every method comes first and a
# paired comparison per seed is there as early as possible. With SHARD or PROCESSES > 1:
# each row once with N = SEEDS (with PROCESSES, in copies: in_copies).
seed_major() {
  in_copies _seed_major_rows "$@"
}

_seed_major_rows() {
  local n row
  if one_call; then
    for row in "$@"; do "$row" "$SEEDS"; done
  else
    for ((n = 1; n <= SEEDS; n++)); do
      for row in "$@"; do "$row" "$n"; done
    done
  fi
}
