"""Exercises: derived from their solutions, checked with words, quiet until attempted, strict in the solutions."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from lab_helpers import check
from lab_helpers.exercises import Checker, CheckResult, not_attempted, strict_mode, to_html
from lab_helpers.exercises.derive import (
    EXERCISE_TAG,
    SOLUTION_TAG,
    derive_exercise,
    exercise_path,
    solution_notebooks,
    sync,
)

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = solution_notebooks(ROOT)
CHECK_CALL = re.compile(r"check\.exercise_(\d\d)_(\d+)\(")


def test_every_exercise_notebook_matches_its_solution_notebook() -> None:
    assert sync(ROOT, write=False) == [], "run `python -m lab_helpers exercises` and commit the result"


def test_the_comparison_notices_a_changed_solution(tmp_path: Path) -> None:
    """The consistency check can fail: change one shared cell of a solution, and its exercise no longer matches."""
    if not SOLUTIONS:
        pytest.skip("no solution notebooks yet")
    (tmp_path / "notebooks" / "solutions").mkdir(parents=True)
    solution = nbformat.read(SOLUTIONS[0], as_version=4)
    nbformat.write(derive_exercise(solution), tmp_path / "notebooks" / SOLUTIONS[0].name)
    solution.cells[0].source += "\nOne more sentence."
    nbformat.write(solution, tmp_path / "notebooks" / "solutions" / SOLUTIONS[0].name)
    assert sync(tmp_path, write=False) == [SOLUTIONS[0].name]


def test_every_course_notebook_has_a_solution_notebook() -> None:
    course = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [p.name for p in SOLUTIONS] == course


@pytest.mark.parametrize("solution_path", SOLUTIONS, ids=lambda p: p.name)
def test_each_notebook_has_two_to_four_checked_exercises(solution_path: Path) -> None:
    notebook = nbformat.read(solution_path, as_version=4)
    solutions = [c for c in notebook.cells if SOLUTION_TAG in c.get("metadata", {}).get("tags", [])]
    checks = {
        m.groups() for c in notebook.cells if c.cell_type == "code" for m in CHECK_CALL.finditer(c.source)
    }
    number = solution_path.name[:2]
    assert 2 <= len(checks) <= 4, f"{len(checks)} checked exercises"
    assert all(nb == number for nb, _ in checks), "a notebook calls its own checks"
    assert solutions, "solution cells are tagged 'solution'"
    for nb, k in checks:
        assert callable(getattr(check, f"exercise_{nb}_{k}"))


@pytest.mark.parametrize("solution_path", SOLUTIONS, ids=lambda p: p.name)
def test_exercise_cells_hold_stubs_not_solutions(solution_path: Path) -> None:
    exercise = nbformat.read(exercise_path(solution_path), as_version=4)
    solution = nbformat.read(solution_path, as_version=4)
    for mine, theirs in zip(exercise.cells, solution.cells):
        if SOLUTION_TAG in theirs.get("metadata", {}).get("tags", []):
            assert EXERCISE_TAG in mine.metadata.get("tags", [])
            assert mine.source == theirs.metadata["stub"] != theirs.source


def test_a_check_is_quiet_until_attempted_and_strict_in_the_solutions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert not_attempted(None, ...) and not not_attempted(None, 1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    assert not strict_mode()
    checker = Checker("0.0", "example", hint="try again")
    checker.require(False, "right", "missing: the thing")
    result = checker.result()
    assert isinstance(result, CheckResult) and not result.passed
    assert "missing: the thing" in str(result) and "Hint: try again" in str(result)
    (tmp_path / "solutions").mkdir()
    monkeypatch.chdir(tmp_path / "solutions")
    assert strict_mode()
    with pytest.raises(AssertionError, match="does not pass its own check"):
        strict = Checker("0.0", "example")
        strict.require(False, "right", "missing")
        strict.result()


def test_unknown_checks_say_so() -> None:
    with pytest.raises(AttributeError, match=r"no check for exercise 99\.9"):
        _ = check.exercise_99_9


def test_the_hint_shows_after_a_failed_attempt_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run All executes every check cell: a hint in the "not attempted yet" box would answer before the learner tried."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)

    def checker() -> Checker:
        return Checker("0.0", "example", hint="Which step made the CA?")

    waiting = checker().not_attempted()
    assert "Hint" not in str(waiting) and "Hint" not in waiting._repr_html_()
    wrong = checker()
    wrong.require(False, "right", "missing: the thing")
    assert "Hint: Which step made the CA?" in str(wrong.result())
    assert "<b>Hint:</b> Which step made the CA?" in wrong.result()._repr_html_()
    right = checker()
    right.require(True, "right", "missing")
    assert "Hint" not in str(right.result()) and "Hint" not in right.result()._repr_html_()


def test_markdown_in_messages_becomes_html_and_stays_plain_in_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    checker = Checker("1.2", "The *first* root", hint="Look at `found`.")
    checker.require(
        False, "", "the root whose validity *starts* first; look inside `with mock.patch.dict(os.environ):`"
    )
    result = checker.result()
    page = result._repr_html_()
    assert "<em>starts</em>" in page and "<code>with mock.patch.dict(os.environ):</code>" in page
    assert "<code>found</code>" in page and "The <em>first</em> root" in page
    assert "`" not in page and "*starts*" not in page
    assert "*starts*" in str(result) and "`found`" in str(result)  # the text form keeps what was written


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a <b> & `x < y`", "a &lt;b&gt; &amp; <code>x &lt; y</code>"),  # escaped, inside code too
        ("curl --noproxy '*' and '*'", "curl --noproxy '*' and '*'"),  # lone stars are not emphasis
        ("2*3*4 and **bold**", "2*3*4 and **bold**"),
        ("`a*b*c` then *d e*", "<code>a*b*c</code> then <em>d e</em>"),  # no emphasis inside code
    ],
)
def test_to_html_reads_only_real_markup(text: str, expected: str) -> None:
    assert to_html(text) == expected


#: Every check of notebooks 00 to 06, called before any attempt (the hint is kept on the result even then).
EARLY_CHECKS = {
    "0.1": lambda: check.exercise_00_1(None, None, watched=[], lab_ca_file="ca.crt"),
    "0.2": lambda: check.exercise_00_2(None),
    "0.3": lambda: check.exercise_00_3(None),
    "1.1": lambda: check.exercise_01_1(None, None, roots=[]),
    "1.2": lambda: check.exercise_01_2(None, None, roots=[]),
    "1.3": lambda: check.exercise_01_3(None, roots=[]),
    "2.1": lambda: check.exercise_02_1(None, None),
    "2.2": lambda: check.exercise_02_2(None, None, None),
    "2.3": lambda: check.exercise_02_3(None, None, ca_key=None),
    "3.1": lambda: check.exercise_03_1(None, ca_certificate=None),
    "3.2": lambda: check.exercise_03_2(None, original_csr=None, ca=None),
    "3.3": lambda: check.exercise_03_3(None, None, ca_certificate=None),
    "4.1": lambda: check.exercise_04_1(None, None, ca=None),
    "4.2": lambda: check.exercise_04_2(None, None, ca=None),
    "4.3": lambda: check.exercise_04_3(None, None, None, ca=None),
    "4.4": lambda: check.exercise_04_4(None, None, client_certificate=None, ca_certificate=None),
    "5.1": lambda: check.exercise_05_1(None, paths=None),
    "5.2": lambda: check.exercise_05_2(None, paths=None),
    "6.1": lambda: check.exercise_06_1(None, server=None, paths=None),
    "6.2": lambda: check.exercise_06_2(None, None, server=None),
    "6.3": lambda: check.exercise_06_3(None, paths=None),
}
ASSIGNMENT_OR_KEYWORD = re.compile(r"\w\s*=\s*[\w'\"\[(]")  # x = 1, password=b'...', names=[...]
CALL_WITH_ARGUMENTS = re.compile(r"\w\([^)]*[\w'\"][^)]*\)")  # f(x), but not f() or f(...)


@pytest.mark.parametrize("exercise", sorted(EARLY_CHECKS))
def test_hints_of_the_core_notebooks_ask_or_point_and_hand_over_no_code(exercise: str) -> None:
    result = EARLY_CHECKS[exercise]()
    assert result.status == "not attempted yet" and "Hint" not in str(result)
    hint = result.hint or ""
    assert hint, "every exercise has a hint for the learner who tried"
    assert not ASSIGNMENT_OR_KEYWORD.search(hint), f"the hint assigns or passes a value: {hint}"
    assert not CALL_WITH_ARGUMENTS.search(hint), f"the hint writes a call: {hint}"
