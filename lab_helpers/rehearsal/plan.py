"""What a rehearsal runs: how many learners, which notebooks, how staggered. Checked before anything starts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError

__all__ = ["RehearsalPlan", "find_course_root", "parse_learner_counts", "select_notebooks"]

_NUMBER = re.compile(r"^\d{1,2}$")


def find_course_root(explicit: str | Path | None = None) -> Path:
    """The folder that holds ``notebooks/``: ``explicit``, else this checkout of the course, else the current folder."""
    candidates = [Path(explicit)] if explicit else [Path(__file__).resolve().parents[2], Path.cwd()]
    for candidate in candidates:
        if (candidate / "notebooks").is_dir():
            return candidate.resolve()
    where = explicit or "this checkout or the current folder"
    raise LabError(
        f"No notebooks/ folder in {where}. Run the rehearsal from a clone of the course, or pass --course DIR."
    )


def select_notebooks(course_root: Path, spec: str, *, solutions: bool = False) -> tuple[str, ...]:
    """The notebooks ``spec`` names ("00-06", "00,03,05", "all"), as paths relative to the course root.

    With ``solutions`` the worked solutions (``notebooks/solutions/``) run instead: the
    exercise checks then make their real requests, as they do for a learner who tried them.
    """
    folder = course_root / "notebooks" / ("solutions" if solutions else "")
    available = {path.name[:2]: path for path in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}
    if not available:
        raise LabError(f"No numbered notebooks (NN_name.ipynb) in {folder}.")
    wanted: list[str] = []
    text = spec.strip().lower()
    parts = sorted(available) if text == "all" else [part.strip() for part in text.split(",")]
    for part in parts:
        first, dash, last = part.partition("-")
        if not _NUMBER.match(first) or (dash and not _NUMBER.match(last)):
            raise LabError(f"--notebooks {spec!r}: write numbers like 00-06, 00,03,05 or all.")
        low, high = int(first), int(last or first)
        if low > high:
            raise LabError(
                f"--notebooks {spec!r}: a range goes from the lower number to the higher, as in 00-06."
            )
        for number in range(low, high + 1):
            key = f"{number:02d}"
            if key not in available:
                raise LabError(
                    f"--notebooks {spec!r}: there is no notebook {key} in {folder} (there are {min(available)}-{max(available)})."
                )
            if key not in wanted:
                wanted.append(key)
    return tuple(str(available[key].relative_to(course_root)) for key in wanted)


def parse_learner_counts(text: str) -> tuple[int, ...]:
    """``"3"`` or ``"1,4,8"``: how many learners, or a sweep of several rehearsals, smallest first."""
    try:
        counts = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        counts = []
    if not counts or counts[0] < 1:
        raise LabError(
            f"--learners {text!r}: give a number of learners (1 or more), or a list such as 1,4,8."
        )
    return tuple(counts)


@dataclass(frozen=True)
class RehearsalPlan:
    """One rehearsal: ``learners`` people run ``notebooks`` in order, each in their own server, all at once.

    ``stagger`` is the gap in seconds between one learner's start and the next (a room
    never presses "run all" in the same second). ``keep_kernels`` leaves each notebook's
    kernel running until the learner's last notebook, as JupyterLab does when a tab is
    closed without shutting its kernel down: the memory figure for a careless room.
    ``kernel_transport`` is how each server talks to its kernels: ``ipc`` (Unix sockets in the
    user's runtime folder, what a shared host should use) or ``tcp`` (Jupyter's default:
    ports on 127.0.0.1 that the server picks and the kernel binds a moment later, a race that
    another user's kernel can win, jupyter/jupyter_client#487).
    ``prepare_home(name, home)`` may change a learner's copy of the course before the
    run (the tests use it to break one learner's notebook).
    """

    learners: int
    notebooks: tuple[str, ...]
    course_root: Path
    proxy_command: str
    stagger: float = 0.0
    keep_kernels: bool = False
    kernel_transport: str = "ipc"
    cell_timeout: float = 300.0
    spawn_timeout: float = 300.0
    prepare_home: Callable[[str, Path], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.learners < 1:
            raise LabError("A rehearsal needs at least one learner.")
        if not self.notebooks:
            raise LabError("A rehearsal needs at least one notebook.")
        if self.stagger < 0:
            raise LabError(
                f"--stagger {self.stagger}: give the seconds between two learners' starts, 0 or more."
            )
        if self.kernel_transport not in ("ipc", "tcp"):
            raise LabError(f"--kernel-transport {self.kernel_transport!r}: choose ipc or tcp.")
        if self.cell_timeout <= 0 or self.spawn_timeout <= 0:
            raise LabError("Timeouts must be positive numbers of seconds.")

    @property
    def learner_names(self) -> list[str]:
        width = len(str(self.learners))
        return [f"learner{number:0{width}d}" for number in range(1, self.learners + 1)]
