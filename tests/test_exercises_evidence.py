"""What the exercise checks look at (lab_helpers/exercises/evidence.py): each answer, and its negative twin."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lab_helpers import CertificateAuthority, create_csr, generate_private_key
from lab_helpers.exercises.evidence import (
    attempt_presenting,
    common_name,
    display_name,
    extended_key_usages,
    extension,
    has_purpose,
    is_private_key,
    lab_server,
    public_key_der,
    request_through_a_lab_server,
    server_problem,
    signed_by,
    subject_alternative_names,
    valid_now,
)

ALICE_URI = "spiffe://lab.example/user/alice"


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create_root("evidence-ca")


@pytest.fixture(scope="module")
def other_ca() -> CertificateAuthority:
    return CertificateAuthority.create_root("evidence-ca")  # the same name, another key


def test_signed_by_its_issuer_and_not_by_another_ca_of_the_same_name(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    alice = ca.issue_client_certificate("alice").certificate
    assert signed_by(alice, ca.certificate)
    assert not signed_by(alice, other_ca.certificate)
    assert signed_by(ca.certificate, ca.certificate)  # self-signed
    assert not signed_by(alice, alice)


def test_names_of_a_client_certificate_and_of_a_nameless_one(ca: CertificateAuthority) -> None:
    alice = ca.issue_client_certificate("alice").certificate
    assert common_name(alice) == display_name(alice) == "alice"
    assert [name.value for name in subject_alternative_names(alice)] == [ALICE_URI]
    assert extension(alice, x509.SubjectAlternativeName) is not None

    nameless = ca.sign_csr(create_csr(generate_private_key(), "nobody"), profile="client", names=[])
    assert subject_alternative_names(nameless) == []
    assert extension(nameless, x509.SubjectAlternativeName) is None
    certificate = _bare_expired(ca, x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Lab")]))
    assert common_name(certificate) is None
    assert display_name(certificate) == "O=Lab"


def _bare_expired(ca: CertificateAuthority, subject: x509.Name) -> x509.Certificate:
    """A certificate from ``ca`` with no extensions at all, that expired yesterday."""
    key = generate_private_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(ca.private_key, _hash_for(ca))
    )


def _hash_for(ca: CertificateAuthority) -> hashes.HashAlgorithm | None:
    return None if isinstance(ca.private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def test_purposes_of_a_client_certificate_and_of_one_without_extended_key_usage(
    ca: CertificateAuthority,
) -> None:
    alice = ca.issue_client_certificate("alice").certificate
    assert extended_key_usages(alice) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert has_purpose(alice, ExtendedKeyUsageOID.CLIENT_AUTH)
    assert not has_purpose(alice, ExtendedKeyUsageOID.SERVER_AUTH)
    bare = _bare_expired(ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bare")]))
    assert extended_key_usages(bare) is None
    assert not has_purpose(bare, ExtendedKeyUsageOID.CLIENT_AUTH)


def test_valid_now_and_expired(ca: CertificateAuthority) -> None:
    assert valid_now(ca.issue_client_certificate("alice").certificate)
    assert not valid_now(_bare_expired(ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")])))


def test_private_keys_and_what_is_not_one(ca: CertificateAuthority) -> None:
    for key_type in ("ec", "rsa", "ed25519"):
        assert is_private_key(generate_private_key(key_type))  # type: ignore[arg-type]
    assert not is_private_key(ca.certificate)
    assert not is_private_key(generate_private_key().public_key())
    assert not is_private_key(None)


def test_public_key_der_is_the_same_for_a_key_and_its_certificate_only(ca: CertificateAuthority) -> None:
    issued = ca.issue_client_certificate("alice")
    assert (
        public_key_der(issued.certificate) == public_key_der(issued.private_key) == public_key_der(issued.csr)
    )
    assert public_key_der(issued.certificate) != public_key_der(ca.certificate)


def test_server_problem_names_what_is_wrong(ca: CertificateAuthority) -> None:
    assert (
        server_problem("a string", "my_server") == "my_server should be the MTLSServer you started, not str"
    )
    with lab_server(ca) as server:
        assert server_problem(server, "my_server") is None
    assert server_problem(server, "my_server") == (
        "my_server is not running: start() it, and keep it running until the check has run"
    )


def test_a_request_through_a_lab_server_greets_its_client_and_refuses_a_stranger(
    ca: CertificateAuthority, other_ca: CertificateAuthority
) -> None:
    alice = ca.issue_client_certificate("alice")
    outcome = request_through_a_lab_server(alice.certificate, alice.private_key, ca)
    assert outcome.ok and outcome.body == "Hello, alice\n"

    stranger = other_ca.issue_client_certificate("mallory")
    with lab_server(ca) as server:
        refused = attempt_presenting(server, [stranger.certificate], stranger.private_key, ca.certificate)
    assert not refused.ok
    assert refused.server_reason is not None


def test_a_lab_server_with_a_crl_refuses_the_revoked_client(ca: CertificateAuthority) -> None:
    revoked, kept = ca.issue_client_certificate("revoked"), ca.issue_client_certificate("kept")
    with lab_server(ca, crl=ca.create_crl([revoked.certificate])) as server:
        refused = attempt_presenting(server, [revoked.certificate], revoked.private_key, ca.certificate)
        accepted = attempt_presenting(server, [kept.certificate], kept.private_key, ca.certificate)
    assert not refused.ok and refused.server_reason == "certificate revoked"
    assert accepted.ok and accepted.body == "Hello, kept\n"
