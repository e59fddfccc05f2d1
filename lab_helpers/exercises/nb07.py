"""Checks for notebook 07, explore the failure catalog.

Each check looks at something real: a certificate and the outcome of a real
request (7.1), a request the check makes itself against a server it starts
(7.2 and 7.3). Their servers have no name, so they never replace one of the
notebook's servers, and they stop before the check returns.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

import requests
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..catalog import CatalogLab
from ..client import Outcome, attempt
from ..diagnosis import explain
from ..errors import LabError
from ..files import load_certificate, save_certificate, save_private_key
from ..server import MTLSServer, build_server_context
from . import Checker, CheckResult, not_attempted
from .evidence import extension, has_purpose, signed_by

__all__ = ["exercise_1", "exercise_2", "exercise_3", "live_not_yet_valid_server_reason"]

#: What OpenSSL records for a certificate with a critical extension it does not know (X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION).
UNHANDLED_CRITICAL = "unhandled critical extension"


def exercise_1(
    certificate: x509.Certificate | None, outcome: Outcome | None, *, ca_certificate: x509.Certificate
) -> CheckResult:
    """7.1 Another failure that is not in the catalog: alice's certificate plus an unknown critical extension.

    The server refuses it for a reason the catalog has no entry for, so the
    learner meets ``explain()``'s "not recognised" on a real rejection, and
    sees that the server's own reason names the cause.
    """
    c = Checker(
        "7.1",
        "Another failure that is not in the catalog",
        hint="RFC 5280 says a verifier must reject a certificate with a critical extension it does not "
        "understand. Change only that, and keep everything else of alice's.",
    )
    if not_attempted(certificate, outcome):
        return c.not_attempted()
    if not isinstance(certificate, x509.Certificate):
        return c.fail(
            "critical_certificate should be an x509.Certificate (what CertificateBuilder.sign() returns)"
        )
    if not isinstance(outcome, Outcome):
        return c.fail(
            "critical_outcome should be the Outcome that attempt(server.url, ..., server=server) returns"
        )
    unknown_critical = [
        ext
        for ext in certificate.extensions
        if ext.critical and isinstance(ext.value, x509.UnrecognizedExtension)
    ]
    c.require(
        unknown_critical,
        "the certificate carries an extension nobody knows, marked critical",
        "the certificate has no unrecognised extension marked critical: add x509.UnrecognizedExtension(...) with critical=True",
    )
    signed_by_lab_ca = signed_by(certificate, ca_certificate)
    c.require(
        signed_by_lab_ca,
        "it is signed by the lab CA, so the chain is not what the server objects to",
        "it is not signed by the lab CA: set issuer_name to the lab CA's subject and sign with lab.ca.private_key",
    )
    client_auth = has_purpose(certificate, ExtendedKeyUsageOID.CLIENT_AUTH)
    c.require(
        client_auth,
        "it keeps alice's EKU clientAuth: one thing changed, not two",
        "it has no EKU clientAuth: copy every extension of alice's certificate before adding the new one",
    )
    if outcome.ok:
        # A server that saw this certificate would have refused it: so it saw another one, or the
        # certificate gives it nothing to refuse. Either way the server's reason is not the point yet.
        c.require(
            False,
            "",
            "the request succeeded, so the server never saw your new certificate: present the file you saved "
            "(cert_file=..., key_file=lab.client[1])"
            if unknown_critical
            else "the request succeeded: an extension nobody knows is ignored unless it is marked critical",
        )
        return c.result()
    c.require(True, "the request failed", "")
    if outcome.server_reason is None:
        c.require(
            False,
            "",
            "your outcome has no server side: pass server=server to attempt(), so that it carries "
            "the reason the server recorded",
        )
    else:
        c.require(
            outcome.server_reason == UNHANDLED_CRITICAL,
            f"the server recorded {UNHANDLED_CRITICAL!r}: its reason names the cause",
            f"the server recorded {outcome.server_reason!r}, not {UNHANDLED_CRITICAL!r}: present the certificate you "
            "signed, with alice's key, and change nothing else in it",
        )
    if outcome.server_reason:
        verdict = explain(outcome.server_reason)
        c.require(
            not verdict.recognised,
            "explain() on the server's reason says 'not recognised': the catalog has no entry for it",
            f"explain() recognises {outcome.server_reason!r} as {verdict.key}: that failure is in the catalog already",
        )
    return c.result()


def live_not_yet_valid_server_reason(lab: CatalogLab) -> Outcome:
    """A live run: a server whose certificate starts tomorrow, requested by alice (the lab's good client)."""
    tomorrow = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    future = lab.ca.issue_server_certificate(valid_from=tomorrow)
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        cert = save_certificate(future.certificate, Path(folder) / "server-future.crt")
        key = save_private_key(future.private_key, Path(folder) / "server-future.key")
        context = build_server_context(cert, key, lab.ca_file)
    return _request(context, lab.ca_file, lab.client)


def _request(context: Any, verify: Any, client_pair: tuple[Any, Any]) -> Outcome:
    """One GET as plain requests does it (no proxy, no CA bundle from the environment), server's side recorded."""
    with MTLSServer(context, name=None) as server, requests.Session() as session:
        session.trust_env = False
        session.verify = os.fspath(verify)
        session.cert = (os.fspath(client_pair[0]), os.fspath(client_pair[1]))
        return attempt(server.url, session=session, server=server)


def _alert_name(text: str) -> str:
    """An alert as RFC 8446 names it: OpenSSL's ``SSLV3_ALERT_BAD_CERTIFICATE`` is ``bad_certificate``."""
    name = text.strip()
    for prefix in ("SSLV3_ALERT_", "TLSV1_ALERT_", "TLSV13_ALERT_"):
        if name.upper().startswith(prefix):
            return name[len(prefix) :].lower()
    return name.lower()


def exercise_2(alert: str | None, outcome: Outcome | None, *, lab: CatalogLab) -> CheckResult:
    """7.2 Which alert for a server certificate that is not yet valid?

    RFC 8446 defines certificate_expired for a certificate that "has expired
    or is not currently valid", but OpenSSL sends it only for one past its
    end: for one not yet valid it sends the generic bad_certificate
    (ssl/statem/statem_lib.c, x509table). The check runs the same
    failure itself and compares the learner's answer with what its server
    recorded. The answer may be written as OpenSSL records it
    (``SSLV3_ALERT_BAD_CERTIFICATE``) or as RFC 8446 names it (``bad_certificate``).
    The messages for a wrong answer name the mistake behind it (case 11's
    alert, the client's own message) instead of pointing at the value.
    """
    c = Checker(
        "7.2",
        "Which alert for a server certificate that is not yet valid?",
        hint="The client knows exactly what is wrong; the server learns only the alert the client's OpenSSL "
        "sends for that error, which is not always the one whose description in RFC 8446 fits best. "
        "The server's side of your outcome says which it was.",
    )
    if not_attempted(alert, outcome):
        return c.not_attempted()
    if not isinstance(outcome, Outcome):
        return c.fail(
            "future_outcome should be the Outcome that attempt(url, session=..., server=...) returns"
        )
    if not isinstance(alert, str):
        return c.fail("alert_recorded should be a string: the reason the server recorded, typed in")
    live = live_not_yet_valid_server_reason(lab).server_reason
    c.require(
        outcome.failed_with(requests.exceptions.SSLError),
        "the client refused during the handshake (SSLError)",
        "the request did not fail with an SSLError: serve a certificate that starts in the future, "
        "and trust the lab CA (verify=) so that nothing else fails first",
    )
    key = explanation.key if (explanation := outcome.explain()) else None
    c.require(
        key == "server-certificate-not-yet-valid",
        "explain() says the server's certificate is not yet valid",
        f"explain() says {key!r}, not 'server-certificate-not-yet-valid': change only valid_from",
    )
    if outcome.server_reason is None:
        recorded_problem = "your outcome has no server side: pass server=... to attempt() to record it"
    else:
        recorded_problem = (
            f"your server recorded {outcome.server_reason!r}, not what a server whose certificate starts "
            "tomorrow records: serve the certificate from tomorrow, and change nothing else"
        )
    same = outcome.server_reason == live
    c.require(same, "your server recorded the same alert as the check's own run", recorded_problem)
    answer, name = alert.strip(), _alert_name(alert)
    if name == _alert_name(live or ""):
        right = (
            f"{answer!r} is the alert the server records: for a certificate that is not yet valid OpenSSL sends the "
            "generic bad_certificate, although RFC 8446's certificate_expired ('expired or not currently valid') "
            "would fit; it keeps certificate_expired for a certificate past its end"
        )
        c.require(True, right, "")
    elif name == "certificate_expired":
        wrong = (
            f"{answer!r} is case 11's alert. RFC 8446 would allow it here too ('expired or not currently valid'), "
            "but OpenSSL sends it only for a certificate past its notAfter; for one that has not started yet it "
            "picks another: read what your server recorded"
        )
        c.require(False, "", wrong)
    elif "not yet valid" in answer.lower():
        wrong = (
            f"{answer!r} is the client's own verification message, and it never crosses the network: the "
            "server learns only the alert the client sends. Read the server's side of your outcome"
        )
        c.require(False, "", wrong)
    else:
        wrong = (
            f"{answer!r} is not the alert the server recorded for this failure: read the server's side of "
            "your outcome (attempt(..., server=...) fills it), and ask why it is not case 11's alert"
        )
        c.require(False, "", wrong)
    return c.result()


def _pair(value: object) -> tuple[Path, Path] | None:
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(p, (str, os.PathLike)) for p in value)
    ):
        return Path(os.fspath(value[0])), Path(os.fspath(value[1]))
    return None


def exercise_3(
    server_pair: tuple[Any, Any] | None,
    verify: Any,
    client_pair: tuple[Any, Any] | None,
    *,
    lab: CatalogLab,
) -> CheckResult:
    """7.3 Repair a broken set-up: three faults, found one at a time, fixed without turning verification off.

    The check starts its own server with the learner's certificate and key
    (trusting the lab CA for clients, as in the broken set-up) and makes a
    real request with plain requests: it passes only when that succeeds.
    """
    c = Checker(
        "7.3",
        "Repair a broken set-up",
        hint="After each change, read explain() and the server's reason: each names the next thing to fix.",
    )
    if not_attempted(server_pair, verify, client_pair):
        return c.not_attempted()
    server_files, client_files = _pair(server_pair), _pair(client_pair)
    if server_files is None:
        return c.fail("fixed_server_pair should be (certificate file, key file), like lab.server")
    if client_files is None:
        return c.fail("fixed_client_pair should be (certificate file, key file), like lab.client")
    if verify is None or isinstance(verify, bool) or not isinstance(verify, (str, os.PathLike)):
        return c.fail("fixed_verify should be the path of a CA certificate file: verification stays on")
    try:
        server_certificate = load_certificate(server_files[0])
        context = build_server_context(server_files[0], server_files[1], lab.ca_file)
        load_certificate(verify)
    except LabError as error:
        return c.fail(f"the files cannot be used: {error}")
    names = extension(server_certificate, x509.SubjectAlternativeName)
    dns_names = set(names.value.get_values_for_type(x509.DNSName)) if names is not None else set()
    c.require(
        "api.example.com" in dns_names,
        "the server's certificate still names api.example.com",
        "the server's certificate lost api.example.com: clients use that name too, keep it",
    )
    c.require(
        "localhost" in dns_names,
        "the server's certificate names localhost, the name in the URL",
        "the server's certificate does not name localhost: issue one with both names",
    )
    outcome = _request(context, verify, client_files)
    if outcome.ok:
        problem = f"the server answered {outcome.status}"
    else:
        key = explanation.key if (explanation := outcome.explain()) else None
        problem = f"the request still fails: {outcome.error_class} ({key}); the server saw {outcome.server_reason!r}"
    c.require(outcome.ok and outcome.status == 200, "a real request with these files succeeds: 200", problem)
    if outcome.ok:
        c.require(
            outcome.body == "Hello, alice\n",
            "the server greets alice: the client is still alice",
            f"the server answered {outcome.body!r}: present a certificate for alice from the lab CA",
        )
    return c.result()
