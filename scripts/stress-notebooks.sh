#!/usr/bin/env bash
# Runs the notebook tests twice at once, ROUNDS times in a row (default 10), as CI jobs that
# share a machine do; every run must pass. It proves that kernels do not die at start when
# other processes bind ports at the same moment (see conftest.py). Each run's log and the
# summary go to artifacts/stress/.
#   scripts/stress-notebooks.sh [ROUNDS] [extra pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}; shift || true
python=${PYTHON:-.venv/bin/python}
logs=artifacts/stress
mkdir -p "$logs"
failed=0 died=0
started=$SECONDS
for round in $(seq 1 "$rounds"); do
  round_start=$SECONDS
  pids=()
  for run in a b; do
    "$python" -m pytest -q -m notebook -p no:randomly "$@" >"$logs/round$round-$run.log" 2>&1 &
    pids+=($!)
  done
  results=""
  for index in 0 1; do
    if wait "${pids[$index]}"; then results+=" pass"; else results+=" FAIL"; failed=$((failed + 1)); fi
  done
  count=$(cat "$logs/round$round-a.log" "$logs/round$round-b.log" | grep -c "Kernel died before replying" || true)
  died=$((died + count))
  printf 'round %2d:%s  (%ss; "Kernel died" %s times)  %s | %s\n' "$round" "$results" "$((SECONDS - round_start))" \
    "$count" "$(tail -n 1 "$logs/round$round-a.log")" "$(tail -n 1 "$logs/round$round-b.log")" | tee -a "$logs/summary.txt"
done
printf '%s runs in %s rounds: %s failed, "Kernel died" %s times, %ss in all\n' \
  "$((rounds * 2))" "$rounds" "$failed" "$died" "$((SECONDS - started))" | tee -a "$logs/summary.txt"
[ "$failed" -eq 0 ]
