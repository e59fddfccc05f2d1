"""Exercises with instant feedback: the checks behind each notebook's "On your own".

A check looks at what the learner made and says, in words, what is right
and what is missing; after a failed attempt it adds a hint, a question or a
pointer to the step that teaches the idea (never the code). While the
learner's cell is untouched (the value is still ``None`` or ``...``) it says
"not attempted yet", shows no hint (the learner has not tried yet), and
nothing fails, so the exercise notebooks run top to bottom in CI.

Messages may mark code with backticks and emphasis with single asterisks,
as in Markdown: the text form shows them as they are, the HTML form that
Jupyter displays turns them into ``<code>`` and ``<em>``.

The solution notebooks (``notebooks/solutions/``) run the same checks in
strict mode: a check that does not pass raises, so CI proves every solution
still solves its exercise. Strict mode is on when the notebook runs from the
``solutions`` folder (a kernel's working folder is its notebook's folder), or
when ``MTLS_EXERCISES_STRICT=1``.

Each notebook's checks live in a module of this package (``nb04.py`` for
notebook 04), as ``exercise_1``, ``exercise_2``...; notebooks call them as
``check.exercise_04_1(...)`` (see ``lab_helpers/check.py``).
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CheckResult", "Checker", "not_attempted", "strict_mode", "to_html"]

NOT_ATTEMPTED = "not attempted yet"
PASSED = "passed"
INCOMPLETE = "not yet"


def not_attempted(*values: Any) -> bool:
    """True while every value the exercise asks for is still the placeholder (``None`` or ``...``)."""
    return all(value is None or value is Ellipsis for value in values)


def strict_mode() -> bool:
    """Checks raise instead of printing: when run from ``notebooks/solutions`` or with MTLS_EXERCISES_STRICT=1."""
    return os.environ.get("MTLS_EXERCISES_STRICT") == "1" or Path.cwd().name == "solutions"


@dataclass
class CheckResult:
    """What a check found: each point right or missing, a hint, and the verdict."""

    exercise: str
    title: str
    status: str
    points: list[tuple[bool, str]] = field(default_factory=list)
    hint: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def shows_hint(self) -> bool:
        """A hint helps after a failed attempt only: before one it would answer a question not asked yet."""
        return bool(self.hint) and self.status == INCOMPLETE

    def __str__(self) -> str:
        mark = {PASSED: "✅", INCOMPLETE: "❌", NOT_ATTEMPTED: "⏳"}[self.status]
        lines = [f"{mark} Exercise {self.exercise}: {self.title}: {self.status}"]
        lines += [f"   {'✓' if ok else '✗'} {text}" for ok, text in self.points]
        if self.shows_hint:
            lines.append(f"   Hint: {self.hint}")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {PASSED: "#1a7f37", INCOMPLETE: "#b00", NOT_ATTEMPTED: "#666"}[self.status]
        items = "".join(f"<li>{'✓' if ok else '✗'} {to_html(text)}</li>" for ok, text in self.points)
        hint = f"<p><b>Hint:</b> {to_html(self.hint or '')}</p>" if self.shows_hint else ""
        return (
            f"<div style='border-left:4px solid {colour};padding-left:8px'>"
            f"<b>Exercise {html.escape(self.exercise)}: {to_html(self.title)}</b>: "
            f"<span style='color:{colour}'>{self.status}</span><ul>{items}</ul>{hint}</div>"
        )


_CODE = re.compile(r"`([^`\n]+)`")
# *word* or *a few words*, as Markdown reads them: the stars hug letters, so a lone star ('*' in
# --noproxy '*'), a product (2*3) or a pair of lone stars never becomes emphasis.
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\w)([^*\n]*?\w)\*(?![\w*])")


def to_html(text: str) -> str:
    """A message as HTML: escaped, with `code` as <code> and *emphasis* as <em> (what Markdown would show)."""
    parts = _CODE.split(text)  # even indexes: prose; odd indexes: the inside of a pair of backticks
    out = []
    for index, part in enumerate(parts):
        escaped = html.escape(part, quote=False)  # element content: quotes need no escaping
        if index % 2:
            out.append(f"<code>{escaped}</code>")
        else:
            out.append(_EMPHASIS.sub(r"<em>\1</em>", escaped))
    return "".join(out)


class Checker:
    """Collects the points of one check: ``require`` each fact, then ``result()``.

    >>> c = Checker("4.1", "Issue bob a certificate")
    >>> c.require(True, "it is signed by the lab CA", "it is not signed by the lab CA")
    >>> c.result().passed
    True
    """

    def __init__(self, exercise: str, title: str, *, hint: str | None = None) -> None:
        self.exercise, self.title, self.hint = exercise, title, hint
        self.points: list[tuple[bool, str]] = []

    def require(self, condition: object, right: str, missing: str) -> bool:
        """Record one point: ``right`` when ``condition`` holds, else ``missing`` (which says what to change)."""
        ok = bool(condition)
        self.points.append((ok, right if ok else missing))
        return ok

    def not_attempted(self) -> CheckResult:
        return CheckResult(self.exercise, self.title, NOT_ATTEMPTED, hint=self.hint)

    def result(self) -> CheckResult:
        passed = bool(self.points) and all(ok for ok, _ in self.points)
        outcome = CheckResult(
            self.exercise, self.title, PASSED if passed else INCOMPLETE, self.points, self.hint
        )
        if not passed and strict_mode():
            raise AssertionError(f"A solution does not pass its own check:\n{outcome}")
        return outcome

    def fail(self, problem: str) -> CheckResult:
        """The attempt could not even be examined (wrong type, missing file): say what was expected."""
        self.points.append((False, problem))
        return self.result()
