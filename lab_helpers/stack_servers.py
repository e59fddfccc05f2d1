"""Real uvicorn, aiohttp and gRPC servers on a background thread, as a notebook needs them.

Notebook 13 configures each server the way production code does (a
``uvicorn.Config``, an aiohttp ``web.Application`` and ``SSLContext``, gRPC
handlers and ``ssl_server_credentials``); these classes only run it beside
the notebook's kernel, the way :class:`~lab_helpers.server.MTLSServer` runs
the lab server:

- on 127.0.0.1 (or ::1) and port 0, so a room of learners never collide and
  nothing is reachable from the network; the real port is read once the
  server listens, and :meth:`BackgroundServer.start` returns only then;
- on a thread of its own (with its own event loop for uvicorn and aiohttp),
  so the notebook's synchronous clients (``requests``, ``httpx.Client``)
  can call it without blocking the loop that serves them;
- under a ``name``: starting a server whose name is running (a re-run cell)
  stops the old one first; ``name=None`` runs servers side by side;
- :meth:`BackgroundServer.stop` closes the listening socket and joins the
  thread, normally within a second.

Each library is imported when its server starts, so the rest of the course
never pays for it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .errors import LabError
from .rerun import NamedInstances

if TYPE_CHECKING:
    import ssl

    import grpc
    import uvicorn
    from aiohttp import web

__all__ = ["AiohttpServer", "BackgroundServer", "GrpcServer", "UvicornServer", "running_stack_servers"]

#: Seconds a server may take to start listening, or to stop, before it counts as stuck.
START_TIMEOUT = 10.0
STOP_TIMEOUT = 2.0


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise LabError(
            f"host={host!r}: the lab's servers listen on a loopback address only. "
            "Use host='127.0.0.1' (or '::1'), so nothing on the network can reach them."
        )


class BackgroundServer:
    """A server on a background thread: ``start()``/``stop()``, or ``with ... as server:``."""

    kind: ClassVar[str] = "server"
    scheme: ClassVar[str] = "https"
    _running: ClassVar[NamedInstances[BackgroundServer]] = NamedInstances()

    def __init__(self, *, name: str | None) -> None:
        self.name = name
        self._port: int | None = None
        self._thread: threading.Thread | None = None

    # -- what subclasses do -------------------------------------------------

    def _open(self) -> int:
        """Start serving; return the port the server listens on."""
        raise NotImplementedError

    def _close(self) -> None:
        """Stop serving and release the socket and every thread (called once)."""
        raise NotImplementedError

    # -- life cycle ---------------------------------------------------------

    def start(self) -> BackgroundServer:
        """Listen and serve on a background thread; return once connections are accepted."""
        if self._port is not None:
            return self
        self._running.replace(self.name)
        self._port = self._open()
        self._running.remember(self.name, self)
        return self

    def stop(self) -> None:
        """Stop accepting, close the connections and join the thread (idempotent)."""
        if self._port is None:
            return
        try:
            self._close()
        finally:
            self._port = None
            self._running.forget(self.name, self)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._port is not None

    @property
    def port(self) -> int:
        if self._port is None:
            raise LabError(f"The {self.kind} server is not running: call start() first.")
        return self._port

    @property
    def url(self) -> str:
        """``https://localhost:PORT/``: the name the lab's server certificate carries."""
        return f"{self.scheme}://localhost:{self.port}/"

    def __repr__(self) -> str:
        state = f"listening on port {self._port}" if self.running else "stopped"
        return f"<{type(self).__name__} {self.name!r} {state}>"


class UvicornServer(BackgroundServer):
    """A ``uvicorn.Config`` served by ``uvicorn.Server`` on a thread (uvicorn's own ``run()``).

    The configuration is loaded in the caller's thread first, so a wrong
    certificate path or password raises in the notebook's cell instead of
    killing the server thread. ``should_exit`` stops the server, as Ctrl-C
    does in a terminal.
    """

    kind = "uvicorn"

    def __init__(self, config: uvicorn.Config, *, name: str | None = "uvicorn") -> None:
        super().__init__(name=name)
        _require_loopback(config.host)
        if config.port != 0:
            raise LabError(f"port={config.port}: use port=0, and read the port the system chose from .port.")
        if config.timeout_graceful_shutdown is None:
            # uvicorn waits for open connections to close before it stops, and closing a TLS
            # connection waits for the client's close_notify: a notebook's keep-alive client
            # that is not reading would hold the server for asyncio's 30 s TLS shutdown timeout.
            config.timeout_graceful_shutdown = 0.5
        self.config = config
        self.scheme = "https" if config.is_ssl else "http"  # type: ignore[misc]
        self._server: uvicorn.Server | None = None

    def _open(self) -> int:
        import uvicorn

        if not self.config.loaded:
            self.config.load()
        server = uvicorn.Server(self.config)
        thread = threading.Thread(target=server.run, name=f"uvicorn-{self.name}", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                thread.join(STOP_TIMEOUT)
                raise LabError(
                    "uvicorn did not start: read its log above (a port in use, an app that fails to load)."
                )
            time.sleep(0.01)
        self._server, self._thread = server, thread
        return int(server.servers[0].sockets[0].getsockname()[1])

    def _close(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True  # uvicorn checks it every 0.1 s, then asks every connection to close
        thread.join(0.3)
        if thread.is_alive():
            # Connections still open are waiting for their client's close_notify (a keep-alive
            # client that is not reading): drop them, from the server's own loop.
            for connection in list(server.server_state.connections):
                transport, loop = getattr(connection, "transport", None), getattr(connection, "loop", None)
                if transport is not None and loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(transport.abort)
            thread.join(STOP_TIMEOUT)
        if thread.is_alive():  # a request still running: stop waiting for it
            server.force_exit = True
            thread.join(STOP_TIMEOUT)


class _LoopThread:
    """An asyncio event loop running forever on its own thread; coroutines are submitted to it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STOP_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


class AiohttpServer(BackgroundServer):
    """An aiohttp ``web.Application`` served with ``AppRunner`` and ``TCPSite`` on a loop of its own."""

    kind = "aiohttp"

    def __init__(
        self,
        app: web.Application,
        *,
        ssl_context: ssl.SSLContext | None,
        host: str = "127.0.0.1",
        name: str | None = "aiohttp",
    ) -> None:
        super().__init__(name=name)
        _require_loopback(host)
        self.app = app
        self.ssl_context = ssl_context
        self.host = host
        self.scheme = "https" if ssl_context is not None else "http"  # type: ignore[misc]
        self._loop: _LoopThread | None = None
        self._runner: web.AppRunner | None = None

    async def _serve(self) -> int:
        from aiohttp import web

        # shutdown_timeout: how long cleanup() waits for open connections (60 s by default).
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, 0, ssl_context=self.ssl_context).start()
        return int(self._runner.addresses[0][1])

    def _open(self) -> int:
        self._loop = _LoopThread(f"aiohttp-{self.name}")
        self._thread = self._loop.thread
        try:
            return int(self._loop.run(self._serve(), START_TIMEOUT))
        except BaseException:
            self._loop.close()
            raise

    def _close(self) -> None:
        if self._loop is None:
            return
        try:
            if self._runner is not None:
                self._loop.run(self._runner.cleanup(), STOP_TIMEOUT)
        finally:
            self._loop.close()


class GrpcServer(BackgroundServer):
    """A ``grpc.server`` with the given handlers on a secure port (``add_secure_port``), and its own thread pool."""

    kind = "gRPC"

    def __init__(
        self,
        handlers: Sequence[grpc.GenericRpcHandler],
        credentials: grpc.ServerCredentials,
        *,
        host: str = "127.0.0.1",
        name: str | None = "grpc",
        max_workers: int = 4,
    ) -> None:
        super().__init__(name=name)
        _require_loopback(host)
        self.handlers = tuple(handlers)
        self.credentials = credentials
        self.host = host
        self.max_workers = max_workers
        self._server: grpc.Server | None = None
        self._pool: Any = None

    @property
    def target(self) -> str:
        """``localhost:PORT``: what a gRPC channel connects to (the certificate's name, not the address)."""
        return f"localhost:{self.port}"

    @property
    def url(self) -> str:
        return self.target

    def _open(self) -> int:
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"grpc-{self.name}")
        server = grpc.server(self._pool, handlers=self.handlers)
        address = f"[{self.host}]:0" if ":" in self.host else f"{self.host}:0"
        try:
            port = server.add_secure_port(address, self.credentials)
        except RuntimeError as error:  # recent grpcio raises; older ones return 0
            port, reason = 0, str(error)
        else:
            reason = "add_secure_port returned 0"
        if not port:
            self._pool.shutdown(wait=False)
            raise LabError(
                f"gRPC could not listen on {address} ({reason}): check the server's key and certificate."
            )
        server.start()
        self._server = server
        return int(port)

    def _close(self) -> None:
        if self._server is not None:
            # grace=None: end every call now; wait() returns once the server has stopped.
            self._server.stop(grace=None).wait(STOP_TIMEOUT)
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # grpc does not own the pool it was given


def running_stack_servers() -> dict[str, BackgroundServer]:
    """The named uvicorn, aiohttp and gRPC servers running in this process (what a re-run cell would replace)."""
    return BackgroundServer._running.running()
