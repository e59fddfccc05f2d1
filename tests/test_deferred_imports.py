"""tests/startup/deferred_imports.py: the slow import is deferred, and jsonschema's ``iri`` check still works."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

STARTUP = Path(__file__).resolve().parent / "startup"
DEFERRED = "rfc3987_syntax"

pytest.importorskip(DEFERRED, reason=f"{DEFERRED} is not installed: there is nothing to defer")

#: With the plugin, import jsonschema as nbformat does; report whether the parser library (lark) was
#: loaded then, and after jsonschema's first ``iri`` check; and that check's answers for an IRI and a
#: string that is none.
PROBE = f"""
import sys
sys.path.insert(0, {str(STARTUP)!r})
import deferred_imports
import jsonschema
before = "lark" in sys.modules
checker = jsonschema.FormatChecker()
answers = (checker.conforms("https://例え.jp/パス?q=1", "iri"), checker.conforms("no scheme, so no IRI", "iri"))
print(before, "lark" in sys.modules, *answers)
import importlib.util, rfc3987_syntax.syntax_helpers  # the spec and a submodule, as for the real module
assert importlib.util.find_spec("rfc3987_syntax").name == "rfc3987_syntax"
"""


def test_the_plugin_is_loaded_and_installed_its_stand_in_here(pytestconfig: pytest.Config) -> None:
    assert pytestconfig.pluginmanager.hasplugin("deferred_imports")
    assert sys.modules["deferred_imports"].installed, f"{DEFERRED} was imported before the plugin loaded"


def test_jsonschema_checks_iri_with_the_import_deferred() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    before, after, iri, not_iri = completed.stdout.split()
    assert before == "False", "importing jsonschema loaded the parsers: the deferral no longer works"
    assert after == "True", "the first iri check did not load the real module"
    assert (iri, not_iri) == (
        "True",
        "False",
    )  # the real check ran: a stand-in that accepted all would say True twice


def imports_at_module_level(source: str, module: str) -> bool:
    """Whether ``source`` imports ``module`` outside any function: as the file itself is imported."""
    tree = ast.parse(source)
    in_functions = {
        id(node)
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
    }
    return any(
        isinstance(node, ast.ImportFrom) and node.module == module and id(node) not in in_functions
        for node in ast.walk(tree)
    )


def test_jsonschema_still_imports_it_eagerly() -> None:
    """The twin: once jsonschema defers the import itself (jsonschema issue 1428), the plugin can go."""
    import jsonschema._format

    assert imports_at_module_level(Path(jsonschema._format.__file__).read_text(encoding="utf-8"), DEFERRED)
    assert not imports_at_module_level(f"def lazy():\n    from {DEFERRED} import is_valid_syntax\n", DEFERRED)
