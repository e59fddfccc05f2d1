"""Notebook 14 on a machine without nginx: it runs top to bottom; step 1 says why and how to install nginx, each nginx
cell after it skips in one short line, and the cells about the application play nginx's part in Python, saying so."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.notebook  # runs notebook 14 in a kernel: not in the fast loop

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [
    ROOT / "notebooks" / "14_put_a_proxy_in_front.ipynb",
    ROOT / "notebooks" / "solutions" / "14_put_a_proxy_in_front.ipynb",
]


def text_of(cell: nbformat.NotebookNode) -> str:
    """What a cell printed, and what it returned as plain text (a check's result)."""
    return "".join(
        output.get("text", "") + output.get("data", {}).get("text/plain", "")
        for output in cell.get("outputs", [])
    )


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

    by_id = {cell.get("id"): cell for cell in notebook.cells}
    step_1 = text_of(by_id["proxy-05"])
    assert "nginx is hidden here (MTLS_NGINX=off)" in step_1
    assert "apt-get install nginx libnginx-mod-stream" in step_1

    skip_line = "skipped: no nginx here (step 1 says how to get it)"
    stand_in = "(nginx is missing: this request is what nginx would have sent)"
    nginx_cells = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and "nginx_ok" in cell.source and "NGINX_SKIP =" not in cell.source
    ]
    assert len(nginx_cells) >= 14
    for cell in nginx_cells:
        said = text_of(cell)
        assert said.startswith((skip_line, stand_in)), cell.source[:80]
        assert "apt-get" not in said  # said once, in step 1
    # Where the lesson is the application's, Python played nginx's part, and the application's answers are real.
    assert text_of(by_id["proxy-29"]).startswith(stand_in)
    assert "made-up certificate: 200 Hello, alice" in text_of(by_id["proxy-29"])  # attack (b) works
    assert "attack (b) after the fix: 403" in text_of(by_id["proxy-35b"])  # and fails after the fix
    assert "the app's TLS peer: nginx-proxy" in text_of(
        by_id["proxy-40"]
    )  # re-encryption: nginx's certificate
    if (
        notebook_path.parent.name == "solutions"
    ):  # an answer is there: 14.1 cannot judge it, and does not fail
        assert "Exercise 14.1: Identity headers on every location: cannot be checked here" in text_of(
            by_id["proxy-ex-04"]
        )
        assert "Exercise 14.2: The application, done right: passed" in text_of(by_id["proxy-ex-07"])
    else:  # an untouched exercise is "not attempted yet", nginx or not
        assert "Identity headers on every location: not attempted yet" in text_of(by_id["proxy-ex-04"])
    everything = "\n".join(text_of(cell) for cell in notebook.cells)
    assert "direct, forged: 200 Hello, alice" in everything  # attack (a) needs no nginx
