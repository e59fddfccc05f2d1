"""The ASGI TLS extension for uvicorn: the app learns which client certificate it is talking to.

uvicorn can require a client certificate (``ssl_cert_reqs=ssl.CERT_REQUIRED``),
but it tells the application nothing about it: the ASGI ``scope`` has no
trace of TLS. The ASGI specification defines where it would go, the TLS
extension (https://asgi.readthedocs.io/en/latest/specs/tls.html, version
0.2): ``scope["extensions"]["tls"]``, present on TLS connections only, with
the client's certificate chain as PEM strings, leaf first. Pull requests to
add it to uvicorn are open (https://github.com/Kludex/uvicorn/pull/3132 and
https://github.com/Kludex/uvicorn/pull/3133), and so is a proposal to slim
the extension down (https://github.com/django/asgiref/pull/590).

Until one lands, :func:`with_tls_extension` adds it with uvicorn's own
protocol classes: it subclasses one (``H11Protocol``, ``HttpToolsProtocol``),
and the subclass, given to uvicorn as ``http=``, fills the extension for
every request of a TLS connection. Everything in it is read from the
connection's ``ssl.SSLObject`` after the handshake, so it is exactly what
the server verified:

- ``client_cert_chain``: the verified chain, leaf first, each certificate
  signed by the next, ending with the CA the server trusts. On a connection
  that resumes an earlier TLS session nothing is verified again and OpenSSL
  keeps only the leaf (verified when the session began), so the chain is that
  leaf alone. Empty when the client sent no certificate (possible only when
  the server does not require one). The specification speaks of the chain
  the client sent; this adapter gives the chain the server verified, which is
  the one worth trusting, and includes the CA the client did not send;
- ``client_cert_name``: the leaf's subject as an RFC 4514 string, or None;
- ``client_cert_error``: always None: a certificate that fails verification
  makes OpenSSL refuse the handshake, so no request ever carries one;
- ``tls_version`` and ``cipher_suite``: the numbers the TLS RFCs give them
  (``0x0304`` for TLS 1.3, ``0x1302`` for TLS_AES_256_GCM_SHA384);
- ``server_cert``: the first certificate of uvicorn's ``ssl_certfile``, the
  one the server presents; None when the context comes from an
  ``ssl_context_factory``, whose certificate this cannot know.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

__all__ = ["TLS_VERSIONS", "scope_client_certificate", "tls_extension", "with_tls_extension"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

#: ``SSLObject.version()`` -> the protocol version number of the TLS RFCs (RFC 8446, section 4.2.1).
TLS_VERSIONS = {"TLSv1.3": 0x0304, "TLSv1.2": 0x0303, "TLSv1.1": 0x0302, "TLSv1": 0x0301}


def _verified_chain_pem(ssl_object: ssl.SSLObject) -> list[str]:
    """The chain OpenSSL verified (``SSL_get0_verified_chain``), leaf first, as PEM strings.

    Python 3.13 made ``get_verified_chain()`` public (DER bytes,
    https://github.com/python/cpython/issues/118658); from 3.10 to 3.12 the
    same call exists on the private ``_sslobj`` and returns certificate
    objects. Without either, the leaf alone is what ``getpeercert`` gives.

    A connection that resumes an earlier session (a session ticket or ID,
    which curl and browsers send) verifies nothing: OpenSSL has no
    verified chain for it (NULL, which Python returns as ``[]`` or ``None``;
    "If the session is resumed peers do not send certificates", OpenSSL's
    SSL_get0_verified_chain manual), but the session kept the leaf it
    verified when it began, which ``getpeercert`` returns. Without that
    fallback a resumed alice would look like a client with no certificate.
    """
    public = getattr(ssl_object, "get_verified_chain", None)
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_verified_chain", None)
    chain: list[str] = []
    if public is not None:
        chain = [ssl.DER_cert_to_PEM_cert(der) for der in public() or []]
    elif private is not None:
        import _ssl

        chain = [certificate.public_bytes(_ssl.ENCODING_PEM) for certificate in private() or []]
    can_read_verified_chain = public is not None or private is not None
    if chain or (can_read_verified_chain and not ssl_object.session_reused):
        return chain
    leaf = ssl_object.getpeercert(binary_form=True)
    return [ssl.DER_cert_to_PEM_cert(leaf)] if leaf else []


def _cipher_suite_number(ssl_object: ssl.SSLObject) -> int | None:
    """The negotiated cipher suite's two-byte IANA number, from OpenSSL's id for it."""
    negotiated = ssl_object.cipher()
    if negotiated is None:
        return None
    for cipher in ssl_object.context.get_ciphers():
        if cipher["name"] == negotiated[0]:
            return int(cipher["id"]) & 0xFFFF  # OpenSSL's id is 0x0300XXXX for TLS suites
    return None


def _first_certificate_pem(path: str) -> str | None:
    """The first certificate in a PEM file (the leaf, in a chain file), or None when it cannot be read.

    Read again whenever the file changes (a certificate renewed in place,
    notebook 10), so a new server in the same process never reports the old one.
    """
    try:
        status = os.stat(path)
    except OSError:
        return None
    return _first_certificate_pem_of(path, status.st_ino, status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=16)
def _first_certificate_pem_of(path: str, inode: int, modified_ns: int, size: int) -> str | None:
    """:func:`_first_certificate_pem` for one version of the file (the cache key says which)."""
    try:
        with open(path, "rb") as stream:
            leaf = x509.load_pem_x509_certificates(stream.read())[0]
    except (OSError, ValueError, IndexError):
        return None
    return leaf.public_bytes(serialization.Encoding.PEM).decode("ascii")


def tls_extension(
    ssl_object: ssl.SSLObject, *, server_certfile: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The ASGI TLS extension's dictionary for one TLS connection, read after its handshake."""
    chain = _verified_chain_pem(ssl_object)
    name = None
    if chain:
        name = x509.load_pem_x509_certificate(chain[0].encode("ascii")).subject.rfc4514_string()
    return {
        "server_cert": _first_certificate_pem(os.fspath(server_certfile)) if server_certfile else None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": _cipher_suite_number(ssl_object),
    }


class _AppWithTLSExtension:
    """Calls the app with ``scope["extensions"]["tls"]`` set to a fresh copy of the connection's values."""

    def __init__(self, app: ASGIApp, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") in ("http", "websocket"):
            # A copy per request: an app that changes its scope cannot change the next request's view.
            extension = {**self.tls, "client_cert_chain": list(self.tls["client_cert_chain"])}
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": extension}
        await self.app(scope, receive, send)


def with_tls_extension(protocol_class: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """A subclass of a uvicorn HTTP protocol class that gives the app the ASGI TLS extension.

    Use it as uvicorn's ``http=`` setting::

        from uvicorn.protocols.http.h11_impl import H11Protocol
        uvicorn.Config(app, http=with_tls_extension(H11Protocol), ssl_cert_reqs=ssl.CERT_REQUIRED, ...)

    uvicorn creates one protocol object per connection and calls its
    ``connection_made`` once the TLS handshake is complete; the subclass
    reads the extension there, once, and wraps the app the protocol calls
    (``self.app``, which every uvicorn HTTP protocol class keeps). Over plain
    HTTP the app is left as it is: the specification forbids the extension there.
    """

    class WithTLSExtension(protocol_class):  # type: ignore[valid-type, misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None:
                return  # plain HTTP: no extension
            config = self.config
            certfile = config.ssl_certfile if getattr(config, "ssl_context_factory", None) is None else None
            self.app = _AppWithTLSExtension(self.app, tls_extension(ssl_object, server_certfile=certfile))

    WithTLSExtension.__name__ = WithTLSExtension.__qualname__ = f"{protocol_class.__name__}WithTLSExtension"
    WithTLSExtension.__doc__ = (
        f"uvicorn's {protocol_class.__name__}, plus the ASGI TLS extension in every scope."
    )
    return WithTLSExtension


def scope_client_certificate(scope: Scope) -> x509.Certificate | None:
    """The verified client certificate of a request, from the ASGI TLS extension; None when there is none.

    None for a request over plain HTTP, from a server that does not fill the
    extension, or from a client that sent no certificate (possible only when
    the server does not require one). A connection that resumed an earlier
    TLS session carries the leaf that session verified.
    """
    chain = (scope.get("extensions") or {}).get("tls", {}).get("client_cert_chain") or []
    return x509.load_pem_x509_certificate(chain[0].encode("ascii")) if chain else None
