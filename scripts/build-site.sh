#!/usr/bin/env bash
# Build the course's website into build/site/html: every course notebook executed, warnings as errors.
#
#   scripts/build-site.sh            # with .venv/bin/python (the README's venv)
#   PYTHON=path/to/python scripts/build-site.sh
#
# Installs what the build needs first: requirements-site.txt into that Python's environment
# (from PyPI) and npm's mermaid package into website/node_modules (from package-lock.json).
# Then open build/site/html/index.html, or serve the folder:
#   python -m http.server --bind 127.0.0.1 --directory build/site/html 8000
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
if [ ! -x "$python" ] && ! command -v "$python" >/dev/null 2>&1; then
  echo "no $python: create the venv first (README, Quick start) or set PYTHON" >&2
  exit 2
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: install Node.js (it brings npm), which the site needs for Mermaid" >&2
  exit 2
fi
"$python" -m pip install --quiet -r requirements-site.txt
npm ci --prefix website --no-audit --no-fund --loglevel=error
exec "$python" website/build.py "$@"
