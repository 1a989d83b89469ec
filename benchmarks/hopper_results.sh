#!/usr/bin/env bash
# The hopper section of RESULTS.md, end to end, sized for one 16-core machine (about 20 minutes):
#   1. a 40-trial search of studies/hopper.yaml (6 workers) while SB3 PPO with rl-zoo3's tuned Hopper
#      settings trains on the 10 test seeds 1000-1009 (10 processes);
#   2. the confirmation: the 2 best distinct trials and the study default on the same 10 test seeds,
#      run by two confirm commands sharing the units (6 + 10 workers), as several machines would;
#   3. benchmarks/results_table.py writes the table.
# Usage: OUT=runs/results-hopper MACHINE="16-core x86_64" bash benchmarks/hopper_results.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-runs/results-hopper}
TRIALS=${TRIALS:-40}
MACHINE=${MACHINE:-"$(nproc)-core $(uname -m)"}
mkdir -p "$OUT"
SEARCH="python -m vmpo_tune.search --study hopper --trials $TRIALS --workers 6 --out $OUT/hopper"
PPO="python benchmarks/ppo_baseline.py --env Hopper-v5 --steps 300000 --first-seed 1000 --seeds 10 --workers 10"
CONFIRM="python -m vmpo_tune.confirm --study hopper --run-dir $OUT/hopper --top 2 --seeds 10"
$PY ${SEARCH#python } > "$OUT/search.log" 2>&1 &
search=$!
$PY ${PPO#python } --out "$OUT/ppo.json" > "$OUT/ppo.log" 2>&1 &
ppo=$!
wait $search
$PY ${CONFIRM#python } --workers 6 > "$OUT/confirm-a.log" 2>&1 &
wait $ppo
$PY ${CONFIRM#python } --workers 10 > "$OUT/confirm-b.log" 2>&1 &
wait
$PY benchmarks/results_table.py --study hopper --run-dir "$OUT/hopper" --ppo "$OUT/ppo.json" \
    --machine "$MACHINE" --search-command "$SEARCH" --ppo-command "$PPO --out ppo.json" \
    --note "The whole section, runs included: \`OUT=runs/results-hopper bash benchmarks/hopper_results.sh\`." \
    > "$OUT/table.log" 2>&1
echo done > "$OUT/DONE"
