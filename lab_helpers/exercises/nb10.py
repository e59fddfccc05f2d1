"""Checks for notebook 10, "Revoke and rotate certificates".

The checks read the revocation lists the learner published and test them
where they matter, in a handshake. Exercise 10.1 talks to the learner's
running server (a revocation must reach it without a restart); 10.2 and
10.3 start a lab server of their own for a moment (on a free port, under
no name, so it replaces nothing) that loads the learner's CRL, with a
server certificate from the notebook's CA, and make real requests through
it. Every request is a new connection, so the server checks the CRL each
time.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..client import Outcome
from ..diagnosis import explain
from ..errors import LabError
from ..files import load_crl
from ..pki import CertificateAuthority, IssuedCertificate, PrivateKey, key_matches_certificate
from ..server import MTLSServer
from . import Checker, CheckResult, not_attempted
from .evidence import (
    attempt_presenting,
    display_name,
    has_purpose,
    is_private_key,
    lab_server,
    public_key_der,
    signed_by,
    subject_alternative_names,
    valid_now,
)

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

REVOKED = "certificate revoked"
STALE = "CRL has expired"

# -- what the checks look at ----------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _crl_signed_by(crl: x509.CertificateRevocationList, ca: CertificateAuthority) -> bool:
    return crl.issuer == ca.certificate.subject and crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]


def _lists(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> bool:
    return crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None


def _load_crl(value: object, variable: str) -> x509.CertificateRevocationList | str:
    """The CRL itself (from a CRL object or the path of a file), or what is wrong, in words."""
    if isinstance(value, x509.CertificateRevocationList):
        return value
    if isinstance(value, (str, os.PathLike)):
        try:
            return load_crl(value)
        except LabError as error:
            return f"{variable} cannot be loaded: {error}"
    return (
        f"{variable} should be a CRL (what CertificateRevocationListBuilder().sign(...) returns) or the path of "
        f"its file, not {type(value).__name__}"
    )


def _requests_through_a_crl_server(
    crl: x509.CertificateRevocationList,
    ca: CertificateAuthority,
    clients: list[tuple[x509.Certificate, PrivateKey]],
) -> list[Outcome]:
    """A request with each client to a lab server that loads ``crl`` (server certificate from ``ca``)."""
    with lab_server(ca, crl=crl) as server:
        return [
            attempt_presenting(server, [certificate], key, ca.certificate) for certificate, key in clients
        ]


def _refusal_text(outcome: Outcome, who: str, expected: str) -> str:
    if outcome.ok:
        return f"{who} got in"
    return f"{who} was refused, but the server recorded {outcome.server_reason!r}, not {expected!r}"


# -- the exercises ----------------------------------------------------------------


def exercise_1(
    frank: IssuedCertificate | None,
    frank_before: Outcome | None,
    *,
    server: MTLSServer,
    ca: CertificateAuthority,
    crl_file: str | os.PathLike[str],
    still_revoked: Mapping[str, x509.Certificate] | Sequence[x509.Certificate],
) -> CheckResult:
    """10.1 Revoke frank, live: a new CRL reaches the running server, and his next handshake fails.

    A restart would drop every open connection; ``replace_context`` swaps the
    context for new connections only. The check knows the server was not
    restarted because frank's first request went to the port it listens on
    now (a new server gets a new free port). The published list must keep
    every earlier entry: a CRL replaces the previous one entirely.
    ``still_revoked`` names each earlier entry (by its file, say), so that
    two certificates for alice are told apart in a message.
    """
    c = Checker(
        "10.1",
        "Revoke frank, live",
        hint="A CRL is complete: the new one is the old one plus frank; then the server needs a new context.",
    )
    if not_attempted(frank, frank_before):
        return c.not_attempted()
    if not isinstance(frank, IssuedCertificate):
        return c.fail(
            f"frank should be what issue_client('frank') returns (an IssuedCertificate, with the key), "
            f"not {type(frank).__name__}"
        )
    if not isinstance(frank_before, Outcome):
        return c.fail(
            f"frank_before should be the Outcome of attempt(server.url, **files_of('frank'), server=server), "
            f"made before the revocation, not {type(frank_before).__name__}"
        )
    if not isinstance(server, MTLSServer) or not server.running:
        return c.fail(
            "the server is not running: run the cell at the top of this section again, then this exercise"
        )
    name = display_name(frank.certificate)
    c.require(
        frank_before.ok and frank_before.body == f"Hello, {name}\n",
        f"{name} got in before the revocation ('Hello, {name}')",
        f"frank_before is not a success ({frank_before}): request the server as {name} before you revoke him",
    )
    c.require(
        frank_before.url == server.url,
        f"the server still listens where {name} first reached it: it was not restarted",
        f"frank_before went to {frank_before.url}, but the server now listens on {server.url}: it was restarted "
        "(or it is another server); revoke him on the running server, with server.replace_context(...)",
    )
    crl = _load_crl(crl_file, "the published CRL")
    if isinstance(crl, str):
        return c.fail(crl)
    signed = _crl_signed_by(crl, ca)
    c.require(
        signed,
        "the published CRL is signed by this folder's CA",
        "the published CRL is not signed by this folder's CA: make it with ca.create_crl(...)",
    )
    c.require(
        _lists(crl, frank.certificate),
        f"it lists {name}'s serial number",
        f"it does not list {name}: add his certificate with ca.create_crl([frank.certificate], previous=...) "
        "and save_crl(...) it to paths.crl",
    )
    named = (
        list(still_revoked.items())
        if isinstance(still_revoked, Mapping)
        else [(display_name(certificate), certificate) for certificate in still_revoked]
    )
    dropped = [name for name, certificate in named if not _lists(crl, certificate)]
    # Once the published file has lost them, previous=load_crl(paths.crl) cannot bring them back:
    # step 8's list, still in the notebook's kernel as root_crl, holds every one of them.
    c.require(
        not dropped,
        f"it still lists the {len(named)} certificates revoked before (a CRL is complete)",
        f"it no longer lists {', '.join(dropped)}: a new CRL replaces the old one entirely, and previous= "
        "copies only what the list it is given holds. The published file has lost them, so build the new "
        "list on step 8's, which still holds them (previous=root_crl), publish it and give the server a "
        "new context",
    )
    next_update = crl.next_update_utc
    c.require(
        next_update is not None and next_update > _now(),
        "its nextUpdate is still ahead",
        "its nextUpdate has passed: the server would refuse everyone; publish a fresh list with ca.create_crl",
    )
    frank_now = attempt_presenting(server, [frank.certificate], frank.private_key, ca.certificate)
    c.require(
        not frank_now.ok and frank_now.server_reason == REVOKED,
        f"a new request as {name} was refused: the running server recorded '{REVOKED}'",
        f"{name} still gets in: the running server does not use the new CRL; give it a context built with "
        "crl_file=paths.crl (server.replace_context)"
        if frank_now.ok
        else _refusal_text(frank_now, name, REVOKED),
    )
    grace = ca.issue_client_certificate("grace")
    control = attempt_presenting(server, [grace.certificate], grace.private_key, ca.certificate)
    c.require(
        control.ok and control.body == "Hello, grace\n",
        "grace, a client nobody revoked (issued by the check), still gets in",
        f"grace, a client nobody revoked, got: {control}; the server must refuse the revoked, not everyone",
    )
    return c.result()


def exercise_2(
    stale_crl: x509.CertificateRevocationList | str | os.PathLike[str] | None,
    stale_outcome: Outcome | None,
    *,
    ca: CertificateAuthority,
) -> CheckResult:
    """10.2 A stale CRL: signed by the right CA, past its nextUpdate, and every client refused.

    OpenSSL checks a CRL's dates before it reads the list: past nextUpdate,
    the list may be out of date, so it cannot tell revoked from not revoked
    and refuses every client ('CRL has expired'). The list must be
    right in every other way (issuer, signature, CRLNumber, thisUpdate before
    nextUpdate), so that its age is the only reason.
    """
    c = Checker(
        "10.2",
        "Let a CRL go stale",
        hint="create_crl always starts its list now; which builder of step 2 lets you choose the dates?",
    )
    if not_attempted(stale_crl, stale_outcome):
        return c.not_attempted()
    crl = _load_crl(stale_crl, "stale_crl")
    if isinstance(crl, str):
        return c.fail(crl)
    if not isinstance(stale_outcome, Outcome):
        return c.fail(
            f"stale_outcome should be the Outcome of attempt(..., server=...) against the server that loads "
            f"the stale list, not {type(stale_outcome).__name__}"
        )
    signed = _crl_signed_by(crl, ca)
    c.require(
        signed,
        "the lab CA of this folder signed it",
        "the lab CA of this folder did not sign it: OpenSSL would refuse it for its signature (or not find it), "
        "not for its age; use ca.certificate.subject as issuer and sign with ca.private_key",
    )
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber)
        numbered = not number.critical
    except x509.ExtensionNotFound:
        numbered = False
    c.require(
        numbered,
        "it carries a CRLNumber, as RFC 5280 requires",
        "it has no (non-critical) CRLNumber: add x509.CRLNumber(...) with critical=False",
    )
    this_update, next_update, now = crl.last_update_utc, crl.next_update_utc, _now()
    ordered = next_update is not None and this_update < next_update
    c.require(
        ordered,
        "its thisUpdate comes before its nextUpdate: it was valid for a while",
        "it has no nextUpdate: set one, in the past"
        if next_update is None
        else "its nextUpdate comes before its thisUpdate: a list that was never valid; thisUpdate two days ago, "
        "nextUpdate one day ago",
    )
    c.require(
        this_update <= now,
        "its thisUpdate is in the past",
        "its thisUpdate is in the future: OpenSSL would say 'CRL is not yet valid'; make it two days ago",
    )
    stale = next_update is not None and next_update < now
    c.require(
        stale,
        "its nextUpdate has passed: the list is stale",
        "its nextUpdate is still ahead: the list is fresh; put next_update one day in the past",
    )
    if stale_outcome.ok and not stale:
        refused_problem = "your request got in: expected, your list is not stale yet"
    elif stale_outcome.ok:
        refused_problem = (
            "your request got in: load the stale list with build_server_context(..., crl_file=...)"
        )
    else:
        refused_problem = _refusal_text(stale_outcome, "your request", STALE) + (
            " (pass server=... to attempt, so that the outcome carries the server's reason)"
            if stale_outcome.server_reason is None
            else ""
        )
    c.require(
        not stale_outcome.ok and stale_outcome.server_reason == STALE,
        f"your server refused the request and recorded '{STALE}'",
        refused_problem,
    )
    if signed and ordered and stale and this_update <= now:
        newcomer = ca.issue_client_certificate("newcomer")
        (outcome,) = _requests_through_a_crl_server(crl, ca, [(newcomer.certificate, newcomer.private_key)])
        refused = (
            not outcome.ok
            and outcome.server_reason == STALE
            and explain(outcome.server_reason).key == "crl-stale"
        )
        c.require(
            refused,
            f"a lab server with your list refused even a certificate issued a second ago: '{STALE}' (crl-stale)",
            "a lab server with your list accepted a new client"
            if outcome.ok
            else _refusal_text(outcome, "a new client", STALE),
        )
    else:
        c.require(
            False, "", "a real handshake with your list: not tried until its signature and dates are right"
        )
    return c.result()


def exercise_3(
    renewed: x509.Certificate | IssuedCertificate | None,
    renewed_key: PrivateKey | None,
    *,
    old: IssuedCertificate,
    ca: CertificateAuthority,
    crl_file: str | os.PathLike[str],
) -> CheckResult:
    """10.3 Renew a client before expiry: a new key and serial, the same identity, and the old one retired.

    A renewal is the moment to retire a key at no cost: a new key ends any
    unnoticed leak of the old one. Both certificates are valid during the
    overlap; the published CRL then retires the old one. The check makes a
    real request with each through a server that loads that CRL.
    """
    c = Checker(
        "10.3",
        "Renew erin with a key she made herself",
        hint="The CA never sees erin's new key, only a request signed with it (notebook 03), asking for the same "
        "names; the old certificate then retires the way frank's did in 10.1.",
    )
    if not_attempted(renewed, renewed_key):
        return c.not_attempted()
    if isinstance(renewed, IssuedCertificate):
        renewed, renewed_key = (
            renewed.certificate,
            renewed_key if renewed_key is not None else renewed.private_key,
        )
    if not isinstance(renewed, x509.Certificate):
        return c.fail(
            f"erin_renewed_certificate should be an x509.Certificate (what ca.sign_csr returns), "
            f"not {type(renewed).__name__}"
        )
    if not is_private_key(renewed_key):
        return c.fail(f"erin_renewed_key should be the new private key, not {type(renewed_key).__name__}")
    previous = old.certificate
    name = display_name(previous)
    c.require(
        renewed.serial_number != previous.serial_number,
        "it has a new serial number",
        "it has the old certificate's serial number: it is the old certificate; sign a new one",
    )
    new_key = public_key_der(renewed) != public_key_der(previous)
    c.require(
        new_key,
        "it carries a new public key",
        "it carries the old public key: a renewal is the moment to retire a key; make a new one",
    )
    matches = key_matches_certificate(renewed_key, renewed)  # type: ignore[arg-type]
    c.require(
        matches,
        "erin_renewed_key is its private key",
        "erin_renewed_key is not the key of erin_renewed_certificate: sign a CSR made with that key",
    )
    same = renewed.subject == previous.subject and subject_alternative_names(
        renewed
    ) == subject_alternative_names(previous)
    c.require(
        same,
        f"the same identity: subject {renewed.subject.rfc4514_string()} and the same SAN",
        f"the identity changed: subject {renewed.subject.rfc4514_string()}, SAN {[n.value for n in subject_alternative_names(renewed)]}; "
        f"keep CN={name} and the URI of the old certificate",
    )
    c.require(
        has_purpose(renewed, ExtendedKeyUsageOID.CLIENT_AUTH),
        "it is a client certificate (clientAuth)",
        "it is not a client certificate: sign with profile='client'",
    )
    signed = signed_by(renewed, ca.certificate)
    c.require(signed, "this folder's CA signed it", "this folder's CA did not sign it: sign it with ca")
    c.require(
        valid_now(renewed)
        and valid_now(previous)
        and renewed.not_valid_after_utc > previous.not_valid_after_utc,
        "both are valid now, and the new one lasts longer: renewed before the old one expired",
        "the two are not both valid now, with the new one lasting longer: keep the default validity",
    )
    crl = _load_crl(crl_file, "the published CRL")
    if isinstance(crl, str):
        return c.fail(crl)
    crl_signed = _crl_signed_by(crl, ca)
    c.require(
        crl_signed,
        "the published CRL is signed by this folder's CA",
        "the published CRL is not signed by this folder's CA: make it with ca.create_crl(...)",
    )
    c.require(
        _lists(crl, previous),
        "it retires the old certificate: the published CRL lists its serial",
        "the published CRL does not list the old certificate: once the new one works, add the old one with "
        "ca.create_crl([erin.certificate], previous=load_crl(paths.crl)) and save_crl(...)",
    )
    c.require(
        not _lists(crl, renewed),
        "it does not list the new one",
        "the published CRL lists the new certificate too: revoke only the old one",
    )
    fresh = crl.next_update_utc is not None and crl.next_update_utc > _now()
    c.require(fresh, "its nextUpdate is still ahead", "the published CRL is stale: publish a fresh one")
    if signed and matches and crl_signed and fresh:
        new, retired = _requests_through_a_crl_server(
            crl,
            ca,
            [(renewed, renewed_key), (previous, old.private_key)],  # type: ignore[list-item]
        )
        c.require(
            new.ok and new.body == f"Hello, {name}\n",
            f"through a lab server that loads the published CRL, the new certificate got 'Hello, {name}'",
            f"through a lab server that loads the published CRL, the new certificate got: {new}",
        )
        c.require(
            not retired.ok and retired.server_reason == REVOKED,
            f"and the old one was refused: '{REVOKED}'",
            "and the old one still got in" if retired.ok else _refusal_text(retired, "the old one", REVOKED),
        )
    else:
        c.require(
            False,
            "",
            "real requests with both: not tried until the signatures, the key and the CRL are right",
        )
    return c.result()
