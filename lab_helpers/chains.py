"""Verify a certificate chain offline, with ``cryptography``'s path validation.

OpenSSL decides during the handshake; :func:`verify_chain` decides the same
question on paper: does this leaf, with these intermediates, lead to one of
these roots, for this purpose (server or client), at this time? The two
mostly agree; notebook 09 shows where they differ. ``cryptography``'s
verifier follows the Web PKI rules (CA/Browser Forum), which are stricter
than OpenSSL in places: it demands a SubjectAltName on client certificates
too, and refuses CAs with Ed25519 keys (an Ed25519 leaf is accepted).

``cryptography`` does not read CRLs; :func:`verify_chain` checks them after
path validation, with the rules of RFC 5280 section 6.3 as OpenSSL applies
them (:mod:`lab_helpers.revocation`): the issuer's CRL must be there, current,
signed by the issuer, free of critical extensions it cannot process, and must
not list the certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from .errors import LabError
from .revocation import RevocationScope, revocation_failure
from .tolerant import name_text, unreadable_part

__all__ = ["ChainVerdict", "peer_name", "verify_chain"]


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


def _unreadable(certificates: Iterable[x509.Certificate]) -> str | None:
    """Which certificate cannot be read in full, and why; None when all can."""
    for certificate in certificates:
        problem = unreadable_part(certificate)
        if problem is not None:
            name = name_text(certificate, "subject")[0] or "(empty subject)"
            return f"the certificate {name} cannot be read in full: {problem}"
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
    revocation: RevocationScope | None = None,
    max_chain_depth: int | None = None,
) -> ChainVerdict:
    """Path validation as a client (``purpose="server"``, checks ``name``) or a server (``"client"``) does it.

    ``revocation`` says which certificates must be checked against a CRL,
    as OpenSSL's verify flags do:

    - ``None`` (the default): ``"leaf"`` when ``crls`` are given, else no
      revocation check at all (the lab server's rule: a CRL given is a CRL used);
    - ``"leaf"``, like ``VERIFY_CRL_CHECK_LEAF``: only the leaf, against its
      issuer's CRL. A revoked intermediate goes unnoticed;
    - ``"chain"``, like ``VERIFY_CRL_CHECK_CHAIN``: every certificate below the
      trust anchor, each against its issuer's CRL. For root -> intermediate ->
      leaf that is the intermediate's CRL and the root's CRL; the root itself
      is not checked (RFC 5280 takes a trust anchor as given; see
      :mod:`lab_helpers.revocation` for where OpenSSL 3.0 differs).

    A check that is asked for fails closed: without the issuer's CRL the
    verdict is ``unable to get certificate CRL``, in OpenSSL's words, and so
    for a CRL past its nextUpdate (``CRL has expired``) or one with a critical
    extension nobody here processes (``unhandled critical CRL extension``).
    """
    if revocation not in (None, "leaf", "chain"):
        raise LabError(f"revocation={revocation!r} is not a scope: use 'leaf', 'chain' or None.")
    crls = list(crls)
    scope: RevocationScope | None = revocation or ("leaf" if crls else None)
    intermediates = list(intermediates)
    try:
        builder = PolicyBuilder().store(Store(list(roots)))  # ValueError for no roots at all
        if at is not None:
            builder = builder.time(at)
        if max_chain_depth is not None:
            builder = builder.max_chain_depth(max_chain_depth)
        if purpose == "server":
            if name is None:
                raise ValueError("a server certificate is verified for a name: pass name='localhost'")
            subject = peer_name(name) if isinstance(name, str) else name
            chain = tuple(builder.build_server_verifier(subject).verify(leaf, intermediates))
            client_names: tuple[x509.GeneralName, ...] = ()
        else:
            verified = builder.build_client_verifier().verify(leaf, intermediates)
            chain, client_names = tuple(verified.chain), tuple(verified.subjects or ())
    except VerificationError as error:
        # cryptography appends a dump of the certificate it was processing: keep the sentence.
        return ChainVerdict(False, error=str(error).split(" (encountered processing", 1)[0])
    except (ValueError, x509.DuplicateExtension, UnsupportedAlgorithm) as error:  # a part it could not parse
        return ChainVerdict(False, error=_unreadable([leaf, *intermediates]) or str(error))
    unreadable = _unreadable(
        chain
    )  # cryptography's verifier reads only what it needs; a verdict needs it all
    if unreadable:
        return ChainVerdict(False, chain=chain, error=unreadable)
    if scope is not None:
        revoked = revocation_failure(chain, crls, scope=scope, at=at)
        if revoked:
            return ChainVerdict(False, chain=chain, error=revoked)
    return ChainVerdict(True, chain=chain, client_names=client_names)
