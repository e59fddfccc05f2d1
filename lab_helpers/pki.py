"""Build the lab's public key infrastructure with ``cryptography``.

A :class:`CertificateAuthority` creates a root certificate and signs
certificate signing requests (CSRs) with one of two profiles: ``"server"``
(ExtendedKeyUsage serverAuth) or ``"client"`` (clientAuth). Every certificate
carries what strict verifiers demand (Python 3.13's ``VERIFY_X509_STRICT``,
``openssl verify -x509_strict``): a critical BasicConstraints, a critical
KeyUsage, SubjectKeyIdentifier, AuthorityKeyIdentifier and, on leaves, a
SubjectAlternativeName. Notebook 02 builds the same root by hand, field by
field; this module is what later notebooks call once that has been taught.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import KeyMismatchError, LabError, NotACAError, TamperedCSRError

__all__ = [
    "CLIENT_URI_PREFIX",
    "CLOCK_SKEW",
    "DEFAULT_LEAF_DAYS",
    "KEY_TYPES",
    "CertificateAuthority",
    "IssuedCertificate",
    "KeyType",
    "PrivateKey",
    "create_csr",
    "generate_private_key",
    "key_matches_certificate",
    "parse_names",
]

KeyType = Literal["ec", "rsa", "ed25519"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

#: The key types the course uses. ECDSA P-256 is the default: it is what most
#: modern deployments use, and it is about a hundred times faster to generate
#: than RSA-2048. Ed25519 works in TLS 1.3 with OpenSSL, curl and Python, but
#: browsers refuse it in certificates, and the Web PKI policy of
#: ``cryptography.x509.verification`` refuses it on CAs ("Forbidden public key algorithm").
KEY_TYPES: tuple[str, ...] = ("ec", "rsa", "ed25519")

#: Validity starts this long before "now", so that a peer whose clock runs a
#: little behind still accepts a certificate issued a second ago.
CLOCK_SKEW = datetime.timedelta(minutes=5)

#: Leaf certificates live 90 days by default, as public CAs issue them today:
#: short lives limit the damage of a stolen key and force rotation to be routine.
DEFAULT_LEAF_DAYS = 90

#: Client identities are named with a URI in the SubjectAlternativeName, in the
#: style of SPIFFE IDs. A URI is unambiguous where a commonName is not.
CLIENT_URI_PREFIX = "spiffe://lab.example/user/"


def generate_private_key(key_type: KeyType = "ec", *, rsa_bits: int = 2048) -> PrivateKey:
    """Create a new private key: ``"ec"`` (ECDSA P-256), ``"rsa"`` or ``"ed25519"``.

    RSA keys shorter than 2048 bits are refused: security level 2 rejects them
    during the handshake with ``EE_KEY_TOO_SMALL``, and Python's ``ssl`` sets
    that level on every context (``@SECLEVEL=2`` in its default cipher
    string), as OpenSSL 3.2 and later do by default.
    """
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        if rsa_bits < 2048:
            raise LabError(
                f"RSA keys of {rsa_bits} bits are too small: Python's ssl (security level 2) refuses them "
                "(EE_KEY_TOO_SMALL). Use rsa_bits=2048 or more."
            )
        return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise LabError(f"Unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}.")


def _signature_hash(private_key: PrivateKey) -> hashes.SHA256 | None:
    """SHA-256 for RSA and ECDSA; None for Ed25519, whose signature has its hash built in."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return None
    return hashes.SHA256()


def _public_bytes(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_matches_certificate(private_key: PrivateKey, certificate: x509.Certificate) -> bool:
    """True when ``private_key`` is the private half of the certificate's public key.

    False too when the certificate's key cannot be read at all (an algorithm ``cryptography`` does not know).
    """
    try:
        public_key = certificate.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return False
    return _public_bytes(private_key.public_key()) == _public_bytes(public_key)


def parse_names(names: Iterable[str]) -> list[x509.GeneralName]:
    """Turn strings into SAN entries: IP addresses, URIs (``scheme://``), emails, or DNS names.

    An email entry (an rfc822Name) is the bare address: ``mailto:bob@lab.example``
    is refused with the form to use, rather than written into the certificate
    as an address that no mail client or verifier would match.
    """
    entries: list[x509.GeneralName] = []
    for name in names:
        if name.lower().startswith("mailto:"):
            address = name.split(":", 1)[1]
            raise LabError(
                f"{name!r}: an email entry in a certificate is the bare address, {address!r}, "
                "without mailto: (RFC 5280's rfc822Name). Write it that way."
            )
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        if "://" in name:
            entries.append(x509.UniformResourceIdentifier(name))
        elif "@" in name:
            entries.append(x509.RFC822Name(name))
        else:
            entries.append(x509.DNSName(name))
    return entries


def create_csr(
    private_key: PrivateKey, common_name: str, *, names: Iterable[str] = ()
) -> x509.CertificateSigningRequest:
    """Create a certificate signing request, signed with ``private_key``.

    The signature proves that whoever asks for the certificate holds the
    private key: nobody can get a certificate for somebody else's public key.
    ``names`` are the SubjectAlternativeName entries the requester asks for.
    """
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    entries = parse_names(names)
    if entries:
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    return builder.sign(private_key, _signature_hash(private_key))


@dataclass(frozen=True)
class IssuedCertificate:
    """A leaf certificate with the key and CSR it was made from."""

    certificate: x509.Certificate
    private_key: PrivateKey
    csr: x509.CertificateSigningRequest
    #: The CA certificates between the leaf and the root (intermediates), nearest first.
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def chain_pem(self) -> bytes:
        """The leaf followed by its intermediates: what a server (or client) must send."""
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (self.certificate, *self.chain))

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def csr_pem(self) -> bytes:
        return self.csr.public_bytes(serialization.Encoding.PEM)


def _validity(
    valid_days: float, valid_from: datetime.datetime | None
) -> tuple[datetime.datetime, datetime.datetime]:
    """Aware UTC start and end: a naive datetime would be read as UTC and shift by the local offset."""
    if valid_from is None:
        valid_from = datetime.datetime.now(datetime.timezone.utc) - CLOCK_SKEW
    elif valid_from.tzinfo is None:
        raise LabError(
            "valid_from has no time zone, so cryptography would take it as UTC. "
            "Pass an aware datetime, e.g. datetime.datetime.now(datetime.timezone.utc)."
        )
    return valid_from, valid_from + datetime.timedelta(days=valid_days)


def _ca_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: object,
    signing_key: PrivateKey,
    authority_key_id: x509.AuthorityKeyIdentifier,
    path_length: int | None,
    valid_days: float,
) -> x509.Certificate:
    """A CA certificate: BasicConstraints CA:TRUE and KeyUsage keyCertSign + cRLSign, both critical."""
    not_before, not_after = _validity(valid_days, None)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,  # it signs certificates
                crl_sign=True,  # it signs revocation lists
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(authority_key_id, critical=False)
        .sign(signing_key, _signature_hash(signing_key))
    )


class CertificateAuthority:
    """A certificate authority: a CA certificate and its private key.

    Create a new root with :meth:`create_root`, or wrap an existing pair (for
    example ``ca.crt`` and ``ca.key`` loaded from the lab folder). The pair is
    checked: the certificate must say CA:TRUE and the key must match it.
    """

    def __init__(
        self,
        certificate: x509.Certificate,
        private_key: PrivateKey,
        *,
        chain: tuple[x509.Certificate, ...] = (),
    ) -> None:
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise NotACAError(
                f"The certificate for {certificate.subject.rfc4514_string()} is not a CA "
                "(no BasicConstraints CA:TRUE), so verifiers would reject anything it signs. "
                "Sign with the lab CA (ca.crt and ca.key) or create one with CertificateAuthority.create_root()."
            )
        if not key_matches_certificate(private_key, certificate):
            raise KeyMismatchError(
                "The CA's private key does not belong to its certificate. "
                "Load ca.key together with the ca.crt made from it, or recreate both."
            )
        self.certificate = certificate
        self.private_key = private_key
        #: The CA certificates between this CA and its root, nearest first (empty for a root).
        self.chain = chain

    @classmethod
    def create_root(
        cls, common_name: str = "lab-ca", *, key_type: KeyType = "ec", valid_days: float = 365
    ) -> CertificateAuthority:
        """Create a self-signed root CA certificate and its key."""
        key = generate_private_key(key_type)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        certificate = _ca_certificate(
            subject=name,
            issuer=name,  # self-signed: issuer and subject are the same
            public_key=key.public_key(),
            signing_key=key,
            authority_key_id=x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
            path_length=None,
            valid_days=valid_days,
        )
        return cls(certificate, key)

    def create_intermediate(
        self,
        common_name: str = "lab-intermediate",
        *,
        path_length: int | None = 0,
        key_type: KeyType = "ec",
        valid_days: float = 365,
    ) -> CertificateAuthority:
        """Create a CA signed by this one; ``path_length=0`` lets it sign leaves only.

        Real deployments keep the root offline and issue from an intermediate:
        if the intermediate's key leaks, the root revokes it and signs a new one,
        and no client has to change the root it trusts. This does not refuse an
        intermediate below a ``path_length=0`` CA: verifiers do (notebook 09
        shows ``path length constraint exceeded``).
        """
        key = generate_private_key(key_type)
        certificate = _ca_certificate(
            subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
            issuer=self.certificate.subject,
            public_key=key.public_key(),
            signing_key=self.private_key,
            authority_key_id=self._authority_key_identifier(),
            path_length=path_length,
            valid_days=valid_days,
        )
        return CertificateAuthority(certificate, key, chain=(certificate, *self.chain))

    def create_crl(
        self,
        revoked: Iterable[x509.Certificate | int] = (),
        *,
        crl_number: int = 1,
        next_update_days: float = 7,
        previous: x509.CertificateRevocationList | None = None,
    ) -> x509.CertificateRevocationList:
        """A certificate revocation list signed by this CA, naming ``revoked`` (certificates or serials).

        ``previous``: keep every entry of an earlier CRL and number this one
        after it, so that a CRL only ever grows (until entries expire). A CRL
        carries a CRLNumber (RFC 5280 requires it) and a nextUpdate, after
        which verifiers treat it as stale.
        """
        if next_update_days <= 0:
            raise LabError(
                "next_update_days must be positive: a CRL is published for a period that starts now. "
                "To show a stale CRL, build one with x509.CertificateRevocationListBuilder and dates in the past."
            )
        now = datetime.datetime.now(datetime.timezone.utc)
        serials: dict[int, datetime.datetime] = {}
        if previous is not None:
            if previous.issuer != self.certificate.subject or not previous.is_signature_valid(
                self.private_key.public_key()  # type: ignore[arg-type]
            ):
                raise LabError(
                    "The previous CRL was not issued by this CA: start a new one without previous=."
                )
            for entry in previous:
                serials[entry.serial_number] = entry.revocation_date_utc
            number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            crl_number = max(crl_number, number + 1)
        for item in revoked:
            serial = item.serial_number if isinstance(item, x509.Certificate) else int(item)
            serials.setdefault(serial, now)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(now - datetime.timedelta(seconds=1))
            .next_update(now + datetime.timedelta(days=next_update_days))
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for serial, when in sorted(serials.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            )
        return builder.sign(self.private_key, _signature_hash(self.private_key))

    def sign_csr(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        profile: Literal["server", "client"],
        names: Iterable[str] | None = None,
        valid_days: float = DEFAULT_LEAF_DAYS,
        valid_from: datetime.datetime | None = None,
    ) -> x509.Certificate:
        """Check the CSR's signature, then issue a leaf certificate with a server or client profile.

        The SubjectAlternativeName is ``names`` when given (an empty list
        leaves it out, to show what breaks), else the names the CSR asks for,
        else the profile's default (``localhost`` and
        ``127.0.0.1`` for a server; a ``spiffe://`` URI from the commonName for
        a client). A real CA checks that the requester controls each name; the
        lab CA trusts its only user.
        """
        if not csr.is_signature_valid:
            raise TamperedCSRError(
                "The CSR's signature does not match its contents: it was changed after "
                "it was signed, or signed with another key. Create a new CSR with the "
                "private key that will use the certificate."
            )
        if profile == "server":
            usage = ExtendedKeyUsageOID.SERVER_AUTH
        elif profile == "client":
            usage = ExtendedKeyUsageOID.CLIENT_AUTH
        else:
            raise LabError(f"Unknown profile {profile!r}: use 'server' or 'client'.")
        san = self._subject_alternative_name(csr, profile, names)
        not_before, not_after = _validity(valid_days, valid_from)
        authority_key_id = self._authority_key_identifier()
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,  # it signs the TLS handshake
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
            .add_extension(authority_key_id, critical=False)
        )
        if san is not None:
            # RFC 5280: the SAN must be critical when the subject is empty.
            builder = builder.add_extension(san, critical=len(csr.subject) == 0)
        return builder.sign(self.private_key, _signature_hash(self.private_key))

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """The AKI for leaves: the CA's SKI, or (for a CA made without one) derived from its key."""
        try:
            issuer_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key())
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)

    @staticmethod
    def _subject_alternative_name(
        csr: x509.CertificateSigningRequest, profile: str, names: Iterable[str] | None
    ) -> x509.SubjectAlternativeName | None:
        if names is not None:
            entries = parse_names(names)
            if not entries:
                # An explicit empty list: no SAN at all, like the article's certificates. Only for
                # showing what breaks: clients reject such a server, Web PKI verifiers such a client.
                if len(csr.subject) == 0:
                    raise LabError(
                        "A certificate with neither a subject nor a SubjectAlternativeName names nobody."
                    )
                return None
        else:
            try:
                return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                pass
            if profile == "server":
                entries = parse_names(["localhost", "127.0.0.1"])
            else:
                common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                if not common_names:
                    raise LabError(
                        "A client CSR needs a commonName or explicit names=... to name the client."
                    )
                entries = parse_names([CLIENT_URI_PREFIX + str(common_names[0].value)])
        if not entries:
            raise LabError("A certificate needs at least one SubjectAlternativeName entry; pass names=[...].")
        return x509.SubjectAlternativeName(entries)

    def issue_server_certificate(
        self,
        *names: str,
        common_name: str | None = None,
        key_type: KeyType = "ec",
        valid_days: float = DEFAULT_LEAF_DAYS,
        valid_from: datetime.datetime | None = None,
    ) -> IssuedCertificate:
        """New key, CSR and server certificate for ``names`` (default ``localhost``, ``127.0.0.1``)."""
        names = names or ("localhost", "127.0.0.1")
        key = generate_private_key(key_type)
        csr = create_csr(key, common_name or names[0], names=names)
        certificate = self.sign_csr(csr, profile="server", valid_days=valid_days, valid_from=valid_from)
        return IssuedCertificate(certificate, key, csr, self.chain)

    def issue_client_certificate(
        self,
        name: str = "alice",
        *,
        names: Iterable[str] | None = None,
        key_type: KeyType = "ec",
        valid_days: float = DEFAULT_LEAF_DAYS,
        valid_from: datetime.datetime | None = None,
    ) -> IssuedCertificate:
        """New key, CSR and client certificate for the user ``name`` (CN=name, SAN spiffe URI)."""
        key = generate_private_key(key_type)
        csr = create_csr(key, name, names=names if names is not None else [CLIENT_URI_PREFIX + name])
        certificate = self.sign_csr(csr, profile="client", valid_days=valid_days, valid_from=valid_from)
        return IssuedCertificate(certificate, key, csr, self.chain)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)
