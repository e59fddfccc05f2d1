"""The room rehearsal's parts, without a hub: the websocket frames, the plan, the figures, the leftover check.

The rehearsal on a real JupyterHub is in test_rehearsal_hub.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from lab_helpers import LabError
from lab_helpers.rehearsal.kernel_socket import decode_frame, encode_frame
from lab_helpers.rehearsal.learner import CellFailure, LearnerRun, NotebookRun
from lab_helpers.rehearsal.monitor import MARKER_VARIABLE, find_leftovers, kill_processes, temporary_leftovers
from lab_helpers.rehearsal.plan import RehearsalPlan, parse_learner_counts, select_notebooks
from lab_helpers.rehearsal.report import (
    RehearsalResult,
    format_report,
    format_sweep,
    percentile,
    sweep_verdicts,
)

ROOT = Path(__file__).resolve().parents[1]
PARTS = [
    json.dumps({"msg_id": "1", "msg_type": "execute_request"}).encode(),
    b"{}",
    b"{}",
    b'{"code": "1 + 1"}',
]


# -- the websocket frames, checked against jupyter_server's own code ---------------------------------


def test_frames_are_byte_for_byte_those_of_jupyter_server() -> None:
    base = pytest.importorskip("jupyter_server.services.kernels.connection.base")
    for channel in ("shell", "iopub", "control"):
        assert encode_frame(channel, PARTS) == base.serialize_msg_to_ws_v1(PARTS, channel)


def test_frames_from_jupyter_server_decode_to_their_channel_and_parts() -> None:
    base = pytest.importorskip("jupyter_server.services.kernels.connection.base")
    with_buffer = [*PARTS, b"\x00\x01 binary buffer"]
    assert decode_frame(base.serialize_msg_to_ws_v1(with_buffer, "iopub")) == ("iopub", with_buffer)
    channel, parts = base.deserialize_msg_from_ws_v1(encode_frame("shell", PARTS))
    assert (channel, parts) == ("shell", PARTS)


def test_a_frame_cut_short_is_refused() -> None:
    frame = encode_frame("shell", PARTS)
    with pytest.raises(ValueError, match="cut short"):
        decode_frame(frame[:20])


# -- the plan -----------------------------------------------------------------------------------------


def test_notebooks_00_to_06_are_selected_in_order() -> None:
    chosen = select_notebooks(ROOT, "00-06")
    assert [Path(path).name[:2] for path in chosen] == ["00", "01", "02", "03", "04", "05", "06"]
    assert all(path.startswith("notebooks/") and (ROOT / path).is_file() for path in chosen)


def test_a_list_and_all_and_the_solutions_are_selected() -> None:
    assert [Path(path).name[:2] for path in select_notebooks(ROOT, "05, 00")] == ["05", "00"]
    assert len(select_notebooks(ROOT, "all")) == len(list((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    assert all(
        path.startswith("notebooks/solutions/") for path in select_notebooks(ROOT, "00-01", solutions=True)
    )


@pytest.mark.parametrize(
    "spec, message",
    [("06-00", "lower number"), ("42", "no notebook 42"), ("one", "write numbers"), ("00-", "write numbers")],
)
def test_a_bad_notebook_selection_says_how_to_write_it(spec: str, message: str) -> None:
    with pytest.raises(LabError, match=message):
        select_notebooks(ROOT, spec)


def test_learner_counts() -> None:
    assert parse_learner_counts("3") == (3,)
    assert parse_learner_counts("8,1,4,4") == (1, 4, 8)
    for bad in ("0", "-2", "", "three", "1,0"):
        with pytest.raises(LabError, match="--learners"):
            parse_learner_counts(bad)


def test_a_plan_refuses_what_cannot_run() -> None:
    good = dict(
        learners=2, notebooks=("notebooks/00_start_here.ipynb",), course_root=ROOT, proxy_command="chp"
    )
    assert RehearsalPlan(**good).learner_names == ["learner1", "learner2"]
    assert RehearsalPlan(**{**good, "learners": 12}).learner_names[0] == "learner01"
    for change in (
        {"learners": 0},
        {"notebooks": ()},
        {"stagger": -1.0},
        {"kernel_transport": "udp"},
        {"cell_timeout": 0},
    ):
        with pytest.raises(LabError):
            RehearsalPlan(**{**good, **change})


# -- the figures --------------------------------------------------------------------------------------


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(number) for number in range(20, 0, -1)]  # 20 learners' times, in any order
    assert percentile(values, 0.95) == 19.0
    assert percentile(values, 0.5) == 10.0
    assert percentile([4.2], 0.95) == 4.2
    with pytest.raises(ValueError):
        percentile([], 0.95)


def _result(learners: int, seconds: dict[str, list[float]], *, failing: str | None = None) -> RehearsalResult:
    """A rehearsal's result built from times: learner k took seconds[notebook][k]."""
    notebooks = tuple(seconds)
    result = RehearsalResult(learners, notebooks, 0.0, False)
    for index in range(learners):
        run = LearnerRun(f"learner{index + 1}", spawn_seconds=2.0)
        for notebook in notebooks:
            failure = (
                CellFailure(7, "nb-07", "RuntimeError", "made to fail", "raise")
                if failing == f"{index}:{notebook}"
                else None
            )
            run.notebooks.append(
                NotebookRun(notebook, seconds[notebook][index], 10, 10 if failure is None else 4, failure)
            )
        result.runs.append(run)
    result.memory.samples = 3
    result.memory.host_peak_pss = 400_000_000 * learners
    result.memory.per_user_peak_rss = {f"learner{index + 1}": 250_000_000 for index in range(learners)}
    return result


def test_the_sweep_finds_the_largest_room_that_keeps_up() -> None:
    alone = _result(1, {"nb/00_a.ipynb": [1.0], "nb/01_b.ipynb": [2.0]})
    four = _result(4, {"nb/00_a.ipynb": [1.5, 2.0, 2.5, 2.9], "nb/01_b.ipynb": [3.0, 4.0, 5.0, 5.9]})
    eight = _result(8, {"nb/00_a.ipynb": [2.0] * 7 + [3.5], "nb/01_b.ipynb": [4.0] * 8})  # 00's p95 is 3.5x
    rows = sweep_verdicts([alone, four, eight])
    assert [row.passed for row in rows] == [True, True, False]
    assert rows[1].worst_ratio == pytest.approx(2.95) and rows[1].worst_notebook == "01_b"
    assert rows[2].worst_ratio == pytest.approx(3.5) and rows[2].worst_notebook == "00_a"
    assert "Largest number of learners that passed (and every smaller one): 4" in format_sweep(
        [alone, four, eight]
    )


def test_the_sweep_fails_a_room_where_someone_did_not_complete() -> None:
    alone = _result(1, {"nb/00_a.ipynb": [1.0]})
    broken = _result(2, {"nb/00_a.ipynb": [1.0, 1.1]}, failing="1:nb/00_a.ipynb")
    assert [row.passed for row in sweep_verdicts([alone, broken])] == [True, False]


def test_the_report_names_the_learner_the_notebook_and_the_failing_cell() -> None:
    result = _result(2, {"nb/00_a.ipynb": [1.0, 1.2]}, failing="1:nb/00_a.ipynb")
    text = format_report(result)
    assert "learner2 00_a cell 7 (id nb-07): RuntimeError: made to fail" in text
    assert "00_a" in text and "1/2" in text
    assert text.rstrip().splitlines()[-1].startswith("FAILED")
    assert json.loads(json.dumps(result.to_json()))["failures"] == [
        "learner2 00_a cell 7 (id nb-07): RuntimeError: made to fail"
    ]


def test_the_report_of_a_clean_rehearsal_says_ok() -> None:
    text = format_report(_result(2, {"nb/00_a.ipynb": [1.0, 1.2]}))
    assert "Failures" not in text
    assert "http_timeout" not in text  # servers started in 2 s
    assert "nothing (no process, no listening port, no thread)" in text
    assert text.rstrip().splitlines()[-1].startswith("OK")


def test_the_report_warns_when_servers_start_slower_than_jupyterhub_allows_by_default() -> None:
    result = _result(2, {"nb/00_a.ipynb": [1.0, 1.2]})
    result.runs[1].spawn_seconds = 41.0
    text = format_report(result)
    assert "A server took 41 s to start" in text and "Spawner.http_timeout 30 s" in text


# -- what is left behind ------------------------------------------------------------------------------


def test_a_process_carrying_the_marker_is_found_and_killed(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    environment = {**os.environ, MARKER_VARIABLE: marker}
    # Its own session, as a kernel has: nothing links it to this test but the marker.
    straggler = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=environment, start_new_session=True
    )
    try:
        threads = {thread.ident for thread in threading.enumerate()}
        assert [record.pid for record in find_leftovers(uuid.uuid4().hex, None, threads).processes] == []
        leftovers = find_leftovers(marker, None, threads)
        assert [record.pid for record in leftovers.processes] == [straggler.pid]
        assert leftovers.ports == []  # it listens on nothing
        kill_processes(leftovers.processes)  # it also reaps it: Popen.wait below only confirms it is gone
        straggler.wait(10)
        assert find_leftovers(marker, None, threads).nothing
    finally:
        if straggler.poll() is None:
            straggler.kill()
            straggler.wait()


LISTENER = "import socket, sys, time; s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)"


def test_a_port_still_listening_in_a_leftover_process_is_reported() -> None:
    marker = uuid.uuid4().hex
    listener = subprocess.Popen(
        [sys.executable, "-c", LISTENER],
        env={**os.environ, MARKER_VARIABLE: marker},
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        port = int(listener.stdout.readline())  # type: ignore[union-attr]
        leftovers = find_leftovers(marker, None, {thread.ident for thread in threading.enumerate()})
        assert [(found, record.pid) for found, record in leftovers.ports] == [(port, listener.pid)]
        assert f"port {port} still listening" in "\n".join(leftovers.lines())
        kill_processes(leftovers.processes)
        listener.wait(10)
    finally:
        if listener.poll() is None:
            listener.kill()
            listener.wait()
        listener.stdout.close()  # type: ignore[union-attr]


def test_a_thread_started_during_the_rehearsal_is_reported() -> None:
    before = {thread.ident for thread in threading.enumerate()}
    release = threading.Event()
    lingering = threading.Thread(target=release.wait, name="lingering", daemon=True)
    lingering.start()
    try:
        assert find_leftovers(uuid.uuid4().hex, None, before).threads == ["lingering"]
    finally:
        release.set()
        lingering.join(5)
    assert find_leftovers(uuid.uuid4().hex, None, before).threads == []


def test_temporary_leftovers_are_grouped_by_name(tmp_path: Path) -> None:
    for name in (
        "mtls-client-ab12_xyz",
        "mtls-client-k9k9k9k9",
        "ipykernel_4242",
        "tmpa1b2c3d4",
        "fixed-name.txt",
    ):
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("")
    assert temporary_leftovers(tmp_path) == {
        "fixed-name.txt": 1,
        "ipykernel_*/": 1,
        "mtls-client-*/": 2,
        "tmp*/": 1,
    }
    assert temporary_leftovers(tmp_path / "missing") == {}


# -- the command line ---------------------------------------------------------------------------------


def _run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab_helpers", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--learners", "0"], "--learners"),
        (["--notebooks", "06-00"], "--notebooks"),
        (["--stagger", "-1"], "--stagger"),
        (["--cell-timeout", "0"], "--cell-timeout"),
    ],
)
def test_rehearse_refuses_bad_input_with_one_line(arguments: list[str], message: str) -> None:
    result = _run_cli("rehearse", *arguments)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}") and len(result.stderr.strip().splitlines()) == 1


def test_rehearse_with_a_missing_proxy_says_where_to_get_one() -> None:
    pytest.importorskip("jupyterhub")
    result = _run_cli("rehearse", "--proxy", str(ROOT / "no-such-proxy"))
    assert result.returncode == 2 and "configurable-http-proxy" in result.stderr


STACK = ("jupyterhub", "tornado", "psutil", "zmq", "lab_helpers.rehearsal.run")
PROBE = "import sys; from lab_helpers.cli import main; main(sys.argv[1:]); print(sorted(m for m in {stack!r} if m in sys.modules))"


def test_pki_loads_none_of_the_rehearsal_stack(tmp_path: Path) -> None:
    probe = PROBE.format(stack=STACK)
    result = subprocess.run(
        [sys.executable, "-c", probe, "pki", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_import_probe_does_see_the_stack_when_the_rehearsal_loads() -> None:
    probe = f"import lab_helpers.rehearsal.run, sys; print(sorted(m for m in {STACK!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        pytest.skip("psutil or tornado is missing here")
    assert "tornado" in result.stdout and "lab_helpers.rehearsal.run" in result.stdout
