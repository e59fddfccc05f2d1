"""lab_helpers.measuring: how long notebook 12 measures, and notebook 12 really using it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from lab_helpers import MEASURE_TIME_SCALE_VARIABLE, measure_time_scale
from lab_helpers.errors import LabError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_12 = ROOT / "notebooks" / "solutions" / "12_measure_what_mtls_costs.ipynb"


@pytest.mark.parametrize(
    ("value", "scale"), [(None, 1.0), ("", 1.0), (" 0.2 ", 0.2), ("2", 2.0), ("100", 100.0)]
)
def test_the_scale_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, scale: float
) -> None:
    if value is None:
        monkeypatch.delenv(MEASURE_TIME_SCALE_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(MEASURE_TIME_SCALE_VARIABLE, value)
    assert measure_time_scale() == scale


@pytest.mark.parametrize("value", ["fast", "0", "-1", "nan", "inf", "101", "1,5"])
def test_a_scale_that_is_no_factor_says_what_to_set(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(MEASURE_TIME_SCALE_VARIABLE, value)
    with pytest.raises(
        LabError, match=rf"^MTLS_MEASURE_TIME_SCALE='{value}' is not a number greater than 0 .* Unset it"
    ):
        measure_time_scale()


def test_the_tests_run_with_shortened_measurements(measure_scale_set_by_the_tests: bool) -> None:
    """conftest.py shortens them for every test process and kernel, unless the variable was already set."""
    if not measure_scale_set_by_the_tests:
        pytest.skip("MTLS_MEASURE_TIME_SCALE was set before the tests started: the tests keep its value")
    assert measure_time_scale() == 0.2


class FakeClock:
    """time.perf_counter that moves 1/64 s a call (exact in binary): how many calls fit in a round no longer
    depends on the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1 / 64
        return self.now


def notebook_12_measure_rounds(scale: float) -> tuple[object, list[str]]:
    """Notebook 12's own ``measure_rounds`` cell, run with this scale and a fake clock; and what it printed."""
    cells = json.loads(NOTEBOOK_12.read_text(encoding="utf-8"))["cells"]
    [source] = ["".join(c["source"]) for c in cells if "def measure_rounds(" in "".join(c["source"])]
    printed: list[str] = []
    namespace = {
        "math": math,
        "time": SimpleNamespace(perf_counter=FakeClock().perf_counter),
        "measure_time_scale": lambda: scale,
        "print": lambda *parts: printed.append(" ".join(map(str, parts))),
    }
    exec(compile(source, str(NOTEBOOK_12), "exec"), namespace)  # the cell as the learner runs it
    return namespace["measure_rounds"], printed


def calls_in_three_rounds(scale: float) -> int:
    measure_rounds, _ = notebook_12_measure_rounds(scale)
    calls: list[int] = []
    rates = measure_rounds({"action": lambda: calls.append(1)}, count=10_000, max_seconds=0.5, warm_up=False)
    assert len(rates["action"]) == 3  # ROUNDS
    return len(calls)


def test_notebook_12_measures_for_the_scaled_time() -> None:
    assert calls_in_three_rounds(0.25) == 3 * 8  # 0.5 s x 0.25 = 8/64 s a round: eight calls of 1/64 s


def test_notebook_12_measures_for_the_written_time_when_unscaled() -> None:
    assert calls_in_three_rounds(1.0) == 3 * 32


def test_notebook_12_says_when_its_times_are_scaled() -> None:
    _, printed = notebook_12_measure_rounds(0.2)
    assert printed == [
        "MTLS_MEASURE_TIME_SCALE is 0.2: each round below stops after at most 0.2 times its max_seconds, "
        "so the figures come from fewer calls and are noisier."
    ]
    assert notebook_12_measure_rounds(1.0)[1] == []
