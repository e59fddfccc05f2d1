"""Verify a certificate chain offline, with ``cryptography``'s path validation.

OpenSSL decides during the handshake; :func:`verify_chain` decides the same
question on paper: does this leaf, with these intermediates, lead to one of
these roots, for this purpose (server or client), at this time? The two
mostly agree; notebook 09 shows where they differ. ``cryptography``'s
verifier follows the Web PKI rules (CA/Browser Forum), which are stricter
than OpenSSL in places: it demands a SubjectAltName on client certificates
too, and refuses CAs with Ed25519 keys (an Ed25519 leaf is accepted).

``cryptography`` does not read CRLs; :func:`verify_chain` checks them after
path validation, with the rules of RFC 5280 section 6.3 that the course
teaches: a CRL counts only when its issuer signed it and may sign CRLs, it
must carry a non-critical CRLNumber, and a listed serial is revoked.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Iterable, Literal

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

__all__ = ["ChainVerdict", "verify_chain", "peer_name"]


@dataclass(frozen=True)
class ChainVerdict:
    """The verdict: ``ok``, the chain that was built (leaf first), or the reason it failed."""

    ok: bool
    chain: tuple[x509.Certificate, ...] = ()
    error: str | None = None
    client_names: tuple[x509.GeneralName, ...] = ()  # the SANs a verified client certificate carries

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if self.ok:
            names = " -> ".join(c.subject.rfc4514_string() for c in self.chain)
            return f"valid: {names}"
        return f"invalid: {self.error}"


def peer_name(name: str) -> x509.verification.Subject:  # type: ignore[name-defined]
    """``"localhost"`` -> DNSName, ``"127.0.0.1"`` -> IPAddress, as a server verifier expects."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _crl_failure(
    chain: tuple[x509.Certificate, ...], crls: Iterable[x509.CertificateRevocationList]
) -> str | None:
    """The first revocation problem along the chain, or None."""
    crls = list(crls)
    for certificate, issuer in zip(chain, chain[1:]):
        for crl in crls:
            if crl.issuer != issuer.subject:
                continue  # another CA's list says nothing about this certificate
            if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue  # a forgery, or another key of a CA with the same name
            try:
                usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
                if not usage.crl_sign:
                    return f"CRL issuer {issuer.subject.rfc4514_string()} may not sign CRLs (KeyUsage without cRLSign)"
            except x509.ExtensionNotFound:
                pass  # no KeyUsage at all: every use is allowed
            try:
                number = crl.extensions.get_extension_for_class(x509.CRLNumber)
            except x509.ExtensionNotFound:
                return "the CRL has no CRLNumber (RFC 5280 5.2.3 requires one)"
            if number.critical:
                return "the CRL's CRLNumber is marked critical (RFC 5280 5.2.3 forbids it)"
            if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
                return f"certificate revoked (serial {certificate.serial_number:x})"
    return None


def verify_chain(
    leaf: x509.Certificate,
    *,
    roots: Iterable[x509.Certificate],
    intermediates: Iterable[x509.Certificate] = (),
    purpose: Literal["server", "client"] = "server",
    name: str | x509.GeneralName | None = None,
    at: datetime.datetime | None = None,
    crls: Iterable[x509.CertificateRevocationList] = (),
    max_chain_depth: int | None = None,
) -> ChainVerdict:
    """Path validation as a client (``purpose="server"``, checks ``name``) or a server (``"client"``) does it."""
    builder = PolicyBuilder().store(Store(list(roots)))
    if at is not None:
        builder = builder.time(at)
    if max_chain_depth is not None:
        builder = builder.max_chain_depth(max_chain_depth)
    intermediates = list(intermediates)
    try:
        if purpose == "server":
            if name is None:
                raise ValueError("a server certificate is verified for a name: pass name='localhost'")
            subject = peer_name(name) if isinstance(name, str) else name
            chain = tuple(builder.build_server_verifier(subject).verify(leaf, intermediates))
            client_names: tuple[x509.GeneralName, ...] = ()
        else:
            verified = builder.build_client_verifier().verify(leaf, intermediates)
            chain, client_names = tuple(verified.chain), tuple(verified.subjects or ())
    except (VerificationError, ValueError) as error:
        # cryptography appends a dump of the certificate it was processing: keep the sentence.
        return ChainVerdict(False, error=str(error).split(" (encountered processing", 1)[0])
    revoked = _crl_failure(chain, crls)
    if revoked:
        return ChainVerdict(False, chain=chain, error=revoked)
    return ChainVerdict(True, chain=chain, client_names=client_names)
