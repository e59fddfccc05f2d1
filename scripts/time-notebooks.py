"""Run every course notebook in a fresh kernel and print how long each took (the workshop guide's "runs in").

    python scripts/time-notebooks.py            # a Markdown table on stdout

Each notebook runs from an empty lab folder, as a learner's first run would.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    print("| notebook | runs in | plan for |")
    print("|---|---|---|")
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory() as lab:
            os.environ["MTLS_LAB_DIR"] = lab
            start = time.perf_counter()
            NotebookClient(
                notebook,
                timeout=120,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
            seconds = time.perf_counter() - start
        text = "".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
        plan = re.search(r"about (\d+) minutes", text)
        print(f"| {path.stem} | {seconds:.1f} s | {plan.group(1) + ' min' if plan else '?'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
