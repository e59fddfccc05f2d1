"""The client side: a ``requests`` session made for the lab, and ``attempt``.

Two things in a learner's environment silently change what ``requests``
does, and both are switched off here with ``trust_env = False``:

- ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override ``Session.verify``
  (https://github.com/psf/requests/issues/3829, open since 2017), so the
  lab CA you set would be ignored;
- ``HTTPS_PROXY`` sends requests for ``localhost`` to the proxy unless
  ``NO_PROXY`` covers it, and the proxy cannot reach your notebook.

``requests`` also has no default timeout: a lab session always has one.
"""

from __future__ import annotations

import os
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union
from urllib.parse import urlsplit

import requests
from cryptography import x509
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

from .errors import KeyPasswordError
from .files import check_key_matches, load_certificate, load_private_key
from .server import MTLSServer
from .tls import client_side_reason, innermost_tls_error

if TYPE_CHECKING:
    from .diagnosis import Explanation

__all__ = [
    "DEFAULT_TIMEOUT",
    "LabSession",
    "Outcome",
    "TLSVersionAdapter",
    "attempt",
    "lab_session",
    "server_certificate",
]

#: Seconds to wait for connect and for each read. A lab server answers in
#: milliseconds; five seconds turns a hang into a clear failure.
DEFAULT_TIMEOUT = 5.0

#: Seconds ``attempt`` waits for the server's record of a failed handshake.
SERVER_RECORD_WAIT = 3.0

PathLike = Union[str, "os.PathLike[str]"]


class LabSession(requests.Session):
    """A ``requests.Session`` that ignores proxy and CA-bundle variables and always times out."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        super().__init__()
        self.trust_env = False  # ignore HTTPS_PROXY, REQUESTS_CA_BUNDLE, .netrc
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def _check_client_pair(cert_file: PathLike, key_file: PathLike) -> None:
    """Fail early, with words, where requests/OpenSSL would fail late or cryptically.

    requests cannot pass a password for an encrypted key, and OpenSSL reports a
    mismatched key as ``KEY_VALUES_MISMATCH``.
    """
    certificate = load_certificate(cert_file)
    try:
        key = load_private_key(key_file)
    except KeyPasswordError as error:
        raise KeyPasswordError(
            f"{key_file} is encrypted, and requests cannot pass a password to OpenSSL. "
            "Give requests an unencrypted copy kept with mode 0600, or build an ssl.SSLContext "
            "and call load_cert_chain(cert, key, password=...)."
        ) from error
    check_key_matches(key, certificate, key_path=key_file, cert_path=cert_file)


class TLSVersionAdapter(HTTPAdapter):
    """An adapter whose connections use at most (or at least) a given TLS version.

    requests has no setting for the TLS version; urllib3 takes an
    ``ssl_context``, and this adapter hands it one built by urllib3 itself
    (so verification stays exactly as requests sets it up).
    """

    def __init__(
        self, *, maximum_version: ssl.TLSVersion | None = None, minimum_version: ssl.TLSVersion | None = None
    ) -> None:
        self.maximum_version = maximum_version
        self.minimum_version = minimum_version
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        context = create_urllib3_context()
        if self.maximum_version is not None:
            context.maximum_version = self.maximum_version
        if self.minimum_version is not None:
            context.minimum_version = self.minimum_version
        kwargs["ssl_context"] = context
        super().init_poolmanager(*args, **kwargs)


def lab_session(
    *,
    ca_file: PathLike | None,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    maximum_version: ssl.TLSVersion | None = None,
) -> LabSession:
    """A session that trusts ``ca_file`` (only) and presents ``cert_file``/``key_file``.

    ``ca_file=None`` means "no lab CA": the session then trusts certifi's
    public CAs, as a browser would, and so rejects the lab server.
    ``maximum_version`` caps the TLS version (``ssl.TLSVersion.TLSv1_2``
    shows how TLS 1.2 reports a failure during the handshake).
    """
    session = LabSession(timeout)
    if maximum_version is not None:
        session.mount("https://", TLSVersionAdapter(maximum_version=maximum_version))
    if ca_file is not None:
        load_certificate(ca_file)  # a clear error for a missing or non-PEM file
        session.verify = os.fspath(ca_file)
    if cert_file is not None:
        if key_file is None:
            raise ValueError(
                "Pass key_file with cert_file: the certificate is useless without its private key."
            )
        _check_client_pair(cert_file, key_file)
        session.cert = (os.fspath(cert_file), os.fspath(key_file))
    return session


@dataclass(frozen=True)
class Outcome:
    """What happened to one request: success with status and body, or a failure and its reasons."""

    url: str
    ok: bool
    status: int | None = None
    body: str | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)
    error_class: str | None = None
    reason: str | None = None  # short and stable: safe to assert on
    server_reason: str | None = None  # what the server recorded, when we know the server
    detail: str | None = None  # the innermost message (varies between runs and Pythons)

    def explain(self) -> Explanation | None:
        """Why the request failed, in words (None when it succeeded)."""
        from .diagnosis import explain

        return None if self.error is None else explain(self.error)

    def failed_with(self, exception_type: type[BaseException]) -> bool:
        """True when the request failed with ``exception_type`` (or a subclass of it)."""
        return isinstance(self.error, exception_type)

    def __str__(self) -> str:
        if self.ok:
            label = "OK" if (self.status or 0) < 400 else "REFUSED"  # TLS worked; the application said no
            return f"{label:<7} {self.status} {self.body!r}"
        text = f"FAILED  {self.error_class}: {self.reason}"
        if self.server_reason:
            text += f"\n        server saw: {self.server_reason}"
        return text

    def _repr_html_(self) -> str:
        import html

        if self.ok:
            return f"<div>✅ <b>{self.status}</b> <code>{html.escape(repr(self.body))}</code></div>"
        server = (
            f"<br>server saw: <code>{html.escape(self.server_reason)}</code>" if self.server_reason else ""
        )
        return f"<div>❌ <b>{html.escape(str(self.error_class))}</b>: {html.escape(str(self.reason))}{server}</div>"


def attempt(
    url: str,
    *,
    session: requests.Session | None = None,
    ca_file: PathLike | None = None,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    server: MTLSServer | None = None,
    timeout: float | None = None,
) -> Outcome:
    """GET ``url`` and return an :class:`Outcome`; connection and TLS failures never raise.

    Pass a ``session``, or the files to build a :func:`lab_session` from.
    With ``server``, a failure also carries the reason the server recorded.
    Mistakes in the learner's own files (missing, not PEM, wrong password)
    still raise a :class:`LabError`: they are not what the request teaches.
    ``timeout`` defaults to the session's own (a lab session's), else
    :data:`DEFAULT_TIMEOUT`.
    """
    if timeout is None:
        timeout = getattr(session, "default_timeout", DEFAULT_TIMEOUT)
    if session is None:
        session = lab_session(ca_file=ca_file, cert_file=cert_file, key_file=key_file, timeout=timeout)
    before = len(server.rejections) if server is not None else 0
    connections_before = server.connections if server is not None else 0
    try:
        with session.get(url, timeout=timeout) as response:
            return Outcome(url=url, ok=True, status=response.status_code, body=response.text)
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:  # SSLError included
        # The server's record usually arrives within milliseconds; the generous
        # bound only matters on a loaded machine (a full classroom on one host).
        # A request whose handshake the server accepted leaves no record: the
        # wait ends as soon as the server has finished with the connection.
        # Not after a timeout: this client's connection may not even have been
        # accepted yet, while another one since the mark has already ended.
        timed_out = isinstance(error, requests.exceptions.Timeout)
        rejection = (
            server.wait_for_rejection(
                before,
                timeout=SERVER_RECORD_WAIT,
                connections_after=None if timed_out else connections_before,
            )
            if server is not None
            else None
        )
        return Outcome(
            url=url,
            ok=False,
            error=error,
            error_class=type(error).__name__,
            reason=client_side_reason(error),
            server_reason=rejection.reason if rejection else None,
            detail=str(innermost_tls_error(error)),
        )


def server_certificate(
    url: str,
    *,
    ca_file: PathLike,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> x509.Certificate:
    """The certificate a server presents on a NEW connection, verified against ``ca_file``.

    A ``requests`` session reuses its connections, so it keeps seeing the
    certificate of the handshake it made first; this makes a fresh handshake,
    which is what shows a rotation (a new serial) as soon as it happens.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 443
    context = ssl.create_default_context(cafile=os.fspath(ca_file))
    if cert_file is not None:
        context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file) if key_file else None, password=b"")
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    if der is None:  # pragma: no cover (a verified handshake always has one)
        raise ssl.SSLError("the server presented no certificate")
    return x509.load_der_x509_certificate(der)
