"""Checks for notebook 04, "Issue a client certificate".

The checks look at the certificates themselves and then use them for real:
a check that needs a handshake starts a lab server for a moment (the one
notebook 05 builds, trusting the lab CA, on a free port under no name, so it
replaces nothing), presents the learner's certificate and key with
``attempt`` and stops the server again.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ..oid_names import purpose_name
from ..pki import CertificateAuthority, IssuedCertificate, PrivateKey, key_matches_certificate
from . import Checker, CheckResult, not_attempted
from .evidence import (
    common_name,
    extended_key_usages,
    extension,
    is_private_key,
    request_through_a_lab_server,
    signed_by,
    valid_now,
)

__all__ = ["exercise_1", "exercise_2", "exercise_3", "exercise_4"]

BOB_URI = "spiffe://lab.example/user/bob"
BOB_EMAIL = "bob@lab.example"
WRONG_PURPOSE = "unsuitable certificate purpose"


# -- what the checks look at ----------------------------------------------------


def _unpack(certificate: object, key: object) -> tuple[object, object]:
    """Accept an IssuedCertificate (what ``ca.issue_client_certificate`` returns) for the certificate."""
    if isinstance(certificate, IssuedCertificate):
        return certificate.certificate, key if key is not None else certificate.private_key
    return certificate, key


def _purpose_names(purposes: list[x509.ObjectIdentifier] | None) -> str:
    if purposes is None:
        return "no ExtendedKeyUsage at all"
    return ", ".join(purpose_name(oid) for oid in purposes) or "an empty ExtendedKeyUsage"


def _certificate_and_key_problem(certificate: object, key: object, names: tuple[str, str]) -> str | None:
    """What is wrong with the types of the two answers, in words (None when both are right)."""
    certificate_name, key_name = names
    if not isinstance(certificate, x509.Certificate):
        return f"{certificate_name} should be an x509.Certificate (what ca.sign_csr returns), not {type(certificate).__name__}"
    if not is_private_key(key):
        return (
            f"{key_name} should be the certificate's private key (an EC, RSA or Ed25519 private key), "
            f"not {type(key).__name__}"
        )
    return None


# -- the exercises ----------------------------------------------------------------


def exercise_1(
    certificate: x509.Certificate | None,
    key: PrivateKey | None,
    *,
    ca: CertificateAuthority,
    alice_certificate: x509.Certificate | None = None,
) -> CheckResult:
    """4.1 Two names for bob: a client certificate whose SAN holds a URI and an email, that a real server accepts.

    A SubjectAlternativeName may hold several names of different types; the
    server decides on the SAN and greets by the commonName. Bob needs a key of
    his own: the key of ``alice_certificate`` (the notebook's ``client_cert``)
    would let whoever holds alice's key be bob as well. The check proves the
    certificate works end to end, not only that it looks right.
    """
    c = Checker(
        "4.1",
        "Two names for bob",
        hint="Steps 3 and 4 made alice's key, request and certificate. What changes for bob, and how does "
        "`names` tell a URI from an email address?",
    )
    if not_attempted(certificate, key):
        return c.not_attempted()
    certificate, key = _unpack(certificate, key)
    problem = _certificate_and_key_problem(certificate, key, ("bob_certificate", "bob_key"))
    if problem:
        return c.fail(problem)
    assert isinstance(certificate, x509.Certificate)
    subject = certificate.subject.rfc4514_string() or "empty"
    c.require(
        common_name(certificate) == "bob",
        "its subject is CN=bob (the name the server greets)",
        f"its subject is {subject}: write the CSR with CN=bob",
    )
    san = extension(certificate, x509.SubjectAlternativeName)
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    emails = san.value.get_values_for_type(x509.RFC822Name) if san else []
    c.require(
        uris == [BOB_URI],
        f"its SAN holds the URI {BOB_URI}",
        f"its SAN URIs are {uris}: the SAN needs exactly the URI {BOB_URI}",
    )
    if any(email.lower().startswith("mailto:") for email in emails):
        c.require(
            False,
            "",
            f"its SAN emails are {emails}: an email entry is the bare address, {BOB_EMAIL}, without mailto:",
        )
    else:
        c.require(
            emails == [BOB_EMAIL],
            f"its SAN holds the email {BOB_EMAIL}",
            f"its SAN emails are {emails}: add {BOB_EMAIL} to names=[...] (an x509.RFC822Name)",
        )
    purposes = extended_key_usages(certificate)
    c.require(
        purposes == [ExtendedKeyUsageOID.CLIENT_AUTH],
        "its ExtendedKeyUsage is clientAuth only",
        f"its ExtendedKeyUsage is {_purpose_names(purposes)}: sign with profile='client'",
    )
    signed = signed_by(certificate, ca.certificate)
    c.require(
        signed, "the lab CA signed it", "the lab CA did not sign it: sign the CSR with `ca`, the lab CA"
    )
    matches = key_matches_certificate(key, certificate)  # type: ignore[arg-type]
    c.require(
        matches,
        "bob_key is the private key of bob_certificate",
        "bob_key is not the key of bob_certificate: sign the CSR you made with bob_key",
    )
    if alice_certificate is not None:
        c.require(
            not key_matches_certificate(key, alice_certificate),  # type: ignore[arg-type]
            "bob_key is a key of his own, not alice's",
            "bob_key is alice's key (client_key): give bob a key of his own, generated as in step 3",
        )
    if signed and matches and valid_now(certificate):
        outcome = request_through_a_lab_server(certificate, key, ca)  # type: ignore[arg-type]
        c.require(
            outcome.ok and outcome.body == "Hello, bob\n",
            "a real mTLS request with it was answered 'Hello, bob'",
            f"a real mTLS request with it got: {outcome} (expected 'Hello, bob')",
        )
    else:
        c.require(
            False,
            "",
            "a real mTLS request with it: not tried until the lab CA's signature, the key "
            "and the validity dates are right",
        )
    return c.result()


def exercise_2(
    certificate: x509.Certificate | None, key: PrivateKey | None, *, ca: CertificateAuthority
) -> CheckResult:
    """4.2 A certificate the server turns away for its purpose: the lab CA's, valid, but without clientAuth.

    The ExtendedKeyUsage is enforced where it matters, in the server's
    handshake: everything else about the certificate is right, so the
    server's recorded reason must be the purpose, nothing else.
    """
    c = Checker(
        "4.2",
        "A certificate the server turns away",
        hint="The lab CA signs with two profiles. Which purpose does the other one write into the certificate?",
    )
    if not_attempted(certificate, key):
        return c.not_attempted()
    certificate, key = _unpack(certificate, key)
    problem = _certificate_and_key_problem(
        certificate, key, ("wrong_purpose_certificate", "wrong_purpose_key")
    )
    if problem:
        return c.fail(problem)
    assert isinstance(certificate, x509.Certificate)
    signed = signed_by(certificate, ca.certificate)
    c.require(
        signed,
        "the lab CA signed it (so the CA is not the reason)",
        "the lab CA did not sign it: the server would refuse it for its CA, not its purpose; sign it with `ca`",
    )
    valid = valid_now(certificate)
    c.require(
        valid,
        "it is valid now (so the dates are not the reason)",
        "it is not valid now: the server would refuse it for its dates; keep the default validity",
    )
    matches = key_matches_certificate(key, certificate)  # type: ignore[arg-type]
    c.require(
        matches,
        "wrong_purpose_key is its private key",
        "wrong_purpose_key is not the key of wrong_purpose_certificate: pass the key its CSR was made with",
    )
    purposes = extended_key_usages(certificate)
    c.require(
        purposes is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in purposes,
        f"its ExtendedKeyUsage ({_purpose_names(purposes)}) lacks clientAuth",
        "it has no ExtendedKeyUsage at all, which OpenSSL reads as 'any purpose': give it one without "
        "clientAuth (the server profile)"
        if purposes is None
        else f"its ExtendedKeyUsage ({_purpose_names(purposes)}) includes clientAuth: use a profile without it",
    )
    if signed and valid and matches:
        outcome = request_through_a_lab_server(certificate, key, ca)  # type: ignore[arg-type]
        c.require(
            not outcome.ok and outcome.server_reason == WRONG_PURPOSE,
            f"a real mTLS server refused it, and recorded '{WRONG_PURPOSE}'",
            "a real mTLS server accepted it"
            if outcome.ok
            else f"a real mTLS server refused it, but recorded '{outcome.server_reason}' instead of '{WRONG_PURPOSE}'",
        )
    else:
        c.require(
            False, "", "a real handshake with it: not tried until the CA, the dates and the key are right"
        )
    return c.result()


def exercise_3(
    certificate: x509.Certificate | None,
    key: PrivateKey | None,
    accepted_by_path_validator: bool | None,
    *,
    ca: CertificateAuthority,
) -> CheckResult:
    """4.3 A certificate without names: ``names=[]`` leaves the SAN out; who still accepts it?

    OpenSSL (the lab server) checks a client certificate's chain, dates and
    purpose but matches no name, so it accepts a client certificate without a
    SAN and greets it by its commonName. ``cryptography``'s path validator
    follows the Web PKI profile, which requires a SAN on every leaf, and
    refuses it. The learner runs the validator and records what it said.
    """
    c = Checker(
        "4.3",
        "A certificate without names",
        hint="The task says how `names` leaves the SAN out. Then ask the verifier of step 5 that checks client "
        "certificates: did it return, or raise?",
    )
    if not_attempted(certificate, key, accepted_by_path_validator):
        return c.not_attempted()
    certificate, key = _unpack(certificate, key)
    problem = _certificate_and_key_problem(certificate, key, ("nameless_certificate", "nameless_key"))
    if problem:
        return c.fail(problem)
    assert isinstance(certificate, x509.Certificate)
    c.require(
        extension(certificate, x509.SubjectAlternativeName) is None,
        "it has no SubjectAlternativeName extension",
        "it still has a SubjectAlternativeName: pass names=[] to ca.sign_csr",
    )
    subject_cn = common_name(certificate)
    c.require(
        subject_cn is not None,
        f"its subject still names the client (CN={subject_cn})",
        "its subject has no commonName: sign a CSR whose subject has one, such as client_csr",
    )
    purposes = extended_key_usages(certificate)
    c.require(
        purposes == [ExtendedKeyUsageOID.CLIENT_AUTH],
        "it is a client certificate (clientAuth only)",
        f"its ExtendedKeyUsage is {_purpose_names(purposes)}: sign with profile='client'",
    )
    signed = signed_by(certificate, ca.certificate)
    c.require(signed, "the lab CA signed it", "the lab CA did not sign it: sign it with `ca`")
    try:
        PolicyBuilder().store(Store([ca.certificate])).build_client_verifier().verify(certificate, [])
        validator_accepts = True
    except VerificationError:
        validator_accepts = False
    if not isinstance(accepted_by_path_validator, bool):
        c.require(
            False,
            "",
            "accepted_by_path_validator should be True or False: what the path validator of "
            "step 5 said about the certificate",
        )
    else:
        said = "accepts" if validator_accepts else "refuses"
        why = (
            ": it follows the rules of the Web PKI, which require a SAN in every leaf certificate"
            if not validator_accepts
            else ""
        )
        c.require(
            accepted_by_path_validator == validator_accepts,
            f"you found that cryptography's path validator {said} it{why}",
            f"accepted_by_path_validator is {accepted_by_path_validator}, but the path validator {said} it: "
            "run build_client_verifier().verify(...) and look at what happens",
        )
    matches = key_matches_certificate(key, certificate)  # type: ignore[arg-type]
    c.require(
        matches,
        "nameless_key is its private key",
        "nameless_key is not the key of nameless_certificate: pass the key its CSR was made with",
    )
    if signed and matches and subject_cn is not None and valid_now(certificate):
        outcome = request_through_a_lab_server(certificate, key, ca)  # type: ignore[arg-type]
        c.require(
            outcome.ok and outcome.body == f"Hello, {subject_cn}\n",
            f"a real mTLS server (OpenSSL) accepted it and greeted {subject_cn} by the commonName: OpenSSL "
            "checks a client certificate's chain, dates and purpose, and matches no name in it",
            f"a real mTLS request with it got: {outcome}",
        )
        if not validator_accepts and all(ok for ok, _ in c.points):
            c.require(
                True,
                "two verifiers, two answers: the connection works, the identity does not. A server "
                "that decides on the URI (notebook 08) finds nothing to decide on: give every client "
                "certificate a SAN",
                "",
            )
    return c.result()


def exercise_4(
    path: str | os.PathLike[str] | None,
    password: bytes | None,
    *,
    client_certificate: x509.Certificate,
    ca_certificate: x509.Certificate,
) -> CheckResult:
    """4.4 A bundle with its CA: alice's key and certificate, plus the lab CA, in a password-protected PKCS#12 file.

    Importers (browsers, keychains, Windows) show and can trust the chain
    when the bundle carries it. The check opens the file as an importer
    would: with the password it must open, without it it must not.
    """
    c = Checker(
        "4.4",
        "A bundle with its CA",
        hint="Step 8 wrote client.p12 without the CA: which argument of the same call carries more certificates? "
        "And how did step 8 write the file so that only you can read it?",
    )
    if not_attempted(path, password):
        return c.not_attempted()
    if not isinstance(path, (str, os.PathLike)):
        return c.fail(f"alice_p12_path should be the path of the file you wrote, not {type(path).__name__}")
    if not isinstance(password, bytes) or not password:
        return c.fail("alice_p12_password should be the password as bytes, e.g. b'a long lab password'")
    file = Path(path)
    if not file.is_file():
        return c.fail(f"{file} does not exist: write the bundle's bytes to it (write_atomic)")
    if os.name == "posix":
        mode = stat.S_IMODE(file.stat().st_mode)
        c.require(
            mode & 0o077 == 0,
            f"the file is private (mode {mode:04o}): it holds a private key",
            f"the file has mode {mode:04o}, so others can read it: write it with write_atomic(..., private=True)",
        )
    data = file.read_bytes()
    try:
        pkcs12.load_pkcs12(data, None)
        opens_without_password = True
    except (ValueError, TypeError):
        opens_without_password = False
    c.require(
        not opens_without_password,
        "it does not open without the password",
        "it opens without a password: encrypt it with serialization.BestAvailableEncryption(password)",
    )
    try:
        bundle = pkcs12.load_pkcs12(data, None if opens_without_password else password)
    except (ValueError, TypeError):
        c.require(
            False, "", "it does not open with alice_p12_password (a wrong password, or not a PKCS#12 file)"
        )
        return c.result()
    if not opens_without_password:
        c.require(True, "it opens with alice_p12_password", "")
    held = bundle.cert.certificate if bundle.cert is not None else None
    c.require(
        held == client_certificate,
        "it holds alice's certificate (client_cert)",
        "it does not hold alice's certificate: pass cert=client_cert",
    )
    c.require(
        bundle.key is not None and held is not None and key_matches_certificate(bundle.key, held),  # type: ignore[arg-type]
        "it holds the private key of that certificate",
        "it does not hold the certificate's private key: pass key=client_key",
    )
    extra = [item.certificate for item in bundle.additional_certs]
    c.require(
        ca_certificate in extra,
        "it carries the lab CA certificate, for importers to show and trust the chain",
        "it does not carry the lab CA certificate: pass cas=[ca.certificate]",
    )
    return c.result()
