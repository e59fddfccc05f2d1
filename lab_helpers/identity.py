"""Who is on the other end: the identity in a peer's certificate."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from .errors import UnreadableCertificateError
from .tolerant import unreadable_part

__all__ = ["ClientIdentity", "fingerprint", "identity_from_certificate"]


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated hex, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


@dataclass(frozen=True)
class ClientIdentity:
    """The names a client certificate carries, as a server handler sees them."""

    common_name: str | None
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    dns_names: tuple[str, ...]
    fingerprint: str
    serial_number: int
    issuer: str
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """A short name to greet: the commonName, else the first URI, else the fingerprint."""
        return self.common_name or (self.uris[0] if self.uris else self.fingerprint[:23])


def identity_from_certificate(certificate: x509.Certificate) -> ClientIdentity:
    """The names a client certificate carries, read in full or not at all.

    A certificate can pass OpenSSL's checks and still hold a part that
    ``cryptography`` cannot parse (OpenSSL ignores some extensions that do
    not concern it). A server must not act on a certificate it cannot read in
    full, so any unreadable part (the subject, the issuer, the key, an
    extension) raises :class:`UnreadableCertificateError`, which names the part and the
    reason; the lab server answers 400 with that message.

    ``None`` (what ``scope_client_certificate`` or ``getpeercert`` return when
    no certificate reached the code) raises a :class:`TypeError` that says so,
    rather than an error from deep inside the parser.
    """
    if certificate is None:
        raise TypeError("identity_from_certificate() got None: no client certificate reached this code")
    problem = unreadable_part(certificate)
    if problem is not None:
        raise UnreadableCertificateError(
            f"the client certificate cannot be read in full: {problem}. Ask its CA for a well-formed certificate."
        )
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
        emails = tuple(san.get_values_for_type(x509.RFC822Name))
        dns_names = tuple(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        uris = emails = dns_names = ()
    return ClientIdentity(
        common_name=str(common_names[0].value) if common_names else None,
        uris=uris,
        emails=emails,
        dns_names=dns_names,
        fingerprint=fingerprint(certificate),
        serial_number=certificate.serial_number,
        issuer=certificate.issuer.rfc4514_string(),
        certificate=certificate,
    )
