"""The application behind a proxy: a small HTTP server on a thread that answers with a function you write.

In production the application behind nginx is a Django, Flask or Starlette
app; here it is one Python function, ``app(request) -> (status, text)``,
so that what it believes (which header, from whom) is in plain sight.
:class:`Backend` runs it:

- over plain HTTP on 127.0.0.1 (termination: nginx decrypts, the backend
  reads headers), or over mTLS with ``context=`` (re-encryption: the backend
  requires a client certificate, and nginx presents its own), reusing the lab's
  :class:`~lab_helpers.MTLSServer`;
- each request reaches the function as a :class:`ForwardedRequest`: every
  header as received, the TCP peer, and over mTLS the identity in the
  certificate of whoever opened the connection (the proxy, if all is well);
- what the backend saw and answered is kept in ``backend.seen``;
- ``backend.app = other_function`` changes the application live, on the same
  port; starting a backend under a running name replaces the old one.

:func:`get_with_sni` makes one HTTPS request to an address with a TLS server
name of your choice, which is how a client reaches a name-routed proxy
(passthrough) without a DNS entry for each name.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from cryptography import x509

from .errors import LabError
from .forwarded import ClientCertHeaderError
from .identity import ClientIdentity, identity_from_certificate
from .rerun import NamedInstances
from .server import MTLSServer
from .serving import PromptShutdownMixin

__all__ = ["Backend", "ForwardedRequest", "Seen", "get_with_sni"]


@dataclass(frozen=True)
class ForwardedRequest:
    """One request as the backend received it."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]  # every header line, in order, duplicates kept
    peer: str  # "127.0.0.1:54321": who opened the TCP connection
    tls_peer: ClientIdentity | None = None  # over mTLS: the certificate of who opened the connection

    def get_all(self, name: str) -> list[str]:
        """Every value sent under ``name`` (header names are case-insensitive)."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def get(self, name: str) -> str | None:
        """The first value sent under ``name``, or None (what most frameworks' ``headers.get`` returns)."""
        values = self.get_all(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Seen:
    """What the backend received and what it answered."""

    request: ForwardedRequest
    status: int
    body: str

    def __str__(self) -> str:
        return f"{self.status} {self.body.strip()!r}"


App = Callable[[ForwardedRequest], "tuple[int, str]"]


class _BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "lab-backend/1"
    timeout = 10  # an idle keep-alive connection is closed after 10 s
    backend: ClassVar[Backend]

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_GET

    def _answer(self) -> None:
        tls_peer = None
        if isinstance(self.connection, ssl.SSLSocket):
            der = self.connection.getpeercert(binary_form=True)
            if der:
                tls_peer = identity_from_certificate(x509.load_der_x509_certificate(der))
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 65536:
            self.rfile.read(length)  # read and drop a small body, so the connection stays usable
        request = ForwardedRequest(
            method=self.command,
            path=self.path,
            headers=tuple(self.headers.items()),
            peer=f"{self.client_address[0]}:{self.client_address[1]}",
            tls_peer=tls_peer,
        )
        backend = self.backend
        try:
            status, body = backend.app(request)
        except ClientCertHeaderError as error:  # a malformed certificate header: the client's fault
            status, body = error.status, f"Bad request: {error}\n"
        except (
            Exception
        ) as error:  # a bug in the notebook's app: answer 500 and keep it where the notebook looks
            backend.errors.append(error)
            status, body = 500, f"Internal error: {type(error).__name__}: {error}\n"
        backend.seen.append(Seen(request, status, body))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header(
            "Cache-Control", "no-store"
        )  # the answer depends on who asked (RFC 9440, section 2.4)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """No request log in the notebook: ``backend.seen`` has each request."""


class _PlainServer(PromptShutdownMixin, ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class Backend:
    """The application behind the proxy. ``Backend(app).start()``; over mTLS with ``context=``.

    ``app`` takes a :class:`ForwardedRequest` and returns ``(status, text)``.
    A :class:`~lab_helpers.ClientCertHeaderError` it raises becomes a 400 with
    the error's one line; any other exception a 500 (kept in ``errors``).
    """

    _running: ClassVar[NamedInstances[Backend]] = NamedInstances()

    def __init__(
        self,
        app: App,
        *,
        context: ssl.SSLContext | None = None,
        name: str | None = "backend",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.app = app
        self.context = context
        self.name = name
        self.host = host
        self.requested_port = port
        self.seen: deque[Seen] = deque(maxlen=200)
        self.errors: deque[Exception] = deque(maxlen=50)
        self._handler = type("BackendHandler", (_BackendHandler,), {"backend": self})
        self._plain: _PlainServer | None = None
        self._thread: threading.Thread | None = None
        self._tls: MTLSServer | None = None

    def start(self) -> Backend:
        """Listen and serve on a thread; return once connections are accepted."""
        if self.running:
            return self
        self._running.replace(self.name)
        if self.context is not None:
            self._tls = MTLSServer(
                self.context, host=self.host, port=self.requested_port, name=None, handler=self._handler
            ).start()
        else:
            try:
                self._plain = _PlainServer((self.host, self.requested_port), self._handler)
            except OSError as error:
                raise LabError(
                    f"Cannot listen on {self.host}:{self.requested_port} ({error.strerror}): use port=0."
                ) from error
            self._thread = threading.Thread(
                target=self._plain.serve_forever,
                name=f"lab-backend-{self.port}",
                daemon=True,
            )
            self._thread.start()
        self._running.remember(self.name, self)
        return self

    def stop(self) -> None:
        """Stop listening, close open connections, join the serving thread (idempotent)."""
        plain, self._plain = self._plain, None
        tls, self._tls = self._tls, None
        if tls is not None:
            tls.stop()
        if plain is not None:
            plain.shutdown()
            plain.server_close()
            with plain.connections_lock:
                connections = list(plain.connections)
            for connection in connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            if self._thread is not None:
                self._thread.join(timeout=2.0)
        self._running.forget(self.name, self)

    def __enter__(self) -> Backend:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._plain is not None or self._tls is not None

    @property
    def port(self) -> int:
        if self._tls is not None:
            return self._tls.port
        if self._plain is not None:
            return int(self._plain.server_address[1])
        raise LabError("The backend is not running: call start() first.")

    @property
    def url(self) -> str:
        scheme = "https" if self.context is not None else "http"
        host = (
            "localhost" if self.context is not None else self.host
        )  # the server certificate names localhost
        return f"{scheme}://{host}:{self.port}/"

    @property
    def rejections(self) -> list:
        """Handshakes the backend refused (over mTLS), with the reason it recorded."""
        return list(self._tls.rejections) if self._tls is not None else []

    def __repr__(self) -> str:
        state = f"listening on {self.url}" if self.running else "stopped"
        return f"<Backend {self.name!r} {state}, {len(self.seen)} requests seen>"


def get_with_sni(
    port: int,
    *,
    server_name: str,
    ca_file: str | os.PathLike[str],
    cert_file: str | os.PathLike[str] | None = None,
    key_file: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    path: str = "/",
    timeout: float = 5.0,
) -> tuple[int, str]:
    """GET ``https://server_name/path`` from ``host:port``, sending ``server_name`` as SNI and checking it.

    What ``curl --resolve server_name:port:127.0.0.1`` does: the TCP
    connection goes to ``host``, while the TLS handshake asks for, and
    verifies, ``server_name``. Returns the status and the body; TLS
    failures raise ``ssl.SSLError`` (or ``OSError``) as they happen.
    """
    context = ssl.create_default_context(cafile=os.fspath(ca_file))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # the same rules on every Python (notebook 05)
    if cert_file is not None:
        context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file) if key_file else None, password=b"")
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=server_name) as tls:
            request = f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n"
            tls.sendall(request.encode())
            response = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
            response.begin()
            body = response.read().decode(errors="replace")
            return response.status, body
