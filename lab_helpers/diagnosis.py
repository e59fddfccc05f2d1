"""Explain a TLS failure: who rejected whom, why, and what to do.

``explain(error)`` takes any exception from ``requests``, ``urllib3`` or
``ssl`` (plain code that never heard of this package included) and returns
an :class:`Explanation`: ``print()`` it in a terminal, or let Jupyter render
it. ``explain(rejection)`` does the same for what the lab server recorded.

The explanation rests on the stable parts of an error: OpenSSL's
verification message (``certificate has expired``), its reason code
(``TLSV13_ALERT_CERTIFICATE_REQUIRED``), and the exception's type, never on
the full text, which changes with versions and, over TLS 1.3, from run to run.
"""

from __future__ import annotations

import html
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from .errors import LabError
from .tls import exception_chain, innermost_tls_error
from .tolerant import name_text

__all__ = ["CASES", "Explanation", "explain"]


@dataclass(frozen=True)
class Explanation:
    """A failure in words. ``key`` names the case, so code can check it; the rest is for people."""

    key: str
    who: str  # who rejected whom, or where it failed
    cause: str
    fix: str
    evidence: str  # the stable part of the error this rests on
    recognised: bool = True

    def __str__(self) -> str:
        return "\n".join(
            [
                f"What happened: {self.who}",
                f"Evidence:      {self.evidence}",
                f"Why:           {self.cause}",
                f"Fix:           {self.fix}",
            ]
        )

    def __repr__(self) -> str:
        return f"<Explanation {self.key}: {self.who}>"

    def _repr_html_(self) -> str:
        rows = [
            ("What happened", self.who),
            ("Evidence", self.evidence),
            ("Why", self.cause),
            ("Fix", self.fix),
        ]
        body = "".join(
            f"<tr><th style='text-align:left;vertical-align:top'>{label}</th>"
            f"<td style='text-align:left'>{html.escape(text)}</td></tr>"
            for label, text in rows
        )
        colour = "#b00" if self.recognised else "#666"
        return f"<table style='border-left:4px solid {colour}'>{body}</table>"


@dataclass(frozen=True)
class _Case:
    key: str
    signals: tuple[str, ...]  # a signal matches when the error's signal starts with it
    who: str
    cause: str
    fix: str


_CLIENT_REJECTED_SERVER = "The client rejected the server's certificate."
_SERVER_REJECTED_CLIENT = "The server rejected the client's certificate."

#: The cases, first match wins. Signals are OpenSSL verification messages and
#: reason codes, exception type names, and a few fixed library messages.
CASES: tuple[_Case, ...] = (
    # -- local mistakes: the request never left the client ------------------
    _Case(
        "client-files-missing",
        ("Could not find the TLS", "Could not find a suitable TLS CA", "LabFileMissingError"),
        "The client could not start: a certificate, key or CA file does not exist.",
        "requests loads the files named in cert= and verify= when it connects, and one path is wrong.",
        "Check the paths (they are relative to the notebook's folder); create the lab files if needed.",
    ),
    _Case(
        "client-key-encrypted",
        ("Client private key is encrypted", "KeyPasswordError"),
        "The client could not start: its private key is encrypted.",
        "requests cannot pass a password to OpenSSL, so it refuses an encrypted key.",
        "Give requests an unencrypted copy of the key (mode 0600), or load it into an ssl.SSLContext "
        "with load_cert_chain(cert, key, password=...).",
    ),
    _Case(
        "client-key-mismatch",
        ("KEY_VALUES_MISMATCH", "KeyMismatchError"),
        "The client could not start: its private key does not belong to its certificate.",
        "The public key inside the certificate is not the public half of the key file.",
        "Pair each certificate with the key its CSR was made from, or issue a new certificate for this key.",
    ),
    _Case(
        "client-file-unreadable",
        ("[SSL] PEM lib",),
        "The client could not start: OpenSSL could not read its certificate or key file (PEM lib).",
        "The file is not PEM, is damaged, or holds something OpenSSL cannot decode, such as a certificate "
        "whose subject is not valid UTF-8.",
        "Read the file with describe(path) for a certificate, or load_private_key(path) for a key: both say "
        "what is wrong. Then make the file again.",
    ),
    _Case(
        "key-too-small",
        ("EE_KEY_TOO_SMALL", "CA_KEY_TOO_SMALL", "CA_MD_TOO_WEAK"),
        "A key or signature is too weak for the security level of this side's OpenSSL context.",
        "Security level 2 refuses RSA keys under 2048 bits and SHA-1 signatures. Python's ssl sets it on "
        "every context in its default build (its default cipher string starts with @SECLEVEL=2; distributions "
        "such as Fedora build Python to take the system's crypto policy instead), and so do OpenSSL 3.2 and later "
        "and distribution builds such as Debian's; OpenSSL's own default was level 1 before 3.2, so an older "
        "curl or Node.js may still accept what Python refuses.",
        "Issue the certificate again with ECDSA P-256 or RSA-2048 (or larger) and SHA-256.",
    ),
    _Case(
        "proxy-in-the-way",
        ("ProxyError",),
        "The request went to a proxy, which failed, instead of to the server.",
        "HTTPS_PROXY (or ALL_PROXY) is set and NO_PROXY does not cover this host.",
        "Set session.trust_env = False (the lab session does), or add the host to NO_PROXY; with curl use --noproxy '*'.",
    ),
    # -- the client rejected the server's certificate -------------------------
    _Case(
        "server-ca-not-trusted",
        (
            "self-signed certificate in certificate chain",
            "self-signed certificate",
            "self signed certificate",
            "unable to get local issuer certificate",
            "unable to get issuer certificate",
            "TLSV1_ALERT_UNKNOWN_CA@server",
        ),
        _CLIENT_REJECTED_SERVER,
        "The server's certificate does not lead to a CA the client trusts: the client was given no CA "
        "(it then trusts only public CAs), another CA, or the server does not send an intermediate it needs.",
        "Give the client the CA that issued the server's certificate: requests verify='ca.crt', "
        "curl --cacert ca.crt; if an intermediate is involved, make the server send its chain.",
    ),
    _Case(
        "server-name-mismatch",
        ("Hostname mismatch",),
        _CLIENT_REJECTED_SERVER,
        "The host name in the URL is not among the server certificate's SubjectAltName DNS names. A certificate "
        "with only a commonName (like the one `openssl x509 -req` makes without -extfile) has no SAN at all: "
        "requests (urllib3 2), browsers and Go ignore the commonName; curl, Java and ssl.create_default_context() "
        "still fall back to it, which is why the same certificate can work with curl and fail here.",
        "Issue the server certificate with a SAN for every name clients use (DNS:localhost), or use a name it has.",
    ),
    _Case(
        "server-ip-mismatch",
        ("IP address mismatch",),
        _CLIENT_REJECTED_SERVER,
        "The URL uses an IP address, and the server certificate's SAN has no IP entry for it (a DNS name does not count).",
        "Add IP:127.0.0.1 (or the address used) to the server certificate's SAN, or connect by a name it has.",
    ),
    _Case(
        "server-certificate-expired",
        ("certificate has expired", "SSLV3_ALERT_CERTIFICATE_EXPIRED@server"),
        _CLIENT_REJECTED_SERVER,
        "The server's certificate (or a CA above it) is past its notAfter date.",
        "Renew the server certificate and load it into the server (no restart is needed for the lab server).",
    ),
    _Case(
        "server-certificate-not-yet-valid",
        ("certificate is not yet valid",),
        _CLIENT_REJECTED_SERVER,
        "The server's certificate starts in the future: a clock is wrong, or it was made with a naive local time.",
        "Check both clocks; issue certificates with aware UTC times starting a few minutes in the past.",
    ),
    _Case(
        "server-certificate-wrong-purpose",
        ("unsuitable certificate purpose", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE@server"),
        _CLIENT_REJECTED_SERVER,
        "The server presented a certificate whose ExtendedKeyUsage lacks serverAuth (for example a client certificate).",
        "Give the server a certificate issued with the server profile (EKU serverAuth).",
    ),
    _Case(
        "server-certificate-revoked",
        ("certificate revoked", "SSLV3_ALERT_CERTIFICATE_REVOKED@server"),
        _CLIENT_REJECTED_SERVER,
        "The CA's revocation list names the server's certificate.",
        "Issue the server a new certificate; find out why the old one was revoked.",
    ),
    _Case(
        "server-chain-invalid",
        ("invalid CA certificate", "path length constraint exceeded"),
        _CLIENT_REJECTED_SERVER,
        "A certificate in the server's chain acts as a CA without being allowed to (no CA:TRUE, or past its path length).",
        "Issue intermediates with BasicConstraints CA:TRUE and a path length that allows the chain's depth.",
    ),
    _Case(
        "certificate-not-strict",
        (
            "Missing Authority Key Identifier",
            "Missing Subject Key Identifier",
            "Basic Constraints of CA cert not marked critical",
            "CA cert does not include key usage extension",
            "Missing Authority Key Identifier@server",
            "Missing Subject Key Identifier@server",
            "Basic Constraints of CA cert not marked critical@server",
        ),
        "A verifier in strict mode (Python 3.13 by default) rejected a certificate that lacks a required extension.",
        "RFC 5280 requires these extensions; Python 3.13 and urllib3 on 3.13 enforce them with VERIFY_X509_STRICT "
        "(with OpenSSL 3.0 or later: OpenSSL 1.1.1's strict mode lacks these checks).",
        "Issue certificates with SKI and AKI, a critical BasicConstraints, and KeyUsage on CAs (the lab's CA does).",
    ),
    _Case(
        "certificate-unreadable",
        (
            "INVALID_CERTIFICATE",
            "UnreadableCertificateError",
            "DuplicateExtension",
            "error parsing asn1 value",
            "invalid or inconsistent certificate extension",
        ),
        "A certificate could not be read: a part of it is malformed.",
        "An extension cannot be decoded (its ASN.1 is cut short, or holds a value its type does not allow), an "
        "extension appears twice, or a name is not valid. OpenSSL (INVALID_CERTIFICATE, as it loads the "
        "certificate) and cryptography refuse the whole certificate rather than guess.",
        "Read it with describe(certificate): it names the part that cannot be parsed and why. Issue the "
        "certificate again from a CA that writes well-formed extensions.",
    ),
    # -- the server rejected the client (the client got an alert) -------------
    _Case(
        "client-certificate-missing",
        ("TLSV13_ALERT_CERTIFICATE_REQUIRED", "PEER_DID_NOT_RETURN_A_CERTIFICATE@server"),
        "The server rejected the client: it sent no certificate.",
        "The server requires a client certificate (CERT_REQUIRED, Node's requestCert + rejectUnauthorized) and "
        "the client had none to send.",
        "Give the client its certificate and key: requests cert=('client.crt', 'client.key'), curl --cert/--key.",
    ),
    _Case(
        "client-certificate-missing-tls12",
        ("SSLV3_ALERT_HANDSHAKE_FAILURE",),
        "The server refused the handshake (TLS 1.2 alert 'handshake failure').",
        "Most often the client sent no certificate to a server that requires one; more rarely, no cipher in common.",
        "Give the client its certificate and key; if it has them, compare the cipher settings of both sides.",
    ),
    _Case(
        "client-ca-not-trusted",
        (
            "TLSV1_ALERT_UNKNOWN_CA",
            "unable to get local issuer certificate@server",
            "unable to get issuer certificate@server",
            "self-signed certificate in certificate chain@server",
        ),
        _SERVER_REJECTED_CLIENT,
        "The client's certificate was issued by a CA the server does not trust (or the client did not send "
        "the intermediate it needs). Seen from the client, the same alert unknown_ca also comes from a server "
        "that checks CRLs and has none for that CA: OpenSSL sends it for both, and the server's record tells "
        "them apart ('unable to get certificate CRL').",
        "Use a client certificate from the CA the server trusts, or add its CA to the server's "
        "load_verify_locations (only if you mean to trust everything it signs); if the server's record says "
        "'unable to get certificate CRL', load that CA's CRL on the server instead.",
    ),
    _Case(
        "client-certificate-expired",
        ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "certificate has expired@server"),
        _SERVER_REJECTED_CLIENT,
        "The client's certificate is past its notAfter date; or, when the server checks a CRL, the CRL is past its "
        "nextUpdate (OpenSSL sends the same alert for both: the server's record tells them apart).",
        "Renew the client certificate before it expires (automate it: short-lived certificates are renewed daily); "
        "if the server's record says 'CRL has expired', publish a fresh CRL instead.",
    ),
    _Case(
        "client-certificate-not-yet-valid",
        ("certificate is not yet valid@server",),
        _SERVER_REJECTED_CLIENT,
        "The client's certificate starts in the future: a clock is wrong, or it was made with a naive local time.",
        "Check both clocks; issue certificates with aware UTC times starting a few minutes in the past.",
    ),
    _Case(
        "certificate-bad",
        ("SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_BAD_CERTIFICATE@server"),
        "The other side rejected a certificate as bad (alert 'bad certificate').",
        "OpenSSL sends this alert for several causes: a certificate not yet valid, a host name mismatch seen "
        "by the client, a malformed certificate. The side that sent it recorded the precise reason.",
        "Read the other side's log (the lab server records it) and fix what it names.",
    ),
    _Case(
        "client-certificate-wrong-purpose",
        ("SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "unsuitable certificate purpose@server"),
        _SERVER_REJECTED_CLIENT,
        "The client presented a certificate whose ExtendedKeyUsage lacks clientAuth (for example a server certificate).",
        "Give the client a certificate issued with the client profile (EKU clientAuth).",
    ),
    _Case(
        "client-certificate-malformed",
        ("invalid or inconsistent certificate extension@server",),
        _SERVER_REJECTED_CLIENT,
        "An extension of the client's certificate is malformed or contradicts another.",
        "Read the certificate with describe(certificate), which names the extension, and issue it again.",
    ),
    _Case(
        "client-certificate-unknown",
        ("SSLV3_ALERT_CERTIFICATE_UNKNOWN",),
        _SERVER_REJECTED_CLIENT,
        "OpenSSL sends the alert certificate_unknown when it refuses a certificate for a reason that has no "
        "alert of its own, such as an unhandled critical extension.",
        "Read the server's record for its precise reason (the lab server keeps it: server.rejections).",
    ),
    _Case(
        "client-certificate-revoked",
        ("SSLV3_ALERT_CERTIFICATE_REVOKED", "certificate revoked@server"),
        _SERVER_REJECTED_CLIENT,
        "The CA's revocation list, which the server checks, names the client's certificate.",
        "Issue the client a new certificate (and find out why the old one was revoked).",
    ),
    # -- revocation lists, as the server sees them ------------------------------
    _Case(
        "crl-missing",
        ("unable to get certificate CRL@server",),
        "The server rejected the client: it must check a CRL and has none from the client certificate's issuer.",
        "VERIFY_CRL_CHECK_LEAF is on, but no CRL of the CA that issued the client's certificate was loaded: "
        "OpenSSL then refuses everyone rather than guess.",
        "Load a current CRL from the CA that issued the client's certificate (build_server_context(..., "
        "crl_file=...); with an intermediate CA, the intermediate's CRL), and publish a new one before each "
        "nextUpdate. Refusing everyone meanwhile is the check working: it fails closed.",
    ),
    _Case(
        "crl-stale",
        ("CRL has expired@server", "CRL is not yet valid@server"),
        "The server rejected the client: its CRL is out of date (past its nextUpdate) or not yet valid.",
        "A CRL is valid until its nextUpdate; after that OpenSSL no longer trusts what it says, revoked or not.",
        "Publish a fresh CRL before the old one's nextUpdate (automate it) and load it into the server.",
    ),
    _Case(
        "crl-signature-failure",
        ("CRL signature failure@server", "unable to decrypt CRL's signature@server"),
        "The server rejected the client: the CRL it loaded is not signed by the CA it names.",
        "The CRL was forged, damaged, or signed by another key of a CA with the same name.",
        "Load the CRL that the issuing CA itself signed.",
    ),
    # -- no common ground ------------------------------------------------------
    _Case(
        "protocol-version-mismatch",
        (
            "TLSV1_ALERT_PROTOCOL_VERSION",
            "UNSUPPORTED_PROTOCOL",
            "NO_PROTOCOLS_AVAILABLE",
            "WRONG_SSL_VERSION",
            "UNSUPPORTED_PROTOCOL@server",
            "TLSV1_ALERT_PROTOCOL_VERSION@server",
            "NO_PROTOCOLS_AVAILABLE@server",
        ),
        "Client and server have no TLS version in common.",
        "One side allows only versions the other does not (for example a TLS 1.3-only server and a client "
        "limited to TLS 1.2).",
        "Allow TLS 1.2 and 1.3 on both sides (minimum_version = TLSv1_2), or upgrade the older side.",
    ),
    _Case(
        "plain-http-to-tls-port",
        ("HTTP_REQUEST@server", "plain-http"),
        "The client spoke plain HTTP to a port that expects TLS.",
        "The URL starts with http://, but the server on that port speaks HTTPS (TLS first, then HTTP).",
        "Use https:// in the URL.",
    ),
    _Case(
        "tls-to-plain-port",
        ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"),
        "The client spoke TLS to a port that does not (a plain HTTP server, or another protocol).",
        "The URL starts with https://, but the answer was not TLS.",
        "Use the right port, or http:// if the server really has no TLS.",
    ),
    # -- the connection ended without a reason ---------------------------------
    _Case(
        "server-closed-connection",
        (
            "SSLEOFError",
            "UNEXPECTED_EOF_WHILE_READING",
            "ConnectionResetError",
            "BrokenPipeError",
            "RemoteDisconnected",
        ),
        "The server closed the connection during or right after the handshake, without saying why.",
        "Over TLS 1.3 the client finishes its handshake before the server checks the client's certificate, "
        "so a rejection can arrive as an EOF or a reset instead of an alert. Most often: no client certificate, "
        "or one the server does not accept.",
        "Read the server's log for its reason (the lab server records it: server.rejections).",
    ),
    _Case(
        "client-closed-connection",
        ("client closed the connection during the handshake@server",),
        "The client closed the connection during the handshake.",
        "The client gave up: it rejected something locally (a key it could not load, a certificate it "
        "did not trust and said nothing), or it was not a TLS client at all.",
        "Look at the client's error; the server cannot know more.",
    ),
    _Case(
        "handshake-timeout",
        ("handshake timed out@server",),
        "A client connected and then sent nothing for the whole handshake timeout.",
        "An idle or stuck client, or a port scanner. The lab server gives each connection its own thread, "
        "so other clients were not blocked.",
        "Nothing to fix on the server; find the idle client if it matters.",
    ),
    _Case(
        "timeout",
        ("ConnectTimeout", "ReadTimeout", "TimeoutError"),
        "No answer in time.",
        "Nothing answered within the timeout: a server that accepts but never answers, a firewall, or a dead host.",
        "Check that the server runs and answers; keep a timeout on every request (requests has none by default).",
    ),
    _Case(
        "nothing-listening",
        ("ConnectionRefusedError", "NewConnectionError"),
        "Nothing accepted the connection.",
        "No program listens on that address and port (the server stopped, or the port is wrong).",
        "Start the server, and use the URL it prints (the lab server picks a free port each time).",
    ),
)

_BY_KEY = {case.key: case for case in CASES}


def _signals_of_exception(error: BaseException) -> list[str]:
    """The stable facts about an exception, most specific first."""
    signals: list[str] = []
    chain = list(exception_chain(error))
    for item in chain:
        # getattr: aiohttp's ClientConnectorCertificateError is an SSLCertVerificationError by
        # inheritance but has no verify_message; the real one from ssl follows it in the chain.
        if isinstance(item, ssl.SSLCertVerificationError) and getattr(item, "verify_message", None):
            signals.append(str(item.verify_message))
    for item in chain:
        reason = getattr(item, "reason", None)
        if isinstance(item, ssl.SSLError) and isinstance(reason, str):
            signals.append(reason)
    for item in chain:
        signals.append(type(item).__name__)
        for arg in getattr(item, "args", ()):
            if isinstance(arg, str):
                signals.append(arg)
    request = getattr(error, "request", None)
    url = str(getattr(request, "url", "") or "")
    if url.startswith("http://") and any(
        isinstance(item, (ConnectionResetError, BrokenPipeError)) for item in chain
    ):
        signals.insert(0, "plain-http")
    return signals


def _match(signals: Iterable[str]) -> tuple[_Case, str] | None:
    """The first case that one of the signals (most specific first) starts with.

    A signal from the server's record ends in ``@server`` and matches only
    signals written that way: the same alert means opposite things on the two
    sides (the side that receives ``unknown ca`` is the one not trusted).
    """
    for signal in signals:
        for case in CASES:
            for wanted in case.signals:
                if signal.endswith("@server") == wanted.endswith("@server") and signal.startswith(wanted):
                    return case, signal
    return None


def explain(failure: BaseException | object | str) -> Explanation:
    """Explain an exception, a :class:`~lab_helpers.server.Rejection`, or a server reason string."""
    if isinstance(failure, x509.Certificate):  # a certificate is not a failure: say what reads one
        return Explanation(
            "not-a-failure", "This is a certificate, not a failure.",
            "explain() reads errors: an exception, a server's rejection, or its reason.",
            "Read the certificate with describe(certificate); pass explain() the error it caused.",
            f"a certificate for {name_text(failure, 'subject')[0] or '(empty subject)'}", recognised=False,
        )  # fmt: skip
    if isinstance(failure, BaseException):
        from .stack_errors import explain_in_stack  # httpx, aiohttp, urllib3, gRPC: their words, their fixes

        in_stack = explain_in_stack(failure)
        if in_stack is not None:
            return in_stack
        if isinstance(failure, LabError) and not _match([type(failure).__name__]):
            return Explanation(
                "lab-error", "The lab refused the input.", str(failure), "See the message.", str(failure)
            )
        signals = _signals_of_exception(failure)
        evidence_default = str(innermost_tls_error(failure))
    else:
        reason = str(getattr(failure, "reason", failure))
        # Server-side verification messages say the opposite of the same words on the client.
        signals = [f"{reason}@server"]
        evidence_default = reason
    found = _match(signals)
    if found is None:
        return Explanation(
            "not-recognised",
            "Not recognised: this failure is not in the course's catalog.",
            f"The innermost error says: {evidence_default}",
            "Search for the error's reason code; compare what the server saw with what the client saw.",
            evidence_default,
            recognised=False,
        )
    case, signal = found
    return Explanation(case.key, case.who, case.cause, case.fix, signal.removesuffix("@server"))


def case(key: str) -> _Case:
    """The catalog entry for ``key`` (for tables and tests)."""
    return _BY_KEY[key]
