"""``explain()`` for httpx, aiohttp, urllib3 and gRPC: their errors, and the fix in their own terms.

Most of these libraries keep the ``ssl`` error they caught in the exception
chain (httpx's ``ConnectError`` and ``ReadError``, aiohttp's
``ClientConnectorCertificateError`` and ``ClientOSError``, urllib3's
``SSLError``), so the course's catalog recognises the cause as it does for
``requests``. What differs is handled here:

- the words a library uses when no ``ssl`` error is left to read: a server
  that closed the connection during the handshake is ``Server disconnected``
  to aiohttp and httpx (uvicorn's and aiohttp's servers, built on asyncio,
  close without sending TLS's alert);
- gRPC: ``grpcio``'s wheels from PyPI carry their own TLS library, BoringSSL,
  not the system's OpenSSL (Linux distributions' packages, Debian's for one,
  link OpenSSL instead), and a failure is a ``grpc.RpcError`` whose only
  evidence is its details string
  (``Tls handshake failed ... CERTIFICATE_VERIFY_FAILED: certificate has
  expired``); a server that refuses the client's certificate shows only
  ``Socket closed``;
- the fix, written for the library the error came from (``verify=`` an
  ``SSLContext`` for httpx, ``ssl=`` for aiohttp, ``ssl_channel_credentials``
  for gRPC...).

:func:`explain_in_stack` returns None for errors from ``requests`` and
``ssl``, which the catalog explains as it always has.
"""

from __future__ import annotations

import re
import sys

from .diagnosis import Explanation, _Case, _match, _signals_of_exception, case
from .tls import exception_chain

__all__ = ["STACKS", "STACK_CASES", "STACK_FIXES", "explain_in_stack", "which_stack"]

STACKS = ("httpx", "aiohttp", "urllib3", "grpc")


#: Cases only these libraries need.
STACK_CASES: tuple[_Case, ...] = (
    _Case(
        "grpc-handshake-refused",
        ("Socket closed",),
        "The gRPC server refused the TLS handshake; the client was only told 'Socket closed'.",
        "grpcio's client reports no reason when the server ends the handshake. Most often the client sent no "
        "certificate, or one from a CA the server does not trust. gRPC's C core may log the server's reason on "
        "its standard error at its default verbosity (GRPC_VERBOSITY=ERROR hides it): 'Handshake failed ... "
        "PEER_DID_NOT_RETURN_A_CERTIFICATE', or 'unable to get local issuer certificate'.",
        "Give ssl_channel_credentials both private_key= and certificate_chain=, issued by the CA in the "
        "server's root_certificates.",
    ),
    _Case(
        "grpc-credentials-refused",
        ("Failed to create security handshaker",),
        "The gRPC client could not start TLS: its own key or certificate was refused before any connection.",
        "BoringSSL could not use the private_key and certificate_chain given to ssl_channel_credentials: most "
        "often the key does not belong to the certificate (gRPC logs 'Invalid private key'); bytes that are "
        "not PEM give the same message.",
        "Pass the certificate's own key (lab_helpers.key_matches_certificate checks a pair), both as PEM bytes. "
        "Never pass one without the other: grpcio then aborts the whole process (grpc/grpc#40732).",
    ),
)
_OWN_CASES = {item.key: item for item in STACK_CASES}


#: Phrases of each library that name a case directly (checked before the catalog's signals).
_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "grpc": (
        ("Hostname Verification Check failed", "server-name-mismatch"),
        ("Socket closed", "grpc-handshake-refused"),
        ("Failed to create security handshaker", "grpc-credentials-refused"),
        ("Connection refused", "nothing-listening"),
        ("Deadline Exceeded", "timeout"),
    ),
    "aiohttp": (("ServerDisconnectedError", "server-closed-connection"),),
    "httpx": (("Server disconnected without sending a response", "server-closed-connection"),),
    "urllib3": (),
}

#: The fix in each library's own terms, for the failures people meet most.
STACK_FIXES: dict[str, dict[str, str]] = {
    "httpx": {
        "server-ca-not-trusted": "Trust the CA that issued the server's certificate: "
        "context = ssl.create_default_context(cafile='ca.crt'), then, for mTLS, "
        "context.load_cert_chain('client.crt', 'client.key') on the same context, and "
        "httpx.Client(verify=context).",
        "client-certificate-missing": "Load the client's pair into the context you pass as verify=: "
        "context.load_cert_chain('client.crt', 'client.key') (httpx 0.28+ deprecates cert=).",
        "client-key-mismatch": "Pair each certificate with its own key in load_cert_chain(cert, key).",
        "server-closed-connection": "Load the client's certificate and key into the verify= context "
        "(context.load_cert_chain), from the CA the server trusts; the server's log has its reason.",
    },
    "aiohttp": {
        "server-ca-not-trusted": "Trust the CA that issued the server's certificate: "
        "context = ssl.create_default_context(cafile='ca.crt'), then, for mTLS, "
        "context.load_cert_chain('client.crt', 'client.key') on the same context, and ssl=context on the "
        "request or the session's TCPConnector.",
        "client-certificate-missing": "Call context.load_cert_chain('client.crt', 'client.key') on the "
        "SSLContext you pass as ssl=.",
        "client-key-mismatch": "Pair each certificate with its own key in load_cert_chain(cert, key).",
        "server-closed-connection": "Load the client's certificate and key into the ssl= context "
        "(context.load_cert_chain), from the CA the server trusts; the server's log has its reason.",
    },
    "urllib3": {
        "server-ca-not-trusted": "Give the pool the CA that issued the server's certificate, and for mTLS "
        "the client's pair beside it: urllib3.PoolManager(ca_certs='ca.crt', cert_file='client.crt', "
        "key_file='client.key').",
        "client-certificate-missing": "Give the pool the client's pair: PoolManager(cert_file='client.crt', "
        "key_file='client.key', key_password=... if the key is encrypted).",
        "client-key-mismatch": "Pass the key that belongs to cert_file as key_file.",
    },
    "grpc": {
        "server-ca-not-trusted": "Give the channel the CA that issued the server's certificate, and for mTLS "
        "the client's pair beside it: grpc.ssl_channel_credentials(root_certificates=ca_pem, "
        "private_key=key_pem, certificate_chain=cert_pem).",
        "server-name-mismatch": "Connect to a name in the server certificate's SAN (localhost:PORT), or issue "
        "the certificate for the name you use (grpc.ssl_target_name_override only for tests).",
        "server-certificate-expired": "Renew the server's certificate and restart the gRPC server with new "
        "ssl_server_credentials (they are read once, at add_secure_port).",
        "nothing-listening": "Start the server, and use the port add_secure_port returned.",
    },
}

_VERIFY_FAILED = re.compile(r"CERTIFICATE_VERIFY_FAILED: ([^:]+)")


def which_stack(error: BaseException) -> str | None:
    """``httpx``, ``aiohttp``, ``urllib3`` or ``grpc``: the library that raised ``error`` (None for requests and ssl)."""
    chain = list(exception_chain(error))
    outermost = type(chain[0]).__module__
    if outermost.startswith(("requests", "ssl", "_ssl")):
        return None
    grpc = sys.modules.get("grpc")  # imported by whoever made a gRPC call; never imported here
    for item in chain:
        module = type(item).__module__
        if module.startswith("grpc") or (grpc is not None and isinstance(item, grpc.RpcError)):
            return "grpc"
        if module.startswith("aiohttp"):
            return "aiohttp"
        if module.startswith(("httpx", "httpcore")):
            return "httpx"
    return "urllib3" if outermost.startswith("urllib3") else None


def _grpc_details(error: BaseException) -> str:
    details = getattr(error, "details", None)
    try:
        return str(details() if callable(details) else details or "")
    except Exception:  # an RpcError that is not a call (a future's, a test double): no details to read
        return ""


def _own_words(stack: str, error: BaseException) -> list[str]:
    """What the library says, as strings to look for phrases in: details, type names, messages."""
    words = [_grpc_details(error)] if stack == "grpc" else []
    for item in exception_chain(error):
        words.append(type(item).__name__)
        words += [arg for arg in getattr(item, "args", ()) if isinstance(arg, str)]
    return words


def explain_in_stack(error: BaseException) -> Explanation | None:
    """The explanation of an error from httpx, aiohttp, urllib3 or gRPC; None for any other error."""
    stack = which_stack(error)
    if stack is None:
        return None
    words = _own_words(stack, error)
    found: tuple[_Case, str] | None = None
    if stack == "grpc":
        # BoringSSL's verification messages are OpenSSL's: the catalog knows them.
        verify_messages = [
            match.group(1).strip() for text in words for match in _VERIFY_FAILED.finditer(text)
        ]
        found = _match(verify_messages) if verify_messages else None
    for phrase, key in _PHRASES[stack]:
        if found is not None:
            break
        for text in words:
            if phrase in text:
                found = (_OWN_CASES.get(key) or case(key), phrase)
                break
    if found is None:
        found = _match(_signals_of_exception(error))
    if found is None:
        return None  # the catalog's "not recognised" says it best
    matched, evidence = found
    fix = STACK_FIXES[stack].get(matched.key, matched.fix)
    return Explanation(matched.key, matched.who, matched.cause, fix, evidence.removesuffix("@server"))
