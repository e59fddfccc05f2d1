"""Every notebook runs standalone in a fresh kernel with an empty lab folder, and again in the same kernel.

nbval (configured in pyproject.toml) runs each notebook once, its cells in
order on one worker. This test covers the two other ways learners run them:
a notebook opened on its own, and "Run All" pressed a second time. Each
notebook is a test of its own, so workers run them side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT = 120

pytestmark = pytest.mark.notebook


@pytest.mark.parametrize("notebook_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_standalone_and_again_in_the_same_kernel(
    notebook_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kernel_options: Callable[[], dict[str, str]],
    kernel_start_with_retry: Callable[..., Any],
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path / "lab-files"))  # empty: nothing from earlier notebooks
    notebook = nbformat.read(notebook_path, as_version=4)

    def run_twice() -> None:
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(notebook_path.parent)}},
            config=Config({"KernelManager": kernel_options()}),
        )
        with client.setup_kernel():
            for run in ("first run", "second run in the same kernel"):
                for index, cell in enumerate(notebook.cells):
                    try:
                        client.execute_cell(cell, index)
                    except Exception as error:  # nbclient raises CellExecutionError with the traceback
                        pytest.fail(f"{run}, cell {index}:\n{error}")

    kernel_start_with_retry(run_twice)  # only a kernel that dies before it starts is started again
