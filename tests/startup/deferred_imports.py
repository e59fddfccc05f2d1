"""Defer one slow import in every test process: pytest loads this first (``-p deferred_imports``).

Every test process imports nbformat (nbval's plugin and the notebook tests
need it), nbformat imports jsonschema, and jsonschema's format checkers
import ``rfc3987_syntax`` at once when it is installed (jupyterlab brings it
in). That module builds 39 parsers as it is imported (rfc3987_syntax 1.1.0):
1.2 s of CPU in each of the five processes a run on 2 cores starts (the main
one and four workers), about 3 s of the suite's wall time, for the ``iri``
format that no test checks. jsonschema keeps the import eager
(https://github.com/python-jsonschema/jsonschema/issues/1428).

So, before any plugin imports jsonschema, ``rfc3987_syntax`` becomes a
stand-in module with the real one's spec and path: jsonschema takes
``is_valid_syntax`` from it, and the first call, any other public
attribute or a submodule imports the real module. Code that took the
stand-in keeps it, and its calls reach the real module. One difference
remains: were the real module broken (say, its parser library missing), the
error would come at the first ``iri`` check, where jsonschema would have
left that format out. ``tests/test_deferred_imports.py`` checks that
jsonschema's ``iri`` check still works, and that jsonschema still imports
the module eagerly (when it no longer does, this file can go).

It is loaded by ``-p`` from ``pyproject.toml``'s ``addopts``, on the
``pythonpath`` set there: ``-p`` plugins load before the plugins that
packages register (nbval's among them), which conftest.py would be too late
for.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

DEFERRED = "rfc3987_syntax"

_real_module: types.ModuleType | None = None


def _load() -> types.ModuleType:
    """The real module, imported on first use (the stand-in steps aside for it)."""
    global _real_module
    if _real_module is None:
        if isinstance(sys.modules.get(DEFERRED), _StandIn):
            del sys.modules[DEFERRED]
        _real_module = importlib.import_module(DEFERRED)
    return _real_module


class _StandIn(types.ModuleType):
    """Stands for the real module until it is used; any public attribute but ``is_valid_syntax`` loads it."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system asks for __path__ and the like: not a use
            raise AttributeError(name)
        return getattr(_load(), name)


def _is_valid_syntax(*args: Any, **kwargs: Any) -> Any:
    return _load().is_valid_syntax(*args, **kwargs)


def install() -> bool:
    """Put the stand-in in ``sys.modules``, unless the real module is absent or already imported."""
    spec = None if DEFERRED in sys.modules else importlib.util.find_spec(DEFERRED)
    if spec is None:
        return False
    stand_in = _StandIn(
        DEFERRED, f"Stands for {DEFERRED} until first use (tests/startup/deferred_imports.py)."
    )
    stand_in.__spec__ = spec  # what importlib and inspect ask a module for
    if spec.submodule_search_locations is not None:
        stand_in.__path__ = list(spec.submodule_search_locations)  # its submodules import as usual
    stand_in.is_valid_syntax = _is_valid_syntax  # type: ignore[attr-defined]  # what jsonschema imports by name
    sys.modules[DEFERRED] = stand_in
    return True


installed = install()
