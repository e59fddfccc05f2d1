"""The room rehearsal on a real JupyterHub: learners run the notebooks at once, and everything stops.

These tests start a real hub, its proxy (configurable-http-proxy, from npm) and a Jupyter
server and kernels per learner. They skip, saying why, where JupyterHub or the proxy is
missing (``.ci/run`` installs both). Every run has its own temporary folder, free ports and
marker, so they may run in parallel with other tests.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lab_helpers import LabError

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip(
    "jupyterhub", reason="JupyterHub is not installed: pip install -r requirements-instructor.txt"
)
psutil = pytest.importorskip("psutil")

from lab_helpers.rehearsal.hub import find_proxy
from lab_helpers.rehearsal.plan import RehearsalPlan, select_notebooks
from lab_helpers.rehearsal.report import format_report
from lab_helpers.rehearsal.run import run_rehearsal

pytestmark = pytest.mark.notebook  # a hub, servers and kernels running notebooks: not in the fast loop

try:
    PROXY = find_proxy(ROOT)
except LabError as error:
    pytest.skip(str(error), allow_module_level=True)


def plan(learners: int, notebooks: str, **options: object) -> RehearsalPlan:
    return RehearsalPlan(
        learners=learners,
        notebooks=select_notebooks(ROOT, notebooks),
        course_root=ROOT,
        proxy_command=PROXY,
        **options,  # type: ignore[arg-type]
    )


def test_three_learners_complete_notebooks_00_to_06_and_nothing_is_left_behind() -> None:
    result = run_rehearsal(plan(3, "00-06"), progress_to=None)
    report = format_report(result)
    assert result.error is None, report
    assert result.completed, report
    assert [len(learner.notebooks) for learner in result.runs] == [7, 7, 7]
    assert all(run.cells_run == run.code_cells for learner in result.runs for run in learner.notebooks)
    assert result.leftovers.nothing, report
    # The port check had ports to check: the hub's API, the proxy and its API, three servers, lab servers.
    assert result.listening_ports_seen >= 6, report
    assert result.ok
    # Each learner's lab files are their own: three homes, three different lab CAs.
    assert len(result.lab_ca_fingerprints) == 3 and len(set(result.lab_ca_fingerprints.values())) == 3
    # The figures the workshop guide is built from were taken.
    assert result.memory.samples > 0 and set(result.memory.per_user_peak_rss) == {
        "learner1",
        "learner2",
        "learner3",
    }
    assert all(
        value > 50_000_000 for value in result.memory.per_user_peak_rss.values()
    )  # a server and a kernel
    assert set(result.learner_cpu()) == {"learner1", "learner2", "learner3"}
    # Every kernel was reached over Unix sockets, as each kernel itself reports (test_kernel_socket.py has tcp).
    assert {run.transport for learner in result.runs for run in learner.notebooks} == {"ipc"}
    assert report.rstrip().splitlines()[-1].startswith("OK")


def _break_notebook_01_of_learner2(name: str, home: Path) -> None:
    """Learner 2 edits notebook 01: a cell that raises, put just before the fifth code cell."""
    if name != "learner2":
        return
    path = home / "notebooks" / "01_explore_certificates.ipynb"
    notebook = json.loads(path.read_text(encoding="utf-8"))
    code_positions = [index for index, cell in enumerate(notebook["cells"]) if cell["cell_type"] == "code"]
    broken = {
        "cell_type": "code",
        "id": "made-to-fail",
        "metadata": {},
        "execution_count": None,
        "outputs": [],
        "source": "raise RuntimeError('made to fail by the test')",
    }
    notebook["cells"].insert(code_positions[4], broken)
    path.write_text(json.dumps(notebook), encoding="utf-8")


def test_a_learner_whose_notebook_fails_is_reported_with_the_cell_and_everything_still_stops() -> None:
    result = run_rehearsal(plan(2, "00-02", prepare_home=_break_notebook_01_of_learner2), progress_to=None)
    report = format_report(result)
    learner1, learner2 = result.runs
    assert learner1.completed, report
    assert not learner2.completed and not result.completed
    failed = [run for run in learner2.notebooks if run.failure is not None]
    assert [run.notebook for run in failed] == ["notebooks/01_explore_certificates.ipynb"], report
    failure = failed[0].failure
    assert failure is not None and failure.cell_id == "made-to-fail"
    assert (failure.error_name, failure.error_value) == ("RuntimeError", "made to fail by the test")
    assert failed[0].cells_run == 5  # four code cells ran, the fifth failed, no cell after it ran
    # The failure ended that notebook only: learner 2 went on with notebook 02.
    assert [run.completed for run in learner2.notebooks] == [True, False, True]
    assert (
        f"learner2 01_explore_certificates cell {failure.cell} (id made-to-fail): RuntimeError: made to fail"
        in report
    )
    assert result.leftovers.nothing, report
    assert not Path(result.folder).exists(), "the rehearsal's temporary folder (homes, hub) was not removed"
    assert report.rstrip().splitlines()[-1].startswith("FAILED")


def test_ctrl_c_stops_the_hub_and_every_server_and_kernel() -> None:
    command = [sys.executable, "-m", "lab_helpers", "rehearse", "--learners", "1", "--notebooks", "00-06"]
    rehearsal = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    seen: dict[int, float] = {}
    try:
        deadline = time.monotonic() + 240
        kernel_running = False
        while time.monotonic() < deadline and not kernel_running and rehearsal.poll() is None:
            for process in psutil.Process(rehearsal.pid).children(recursive=True):
                try:
                    seen[process.pid] = process.create_time()
                    kernel_running |= "ipykernel_launcher" in " ".join(process.cmdline())
                except psutil.Error:
                    pass
            time.sleep(0.5)
        assert kernel_running, "no kernel started within 240 s"
        rehearsal.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal sends
        output, _ = rehearsal.communicate(timeout=300)
    finally:
        if rehearsal.poll() is None:
            rehearsal.kill()
            rehearsal.communicate()
    assert rehearsal.returncode == 130, output
    assert "nothing (no process, no listening port, no thread)" in output
    assert output.rstrip().splitlines()[-1].startswith("INTERRUPTED")
    still_there = []
    for pid, created in seen.items():
        try:
            if psutil.Process(pid).create_time() == created:
                still_there.append(pid)
        except psutil.Error:
            pass
    assert still_there == [], f"processes the rehearsal started are still running: {still_there}"
    assert len(seen) >= 4  # the hub, its proxy, the learner's server and a kernel were seen, and are gone
