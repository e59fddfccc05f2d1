"""How long notebook 12's measurements last: as written, unless ``MTLS_MEASURE_TIME_SCALE`` scales them.

Notebook 12 measures each action for a fixed time per round (bounded in
count and in time). A learner wants those figures steady, so the times are
long enough for a median. The course's own test suite runs the notebook four
times (the course and the solution notebook, then one of them twice in one
kernel) to prove that every cell runs and every check holds, and it never
asserts a speed: there, ``conftest.py`` sets ``MTLS_MEASURE_TIME_SCALE=0.2``
and each round stops after a fifth of its time. The notebook says so
whenever the factor is not 1: its figures then come from fewer calls.
"""

from __future__ import annotations

import math
import os

from .errors import LabError

__all__ = ["MEASURE_TIME_SCALE_VARIABLE", "measure_time_scale"]

MEASURE_TIME_SCALE_VARIABLE = "MTLS_MEASURE_TIME_SCALE"
LONGEST_SCALE = 100.0  # a hundred times as long: several minutes for notebook 12, not hours


def measure_time_scale() -> float:
    """The factor for every measuring time: ``$MTLS_MEASURE_TIME_SCALE``, or 1 when it is unset or empty."""
    raw = os.environ.get(MEASURE_TIME_SCALE_VARIABLE, "").strip()
    if not raw:
        return 1.0
    try:
        scale = float(raw)
    except ValueError:
        scale = math.nan
    if not (0 < scale <= LONGEST_SCALE):  # also false for nan
        raise LabError(
            f"{MEASURE_TIME_SCALE_VARIABLE}={raw!r} is not a number greater than 0 and at most {LONGEST_SCALE:g}. "
            f"Unset it (`unset {MEASURE_TIME_SCALE_VARIABLE}` in the shell that starts Jupyter, or "
            f"`os.environ.pop({MEASURE_TIME_SCALE_VARIABLE!r})` in the notebook) to measure for the times the "
            "notebook gives, or set a number such as 0.5 (rounds half as long) or 2 (up to twice as long)."
        )
    return scale
