"""A rehearsal's figures: who completed, which cell failed, time per notebook, memory, CPU, what was left behind.

Percentiles use the nearest-rank method (the p95 of 20 learners is the 19th time in
order): with a room's worth of values, every figure printed is a time someone really waited.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .learner import LearnerRun
from .monitor import Leftovers, MemoryFigures

__all__ = ["RehearsalResult", "format_report", "format_sweep", "percentile", "sweep_verdicts"]

#: A rehearsal passes when every notebook's p95 stays under this many times its single-learner time.
SLOWDOWN_LIMIT = 3.0
#: JupyterHub's defaults for a server to answer and to start (jupyterhub/spawner.py); the rehearsal raises both.
JUPYTERHUB_HTTP_TIMEOUT = 30
JUPYTERHUB_START_TIMEOUT = 60


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass
class RehearsalResult:
    """Everything one rehearsal measured. ``ok``: every learner completed and nothing was left behind."""

    learners: int
    notebooks: tuple[str, ...]
    stagger: float
    keep_kernels: bool
    kernel_transport: str = "ipc"
    environment: dict[str, Any] = field(default_factory=dict)
    runs: list[LearnerRun] = field(default_factory=list)
    memory: MemoryFigures = field(default_factory=MemoryFigures)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    command_cpu_seconds: float = 0.0
    leftovers: Leftovers = field(default_factory=Leftovers)
    temporary_leftovers: dict[str, int] = field(default_factory=dict)
    lab_ca_fingerprints: dict[str, str] = field(default_factory=dict)
    home_entries: list[str] = field(default_factory=list)
    hub_start_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False
    error: str | None = None  # the hub itself failed: nothing else ran
    hub_log_tail: str = ""
    folder: str = ""  # the temporary folder (homes, hub), removed at the end unless kept
    listening_ports_seen: int = (
        0  # ports the hub's processes listened on during the run (checked again after the stop)
    )

    @property
    def completed(self) -> bool:
        return (
            self.error is None
            and not self.interrupted
            and len(self.runs) == self.learners
            and all(run.completed for run in self.runs)
        )

    @property
    def ok(self) -> bool:
        return self.completed and self.leftovers.nothing

    def notebook_times(self, notebook: str) -> list[float]:
        return [run.seconds for learner in self.runs for run in learner.notebooks if run.notebook == notebook]

    def notebook_completed(self, notebook: str) -> int:
        return sum(
            run.completed for learner in self.runs for run in learner.notebooks if run.notebook == notebook
        )

    def learner_totals(self) -> list[float]:
        return [sum(run.seconds for run in learner.notebooks) for learner in self.runs if learner.notebooks]

    def failures(self) -> list[str]:
        lines = []
        for learner in self.runs:
            if learner.error:
                lines.append(f"{learner.name}: {learner.error}")
            for run in learner.notebooks:
                if run.failure is not None:
                    lines.append(f"{learner.name} {_short(run.notebook)} {run.failure}")
        return lines

    def per_learner_memory(self) -> dict[str, int]:
        """Peak RSS of each learner's server and kernels (see monitor.py for why RSS)."""
        return dict(sorted(self.memory.per_user_peak_rss.items()))

    def learner_cpu(self) -> dict[str, float]:
        return {
            name: seconds for name, seconds in sorted(self.cpu_seconds.items()) if name != "hub and proxy"
        }

    def to_json(self) -> dict[str, Any]:
        """The figures as plain data (``--json``): every time, every peak, every failure and leftover."""
        per_notebook = {}
        for notebook in self.notebooks:
            times = self.notebook_times(notebook)
            per_notebook[_short(notebook)] = {
                "completed": self.notebook_completed(notebook),
                "seconds": [round(value, 3) for value in times],
                **_summary(times),
            }
        memory = self.memory
        return {
            "learners": self.learners,
            "notebooks": [_short(notebook) for notebook in self.notebooks],
            "stagger_seconds": self.stagger,
            "keep_kernels": self.keep_kernels,
            "kernel_transport": self.kernel_transport,
            "environment": self.environment,
            "ok": self.ok,
            "completed": self.completed,
            "interrupted": self.interrupted,
            "error": self.error,
            "hub_start_seconds": round(self.hub_start_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 3),
            "spawn_seconds": {run.name: _round(run.spawn_seconds) for run in self.runs},
            "per_notebook": per_notebook,
            "per_learner_total": _summary(self.learner_totals()),
            "failures": self.failures(),
            "kernel_transports": sorted(
                {run.transport for learner in self.runs for run in learner.notebooks}
            ),
            "memory_bytes": {
                "host_peak_pss": memory.host_peak_pss,
                "host_peak_rss": memory.host_peak_rss,
                "hub_and_proxy_at_peak_pss": memory.hub_and_proxy_at_peak,
                "per_learner_peak_rss": self.per_learner_memory(),
                "per_learner_peak_pss": dict(sorted(memory.per_user_peak_pss.items())),
                "host_available_at_start": memory.available_at_start,
                "host_available_lowest": memory.available_lowest,
                "samples": memory.samples,
            },
            "cpu_seconds": {name: round(value, 3) for name, value in sorted(self.cpu_seconds.items())},
            "command_cpu_seconds": round(self.command_cpu_seconds, 3),
            "left_behind": self.leftovers.lines(),
            "listening_ports_seen": self.listening_ports_seen,
            "temporary_leftovers": self.temporary_leftovers,
            "lab_ca_fingerprints": self.lab_ca_fingerprints,
            "home_entries": self.home_entries,
        }


def _short(notebook: str) -> str:
    path = PurePosixPath(notebook)
    return ("solutions/" if path.parent.name == "solutions" else "") + path.stem


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None, "max": None}
    return {
        "median": round(statistics.median(values), 3),
        "p95": round(percentile(values, 0.95), 3),
        "max": round(max(values), 3),
    }


def _megabytes(value: int) -> str:
    return f"{value / 1_000_000:,.0f} MB"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def format_report(result: RehearsalResult) -> str:
    """The report an instructor reads: one table per notebook, then memory, CPU and what was left behind."""
    env = result.environment
    lines = [
        f"Rehearsal: {result.learners} learner(s), notebooks {', '.join(_short(n) for n in result.notebooks)}",
        f"  stagger {result.stagger:g} s between learners' starts"
        + f"; kernels over {result.kernel_transport}"
        + ("; kernels kept open until each learner's last notebook" if result.keep_kernels else "")
        + f"; JupyterHub {env.get('jupyterhub', '?')}, Python {env.get('python', '?')}, {env.get('cpus', '?')} CPUs, "
        f"{env.get('memory_gb', '?')} GB",
    ]
    if result.error:
        lines += ["", f"The rehearsal could not run: {result.error}"]
        if result.hub_log_tail:
            lines += ["JupyterHub's log ends:", result.hub_log_tail]
    spawns = [run.spawn_seconds for run in result.runs if run.spawn_seconds is not None]
    if result.runs:
        spawn = _summary(spawns)
        lines += [
            "",
            f"Hub ready in {result.hub_start_seconds:.1f} s. Servers started: {len(spawns)} of {result.learners}"
            + (
                f", in median {_seconds(spawn['median'])}, p95 {_seconds(spawn['p95'])}, max {_seconds(spawn['max'])}"
                if spawns
                else ""
            ),
            "",
            f"{'notebook':<40} {'completed':>9} {'median':>8} {'p95':>8} {'max':>8}",
        ]
        for notebook in result.notebooks:
            times = result.notebook_times(notebook)
            summary = _summary(times)
            done = f"{result.notebook_completed(notebook)}/{result.learners}"
            lines.append(
                f"{_short(notebook):<40} {done:>9} {_seconds(summary['median']):>8} {_seconds(summary['p95']):>8} {_seconds(summary['max']):>8}"
            )
        totals = _summary(result.learner_totals())
        finished = sum(run.completed for run in result.runs)
        lines.append(
            f"{'all, per learner':<40} {f'{finished}/{result.learners}':>9} {_seconds(totals['median']):>8} "
            f"{_seconds(totals['p95']):>8} {_seconds(totals['max']):>8}"
        )
    if spawns and max(spawns) > JUPYTERHUB_HTTP_TIMEOUT:
        lines.append(
            f"  A server took {max(spawns):.0f} s to start: with JupyterHub's defaults (Spawner.http_timeout "
            f"{JUPYTERHUB_HTTP_TIMEOUT} s, start_timeout {JUPYTERHUB_START_TIMEOUT} s) a room's logins could fail. "
            "Raise both (docs/workshop.md, Settings for a shared host)."
        )
    failures = result.failures()
    if failures:
        lines += ["", f"Failures ({len(failures)}):"] + [f"  {line}" for line in failures]
    memory = result.memory
    if memory.samples:
        per_learner = list(result.per_learner_memory().values())
        lines += [
            "",
            f"Memory ({memory.samples} samples): peak of all the rehearsal's processes {_megabytes(memory.host_peak_pss)} (PSS), "
            f"of which the hub and its proxy {_megabytes(memory.hub_and_proxy_at_peak)}",
        ]
        if per_learner:
            lines.append(
                f"  per learner, server + kernels at their peak (RSS): median {_megabytes(int(statistics.median(per_learner)))}, "
                f"max {_megabytes(max(per_learner))}"
            )
        used = memory.available_at_start - memory.available_lowest
        lines.append(
            f"  the whole host's available memory fell by at most {_megabytes(max(used, 0))} (other programs count too)"
        )
    if result.cpu_seconds:
        learner_cpu = list(result.learner_cpu().values())
        lines.append(
            f"CPU time: learners' servers and kernels {sum(learner_cpu):.1f} s"
            + (f" (median {statistics.median(learner_cpu):.1f} s per learner)" if learner_cpu else "")
            + f", hub and proxy {result.cpu_seconds.get('hub and proxy', 0.0):.1f} s, "
            f"this command (the learners' browsers) {result.command_cpu_seconds:.1f} s"
        )
    lines.append("")
    if result.leftovers.nothing:
        lines.append(
            "Left behind after every server and the hub stopped: nothing (no process, no listening port, no thread)."
        )
    else:
        lines.append("Left behind after every server and the hub stopped (now killed):")
        lines += [f"  {line}" for line in result.leftovers.lines()]
    if result.listening_ports_seen:
        lines.append(
            f"Ports the rehearsal's processes listened on during the run: {result.listening_ports_seen} "
            "(hub, proxy, servers, lab servers), each checked again after the stop."
        )
    transports = [run.transport for learner in result.runs for run in learner.notebooks if run.transport]
    if transports:
        counted = ", ".join(f"{name} {transports.count(name)}" for name in sorted(set(transports)))
        lines.append(f"Kernels, by the transport they report: {counted} (of {len(transports)} kernels).")
    if result.temporary_leftovers:
        listed = ", ".join(f"{pattern} x{count}" for pattern, count in result.temporary_leftovers.items())
        lines.append(f"Left in the learners' temporary folder ($TMPDIR): {listed}")
    elif result.runs:
        lines.append("Left in the learners' temporary folder ($TMPDIR): nothing.")
    if result.lab_ca_fingerprints:
        distinct = len(set(result.lab_ca_fingerprints.values()))
        lines.append(
            f"Lab files: {len(result.lab_ca_fingerprints)} learners have lab-files/ in their own home, "
            f"with {distinct} different lab CAs."
        )
    if result.home_entries:
        lines.append(f"In each home besides the notebooks: {', '.join(result.home_entries)}")
    verdict = "OK" if result.ok else ("INTERRUPTED" if result.interrupted else "FAILED")
    lines += ["", f"{verdict}: {result.wall_seconds:.1f} s in all."]
    return "\n".join(lines)


@dataclass(frozen=True)
class SweepRow:
    learners: int
    completed: bool
    worst_ratio: float | None  # the largest p95 / single-learner time over the notebooks
    worst_notebook: str
    host_peak: int
    per_learner: int
    passed: bool


def sweep_verdicts(results: Sequence[RehearsalResult]) -> list[SweepRow]:
    """For each rehearsal of a sweep: did everyone complete, and is every notebook's p95 under 3x its time alone?"""
    single = next((result for result in results if result.learners == 1), None)
    rows = []
    for result in results:
        worst_ratio, worst_notebook = None, ""
        if single is not None and single.completed:
            for notebook in result.notebooks:
                alone = single.notebook_times(notebook)
                times = result.notebook_times(notebook)
                if alone and times:
                    ratio = percentile(times, 0.95) / alone[0]
                    if worst_ratio is None or ratio > worst_ratio:
                        worst_ratio, worst_notebook = ratio, _short(notebook)
        per_learner = list(result.per_learner_memory().values())
        rows.append(
            SweepRow(
                result.learners,
                result.completed,
                worst_ratio,
                worst_notebook,
                result.memory.host_peak_pss,
                max(per_learner) if per_learner else 0,
                result.ok and worst_ratio is not None and worst_ratio < SLOWDOWN_LIMIT,
            )
        )
    return rows


def format_sweep(results: Sequence[RehearsalResult]) -> str:
    rows = sweep_verdicts(results)
    lines = [
        f"Sweep: every notebook's p95 must stay under {SLOWDOWN_LIMIT:g}x its single-learner time, "
        "every learner must complete, nothing may be left behind.",
        f"{'learners':>8} {'completed':>9} {'worst p95 / alone':>18} {'host peak (PSS)':>16} {'per learner (RSS)':>18}  verdict",
    ]
    for row in rows:
        ratio = "-" if row.worst_ratio is None else f"{row.worst_ratio:.2f} ({row.worst_notebook[:2]})"
        lines.append(
            f"{row.learners:>8} {'yes' if row.completed else 'NO':>9} {ratio:>18} {_megabytes(row.host_peak):>16} "
            f"{_megabytes(row.per_learner):>18}  {'pass' if row.passed else 'FAIL'}"
        )
    passing = []
    for row in rows:  # the largest N below the first failure: a pass after a failure is noise, not capacity
        if not row.passed:
            break
        passing.append(row.learners)
    lines.append(
        f"Largest number of learners that passed (and every smaller one): {passing[-1]}"
        if passing
        else "No rehearsal of the sweep passed."
    )
    return "\n".join(lines)
