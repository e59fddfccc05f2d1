"""One rehearsal from start to stop: homes, hub, learners at once, then everything stopped and checked.

The stop is the part that must never be skipped. Whatever happens (a learner's failure,
an exception, Ctrl-C, SIGTERM), the ``finally`` stops the hub in order (it stops every
user's server, each server shuts its kernels down), then looks for anything still
there, reports it and kills it, and removes the temporary folder. A second Ctrl-C
during the stop skips the waiting, never the killing.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, TextIO

from .hub import HubAPI, HubProcess, jupyterhub_version
from .learner import Progress, run_learner
from .monitor import Monitor, find_leftovers, kill_processes, temporary_leftovers
from .plan import RehearsalPlan
from .report import RehearsalResult

__all__ = ["run_rehearsal"]

_SERVER_STOP_TIMEOUT = 90.0
_HUB_STOP_TIMEOUT = 120.0


def _environment() -> dict[str, Any]:
    import psutil

    return {
        "python": platform.python_version(),
        "jupyterhub": jupyterhub_version(),
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
        "platform": platform.platform(),
    }


def _copy_course(plan: RehearsalPlan, home: Path) -> None:
    """The learner's own copy of the notebooks, as nbgitpuller or a copy in /etc/skel would give them."""
    shutil.copytree(
        plan.course_root / "notebooks",
        home / "notebooks",
        ignore=shutil.ignore_patterns("lab-files", ".ipynb_checkpoints", "__pycache__"),
    )


def _command_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Interrupted(Exception):
    """SIGTERM, turned into an exception so that the same stop runs as for Ctrl-C."""


def run_rehearsal(
    plan: RehearsalPlan, *, progress_to: TextIO | None = sys.stderr, keep_folder: bool = False
) -> RehearsalResult:
    """Run ``plan`` on a new JupyterHub and return what it measured; nothing it started is left running."""
    result = RehearsalResult(
        plan.learners,
        plan.notebooks,
        plan.stagger,
        plan.keep_kernels,
        plan.kernel_transport,
        environment=_environment(),
    )
    started = time.monotonic()
    cpu_at_start = _command_cpu_seconds()
    threads_before = {thread.ident for thread in threading.enumerate()}
    root = Path(tempfile.mkdtemp(prefix="mtls-rehearsal-"))  # short: kernels' socket paths start here
    result.folder = str(root)
    homes, shared_tmp, hub_dir, runtime_root = root / "homes", root / "tmp", root / "hub", root / "run"
    marker = uuid.uuid4().hex
    hub = HubProcess(
        hub_dir,
        proxy_command=plan.proxy_command,
        homes=homes,
        shared_tmp=shared_tmp,
        runtime_root=runtime_root,
        marker=marker,
        kernel_transport=plan.kernel_transport,
        spawn_timeout=plan.spawn_timeout,
        max_users=plan.learners,
    )
    monitor: Monitor | None = None
    previous_sigterm = _on_sigterm_raise()
    try:
        for folder in (homes, shared_tmp, hub_dir, runtime_root):
            folder.mkdir()
        shared_tmp.chmod(0o1777)  # like /tmp: everyone may write, only the owner may remove
        for name in plan.learner_names:
            _copy_course(plan, homes / name)
            if plan.prepare_home is not None:
                plan.prepare_home(name, homes / name)
        hub_started = time.monotonic()
        hub.start()
        result.hub_start_seconds = time.monotonic() - hub_started
        assert hub.process is not None
        monitor = Monitor(hub.process.pid).start()
        asyncio.run(_drive(plan, hub, monitor, result, progress_to))
    except (KeyboardInterrupt, _Interrupted):
        result.interrupted = True
        if progress_to is not None:
            print("\nInterrupted: stopping every server and the hub...", file=progress_to, flush=True)
    except Exception as error:
        result.error = f"{type(error).__name__}: {error}"
        result.hub_log_tail = hub.log_tail()
    finally:
        try:
            _stop_everything(hub, monitor, marker, threads_before, result)
        finally:
            _restore_sigterm(previous_sigterm)
            _inspect_homes(homes, plan, result)
            result.temporary_leftovers = temporary_leftovers(shared_tmp)
            if keep_folder:
                if progress_to is not None:
                    print(f"Kept the rehearsal's folder: {root}", file=progress_to)
            else:
                shutil.rmtree(root, ignore_errors=True)
            result.wall_seconds = time.monotonic() - started
            result.command_cpu_seconds = _command_cpu_seconds() - cpu_at_start
    return result


async def _drive(
    plan: RehearsalPlan,
    hub: HubProcess,
    monitor: Monitor,
    result: RehearsalResult,
    progress_to: TextIO | None,
) -> None:
    """All learners at once (staggered), then their servers stopped through the hub, as an admin would."""
    api = HubAPI(hub.url, hub.token, max_clients=max(10, 4 * plan.learners))
    progress = Progress(plan.learners, len(plan.notebooks))
    reporter = asyncio.ensure_future(_report_progress(progress, monitor, progress_to))
    try:
        for name in plan.learner_names:
            await api.create_user(name)
        learners = [
            run_learner(api, name, plan, delay=index * plan.stagger, progress=progress)
            for index, name in enumerate(plan.learner_names)
        ]
        result.runs = list(await asyncio.gather(*learners))
        for run in result.runs:
            if run.error:  # say why, from the hub's own words
                run.error = " | ".join([run.error, *hub.log_about(run.name)])
        result.cpu_seconds = (
            monitor.cpu_seconds()
        )  # before the stop: the servers' own shutdown is not the course's cost
        stops = [api.stop_server(name, timeout=_SERVER_STOP_TIMEOUT) for name in plan.learner_names]
        for name, outcome in zip(plan.learner_names, await asyncio.gather(*stops, return_exceptions=True)):
            if isinstance(outcome, BaseException) and progress_to is not None:
                print(f"\nstopping {name}'s server through the hub: {outcome}", file=progress_to)
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        api.close()
        if progress_to is not None:
            print(file=progress_to, flush=True)


async def _report_progress(progress: Progress, monitor: Monitor, stream: TextIO | None) -> None:
    """One line, rewritten every second on a terminal, printed every 10 s elsewhere (CI logs)."""
    if stream is None:
        return
    started = time.monotonic()
    interactive = stream.isatty()
    last_printed = -10.0
    while True:
        elapsed = time.monotonic() - started
        line = (
            f"[{elapsed:5.0f} s] servers ready {progress.servers_ready}/{progress.learners}, "
            f"notebooks done {progress.notebooks_done}/{progress.notebooks_total}, failed {progress.failures}, "
            f"memory {monitor.latest_total_pss / 1e6:,.0f} MB"
        )
        if interactive:
            print(f"\r{line}   ", end="", file=stream, flush=True)
        elif elapsed - last_printed >= 10:
            print(line, file=stream, flush=True)
            last_printed = elapsed
        await asyncio.sleep(1.0)


def _stop_everything(
    hub: HubProcess,
    monitor: Monitor | None,
    marker: str,
    threads_before: set[int | None],
    result: RehearsalResult,
) -> None:
    try:
        hub.stop(timeout=_HUB_STOP_TIMEOUT)
    except (
        KeyboardInterrupt
    ):  # a second Ctrl-C: no more waiting, but the leftovers are still found and killed
        result.interrupted = True
    if monitor is not None:
        monitor.stop()
        result.memory = monitor.memory
        result.listening_ports_seen = len(monitor.listening)
        if not result.cpu_seconds:
            result.cpu_seconds = monitor.cpu_seconds()
    result.leftovers = find_leftovers(marker, monitor, threads_before)
    kill_processes(result.leftovers.processes)
    if (
        hub.process is not None and hub.process.poll() is None
    ):  # only after a second Ctrl-C cut the wait short
        try:
            os.killpg(hub.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        hub.process.wait(10)


def _inspect_homes(homes: Path, plan: RehearsalPlan, result: RehearsalResult) -> None:
    """Whose lab CA is where, and what else the servers and kernels wrote into each home."""
    entries: set[str] = set()
    for name in plan.learner_names:
        home = homes / name
        for ca in sorted(home.glob("notebooks/**/lab-files/ca.crt")):
            result.lab_ca_fingerprints[name] = hashlib.sha256(ca.read_bytes()).hexdigest()
            break
        if home.is_dir():
            entries.update(entry.name for entry in home.iterdir() if entry.name != "notebooks")
    result.home_entries = sorted(entries)


def _on_sigterm_raise() -> Any:
    """SIGTERM (from kill, a CI runner, systemd) stops the rehearsal as Ctrl-C does; only on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        raise _Interrupted()

    return signal.signal(signal.SIGTERM, handler)


def _restore_sigterm(previous: Any) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)
