"""Checks for notebook 03 (issue a server certificate): certificates and requests, tried for real.

The checks verify what the learner made the way a TLS client does (with
``cryptography``'s path validator, through :func:`lab_helpers.verify_chain`),
and hand a tampered request to the lab CA to see it refused.
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import VerificationError

from ..chains import verify_chain
from ..errors import LabError, TamperedCSRError
from ..pki import CertificateAuthority
from . import Checker, CheckResult, not_attempted
from .evidence import has_purpose, public_key_der, signed_by, subject_alternative_names

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

API_NAME = "api.localhost"
API_ADDRESS = ipaddress.ip_address("127.0.0.2")


def exercise_1(
    certificate: x509.Certificate | None,
    *,
    ca_certificate: x509.Certificate,
    server_certificate: x509.Certificate | None = None,
) -> CheckResult:
    """3.1 A certificate for exactly api.localhost and 127.0.0.2, with a key of its own, that a client accepts.

    The SAN must hold those two names and no other (a name in a certificate
    is a name the key may answer for), and the key must not be the one of
    ``server_certificate`` (the notebook's ``server_cert``): a new server gets
    a new key. Then the check runs the path validation a client runs (chain
    to the lab CA, dates, serverAuth, and the name against the SAN) once for
    each name.
    """
    c = Checker(
        "3.1",
        "A certificate for api.localhost and 127.0.0.2",
        hint="Steps 2, 3 and 6 again. Step 3 said which kind of SAN entry an address needs.",
    )
    if not_attempted(certificate):
        return c.not_attempted()
    if not isinstance(certificate, x509.Certificate):
        return c.fail("api_certificate should be an x509.Certificate, what ca.sign_csr(...) returns")
    c.require(
        signed_by(certificate, ca_certificate),
        "the lab CA signed it",
        "the lab CA did not sign it: sign the request with the notebook's `ca`",
    )
    names = subject_alternative_names(certificate)
    dns = [entry.value for entry in names if isinstance(entry, x509.DNSName)]
    ips = [entry.value for entry in names if isinstance(entry, x509.IPAddress)]
    c.require(
        API_NAME in dns,
        f"its SAN holds DNS:{API_NAME}",
        f"its SAN has no DNS entry {API_NAME} (it has {', '.join(map(str, dns)) or 'none'}): "
        f"add x509.DNSName('{API_NAME}')",
    )
    if str(API_ADDRESS) in dns and API_ADDRESS not in ips:
        c.require(
            False,
            "",
            f"{API_ADDRESS} is written as a DNS name: an address needs its own kind of entry, "
            f"x509.IPAddress(ipaddress.ip_address('{API_ADDRESS}'))",
        )
    else:
        c.require(
            API_ADDRESS in ips,
            f"its SAN holds IP:{API_ADDRESS}",
            f"its SAN has no IP entry {API_ADDRESS}: add x509.IPAddress(ipaddress.ip_address('{API_ADDRESS}'))",
        )
    asked_for = (
        x509.DNSName(API_NAME),
        x509.IPAddress(API_ADDRESS),
        x509.DNSName(str(API_ADDRESS)),
    )  # the last: named above
    others = [str(entry.value) for entry in names if entry not in asked_for]
    c.require(
        not others,
        "its SAN holds those two names and no other",
        f"its SAN also holds {', '.join(others)}: the task asks for exactly api.localhost and 127.0.0.2 "
        "(every name in a certificate is one more name its key may answer for)",
    )
    if server_certificate is not None:
        c.require(
            public_key_der(certificate) != public_key_der(server_certificate),
            "its key is a new one, not server.crt's",
            "its key is server_key, the key of server.crt (step 2): generate a new key for this server",
        )
    c.require(
        has_purpose(certificate, ExtendedKeyUsageOID.SERVER_AUTH),
        "its ExtendedKeyUsage allows serverAuth",
        "it is not a server certificate (no serverAuth): sign with profile='server'",
    )
    for name in (x509.DNSName(API_NAME), x509.IPAddress(API_ADDRESS)):
        verdict = verify_chain(certificate, roots=[ca_certificate], purpose="server", name=name)
        c.require(
            verdict.ok,
            f"a client connecting to {name.value} accepts it",
            f"a client connecting to {name.value} refuses it: {verdict.error}",
        )
    return c.result()


def _asks_for(csr: x509.CertificateSigningRequest) -> tuple[bytes, bytes, list[str]]:
    """What a request asks for: its subject, its public key and its names."""
    spki = public_key_der(csr)
    return csr.subject.public_bytes(), spki, sorted(map(str, subject_alternative_names(csr)))


def exercise_2(
    tampered_csr: x509.CertificateSigningRequest | None,
    *,
    original_csr: x509.CertificateSigningRequest | None,
    ca: CertificateAuthority,
) -> CheckResult:
    """3.2 A tampered request that still parses: it asks for something else, and the lab CA refuses it.

    The request must be ``original_csr`` changed after it was signed (so its
    signature no longer matches), not a new request: a new request signed
    with its own key would be perfectly valid, and the CA would sign it.
    """
    c = Checker(
        "3.2",
        "A tampered request that still parses",
        hint="Step 5 changed a request's bytes and loaded them again. How is an address stored in those bytes: "
        "as text, or as the 4 bytes of ipaddress.ip_address(...).packed?",
    )
    if not_attempted(tampered_csr):
        return c.not_attempted()
    if not isinstance(tampered_csr, x509.CertificateSigningRequest):
        return c.fail(
            "tampered_csr should be an x509.CertificateSigningRequest, what x509.load_der_x509_csr returns"
        )
    if not isinstance(original_csr, x509.CertificateSigningRequest):
        return c.fail(
            "api_csr (the request of exercise 3.1) is missing: make it first, then change a copy of its bytes"
        )
    c.require(
        original_csr.is_signature_valid,
        "api_csr, the request you started from, is genuine (its signature is valid)",
        "api_csr itself has an invalid signature: start from the request you signed in exercise 3.1",
    )
    der = serialization.Encoding.DER
    if tampered_csr.public_bytes(der) == original_csr.public_bytes(
        der
    ):  # one message, not three about one cause
        return c.fail(
            "tampered_csr is api_csr unchanged: bytes.replace found nothing to replace. An address is stored as "
            "4 bytes (ipaddress.ip_address(...).packed), not as text"
        )
    c.require(True, "tampered_csr differs from api_csr, and still parses as a request", "")
    try:
        changed = _asks_for(tampered_csr) != _asks_for(original_csr)
    except ValueError:  # a key or name that no longer parses: it still asks for something else
        changed = True
    c.require(
        changed,
        "it asks for something else than api_csr (another name, subject or key)",
        "it asks for exactly what api_csr asks for (only the signature changed): change a requested name, "
        "as an attacker on the way to the CA would",
    )
    c.require(
        not tampered_csr.is_signature_valid,
        "its signature no longer matches its contents",
        "its signature is valid: it is a new request, not a changed one. Change the bytes of api_csr after signing",
    )
    refused = False
    try:
        ca.sign_csr(tampered_csr, profile="server")
    except TamperedCSRError:
        refused = True
    except LabError:
        refused = False
    c.require(
        refused,
        "the lab CA refuses it with TamperedCSRError",
        "the lab CA did not refuse it with TamperedCSRError",
    )
    return c.result()


def exercise_3(
    certificate: x509.Certificate | None,
    error_in_two_days: BaseException | None,
    *,
    ca_certificate: x509.Certificate,
    now: datetime.datetime | None = None,
) -> CheckResult:
    """3.3 A one-day certificate: accepted today, refused two days from now (what renewal must prevent).

    The check verifies the certificate as a client would, now and two days from
    now, for the first name in its SAN.
    """
    c = Checker(
        "3.3",
        "A one-day certificate",
        hint="Which argument of ca.sign_csr sets the lifetime? And step 9's verifier checks at the present "
        "moment unless its builder is told another time: for which name must it check, so that only the date "
        "can fail?",
    )
    if not_attempted(certificate, error_in_two_days):
        return c.not_attempted()
    if not isinstance(certificate, x509.Certificate):
        return c.fail("one_day_certificate should be an x509.Certificate")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    c.require(signed_by(certificate, ca_certificate), "the lab CA signed it", "the lab CA did not sign it")
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    c.require(
        lifetime == datetime.timedelta(days=1),
        "it lives one day",
        f"it lives {lifetime}, not one day: valid_days=1",
    )
    c.require(
        certificate.not_valid_before_utc < now,
        "it is valid already (it starts in the past)",
        "it starts in the future: leave valid_from out, or give an aware time a few minutes ago",
    )
    name = next(
        (
            entry
            for entry in subject_alternative_names(certificate)
            if isinstance(entry, (x509.DNSName, x509.IPAddress))
        ),
        None,
    )
    if name is None:
        return c.fail(
            "it has no DNS or IP name in its SAN, so no client could accept it: issue it for localhost"
        )
    today = verify_chain(certificate, roots=[ca_certificate], name=name, at=now)
    c.require(
        today.ok,
        f"a client accepts it today for {name.value}",
        f"a client refuses it even today: {today.error}",
    )
    later = verify_chain(certificate, roots=[ca_certificate], name=name, at=now + datetime.timedelta(days=2))
    c.require(
        not later.ok,
        "two days from now a client refuses it: it has expired",
        "two days from now a client would still accept it",
    )
    if not isinstance(error_in_two_days, VerificationError):
        c.require(
            False,
            "",
            f"error_in_two_days is {type(error_in_two_days).__name__}, not the VerificationError of verify(): "
            "build the verifier with .time(now + two days) and keep the exception",
        )
    else:
        c.require(
            EXPIRED in str(error_in_two_days),
            f"error_in_two_days is the verifier's refusal for the date ('{EXPIRED}')",
            f"that VerificationError is about something else ({_first_line(error_in_two_days)}): verify for "
            "localhost, two days from now, so that only the date can fail",
        )
    return c.result()


#: cryptography's words when a certificate is outside its validity period at the time of verification.
EXPIRED = "not valid at validation time"


def _first_line(error: BaseException) -> str:
    return str(error).split(" (encountered")[0]
