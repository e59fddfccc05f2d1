"""What the checks look at: small questions a check asks of a certificate, a key or a server.

Each function answers one question and never raises for a learner's odd
answer (a certificate signed by someone else, one without the extension
asked about): it says "no" (``False``, ``None`` or an empty list) instead,
and the check turns that into words. The notebooks' checks (``nb04.py``...)
share them, so that every check reads the evidence the same way.
"""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from ..client import Outcome, attempt
from ..files import save_chain, save_crl, save_private_key
from ..pki import CertificateAuthority, PrivateKey
from ..server import MTLSServer, build_server_context

__all__ = [
    "attempt_presenting",
    "common_name",
    "display_name",
    "extended_key_usages",
    "extension",
    "has_purpose",
    "is_private_key",
    "lab_server",
    "nameless_server",
    "public_key_der",
    "request_through_a_lab_server",
    "server_problem",
    "signed_by",
    "subject_alternative_names",
    "valid_now",
]

CertificateOrCSR = x509.Certificate | x509.CertificateSigningRequest
E = TypeVar("E", bound=x509.ExtensionType)


class _HasPublicKey(Protocol):
    def public_key(self) -> object: ...


# -- certificates -----------------------------------------------------------------


def signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when ``issuer`` directly issued ``certificate``.

    Its subject is the certificate's issuer name, and its key verifies the signature.

    ``signed_by(c, c)`` says whether ``c`` is self-signed. Another issuer
    name, another key type or a bad signature all answer False.
    """
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def extension(item: CertificateOrCSR, kind: type[E]) -> x509.Extension[E] | None:
    """The extension of class ``kind`` (with its ``critical`` flag), or None when the item has none."""
    try:
        return item.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def subject_alternative_names(item: CertificateOrCSR) -> list[x509.GeneralName]:
    """The names in the SubjectAlternativeName, in order; empty when there is none or it cannot be read."""
    try:
        return list(item.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError):
        return []


def common_name(certificate: x509.Certificate) -> str | None:
    """The subject's (first) commonName, or None when the subject has none."""
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def display_name(certificate: x509.Certificate) -> str:
    """How a check names a certificate in its messages: the commonName, else the whole subject (RFC 4514)."""
    name = common_name(certificate)
    return name if name is not None else certificate.subject.rfc4514_string()


def is_private_key(obj: object) -> bool:
    """True for an EC, RSA or Ed25519 private key: the kinds the lab makes."""
    return isinstance(obj, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey))


def valid_now(certificate: x509.Certificate) -> bool:
    """True when now (UTC) lies between notBefore and notAfter, both included."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def extended_key_usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    """The ExtendedKeyUsage purposes, in order; None when the certificate has no ExtendedKeyUsage at all."""
    found = extension(certificate, x509.ExtendedKeyUsage)
    return list(found.value) if found is not None else None


def has_purpose(certificate: x509.Certificate, purpose: x509.ObjectIdentifier) -> bool:
    """True when the ExtendedKeyUsage lists ``purpose`` (False without an ExtendedKeyUsage)."""
    return purpose in (extended_key_usages(certificate) or [])


def public_key_der(item: _HasPublicKey) -> bytes:
    """The public key of a certificate, CSR or private key, as DER SubjectPublicKeyInfo: equal bytes, same key."""
    public_key = item.public_key()
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)  # type: ignore[attr-defined]


# -- servers and requests ---------------------------------------------------------


def server_problem(server: object, variable: str) -> str | None:
    """Why ``server`` cannot be examined, in words (None when it is a running MTLSServer)."""
    if not isinstance(server, MTLSServer):
        return f"{variable} should be the MTLSServer you started, not {type(server).__name__}"
    if not server.running:
        return f"{variable} is not running: start() it, and keep it running until the check has run"
    return None


@contextmanager
def nameless_server(
    chain: Sequence[x509.Certificate],
    key: PrivateKey,
    trusts: x509.Certificate,
    *,
    crl: x509.CertificateRevocationList | None = None,
) -> Iterator[MTLSServer]:
    """A running lab server that presents ``chain`` (leaf first) and trusts clients issued by ``trusts``.

    It runs under no name, so it never replaces a server the notebook runs,
    on a free port, and loads ``crl`` when one is given; its files live in a
    temporary folder. Both go when the ``with`` block ends.
    """
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        files = Path(folder)
        save_chain(chain, files / "server-chain.crt")
        save_private_key(key, files / "server.key")
        save_chain([trusts], files / "server-trusts.crt")
        crl_file = save_crl(crl, files / "server.crl") if crl is not None else None
        context = build_server_context(
            files / "server-chain.crt", files / "server.key", files / "server-trusts.crt", crl_file=crl_file
        )
        with MTLSServer(context, name=None, handshake_timeout=2.0) as server:
            yield server


@contextmanager
def lab_server(
    ca: CertificateAuthority, *, crl: x509.CertificateRevocationList | None = None
) -> Iterator[MTLSServer]:
    """A nameless lab server (see ``nameless_server``) with a fresh certificate from ``ca``, trusting ``ca``."""
    issued = ca.issue_server_certificate()
    with nameless_server([issued.certificate], issued.private_key, ca.certificate, crl=crl) as server:
        yield server


def attempt_presenting(
    server: MTLSServer, chain: Sequence[x509.Certificate], key: PrivateKey, trusts: x509.Certificate
) -> Outcome:
    """One request to ``server`` on a new connection: the client presents ``chain`` (leaf first), trusts ``trusts``.

    The outcome carries the server's recorded reason; the client's files live
    in a temporary folder that is removed afterwards.
    """
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        files = Path(folder)
        save_chain([trusts], files / "client-trusts.crt")
        save_chain(chain, files / "client-chain.crt")
        save_private_key(key, files / "client.key")
        return attempt(
            server.url,
            ca_file=files / "client-trusts.crt",
            cert_file=files / "client-chain.crt",
            key_file=files / "client.key",
            server=server,
        )


def request_through_a_lab_server(
    certificate: x509.Certificate, key: PrivateKey, ca: CertificateAuthority
) -> Outcome:
    """One real mTLS request with ``certificate`` and ``key`` to a fresh lab server that trusts ``ca``."""
    with lab_server(ca) as server:
        return attempt_presenting(server, [certificate], key, ca.certificate)
