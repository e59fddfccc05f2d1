"""Notebook 14 on a machine without nginx: it runs top to bottom, each nginx cell saying why it skipped and how to install nginx."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    ROOT / "notebooks" / "14_put_a_proxy_in_front.ipynb",
    ROOT / "notebooks" / "solutions" / "14_put_a_proxy_in_front.ipynb",
]


def text_of(cell: nbformat.NotebookNode) -> str:
    return "".join(output.get("text", "") for output in cell.get("outputs", []))


@pytest.mark.parametrize("notebook_path", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_14_runs_with_nginx_hidden(
    notebook_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path / "lab-files"))
    monkeypatch.setenv("MTLS_NGINX", "off")  # the helper also looks in /usr/sbin: hide nginx for it too
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if not entry.endswith("sbin")]
    monkeypatch.setenv("PATH", os.pathsep.join(path))
    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_path.parent)}},
    )
    client.execute()  # raises on the first cell that fails

    nginx_cells = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code"
        and "nginx_ok" in cell.source
        and "NGINX_SKIP" in cell.source
        and "NGINX_SKIP =" not in cell.source
    ]
    assert len(nginx_cells) >= 10
    for cell in nginx_cells:
        assert "skipped: nginx is not installed here" in text_of(cell), cell.source[:80]
        assert "apt-get install nginx libnginx-mod-stream" in text_of(cell)
    everything = "\n".join(text_of(cell) for cell in notebook.cells)
    assert (
        "Hello, alice" in everything
    )  # the parts without nginx still ran: attack (a), the RFC 9440 round trip
