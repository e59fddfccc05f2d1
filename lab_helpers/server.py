"""An mTLS HTTPS server that runs on a thread inside the notebook.

It is the Python twin of the article's ``node index.js``, built so that a
notebook can live with it:

- it binds 127.0.0.1 on a free port (port 0) unless told otherwise, so a
  room of learners on one JupyterHub host never collide;
- :meth:`MTLSServer.start` returns only once the socket accepts connections;
- every TLS handshake runs in the connection's own thread with a timeout.
  Wrapping the listening socket instead would run the handshake inside
  ``accept()``, where one idle client blocks everyone and failures vanish;
- every rejected handshake is recorded with the server's reason, so a
  notebook can show both sides of a failure;
- HTTP/1.1 keep-alive with Nagle's algorithm off (with it on, each
  keep-alive request waits about 40 ms on Linux, up to 200 ms on Windows,
  for a delayed ACK);
- starting a server again under the same name (a re-run cell) stops the
  previous one first, and :meth:`MTLSServer.stop` closes every connection
  and joins every thread in well under a second.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import ssl
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .authz import AccessPolicy, Decision, normalize_path
from .errors import LabError, UnreadableCertificateError
from .files import check_key_matches, load_certificate, load_crl, load_private_key
from .identity import ClientIdentity, identity_from_certificate
from .rerun import NamedInstances
from .revocation import RevocationScope
from .serving import PromptShutdownMixin
from .tls import server_side_reason
from .tolerant import parse_problem

__all__ = [
    "LabRequestHandler",
    "MTLSServer",
    "Rejection",
    "build_server_context",
    "load_revocation_list",
    "running_servers",
]

#: The verify flag for each revocation scope: the client's own certificate ("leaf") or every one ("chain"),
#: the same scopes as verify_chain(..., revocation=...).
REVOCATION_CHECKS: dict[str, ssl.VerifyFlags] = {
    "leaf": ssl.VERIFY_CRL_CHECK_LEAF,
    "chain": ssl.VERIFY_CRL_CHECK_CHAIN,  # OpenSSL's X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL
}


def build_server_context(
    cert_file: str | os.PathLike[str],
    key_file: str | os.PathLike[str],
    ca_file: str | os.PathLike[str],
    *,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    maximum_version: ssl.TLSVersion | None = None,
    key_password: bytes | None = None,
    crl_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    revocation: RevocationScope = "leaf",
) -> ssl.SSLContext:
    """The server's ``SSLContext`` for mTLS, in the steps notebook 05 takes by hand.

    The files are loaded with ``cryptography`` first so that a missing file, a
    non-PEM file, an encrypted key without its password or a key that does
    not match the certificate gets a :class:`LabError` that says what to do,
    instead of OpenSSL's terse codes (or, for an encrypted key, a password
    prompt on the terminal).

    ``crl_file`` is one CRL file or a list of them, and ``revocation`` says
    which certificates are checked against them: ``"leaf"`` (the default)
    checks the client's own certificate only, so an intermediate CA that its
    root revoked still lets its clients in; ``"chain"`` checks every
    certificate of the client's chain, and then needs the CRL of every CA in
    it (a missing one refuses every client: ``unable to get certificate CRL``).
    """
    certificate = load_certificate(cert_file)
    key = load_private_key(key_file, password=key_password)
    check_key_matches(key, certificate, key_path=key_file, cert_path=cert_file)
    load_certificate(ca_file)
    crl_files = _crl_files(crl_file, revocation)

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # server side, no legacy protocols
    context.minimum_version = minimum_version  # TLS 1.2 at least
    if maximum_version is not None:
        context.maximum_version = maximum_version
    context.verify_mode = ssl.CERT_REQUIRED  # the "m" in mTLS: a client certificate is required
    # Python 3.13 sets this flag by default; set it everywhere so every Python
    # behaves alike (RFC 5280 rules: critical BasicConstraints, AKI, ...).
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file), password=key_password or b"")
    context.load_verify_locations(cafile=os.fspath(ca_file))  # the CA whose clients we accept
    for one_crl in crl_files:
        load_revocation_list(context, one_crl, revocation=revocation)
    return context


def _check_revocation(revocation: str) -> None:
    if revocation not in REVOCATION_CHECKS:
        raise LabError(
            f"revocation={revocation!r} is not a check: use 'leaf' (the client's own certificate) "
            "or 'chain' (every certificate of its chain)."
        )


def _crl_files(
    crl_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None, revocation: str
) -> list[str | os.PathLike[str]]:
    """The CRL files as a list, after checking that ``revocation`` can work with them."""
    _check_revocation(revocation)
    if crl_file is None:
        files: list[str | os.PathLike[str]] = []
    elif isinstance(crl_file, (str, os.PathLike)):
        files = [crl_file]
    else:
        files = list(crl_file)
    if revocation == "chain" and not files:
        raise LabError(
            "revocation='chain' checks every CA of the client's chain, so it needs their CRLs: "
            "pass crl_file=[the root's CRL, each intermediate's CRL]."
        )
    return files


def load_revocation_list(
    context: ssl.SSLContext, crl_file: str | os.PathLike[str], *, revocation: RevocationScope = "leaf"
) -> x509.CertificateRevocationList:
    """Load a CRL (PEM or DER) into ``context`` and switch on the check that uses it.

    Both halves matter. Loaded without ``VERIFY_CRL_CHECK_LEAF``, the CRL is
    ignored: revoked clients get in. With the flag and no CRL from the
    client certificate's issuer, every client is rejected (``unable to get
    certificate CRL``). A CRL is a public document: no key is involved.
    ``revocation="chain"`` sets ``VERIFY_CRL_CHECK_CHAIN`` instead, which checks
    every certificate of the chain, each against its issuer's CRL: call this
    once per CA (the root's CRL is what revokes an intermediate).
    """
    _check_revocation(revocation)
    crl = load_crl(crl_file)  # clear errors for a missing or damaged file; DER accepted
    # ssl loads CRLs only from PEM files (cadata takes certificates only).
    with tempfile.TemporaryDirectory(prefix="mtls-crl-") as folder:
        pem = Path(folder) / "crl.pem"
        pem.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        context.load_verify_locations(cafile=os.fspath(pem))
    context.verify_flags |= REVOCATION_CHECKS[revocation]
    return crl


@dataclass(frozen=True)
class Rejection:
    """A handshake the server refused (or that the client abandoned), as the server saw it."""

    peer: str
    reason: str  # stable: OpenSSL's verify message or reason code
    error_class: str
    detail: str  # the full message, which may vary
    at: float = field(default_factory=time.time)
    #: The server's number for the connection (``MTLSServer.connections`` counts them).
    connection: int | None = None

    def __str__(self) -> str:
        return f"{self.reason} ({self.error_class} from {self.peer})"


class LabRequestHandler(BaseHTTPRequestHandler):
    """Answers every GET with ``Hello, <client name>``: the server knows who is calling."""

    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # no delayed-ACK stalls on keep-alive (about 40 ms each on Linux)
    # Buffer the response so headers and body leave in one TLS record and one
    # TCP segment; http.server flushes after every request.
    wbufsize = 64 * 1024
    server_version = "mtls-lab/1"

    @functools.cached_property
    def client_identity(self) -> ClientIdentity:
        """The client's identity, read once per connection (a handler lives as long as its connection).

        Raises :class:`UnreadableCertificateError` for a certificate OpenSSL accepted but that
        cannot be read in full (see :func:`identity_from_certificate`).
        """
        der = self.connection.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as error:
            raise UnreadableCertificateError(
                f"the client certificate cannot be parsed: {parse_problem(error)}."
            ) from None
        return identity_from_certificate(certificate)

    def do_GET(self) -> None:
        """Greet the client; with an access policy, only on paths it allows (else 403 with the reason)."""
        owner: MTLSServer = self.server.owner  # type: ignore[attr-defined]
        try:
            identity = self.client_identity
        except UnreadableCertificateError as error:  # OpenSSL accepted it, but who it names cannot be read
            owner._record_log(f"{self.address_string()} unreadable client certificate: {error}")
            self.send_text(400, f"Bad request: {error}\n")
            return
        path = normalize_path(self.path)
        if path is None:  # the policy and the greeting must read the same path, so ambiguity is refused
            self.send_text(400, "Bad request: ambiguous path (dot or empty segments, ';')\n")
            return
        policy = owner.policy  # one read: the notebook may replace it while we run
        if policy is not None:
            decision = policy.decide(identity, path)
            owner.decisions.append(decision)
            if not decision.allowed:
                self.send_text(403, f"Forbidden: {decision.reason}\n")
                return
        greeting = f"Hello, {identity.name}" + ("" if path == "/" else f": welcome to {path}")
        self.send_text(200, greeting + "\n")

    def send_text(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            # The client asked to close: say so, as RFC 9112 wants, or a client
            # such as http.client keeps the connection and fails on its next use.
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep the request log in memory instead of printing it into the notebook."""
        owner: MTLSServer = self.server.owner  # type: ignore[attr-defined]
        owner._record_log(f"{self.address_string()} {format % args}")


class _HTTPServer(PromptShutdownMixin, HTTPServer):
    """HTTPServer that hands each accepted TCP socket to a thread which does the TLS handshake.

    It stops at once when asked (:mod:`lab_helpers.serving`).
    """

    allow_reuse_address = False  # on port 0 reuse buys nothing; a fixed busy port should fail loudly

    def __init__(self, owner: MTLSServer, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        self.owner = owner
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        number = self.owner._connection_taken()  # here, in the accepting thread: numbers follow arrival
        thread = threading.Thread(
            target=self.owner._serve_connection,
            args=(request, client_address, number),
            name=f"mtls-lab-connection-{client_address[1]}",
            daemon=True,
        )
        self.owner._track_thread(thread)
        try:
            thread.start()
        except BaseException:  # no thread (out of threads or memory): nobody will serve it or end it
            self.owner._untrack_thread(thread)
            self.owner._connection_ended(number)
            raise


class MTLSServer:
    """The lab's mTLS server. Use as ``with MTLSServer(context) as server:`` or ``start()``/``stop()``.

    ``name`` identifies the server across re-runs of a cell: starting a server
    whose name is already running stops the old one first. Pass ``name=None``
    to run several servers side by side. ``on_event`` is called (from the
    connection's thread) with a line for each request and each rejection, for
    a terminal that wants to show them as they happen. ``policy`` (an
    :class:`~lab_helpers.authz.AccessPolicy`) decides which client may read
    which path; it can be replaced while the server runs.

    ``close_rejected_at_once=True`` closes a refused connection as soon as the
    alert is written, without the lingering close of
    :func:`_close_after_rejection`, and records the rejection once it is
    closed. The client's unread data then makes the kernel answer with a
    reset, and a TLS 1.3 client that writes after it sees an EOF or a reset
    instead of the alert: what careless servers do, kept for notebook 06 to
    show the difference.
    """

    _running: ClassVar[NamedInstances[MTLSServer]] = NamedInstances()

    def __init__(
        self,
        context: ssl.SSLContext,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str | None = "lab",
        handler: type[BaseHTTPRequestHandler] = LabRequestHandler,
        handshake_timeout: float = 5.0,
        idle_timeout: float = 30.0,
        on_event: Callable[[str], None] | None = None,
        policy: AccessPolicy | None = None,
        close_rejected_at_once: bool = False,
    ) -> None:
        if context.verify_mode != ssl.CERT_REQUIRED:
            raise LabError("The lab server is an mTLS server: set context.verify_mode = ssl.CERT_REQUIRED.")
        self.context = context
        self.host = host
        self.requested_port = port
        self.name = name
        self.handler = handler
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.rejections: list[Rejection] = []
        self.accepted = 0  # handshakes that succeeded
        self.connections = 0  # TCP connections taken from the listening socket, whatever became of them
        self._open_connections: set[int] = set()  # the numbers of those still being served
        self.log: deque[str] = deque(maxlen=1000)  # the latest request lines, bounded for long runs
        self.handler_errors: deque[Exception] = deque(
            maxlen=100
        )  # exceptions raised by the handler, latest last
        self.on_event = on_event
        self.policy = policy  # None: any client with a valid certificate may read every path
        self.decisions: deque[Decision] = deque(maxlen=1000)  # the policy's latest answers
        self.close_rejected_at_once = close_rejected_at_once  # False: linger so the client can read the alert
        self._changed = threading.Condition()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._serve_thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------

    def start(self) -> MTLSServer:
        """Bind, listen and serve on a background thread; return once connections are accepted."""
        if self._httpd is not None:
            return self
        self._running.replace(self.name)
        try:
            self._httpd = _HTTPServer(self, (self.host, self.requested_port), self.handler)
        except OSError as error:
            if error.errno == errno.EACCES:
                raise LabError(
                    f"Cannot listen on {self.host}:{self.requested_port} (permission denied): ports below 1024 "
                    "need administrator rights. Use port=0 to get a free one, or a port from 1024 up."
                ) from error
            raise LabError(
                f"Cannot listen on {self.host}:{self.requested_port} ({error.strerror}). "
                "Another program uses that port: use port=0 to get a free one, or stop the other program."
            ) from error
        # The socket listens as soon as the server is constructed, so a client
        # can connect now; serve_forever then picks connections up.
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever,
            name=f"mtls-lab-server-{self.port}",
            daemon=True,
        )
        self._serve_thread.start()
        self._running.remember(self.name, self)
        return self

    def stop(self) -> None:
        """Stop accepting, close every open connection and join every thread (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()  # returns as soon as the serving loop has ended
        httpd.server_close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv()
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=1.0)
        if self._serve_thread is not None:
            self._serve_thread.join(timeout=1.0)
        self._running.forget(self.name, self)

    def replace_context(self, context: ssl.SSLContext) -> None:
        """Serve new connections with ``context`` (a rotated certificate, a new CRL), without a restart.

        Each connection takes the context when it arrives, so handshakes that
        have started finish with the old one and open keep-alive connections
        keep it; every new connection gets the new one. Nothing is refused in
        between. (Calling ``load_cert_chain`` on the running context works
        too, but a CRL can only be added that way, never replaced.)
        """
        if context.verify_mode != ssl.CERT_REQUIRED:
            raise LabError("The lab server is an mTLS server: set context.verify_mode = ssl.CERT_REQUIRED.")
        self.context = context

    def __enter__(self) -> MTLSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise LabError("The server is not running: call start() first.")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``https://localhost:PORT/``: the name the server certificate's SAN carries."""
        return f"https://localhost:{self.port}/"

    def __repr__(self) -> str:
        state = f"listening on {self.url}" if self.running else "stopped"
        return (
            f"<MTLSServer {self.name!r} {state}, {self.accepted} accepted, {len(self.rejections)} rejected>"
        )

    # -- what the server saw ------------------------------------------------

    def wait_for_rejection(
        self, after: int, timeout: float = 1.0, *, connections_after: int | None = None
    ) -> Rejection | None:
        """The first rejection recorded after index ``after``, waiting up to ``timeout`` seconds.

        The client may see a failure a moment before the server has recorded
        its side of it (the alert travels before the server's thread returns).

        ``connections_after`` is ``server.connections`` read before the
        request. With it, a rejection only counts if it belongs to a connection
        that arrived since: an earlier connection's rejection recorded late
        (its client gave up, and its thread was slow to notice) is not taken
        for this request's. And the wait ends, returning None, once such a
        connection has arrived and every one has been served without a
        rejection: when the handshake succeeded and the handler then raised,
        or the client gave up mid-response, no rejection is coming.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                rejection = self._first_rejection(after, connections_after)
                if rejection is not None:
                    return rejection
                if connections_after is not None and self._all_served_since(connections_after):
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def _first_rejection(self, after: int, connections_after: int | None) -> Rejection | None:
        """The first rejection from index ``after`` on, of a connection numbered ``connections_after`` or later."""
        for rejection in self.rejections[after:]:
            if (
                connections_after is None
                or rejection.connection is None
                or rejection.connection >= connections_after
            ):
                return rejection
        return None

    def _all_served_since(self, number: int) -> bool:
        """Whether connections numbered ``number`` and up have arrived, and none is still being served."""
        return self.connections > number and all(open_one < number for open_one in self._open_connections)

    def _record_rejection(self, peer: tuple[str, int], error: BaseException, number: int) -> None:
        rejection = Rejection(
            peer=f"{peer[0]}:{peer[1]}",
            reason=server_side_reason(error),
            error_class=type(error).__name__,
            detail=str(error),
            connection=number,
        )
        with self._changed:
            self.rejections.append(rejection)
            self._changed.notify_all()
        if self.on_event is not None:
            self.on_event(f"rejected  {rejection}")

    def _record_log(self, line: str) -> None:
        self.log.append(line)
        if self.on_event is not None:
            self.on_event(f"request   {line}")

    # -- connections --------------------------------------------------------

    def _track_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.add(thread)

    def _untrack_thread(self, thread: threading.Thread) -> None:
        with self._lock:
            self._threads.discard(thread)

    def _connection_taken(self) -> int:
        """Number the connection just accepted and count it as being served."""
        with self._changed:
            number = self.connections
            self.connections += 1
            self._open_connections.add(number)
            return number

    def _connection_ended(self, number: int) -> None:
        """The connection is no longer served: wake whoever waits for it to end (:meth:`wait_for_rejection`)."""
        with self._changed:
            self._open_connections.discard(number)
            self._changed.notify_all()

    def _serve_connection(self, raw: socket.socket, peer: tuple[str, int], number: int) -> None:
        """Runs in the connection's own thread: handshake with a timeout, then HTTP."""
        httpd = self._httpd
        tls: socket.socket = raw
        with self._lock:
            self._sockets.add(raw)
        try:
            raw.settimeout(self.handshake_timeout)
            try:
                tls = self.context.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                with self._lock:
                    self._sockets.discard(raw)
                    self._sockets.add(tls)
                tls.do_handshake()  # type: ignore[attr-defined]
            except (ssl.SSLError, OSError) as error:
                if self.close_rejected_at_once:
                    tls.close()  # before the record: whoever waits for the record finds the connection closed
                    self._record_rejection(peer, error, number)
                else:
                    self._record_rejection(peer, error, number)
                    _close_after_rejection(tls, timeout=min(1.0, self.handshake_timeout))
                return  # the finally below closes the socket
            with self._lock:
                self.accepted += 1
            tls.settimeout(self.idle_timeout)
            if httpd is None:
                return
            try:
                self.handler(tls, peer, httpd)
            except OSError as error:  # the client went away mid-request: log it, don't print a traceback
                self._record_log(f"{peer[0]}:{peer[1]} connection ended: {error!r}")
            except (
                Exception
            ) as error:  # a bug in a handler (a learner's subclass): record it where the notebook looks
                self._record_log(f"{peer[0]}:{peer[1]} handler failed: {error!r}")
                self.handler_errors.append(error)
            else:
                _send_close_notify(tls)  # type: ignore[arg-type]
        finally:
            with self._lock:
                self._sockets.discard(tls)
                self._sockets.discard(raw)
                self._threads.discard(threading.current_thread())
            self._connection_ended(number)  # before the close, which is what the client sees end
            tls.close()


def _close_after_rejection(sock: socket.socket, *, timeout: float) -> None:
    """Let the client read the server's alert before the connection closes (a "lingering close").

    In TLS 1.3 the client finishes its handshake before the server checks its
    certificate, and sends its request at once. A server that closes with the
    end of the client's handshake (and often the request) still unread makes
    its kernel answer with a reset instead of an orderly close. A client whose
    next write comes after that reset sees the write fail, an EOF or a reset
    (curl: exit 55), and never reads the alert waiting in its buffer, ``tlsv13
    alert certificate required`` (curl: exit 56). So: stop sending, read and
    discard what the client still sends until it closes, for at most ``timeout``.
    """
    deadline = time.monotonic() + timeout
    try:
        sock.shutdown(socket.SHUT_WR)  # on an SSLSocket this also drops TLS: the reads below are raw
        for _ in range(16):  # bounded in count and in time: a client that keeps sending is cut off
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            sock.settimeout(remaining)
            if not sock.recv(65536):
                break
    except (OSError, ValueError):
        pass


def _send_close_notify(tls: ssl.SSLSocket) -> None:
    """End TLS with a close_notify alert, without waiting for the client's reply.

    Closing the TCP socket alone makes OpenSSL 3 clients (``openssl s_client``)
    report ``unexpected eof while reading`` and exit 1 after a complete response.
    """
    try:
        tls.setblocking(False)
        tls.unwrap()
    except (OSError, ValueError):  # SSLWantReadError: sent, reply not awaited; or the client is already gone
        pass


def running_servers() -> dict[str, MTLSServer]:
    """The named lab servers running in this process (what a re-run cell would replace)."""
    return MTLSServer._running.running()
