"""``check.exercise_NN_K(...)``: the checks of the notebooks' exercises, by notebook and number.

``from lab_helpers import check`` then ``check.exercise_04_1(bob)`` runs
``exercise_1`` of ``lab_helpers/exercises/nb04.py``. Each check prints
nothing itself: Jupyter shows the returned result (or ``print()`` it).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

_NAME = re.compile(r"^exercise_(\d\d)_(\d+)$")


def __getattr__(name: str) -> Callable[..., Any]:
    match = _NAME.match(name)
    if match is None:
        raise AttributeError(f"module 'lab_helpers.check' has no attribute {name!r}")
    notebook, number = match.groups()
    try:
        module = importlib.import_module(f"lab_helpers.exercises.nb{notebook}")
        return getattr(module, f"exercise_{number}")
    except (ModuleNotFoundError, AttributeError):
        raise AttributeError(f"There is no check for exercise {int(notebook)}.{number}.") from None


def __dir__() -> list[str]:
    import pkgutil

    from . import exercises

    names = []
    for info in pkgutil.iter_modules(exercises.__path__):
        if info.name.startswith("nb"):
            module = importlib.import_module(f"lab_helpers.exercises.{info.name}")
            names += [
                f"exercise_{info.name[2:]}_{name[len('exercise_') :]}"
                for name in dir(module)
                if name.startswith("exercise_")
            ]
    return sorted(names)
