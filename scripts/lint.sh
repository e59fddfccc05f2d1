#!/usr/bin/env bash
# Lint and format checks for the code and the notebooks (ruff, configured in pyproject.toml).
#
#   scripts/lint.sh          check only: exit 1 on any finding (what CI runs)
#   scripts/lint.sh --fix    apply ruff's safe fixes and formatting, then check
#
# Exercise notebooks (notebooks/NN_*.ipynb) are derived from the solution notebooks, so
# --fix changes only the sources: lab_helpers, tests, scripts, website and notebooks/solutions
# (code cells, and the exercise stubs kept in their metadata, see scripts/format-stubs.py);
# then `python -m lab_helpers exercises` derives the exercise notebooks again.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
ruff=$(dirname "$python")/ruff
[ -x "$ruff" ] || { echo "ruff not found next to $python: pip install -r requirements-dev.txt" >&2; exit 2; }
sources=(lab_helpers tests scripts website conftest.py notebooks/solutions)

if [ "${1:-}" = "--fix" ]; then
  for pass in 1 2; do  # formatting can move a `# noqa` comment, which the second pass then sees
    "$ruff" check --fix --quiet "${sources[@]}" || true  # what it cannot fix is reported below
    "$ruff" format --quiet "${sources[@]}"
  done
  "$python" scripts/format-stubs.py
  "$python" -m lab_helpers exercises
fi

status=0
"$ruff" check "${sources[@]}" notebooks || status=1
"$ruff" format --check "${sources[@]}" notebooks || status=1
"$python" scripts/format-stubs.py --check || status=1
"$python" -m lab_helpers exercises --check || status=1
exit $status
