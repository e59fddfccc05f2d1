"""Re-read files when they change: how ``serve`` picks up a new CRL or certificate without a restart."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["FileWatcher"]

_T = TypeVar("_T")


class FileWatcher(Generic[_T]):
    """Calls ``rebuild()`` and then ``apply(result)`` when any watched file changes.

    A change is a new modification time or size. If ``rebuild`` fails (a
    file half-copied by a tool that does not write atomically, a CRL signed
    by the wrong key), the error is reported and the old configuration stays
    in force: a bad update must not take a running server down. The next
    change is tried again.
    """

    def __init__(
        self,
        paths: Iterable[Path],
        *,
        rebuild: Callable[[], _T],
        apply: Callable[[_T], None],
        report: Callable[[str], None] = print,
    ) -> None:
        self.paths = [Path(path) for path in paths]
        self.rebuild = rebuild
        self.apply = apply
        self.report = report
        self._seen = self._stamps()

    def _stamps(self) -> dict[Path, tuple[int, int] | None]:
        stamps: dict[Path, tuple[int, int] | None] = {}
        for path in self.paths:
            try:
                status = os.stat(path)
                stamps[path] = (status.st_mtime_ns, status.st_size)
            except OSError:
                stamps[path] = None
        return stamps

    def check(self) -> bool:
        """Reload if something changed; True when a new configuration was applied."""
        stamps = self._stamps()
        changed = [path.name for path in self.paths if stamps[path] != self._seen[path]]
        if not changed:
            return False
        self._seen = stamps
        try:
            self.apply(self.rebuild())
        except Exception as error:  # keep serving with what worked; say why the update was refused
            self.report(
                f"reload   {', '.join(changed)} changed, but the update was refused ({error}); still serving the previous configuration"
            )
            return False
        self.report(f"reload   {', '.join(changed)} changed: new connections use the new configuration")
        return True
