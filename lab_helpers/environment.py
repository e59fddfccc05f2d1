"""Set and remove environment variables for one experiment, then put everything back exactly.

Notebooks 00 and 06 show what ``HTTPS_PROXY`` or ``REQUESTS_CA_BUNDLE`` do
to a client by setting them for a moment. Saving and restoring them by hand
takes more lines than the experiment itself, and is easy to get subtly wrong:
a variable that was unset must be unset again (not set to ""), and proxy
variables come in two spellings (``HTTPS_PROXY`` and ``https_proxy``), of
which ``requests`` and ``curl`` read both, the lower-case one first
(``urllib.request.getproxies_environment``; ``curl`` reads ``http_proxy``
in lower case only). A name given here therefore stands for every
spelling of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

__all__ = ["temporary_environment"]


def _spellings(names: Iterable[str]) -> set[str]:
    """Every variable now in the environment whose name is one of ``names``, in any case."""
    wanted = {name.upper() for name in names}
    return {name for name in os.environ if name.upper() in wanted}


@contextmanager
def temporary_environment(
    values: Mapping[str, str] | None = None, *, remove: Iterable[str] = ()
) -> Iterator[None]:
    """Inside the ``with`` block, the variables in ``values`` are set and those in ``remove`` are absent.

    Each name covers all its spellings: ``{"HTTPS_PROXY": url}`` removes an
    ``https_proxy`` the environment may hold, so that the value given is the
    one every tool reads. On the way out, every variable touched (in any
    spelling) gets back its earlier value, or is removed again if it was not
    set before, even when the block raised. An empty string is a value, not
    an absence: set ``""`` to get one, use ``remove`` for the other.

    >>> with temporary_environment({"HTTPS_PROXY": "http://127.0.0.1:9"}, remove=["NO_PROXY"]):
    ...     pass
    """
    values = dict(values or {})
    removing = [str(name) for name in remove]
    for name, value in values.items():
        if not isinstance(value, str):
            raise TypeError(
                f"{name} must be set to a string, not {type(value).__name__}: use remove=[...] to unset it"
            )
    overlap = {name.upper() for name in values} & {name.upper() for name in removing}
    if overlap:
        raise ValueError(f"{', '.join(sorted(overlap))} is both set and removed: give each name once")
    touched = [*values, *removing]
    saved = {name: os.environ[name] for name in _spellings(touched)}
    try:
        for name in _spellings(touched):
            del os.environ[name]
        os.environ.update(values)
        yield
    finally:
        for name in _spellings(touched) - saved.keys():
            del os.environ[name]
        os.environ.update(saved)
