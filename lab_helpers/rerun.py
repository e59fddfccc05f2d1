"""Named servers that a re-run cell replaces instead of doubling.

A learner re-runs a cell that starts a server far more often than they stop
one. Each kind of server the course starts (the lab server, the plain
backend, the uvicorn, aiohttp and gRPC servers, nginx) keeps its running
instances by name in one :class:`NamedInstances`: starting an instance
stops the one running under the same name first, so "Run all" twice leaves
one server, not two.
"""

from __future__ import annotations

import threading
from typing import Generic, Protocol, TypeVar


class Stoppable(Protocol):
    def stop(self) -> None: ...


Instance = TypeVar("Instance", bound=Stoppable)


class NamedInstances(Generic[Instance]):
    """The running instances of one kind, by name, shared by the threads of this process."""

    def __init__(self) -> None:
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()

    def replace(self, name: str | None) -> None:
        """Stop the instance running as ``name``, if any: call before starting its successor."""
        if name is None:
            return
        with self._lock:
            previous = self._instances.get(name)
        if previous is not None:
            previous.stop()  # outside the lock: stop() calls forget()

    def remember(self, name: str | None, instance: Instance) -> None:
        """Record ``instance`` as the one running as ``name`` (unnamed instances are not kept)."""
        if name is not None:
            with self._lock:
                self._instances[name] = instance

    def forget(self, name: str | None, instance: Instance) -> None:
        """Drop ``instance`` from the record, unless a successor has taken its name since."""
        if name is not None:
            with self._lock:
                if self._instances.get(name) is instance:
                    del self._instances[name]

    def running(self) -> dict[str, Instance]:
        """A copy of the record: {name: instance}."""
        with self._lock:
            return dict(self._instances)
