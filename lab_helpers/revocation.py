"""Revocation checks for :func:`~lab_helpers.chains.verify_chain`: RFC 5280 section 6.3, as OpenSSL applies it.

``cryptography`` validates paths but does not read CRLs, so this module does
the check OpenSSL does when ``VERIFY_CRL_CHECK_LEAF`` or
``VERIFY_CRL_CHECK_CHAIN`` is set (``crypto/x509/x509_vfy.c``: ``check_revocation``,
``get_crl_sk``, ``check_crl``, ``cert_crl``), with the same words for the same
failures, checked against OpenSSL 3.0 (``openssl verify -crl_check`` and
``-crl_check_all``):

- a certificate is checked against a CRL from its issuer (the next certificate
  of the chain). None given: ``unable to get certificate CRL``: the check
  fails closed.
- the trust anchor is not checked: RFC 5280 (6.1) takes it as given, and so
  does OpenSSL's current source, which skips self-signed certificates. OpenSSL
  3.0 still looks a self-signed root up in its own CRL under
  ``VERIFY_CRL_CHECK_CHAIN`` (openssl/openssl#8439). That needs no extra CRL:
  it is the one the root signs for its intermediates. Only a root listed in its
  own CRL, or an intermediate trusted as an anchor (``VERIFY_X509_PARTIAL_CHAIN``),
  tells the two apart.
- among several CRLs from that issuer, the one OpenSSL would pick: without an
  unhandled critical extension, in scope, current, then the newest.
- then, in OpenSSL's order: the issuer's KeyUsage must allow cRLSign; the CRL
  must cover this kind of certificate (``different CRL scope``); it must be
  current (``CRL is not yet valid``, ``CRL has expired``: nextUpdate is past);
  its signature must verify (``CRL signature failure``); it must have no
  critical extension we do not process (``unhandled critical CRL extension``).
- RFC 5280 5.2.3 makes CRLNumber mandatory: a CRL without one is refused,
  which OpenSSL does not do.
- finally the serial: ``certificate revoked``.

Not supported, as in OpenSSL without ``X509_V_FLAG_EXTENDED_CRL_SUPPORT``:
indirect CRLs and CRLs that cover only some reasons are not used. Delta CRLs
are not used either: a delta lists only what changed since its base CRL
(RFC 5280 5.2.4), so a serial it leaves out may still be revoked. OpenSSL 3.0
reads a lone delta CRL as if it were complete; here it fails closed.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Literal

from cryptography import x509
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

__all__ = ["RevocationScope", "revocation_failure"]

RevocationScope = Literal["leaf", "chain"]

#: Critical CRL extensions OpenSSL processes (x_crl.c, crl_set_issuers and crl_cb); any other critical
#: one makes the CRL unusable. CRLNumber is not among them: RFC 5280 5.2.3 says it must not be critical.
_HANDLED_CRITICAL = {
    ExtensionOID.ISSUING_DISTRIBUTION_POINT,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.DELTA_CRL_INDICATOR,
}


def _name(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _extensions(item: x509.Certificate | x509.CertificateRevocationList) -> x509.Extensions | None:
    """The parsed extensions, or None when ``cryptography`` cannot parse them."""
    try:
        return item.extensions
    except ValueError:
        return None


def _value(extensions: x509.Extensions | None, kind: type) -> object | None:
    if extensions is None:
        return None
    try:
        return extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(certificate: x509.Certificate) -> bool:
    constraints = _value(_extensions(certificate), x509.BasicConstraints)
    return bool(constraints is not None and constraints.ca)  # type: ignore[attr-defined]


def _akid_matches(crl_extensions: x509.Extensions | None, issuer: x509.Certificate) -> bool:
    """OpenSSL's X509_check_akid: a CRL whose AKI names another key or certificate is not this issuer's."""
    aki = _value(crl_extensions, x509.AuthorityKeyIdentifier)
    if aki is None:
        return True
    ski = _value(_extensions(issuer), x509.SubjectKeyIdentifier)
    if aki.key_identifier is not None and ski is not None and aki.key_identifier != ski.digest:  # type: ignore[attr-defined]
        return False
    serial = aki.authority_cert_serial_number  # type: ignore[attr-defined]
    return serial is None or serial == issuer.serial_number


def _unsupported(crl_extensions: x509.Extensions | None) -> str | None:
    """Why OpenSSL (without extended CRL support) would not use this CRL at all, or None."""
    if crl_extensions is None:
        return "its extensions could not be parsed"
    if _value(crl_extensions, x509.DeltaCRLIndicator) is not None:
        return "it is a delta CRL (only complete CRLs are used)"
    idp = _value(crl_extensions, x509.IssuingDistributionPoint)
    if idp is not None and idp.indirect_crl:  # type: ignore[attr-defined]
        return "it is an indirect CRL (not supported)"
    if idp is not None and idp.only_some_reasons:  # type: ignore[attr-defined]
        return "it covers only some revocation reasons (not supported)"
    return None


def _full_names(names: object, relative: object, issuer: x509.Name) -> set:
    """A distribution point's names; a relative name is appended to the CRL issuer's name (RFC 5280 4.2.1.13)."""
    if names is not None:
        return set(names)  # type: ignore[call-overload]
    if relative is not None:
        return {x509.DirectoryName(x509.Name([*issuer.rdns, relative]))}  # type: ignore[list-item]
    return set()


def _in_scope(
    certificate: x509.Certificate, crl: x509.CertificateRevocationList, crl_extensions: x509.Extensions
) -> bool:
    """OpenSSL's crl_crldp_check: the CRL covers this kind of certificate and this distribution point."""
    idp = _value(crl_extensions, x509.IssuingDistributionPoint)
    if idp is not None:
        if idp.only_contains_attribute_certs:  # type: ignore[attr-defined]
            return False
        if idp.only_contains_user_certs if _is_ca(certificate) else idp.only_contains_ca_certs:  # type: ignore[attr-defined]
            return False
    idp_names = set() if idp is None else _full_names(idp.full_name, idp.relative_name, crl.issuer)  # type: ignore[attr-defined]
    points = _value(_extensions(certificate), x509.CRLDistributionPoints) or ()
    for point in points:  # type: ignore[attr-defined]
        if point.crl_issuer is not None and x509.DirectoryName(crl.issuer) not in point.crl_issuer:
            continue
        point_names = _full_names(point.full_name, point.relative_name, crl.issuer)
        if not idp_names or not point_names or idp_names & point_names:
            return True
    return not idp_names


def _is_current(crl: x509.CertificateRevocationList, now: datetime.datetime) -> bool:
    return crl.last_update_utc <= now and (crl.next_update_utc is None or now <= crl.next_update_utc)


def _unhandled_critical(crl: x509.CertificateRevocationList, crl_extensions: x509.Extensions) -> str | None:
    for extension in crl_extensions:
        if extension.critical and extension.oid not in _HANDLED_CRITICAL:
            return _extension_name(extension.oid)
    for entry in crl:
        try:
            entry_extensions = list(entry.extensions)
        except ValueError:
            return f"an unparseable extension of the entry for serial {entry.serial_number:x}"
        for extension in entry_extensions:
            if extension.critical and extension.oid != CRLEntryExtensionOID.CERTIFICATE_ISSUER:
                return f"{_extension_name(extension.oid)} in the entry for serial {entry.serial_number:x}"
    return None


def _extension_name(oid: x509.ObjectIdentifier) -> str:
    name = oid._name  # "Unknown OID" for an OID cryptography does not know
    return oid.dotted_string if name == "Unknown OID" else f"{name} ({oid.dotted_string})"


def _signature_valid(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    try:
        return crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (ValueError, TypeError):  # a key type CRLs cannot be signed with, or an unreadable key
        return False


def _pick(
    certificate: x509.Certificate,
    crls: Sequence[tuple[x509.CertificateRevocationList, x509.Extensions]],
    now: datetime.datetime,
) -> tuple[x509.CertificateRevocationList, x509.Extensions]:
    """OpenSSL's get_crl_sk: the best score (no unhandled critical extension, in scope, current), then the newest."""

    def score(item: tuple[x509.CertificateRevocationList, x509.Extensions]) -> tuple:
        crl, extensions = item
        return (
            _unhandled_critical(crl, extensions) is None,
            _in_scope(certificate, crl, extensions),
            _is_current(crl, now),
            crl.last_update_utc,
        )

    return max(crls, key=score)


def _certificate_failure(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    now: datetime.datetime,
) -> str | None:
    named = [crl for crl in crls if crl.issuer == certificate.issuer]
    usable: list[tuple[x509.CertificateRevocationList, x509.Extensions]] = []
    unused: list[str] = []
    for crl in named:
        extensions = _extensions(crl)
        reason = _unsupported(extensions)
        if reason is None and not _akid_matches(extensions, issuer):
            reason = "its AuthorityKeyIdentifier names another key of a CA with that name"
        if reason is None:
            usable.append((crl, extensions))  # type: ignore[arg-type]
        else:
            unused.append(reason)
    if not usable:
        why = f" (a CRL with its name was given but not used: {unused[0]})" if unused else ""
        return (
            f"unable to get certificate CRL: no CRL from {_name(issuer)}, the issuer of {_name(certificate)}, "
            f"was given{why}. Pass that CA's current CRL in crls=: a check that is asked for never guesses."
        )
    crl, extensions = _pick(certificate, usable, now)
    source = f"the CRL from {_name(issuer)}"
    usage = _value(_extensions(issuer), x509.KeyUsage)
    if usage is not None and not usage.crl_sign:  # type: ignore[attr-defined]
        return (
            f"key usage does not include CRL signing: {_name(issuer)} has a KeyUsage without cRLSign, so its CRLs "
            "cannot be trusted. Issue the CA with cRLSign in its KeyUsage."
        )
    if not _in_scope(certificate, crl, extensions):
        return (
            f"different CRL scope: {source} does not cover {_name(certificate)} (its IssuingDistributionPoint "
            "limits it to other certificates or another distribution point). Pass the CRL that covers it."
        )
    if crl.last_update_utc > now:
        return (
            f"CRL is not yet valid: {source} starts at {crl.last_update_utc:%Y-%m-%d %H:%M} UTC (thisUpdate). "
            "Check the clocks, or pass the CRL in force now."
        )
    if crl.next_update_utc is not None and now > crl.next_update_utc:
        return (
            f"CRL has expired: {source} was due to be replaced at {crl.next_update_utc:%Y-%m-%d %H:%M} UTC "
            "(nextUpdate), so what it says can no longer be trusted. Publish a fresh CRL and pass that one."
        )
    if not _signature_valid(crl, issuer):
        return (
            f"CRL signature failure: {source} is not signed by that CA's key (forged, damaged, or signed by "
            "another CA of the same name). Pass the CRL that CA itself signed."
        )
    unhandled = _unhandled_critical(crl, extensions)
    if unhandled is not None:
        return (
            f"unhandled critical CRL extension: {source} marks {unhandled} critical, and a verifier must refuse "
            "a CRL with a critical extension it does not process (RFC 5280 5.2). Publish it without that "
            "extension, or with the extension non-critical."
        )
    if _value(extensions, x509.CRLNumber) is None:
        return f"{source} has no CRLNumber (RFC 5280 5.2.3 requires one). Publish the CRL with a CRLNumber."
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    if entry is not None and _reason(entry) != x509.ReasonFlags.remove_from_crl:
        return (
            f"certificate revoked: {source} lists {_name(certificate)} (serial {certificate.serial_number:x}) "
            f"since {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC. It must be replaced, not trusted."
        )
    return None


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except (x509.ExtensionNotFound, ValueError):
        return None


def revocation_failure(
    chain: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    *,
    scope: RevocationScope,
    at: datetime.datetime | None = None,
) -> str | None:
    """The first revocation problem along a verified ``chain`` (leaf first, trust anchor last), or None.

    ``scope="leaf"`` checks the leaf alone (``VERIFY_CRL_CHECK_LEAF``);
    ``"chain"`` checks every certificate below the trust anchor
    (``VERIFY_CRL_CHECK_CHAIN``), each against its issuer's CRL. The trust
    anchor itself is not checked: RFC 5280 (6.1) takes it as given, and a
    root's own CRL cannot vouch for the root.
    """
    now = at or datetime.datetime.now(datetime.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)  # cryptography reads naive times as UTC too
    below_anchor = len(chain) - 1
    for position in range(min(1, below_anchor) if scope == "leaf" else below_anchor):
        problem = _certificate_failure(chain[position], chain[position + 1], crls, now)
        if problem:
            return problem
    return None
