"""tests/startup/deferred_imports.py: the slow import is deferred, and jsonschema's ``iri`` check still works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STARTUP = Path(__file__).resolve().parent / "startup"

pytest.importorskip("rfc3987_syntax", reason="rfc3987_syntax is not installed: there is nothing to defer")

#: Imports jsonschema as nbformat does, then reports whether the parser library was loaded, before and
#: after jsonschema's first ``iri`` check, and that check's answers for an IRI and a string that is none.
PROBE = """
import sys
{setup}
import jsonschema
before = "lark" in sys.modules
checker = jsonschema.FormatChecker()
answers = (checker.conforms("https://例え.jp/パス?q=1", "iri"), checker.conforms("no scheme, so no IRI", "iri"))
print(before, "lark" in sys.modules, *answers)
"""


def probe(setup: str) -> list[str]:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return completed.stdout.split()


def test_the_plugin_is_loaded_in_this_test_process(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("deferred_imports")


def test_jsonschema_checks_iri_with_the_import_deferred() -> None:
    before, after, iri, not_iri = probe(f"sys.path.insert(0, {str(STARTUP)!r}); import deferred_imports")
    assert before == "False", "jsonschema's import loaded the parsers: the deferral no longer works"
    assert after == "True", "the first iri check did not load the real module"
    assert (iri, not_iri) == (
        "True",
        "False",
    )  # the real check ran: a stand-in that accepted all would say True twice


def test_without_the_plugin_the_import_is_eager() -> None:
    """The twin: if jsonschema or rfc3987_syntax ever defer it themselves, the plugin can go."""
    before, _, iri, not_iri = probe("")
    assert before == "True"
    assert (iri, not_iri) == ("True", "False")
