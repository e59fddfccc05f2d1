"""Format the exercise stubs kept in the solution notebooks' cell metadata, as ruff formats a cell.

``ruff format`` formats the code cells of a notebook, but a solution cell's
stub lives in its metadata (``metadata.stub``), where ruff does not look. The
exercise notebooks are derived from the stubs, so an unformatted stub would
make ``ruff format --check`` fail on the exercise notebook, and formatting
the exercise notebook directly would make it differ from its solution.
Formatting the stubs here, then deriving, keeps the two in step.

    python scripts/format-stubs.py [--check] [NOTEBOOK...]   (default: notebooks/solutions/*.ipynb)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def formatted(source: str, ruff: str) -> str:
    """``source`` as ruff formats a notebook cell (no newline after the last line)."""
    result = subprocess.run(
        [ruff, "format", "--stdin-filename", str(ROOT / "notebooks" / "stub.py"), "-"],
        input=source,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode != 0:
        raise SystemExit(f"ruff could not format this stub:\n{source}\n{result.stderr}")
    return result.stdout.rstrip("\n")


def main(arguments: list[str]) -> int:
    check = "--check" in arguments
    paths = [Path(a) for a in arguments if a != "--check"] or sorted(
        (ROOT / "notebooks" / "solutions").glob("*.ipynb")
    )
    ruff = str(Path(sys.executable).with_name("ruff"))
    changed = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        touched = False
        for cell in notebook.cells:
            stub = cell.get("metadata", {}).get("stub")
            if stub is None:
                continue
            new = formatted(stub, ruff)
            if new != stub:
                touched = True
                cell.metadata["stub"] = new
        if touched:
            changed.append(path.name)
            if not check:
                nbformat.write(notebook, path)
    for name in changed:
        print(f"{'would reformat' if check else 'reformatted'} the stubs of {name}")
    return 1 if check and changed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
