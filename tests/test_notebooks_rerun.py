"""Every notebook runs standalone in a fresh kernel with an empty lab folder, and again in the same kernel.

nbval (configured in pyproject.toml) runs the notebooks once, in sequence,
sharing one lab folder. This test covers the two other ways learners run
them: a notebook opened on its own, and "Run All" pressed a second time.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 120


@pytest.mark.parametrize("notebook_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_standalone_and_again_in_the_same_kernel(
    notebook_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path / "lab-files"))  # empty: nothing from earlier notebooks
    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name="python3",
        resources={"metadata": {"path": str(notebook_path.parent)}},
    )
    with client.setup_kernel():
        for run in ("first run", "second run in the same kernel"):
            for index, cell in enumerate(notebook.cells):
                try:
                    client.execute_cell(cell, index)
                except Exception as error:  # nbclient raises CellExecutionError with the traceback
                    pytest.fail(f"{run}, cell {index}:\n{error}")
