"""Turn TLS failures into short, stable reasons.

Error messages from ``ssl`` carry line numbers of ``_ssl.c`` and, over TLS
1.3, differ from run to run for the same cause. The functions here pick the
stable part: OpenSSL's verification message (``certificate has expired``) or
its reason code (``PEER_DID_NOT_RETURN_A_CERTIFICATE``).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator

__all__ = ["client_side_reason", "exception_chain", "innermost_tls_error", "server_side_reason"]


def exception_chain(error: BaseException) -> Iterator[BaseException]:
    """Walk an exception and everything it wraps.

    requests wraps urllib3, which wraps ssl: ``SSLError(MaxRetryError(reason=
    SSLError(SSLCertVerificationError)))``. The wrapped errors sit in
    ``args``, in urllib3's ``reason`` attribute, or in ``__cause__`` and
    ``__context__``; this visits each one once, outermost first.
    """
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [getattr(current, "reason", None), current.__cause__, current.__context__]
        inner += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]
        pending.extend(item for item in inner if isinstance(item, BaseException))


def innermost_tls_error(error: BaseException) -> BaseException:
    """The deepest ``ssl``/``OSError`` in the chain (the one that says what really happened)."""
    found = error
    for item in exception_chain(error):
        # aiohttp's ClientConnectorCertificateError is an SSLCertVerificationError by inheritance,
        # without verify_message: the one ssl raised (which has it) comes later in the chain.
        if isinstance(item, ssl.SSLCertVerificationError) and hasattr(item, "verify_message"):
            return item
        if isinstance(item, (ssl.SSLError, ConnectionError, TimeoutError)):
            found = item
    return found


#: OpenSSL reason codes a server sees, in plain words.
SERVER_REASON_WORDS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust our certificate's CA",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client rejected our certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "the client rejected our certificate",
    "HTTP_REQUEST": "the client spoke plain HTTP to the TLS port",
    "WRONG_VERSION_NUMBER": "the client did not speak TLS",
    "UNSUPPORTED_PROTOCOL": "no TLS version in common with the client",
    "TLSV1_ALERT_PROTOCOL_VERSION": "no TLS version in common with the client",
    "NO_SHARED_CIPHER": "no cipher in common with the client",
}


def server_side_reason(error: BaseException) -> str:
    """What the server saw when a handshake failed, in a form that is the same every run."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return str(error.verify_message)
    # Before the reason code: an EOF carries one too (UNEXPECTED_EOF_WHILE_READING),
    # but "the client went away" is what it means.
    if isinstance(error, (ssl.SSLEOFError, ConnectionError, EOFError)):
        return "client closed the connection during the handshake"
    if isinstance(error, TimeoutError):
        return "handshake timed out"
    if isinstance(error, ssl.SSLError) and error.reason:
        return str(error.reason)
    return type(error).__name__


def client_side_reason(error: BaseException) -> str:
    """What the client saw, short and stable (the variable details stay in the exception)."""
    if any(type(item).__name__ == "ProxyError" for item in exception_chain(error)):
        # requests and urllib3 both call it ProxyError; matching the name keeps this module free of them.
        return "could not go through the proxy (HTTPS_PROXY): the lab session ignores proxies"
    inner = innermost_tls_error(error)
    if isinstance(inner, ssl.SSLCertVerificationError):
        return f"server certificate rejected: {inner.verify_message}"
    if isinstance(inner, ssl.SSLError) and inner.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        return "the server requires a client certificate (alert certificate_required)"
    alert = re.fullmatch(r"(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)", str(getattr(inner, "reason", "") or ""))
    if isinstance(inner, ssl.SSLError) and alert:
        # The server said why, in an alert: unknown_ca, certificate_expired, protocol_version...
        return f"the server refused the connection (alert {alert.group(1).lower()})"
    if isinstance(inner, (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError)):
        # Over TLS 1.3 the same rejection arrives as an alert, an EOF or a
        # reset, depending on timing: one stable wording covers them all.
        return "the server ended the connection"
    if isinstance(inner, TimeoutError):
        return "timed out"
    if isinstance(inner, ConnectionRefusedError):
        return "connection refused: nothing listens on that port"
    if isinstance(inner, ssl.SSLError) and inner.reason:
        return str(inner.reason)
    # A library's own error (urllib3's "Client private key is encrypted, ..."): its words are fixed.
    for item in exception_chain(error):
        if (
            not isinstance(item, OSError)
            and item.args
            and isinstance(item.args[0], str)
            and "(" not in item.args[0]
        ):
            return item.args[0]
    return type(inner).__name__
