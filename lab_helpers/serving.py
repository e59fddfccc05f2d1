"""socketserver's serving loop, woken at once when asked to stop.

``socketserver.BaseServer.serve_forever`` notices ``shutdown()`` only when
its ``select()`` times out, so stopping a server waits up to the poll
interval (50 ms for the lab's servers). Every ``with MTLSServer(...)`` block
paid it on exit, and the failure catalog, which starts and stops a server
for each attempt, paid about a second per case. Here the loop also watches
one end of a socket pair: ``shutdown()`` writes a byte to the other end and
returns as soon as the loop has ended.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Any

__all__ = ["PromptShutdownMixin"]

# What socketserver itself uses (its _ServerSelector): poll() also reports a socket closed while it
# is watched, so a server closed before it was shut down still wakes its loop (epoll would not),
# which then ends instead of spinning on the closed socket as socketserver's own loop would.
_Selector = selectors.PollSelector if hasattr(selectors, "PollSelector") else selectors.SelectSelector


class PromptShutdownMixin:
    """Put first in the bases of a threading ``socketserver`` server: ``class S(PromptShutdownMixin, HTTPServer)``.

    ``serve_forever`` (on one thread) and ``shutdown`` (from another) work as
    socketserver's do, ``shutdown`` included blocking until the loop has
    ended, but without the wait. One difference: the loop never wakes on a
    timer, so ``service_actions`` runs after each connection, not every poll
    interval. The lab's servers do not use it; ``ForkingMixIn``, which reaps
    its children there, should not be combined with this.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Made first: a server that fails to bind calls server_close() from its __init__.
        self._wake_receiver, self._wake_sender = socket.socketpair()
        self._wake_receiver.setblocking(False)
        self._stop_requested = False
        self._loop_ended = threading.Event()
        super().__init__(*args, **kwargs)

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Handle connections until :meth:`shutdown`; ``poll_interval`` is accepted and not needed."""
        self._loop_ended.clear()
        try:
            with _Selector() as selector:
                selector.register(self, selectors.EVENT_READ)  # type: ignore[arg-type]  # has fileno()
                selector.register(self._wake_receiver, selectors.EVENT_READ)
                while not self._stop_requested:
                    ready = {key.fileobj for key, _ in selector.select()}
                    if self._stop_requested or self.fileno() < 0:  # type: ignore[attr-defined]
                        break  # asked to stop, or closed by server_close(): nothing left to serve
                    if self._wake_receiver in ready:
                        self._drain_wake_bytes()
                    if self in ready:
                        self._handle_request_noblock()  # type: ignore[attr-defined]
                        self.service_actions()  # type: ignore[attr-defined]
        finally:
            self._stop_requested = False
            self._drain_wake_bytes()  # a later serve_forever must not find a byte and spin
            self._loop_ended.set()

    def shutdown(self) -> None:
        """Stop the loop of :meth:`serve_forever` and wait until it has ended (call it from another thread)."""
        self._stop_requested = True
        try:
            self._wake_sender.send(b"\0")
        except OSError:
            pass  # closed by server_close(), and the loop with it: it ends on a closed socket
        self._loop_ended.wait()

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        self._wake_receiver.close()
        self._wake_sender.close()

    def _drain_wake_bytes(self) -> None:
        try:
            while self._wake_receiver.recv(64):
                pass
        except OSError:  # BlockingIOError: nothing (more) to read; or the pair is closed already
            pass
