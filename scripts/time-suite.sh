#!/usr/bin/env bash
# Time the README's test command on a clean clone of this repository's HEAD: a fresh venv,
# then RUNS runs (default 3) of `python -m pytest`, each with its wall time, exit status and
# slowest ten tests, then the fast loop (`-m "not notebook"`) once. Run it on a quiet machine:
# the load average at each start is printed, since other work on the machine moves the figures.
# Each run starts after a pause (PAUSE seconds, default 90): on a shared virtual machine the same
# CPU work was measured 40% slower right after two minutes of full load than after 90 s of rest,
# so back-to-back runs would time the host's throttling as much as the suite. PAUSE=0 skips it.
#   scripts/time-suite.sh [RUNS] [extra requirement files, e.g. requirements-browser.txt]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; shift || true
clone=$(mktemp -d)/mtls-course
git clone --quiet . "$clone"
cd "$clone"
python3 -m venv .venv
.venv/bin/pip install --quiet -r requirements.txt "${@/#/-r}"
pause=${PAUSE:-90}
rest() { [ "$pause" -gt 0 ] && { echo "(resting ${pause} s)"; sleep "$pause"; }; return 0; }
for run in $(seq 1 "$runs"); do
  rest
  echo "== run $run/$runs, load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
  start=$(date +%s.%N)
  status=0
  .venv/bin/python -m pytest -q --durations=10 >"run$run.log" 2>&1 || status=$?
  end=$(date +%s.%N)
  sed -n '/slowest 10 durations/,$p' "run$run.log"
  echo "run $run: exit $status, $(python3 -c "print(round($end - $start, 1))") s wall"
done
rest
echo "== fast loop, load: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
start=$(date +%s.%N)
.venv/bin/python -m pytest -q -m "not notebook" | tail -n 1
end=$(date +%s.%N)
echo "fast loop: $(python3 -c "print(round($end - $start, 1))") s wall"
echo "(clone and logs kept in $clone)"
