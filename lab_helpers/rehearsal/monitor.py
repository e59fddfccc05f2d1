"""Memory and CPU of every process the hub starts, sampled while the learners run; then what was left behind.

Each sample walks the hub's process tree: the hub, its proxy, each user's Jupyter
server (which carries ``JUPYTERHUB_USER`` in its environment), the kernels those
servers start, and whatever the kernels start (``openssl``, ``curl``...). Two memory
figures, because they answer different questions:

- RSS (resident set size) of one user's server and kernels, added up, counts the
  shared libraries once per process. It is what a container holding that one user
  would be charged, so it is the figure behind a per-user limit (Zero to JupyterHub).
- PSS (proportional set size) splits each shared page between the processes that
  share it, so the PSS of all processes adds up to the memory the host really uses.
  It is the figure behind the size of one shared host.

CPU time is each process's user + system time at its last sample; a kernel's figure
includes the programs it started and waited for (``children_user``), so short-lived
commands run by a notebook are counted without being sampled. What a process spends
after its last sample (under half a second) is not counted.

After every server is stopped, the processes that still carry the rehearsal's marker
(or that were seen during the run and still exist), the ports they listened on and the
threads of this command are what was left behind.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["Leftovers", "Monitor", "ProcessRecord", "find_leftovers", "kill_processes", "temporary_leftovers"]

MARKER_VARIABLE = "MTLS_REHEARSAL"
_PORT_SAMPLE_EVERY = (
    4  # listening ports are read on every 4th sample: reading every socket on the host is not free
)


@dataclass
class ProcessRecord:
    """A process seen during the run (pid and start time together, since pids are reused)."""

    pid: int
    create_time: float
    role: str  # hub, proxy, server, kernel or command
    user: str  # the learner it belongs to ("" for the hub and the proxy)
    command: str
    cpu_seconds: float = 0.0
    peak_rss: int = 0

    def still_running(self) -> bool:
        try:
            return psutil.Process(self.pid).create_time() == self.create_time
        except psutil.Error:
            return False

    def __str__(self) -> str:
        owner = f" of {self.user}" if self.user else ""
        return f"pid {self.pid} ({self.role}{owner}): {self.command[:100]}"


@dataclass
class MemoryFigures:
    """Peaks in bytes. ``host_peak_pss`` is all the rehearsal's processes at the worst sample."""

    host_peak_pss: int = 0
    host_peak_rss: int = 0
    hub_and_proxy_at_peak: int = 0
    per_user_peak_rss: dict[str, int] = field(default_factory=dict)
    per_user_peak_pss: dict[str, int] = field(default_factory=dict)
    available_at_start: int = 0
    available_lowest: int = 0
    samples: int = 0


class Monitor:
    """Samples the process tree under ``hub_pid`` every ``interval`` seconds on a thread of its own."""

    def __init__(self, hub_pid: int, *, interval: float = 0.5) -> None:
        self.hub_pid = hub_pid
        self.interval = interval
        self.memory = MemoryFigures()
        self.processes: dict[tuple[int, float], ProcessRecord] = {}
        self.listening: dict[int, ProcessRecord] = {}  # port -> the process that listened on it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rehearsal-monitor", daemon=True)
        self._lock = threading.Lock()
        self.latest_total_pss = 0

    def start(self) -> Monitor:
        self.memory.available_at_start = self.memory.available_lowest = psutil.virtual_memory().available
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        count = 0
        while not self._stop.is_set():
            try:
                self.sample(ports=count % _PORT_SAMPLE_EVERY == 0)
            except psutil.NoSuchProcess:
                pass  # the hub itself is gone: nothing left to sample
            count += 1
            self._stop.wait(self.interval)

    def _tree(self) -> list[psutil.Process]:
        hub = psutil.Process(self.hub_pid)
        return [hub, *hub.children(recursive=True)]

    def _record(self, process: psutil.Process, roles: dict[int, str]) -> ProcessRecord | None:
        try:
            key = (process.pid, process.create_time())
            record = self.processes.get(key)
            if record is None:
                parent = process.ppid()
                environment = _environment(process)
                user = environment.get("JUPYTERHUB_USER", "")
                if process.pid == self.hub_pid:
                    role = "hub"
                elif parent == self.hub_pid:
                    role = "server" if user else "proxy"
                elif roles.get(parent) == "server":
                    role = "kernel"
                else:
                    role = "command"
                record = ProcessRecord(
                    process.pid, key[1], role, user, " ".join(process.cmdline()) or process.name()
                )
                with self._lock:  # cpu_seconds() may be reading from the main thread
                    self.processes[key] = record
            roles[process.pid] = record.role
            return record
        except psutil.Error:
            return None

    def sample(self, *, ports: bool = False) -> None:
        """One sample of memory and CPU (and, with ``ports``, of listening sockets)."""
        tree = self._tree()
        roles: dict[int, str] = {}
        total_pss = total_rss = hub_and_proxy = 0
        user_rss: dict[str, int] = {}
        user_pss: dict[str, int] = {}
        alive: dict[int, ProcessRecord] = {}
        for process in tree:  # parents come before their children in this walk
            record = self._record(process, roles)
            if record is None:
                continue
            try:
                with process.oneshot():
                    memory = _memory(process)
                    times = process.cpu_times()
            except psutil.Error:
                continue
            rss, pss = memory
            own = times.user + times.system
            record.cpu_seconds = own + (
                times.children_user + times.children_system if record.role == "kernel" else 0.0
            )
            record.peak_rss = max(record.peak_rss, rss)
            alive[process.pid] = record
            total_rss += rss
            total_pss += pss
            if record.user:
                user_rss[record.user] = user_rss.get(record.user, 0) + rss
                user_pss[record.user] = user_pss.get(record.user, 0) + pss
            else:
                hub_and_proxy += pss
        with self._lock:
            figures = self.memory
            figures.samples += 1
            self.latest_total_pss = total_pss
            if total_pss > figures.host_peak_pss:
                figures.host_peak_pss, figures.hub_and_proxy_at_peak = total_pss, hub_and_proxy
            figures.host_peak_rss = max(figures.host_peak_rss, total_rss)
            for user, value in user_rss.items():
                figures.per_user_peak_rss[user] = max(figures.per_user_peak_rss.get(user, 0), value)
            for user, value in user_pss.items():
                figures.per_user_peak_pss[user] = max(figures.per_user_peak_pss.get(user, 0), value)
            figures.available_lowest = min(figures.available_lowest, psutil.virtual_memory().available)
        if ports:
            found = _listening_ports(alive)
            with self._lock:
                for port, pid in found:
                    self.listening[port] = alive[pid]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time per learner (their server and kernels), plus "hub and proxy"."""
        totals: dict[str, float] = {}
        with self._lock:
            records = list(self.processes.values())
        for record in records:
            if record.role == "command":
                continue  # counted in its kernel's children time once reaped
            key = record.user or "hub and proxy"
            totals[key] = totals.get(key, 0.0) + record.cpu_seconds
        return totals


def _environment(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except psutil.Error:
        return {}


def _memory(process: psutil.Process) -> tuple[int, int]:
    """RSS and PSS in bytes; PSS falls back to RSS where the system does not report it."""
    try:
        full = process.memory_full_info()
        return full.rss, getattr(full, "pss", full.rss)
    except (psutil.AccessDenied, NotImplementedError):
        rss = process.memory_info().rss
        return rss, rss


def _listening_ports(alive: dict[int, Any]) -> Iterable[tuple[int, int]]:
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.Error:
        return []
    return [
        (connection.laddr.port, connection.pid)
        for connection in connections
        if connection.status == psutil.CONN_LISTEN and connection.pid in alive
    ]


@dataclass
class Leftovers:
    """What was still there after every server and the hub were asked to stop."""

    processes: list[ProcessRecord] = field(default_factory=list)
    ports: list[tuple[int, ProcessRecord]] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)

    @property
    def nothing(self) -> bool:
        return not (self.processes or self.ports or self.threads)

    def lines(self) -> list[str]:
        lines = [f"process {record}" for record in self.processes]
        lines += [f"port {port} still listening, {record}" for port, record in self.ports]
        lines += [f"thread {name!r} of this command" for name in self.threads]
        return lines


def marked_processes(marker: str) -> list[psutil.Process]:
    """Every process whose environment carries the rehearsal's marker (kernels keep it even when orphaned)."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        if _environment(process).get(MARKER_VARIABLE) == marker:
            found.append(process)
    return found


def find_leftovers(marker: str, monitor: Monitor | None, threads_before: set[int]) -> Leftovers:
    """Processes, listening ports and threads that outlived the rehearsal's stop."""
    leftovers = Leftovers()
    seen: dict[int, ProcessRecord] = {}
    for process in marked_processes(marker):
        try:
            record = ProcessRecord(
                process.pid, process.create_time(), "process", "", " ".join(process.cmdline())
            )
        except psutil.Error:
            continue
        if monitor is not None:  # the role and owner recorded during the run, when it was seen then
            record = monitor.processes.get((record.pid, record.create_time), record)
        seen[record.pid] = record
    for record in monitor.processes.values() if monitor is not None else []:
        if record.pid not in seen and record.still_running():
            seen[record.pid] = record
    leftovers.processes = sorted(seen.values(), key=lambda record: record.pid)
    # A port outlives its process only if another process holds the socket: so the ports to
    # report are those still listening in a process the rehearsal started.
    for port, pid in _listening_ports(seen):
        leftovers.ports.append((port, seen[pid]))
    leftovers.threads = sorted(
        thread.name
        for thread in threading.enumerate()
        if thread.ident not in threads_before and thread.is_alive()
    )
    return leftovers


def kill_processes(records: Iterable[ProcessRecord], *, wait: float = 10.0) -> None:
    """SIGKILL what was left behind (same pid and start time only: a reused pid is someone else's)."""
    victims = []
    for record in records:
        try:
            process = psutil.Process(record.pid)
            if process.create_time() == record.create_time:
                process.send_signal(signal.SIGKILL)
                victims.append(process)
        except psutil.Error:
            continue
    psutil.wait_procs(victims, timeout=wait)


_RANDOM_TAIL = re.compile(r"(?<=[-_.])[A-Za-z0-9_]{5,}$|(?<=[-_])\d+$|(?<=^tmp)[A-Za-z0-9_]{8}$")


def temporary_leftovers(folder: Path) -> dict[str, int]:
    """What is left in the learners' temporary folder, grouped by name with the random part as ``*``."""
    groups: dict[str, int] = {}
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            pattern = _RANDOM_TAIL.sub("*", entry.name) + ("/" if entry.is_dir() else "")
            groups[pattern] = groups.get(pattern, 0) + 1
    return groups
