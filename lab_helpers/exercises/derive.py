"""Derive each exercise notebook from its solution notebook, so that the two can never drift apart.

The solutions are written once, in ``notebooks/solutions/NN_*.ipynb``. A
code cell that holds a solution carries the tag ``solution`` and, in its
metadata, the ``stub`` the learner starts from (code that still runs: it
leaves the answer ``None``, so the check says "not attempted yet").
Deriving replaces each solution by its stub, tags the cell ``exercise``, and
keeps every other cell as it is. ``python -m lab_helpers exercises`` writes
the course notebooks; ``--check`` only compares (the tests do the same).
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat

__all__ = ["EXERCISE_TAG", "SOLUTION_TAG", "derive_exercise", "exercise_path", "solution_notebooks", "sync"]

SOLUTION_TAG = "solution"
EXERCISE_TAG = "exercise"


def derive_exercise(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The exercise notebook: the solution notebook with each solution cell replaced by its stub."""
    exercise = copy.deepcopy(solution)
    for cell in exercise.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG not in tags:
            continue
        stub = cell.metadata.get("stub")
        if stub is None:
            raise ValueError(
                f"solution cell {cell.get('id')} has no 'stub' in its metadata: give the learner a start"
            )
        cell.source = stub
        cell.metadata = {"tags": [EXERCISE_TAG if tag == SOLUTION_TAG else tag for tag in tags]}
        cell.outputs, cell.execution_count = [], None
    return exercise


def solution_notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks" / "solutions").glob("[0-9][0-9]_*.ipynb"))


def exercise_path(solution_path: Path) -> Path:
    return solution_path.parent.parent / solution_path.name


def _comparable(notebook: nbformat.NotebookNode) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [
        (cell.cell_type, cell.get("id", ""), cell.source, tuple(cell.get("metadata", {}).get("tags", [])))
        for cell in notebook.cells
    ]


def sync(root: Path, *, write: bool, only: str | None = None) -> list[str]:
    """Compare (and with ``write``, update) every exercise notebook (or those starting with ``only``)."""
    differing = []
    for solution_path in solution_notebooks(root):
        if only is not None and not solution_path.name.startswith(only):
            continue
        derived = derive_exercise(nbformat.read(solution_path, as_version=4))
        target = exercise_path(solution_path)
        current = nbformat.read(target, as_version=4) if target.exists() else None
        if current is None or _comparable(current) != _comparable(derived):
            differing.append(target.name)
            if write:
                nbformat.write(derived, target)
    return differing
