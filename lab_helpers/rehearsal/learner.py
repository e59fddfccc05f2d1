"""One learner's run: their server started, then each notebook opened and run top to bottom, as a browser does.

For each notebook: the contents API gives the notebook (JupyterLab opens it so), the
sessions API starts its kernel in the notebook's folder, and the kernel's websocket
executes the code cells one by one. A cell that fails ends that notebook, as "Run all"
stops at an error; the learner then goes on to the next notebook, which runs on its own.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from .hub import HubAPI
from .kernel_socket import KernelSocket
from .plan import RehearsalPlan

__all__ = ["CellFailure", "LearnerRun", "NotebookRun", "Progress", "run_learner"]

#: Asked of each kernel before the notebook's first cell, silently: the transport it was started with.
_TRANSPORT = "__import__('ipykernel.connect').connect.get_connection_info(unpack=True)['transport']"


@dataclass(frozen=True)
class CellFailure:
    """Where a notebook stopped: the cell's position (1 = the notebook's first cell, Markdown included) and the error."""

    cell: int
    cell_id: str
    error_name: str
    error_value: str
    first_line: str

    def __str__(self) -> str:
        value = self.error_value.strip().splitlines()[0][:200] if self.error_value.strip() else ""
        where = (
            f"cell {self.cell}" + (f" (id {self.cell_id})" if self.cell_id else "")
            if self.cell
            else "before the first cell"
        )
        return f"{where}: {self.error_name}" + (f": {value}" if value else "")


@dataclass
class NotebookRun:
    """One notebook for one learner: seconds from opening it to its last cell's answer."""

    notebook: str
    seconds: float
    code_cells: int
    cells_run: int
    failure: CellFailure | None = None
    transport: str = ""  # how the server reached this kernel, as the kernel itself reports it (ipc or tcp)

    @property
    def completed(self) -> bool:
        return self.failure is None


@dataclass
class LearnerRun:
    name: str
    spawn_seconds: float | None = None
    notebooks: list[NotebookRun] = field(default_factory=list)
    error: str | None = None  # the server never started: no notebook ran

    @property
    def completed(self) -> bool:
        return self.error is None and all(run.completed for run in self.notebooks)


@dataclass
class Progress:
    """Counters the progress line reads while the learners run."""

    learners: int
    notebooks_each: int
    servers_ready: int = 0
    notebooks_done: int = 0
    failures: int = 0

    @property
    def notebooks_total(self) -> int:
        return self.learners * self.notebooks_each


async def run_learner(
    api: HubAPI, name: str, plan: RehearsalPlan, *, delay: float, progress: Progress
) -> LearnerRun:
    """Wait ``delay`` seconds, start ``name``'s server, then run the plan's notebooks in order."""
    run = LearnerRun(name)
    await asyncio.sleep(delay)
    started = time.monotonic()
    try:
        await api.start_server(name, timeout=plan.spawn_timeout)
    except Exception as error:  # recorded, not raised: the other learners go on
        run.error = f"server did not start: {error}"
        progress.failures += 1
        progress.notebooks_done += len(plan.notebooks)
        return run
    run.spawn_seconds = time.monotonic() - started
    progress.servers_ready += 1
    sessions: list[str] = []
    try:
        for notebook in plan.notebooks:
            notebook_run = await _run_notebook(api, name, notebook, plan, sessions)
            run.notebooks.append(notebook_run)
            progress.notebooks_done += 1
            progress.failures += not notebook_run.completed
    finally:
        for (
            session_id
        ) in sessions:  # with keep_kernels, the kernels a learner left open, shut down at the end
            await _close_session(api, name, session_id)
    return run


async def _run_notebook(
    api: HubAPI, name: str, notebook: str, plan: RehearsalPlan, sessions: list[str]
) -> NotebookRun:
    started = time.monotonic()
    path = PurePosixPath(notebook).as_posix()
    cells: list[dict[str, Any]] = []
    cells_run = 0
    transport = ""
    failure: CellFailure | None = None
    session_id = None
    kernel: KernelSocket | None = None
    try:
        _, model = await api.call("GET", f"/user/{name}/api/contents/{quote(path)}?content=1&type=notebook")
        cells = model["content"]["cells"]
        _, session = await api.call(
            "POST",
            f"/user/{name}/api/sessions",
            {
                "path": path,
                "name": PurePosixPath(path).name,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
            timeout=plan.spawn_timeout,
        )
        session_id = session["id"]
        sessions.append(session_id)
        kernel = await KernelSocket.open(
            api.kernel_socket_url(name, session["kernel"]["id"]), api.token, timeout=plan.spawn_timeout
        )
        await kernel.wait_ready(plan.spawn_timeout)
        transport = (await kernel.evaluate(_TRANSPORT, timeout=plan.spawn_timeout)).strip("'\"")
        for position, cell in enumerate(cells, start=1):
            if cell["cell_type"] != "code":
                continue
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            result = await kernel.execute(source, timeout=plan.cell_timeout)
            cells_run += 1
            if not result.ok:
                first_line = next((line for line in source.splitlines() if line.strip()), "")
                failure = CellFailure(
                    position, cell.get("id", ""), result.error_name, result.error_value, first_line
                )
                break
    except Exception as error:  # the notebook could not be opened or its kernel not reached
        failure = CellFailure(0, "", type(error).__name__, str(error) or repr(error), "")
    finally:
        if kernel is not None:
            kernel.close()
    elapsed = (
        time.monotonic() - started
    )  # what the learner waits for; shutting the kernel down is not part of it
    if session_id is not None and not plan.keep_kernels:
        sessions.remove(session_id)
        await _close_session(api, name, session_id)
    code_cells = sum(cell["cell_type"] == "code" for cell in cells)
    return NotebookRun(notebook, elapsed, code_cells, cells_run, failure, transport)


async def _close_session(api: HubAPI, name: str, session_id: str) -> None:
    """Shut the notebook's kernel down, as closing a notebook with "Shut Down Kernel" does."""
    try:
        await api.call("DELETE", f"/user/{name}/api/sessions/{session_id}")
    except Exception:
        pass  # the server may be gone already; the hub's stop and the leftover check come after
