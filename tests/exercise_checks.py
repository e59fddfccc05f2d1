"""Shared helpers for the tests of the exercise checks (tests/test_exercises_nbNN.py)."""

from __future__ import annotations

import pytest

NOT_ATTEMPTED = "not attempted yet"


def missing(result: object) -> list[str]:
    """The points a check found missing, in its own words."""
    return [text for ok, text in result.points if not ok]  # type: ignore[attr-defined]


def strict(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn strict mode on, as it is in the solution notebooks: a failing check raises."""
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
