"""The checks of notebook 03's exercises: server certificates and requests, verified and tampered with for real."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from lab_helpers import CertificateAuthority, check, create_csr, generate_private_key

UTC = datetime.timezone.utc


@pytest.fixture(autouse=True)
def not_strict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create_root()


def api_csr(*names: x509.GeneralName) -> x509.CertificateSigningRequest:
    names = names or (x509.DNSName("api.localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.2")))
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.localhost")]))
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


# -- 3.1 a certificate for api.localhost and 127.0.0.2 ---------------------------


def test_3_1_not_attempted(ca: CertificateAuthority) -> None:
    assert check.exercise_03_1(None, ca_certificate=ca.certificate).status == "not attempted yet"


def test_3_1_passes_for_both_names(ca: CertificateAuthority) -> None:
    certificate = ca.sign_csr(api_csr(), profile="server")
    result = check.exercise_03_1(certificate, ca_certificate=ca.certificate)
    assert result.passed, result


def test_3_1_the_address_written_as_a_dns_name(ca: CertificateAuthority) -> None:
    certificate = ca.sign_csr(
        api_csr(x509.DNSName("api.localhost"), x509.DNSName("127.0.0.2")), profile="server"
    )
    result = check.exercise_03_1(certificate, ca_certificate=ca.certificate)
    assert not result.passed
    assert "127.0.0.2 is written as a DNS name" in str(result)
    assert "a client connecting to 127.0.0.2 refuses it" in str(result)


def test_3_1_the_default_names_are_not_the_exercise(ca: CertificateAuthority) -> None:
    certificate = ca.issue_server_certificate().certificate  # localhost and 127.0.0.1
    result = check.exercise_03_1(certificate, ca_certificate=ca.certificate)
    assert not result.passed
    assert "no DNS entry api.localhost (it has localhost)" in str(result)
    assert "a client connecting to api.localhost refuses it" in str(result)


def test_3_1_an_extra_name_and_the_server_key_reused_are_named(ca: CertificateAuthority) -> None:
    """The learner kept localhost in the SAN and signed with server_key: both used to pass."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = ca.sign_csr(
        create_csr(server_key, "localhost", names=["localhost", "127.0.0.1"]), profile="server"
    )
    names = ["api.localhost", "127.0.0.2", "localhost"]
    certificate = ca.sign_csr(create_csr(server_key, "api.localhost", names=names), profile="server")
    result = check.exercise_03_1(
        certificate, ca_certificate=ca.certificate, server_certificate=server_certificate
    )
    assert not result.passed
    problems = [text for ok, text in result.points if not ok]
    assert problems == [
        "its SAN also holds localhost: the task asks for exactly api.localhost and 127.0.0.2 "
        "(every name in a certificate is one more name its key may answer for)",
        "its key is server_key, the key of server.crt (step 2): generate a new key for this server",
    ]


def test_3_1_a_new_key_passes_beside_the_server_certificate(ca: CertificateAuthority) -> None:
    server_certificate = ca.issue_server_certificate().certificate
    result = check.exercise_03_1(
        ca.sign_csr(api_csr(), profile="server"),
        ca_certificate=ca.certificate,
        server_certificate=server_certificate,
    )
    assert result.passed, result


def test_3_1_a_client_certificate_or_another_ca(ca: CertificateAuthority) -> None:
    as_client = ca.sign_csr(api_csr(), profile="client")
    result = check.exercise_03_1(as_client, ca_certificate=ca.certificate)
    assert not result.passed and "it is not a server certificate (no serverAuth)" in str(result)
    other = CertificateAuthority.create_root().sign_csr(api_csr(), profile="server")
    result = check.exercise_03_1(other, ca_certificate=ca.certificate)
    assert not result.passed and "the lab CA did not sign it" in str(result)


def test_3_1_strict_mode_raises(monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_03_1(ca.issue_server_certificate().certificate, ca_certificate=ca.certificate)


# -- 3.2 a tampered request ----------------------------------------------------------


def change_address(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    der = csr.public_bytes(serialization.Encoding.DER)
    old, new = ipaddress.ip_address("127.0.0.2").packed, ipaddress.ip_address("10.0.0.2").packed
    at = der.rindex(old)
    return x509.load_der_x509_csr(der[:at] + new + der[at + len(old) :])


def test_3_2_not_attempted(ca: CertificateAuthority) -> None:
    assert check.exercise_03_2(None, original_csr=None, ca=ca).status == "not attempted yet"


def test_3_2_passes_with_a_changed_address(ca: CertificateAuthority) -> None:
    original = api_csr()
    result = check.exercise_03_2(change_address(original), original_csr=original, ca=ca)
    assert result.passed, result


def test_3_2_a_new_request_is_not_a_tampered_one(ca: CertificateAuthority) -> None:
    original = api_csr()
    fresh = create_csr(generate_private_key(), "api.localhost", names=["api.localhost", "10.0.0.2"])
    result = check.exercise_03_2(fresh, original_csr=original, ca=ca)
    assert not result.passed
    assert "its signature is valid: it is a new request" in str(result)
    assert "did not refuse it with TamperedCSRError" in str(result)


def test_3_2_changing_only_the_signature_asks_for_nothing_else(ca: CertificateAuthority) -> None:
    original = api_csr()
    der = bytearray(original.public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature
    result = check.exercise_03_2(x509.load_der_x509_csr(bytes(der)), original_csr=original, ca=ca)
    assert not result.passed and "only the signature changed" in str(result)


def test_3_2_the_unchanged_request(ca: CertificateAuthority) -> None:
    """der.replace(b"127.0.0.2", ...) finds nothing: one message that says why, not three that contradict."""
    original = api_csr()
    der = original.public_bytes(serialization.Encoding.DER)
    unchanged = x509.load_der_x509_csr(der.replace(b"127.0.0.2", b"10.0.0.02"))
    result = check.exercise_03_2(unchanged, original_csr=original, ca=ca)
    assert not result.passed
    assert [text for ok, text in result.points if not ok] == [
        "tampered_csr is api_csr unchanged: bytes.replace found nothing to replace. An address is stored as "
        "4 bytes (ipaddress.ip_address(...).packed), not as text"
    ]
    assert "it is a new request" not in str(result)


def test_3_2_without_the_original(ca: CertificateAuthority) -> None:
    result = check.exercise_03_2(change_address(api_csr()), original_csr=None, ca=ca)
    assert not result.passed and "api_csr (the request of exercise 3.1) is missing" in str(result)


def test_3_2_strict_mode_raises(monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    original = api_csr()
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_03_2(original, original_csr=original, ca=ca)


# -- 3.3 a one-day certificate ----------------------------------------------------------


def verification_error_in_two_days(
    ca: CertificateAuthority, certificate: x509.Certificate
) -> VerificationError:
    later = datetime.datetime.now(UTC) + datetime.timedelta(days=2)
    verifier = (
        PolicyBuilder()
        .store(Store([ca.certificate]))
        .time(later)
        .build_server_verifier(x509.DNSName("localhost"))
    )
    with pytest.raises(VerificationError) as caught:
        verifier.verify(certificate, [])
    return caught.value


def test_3_3_not_attempted(ca: CertificateAuthority) -> None:
    assert check.exercise_03_3(None, None, ca_certificate=ca.certificate).status == "not attempted yet"


def test_3_3_passes_with_a_one_day_certificate(ca: CertificateAuthority) -> None:
    certificate = ca.issue_server_certificate(valid_days=1).certificate
    error = verification_error_in_two_days(ca, certificate)
    result = check.exercise_03_3(certificate, error, ca_certificate=ca.certificate)
    assert result.passed, result


def test_3_3_a_ninety_day_certificate_survives_two_days(ca: CertificateAuthority) -> None:
    certificate = ca.issue_server_certificate().certificate
    result = check.exercise_03_3(certificate, VerificationError("stand-in"), ca_certificate=ca.certificate)
    assert not result.passed
    assert "not one day: valid_days=1" in str(result)
    assert "two days from now a client would still accept it" in str(result)


def test_3_3_the_error_must_be_the_verifiers(ca: CertificateAuthority) -> None:
    certificate = ca.issue_server_certificate(valid_days=1).certificate
    result = check.exercise_03_3(certificate, ValueError("expired"), ca_certificate=ca.certificate)
    assert not result.passed and "error_in_two_days is ValueError, not the VerificationError" in str(result)


def test_3_3_an_error_about_the_name_is_not_the_expiry(ca: CertificateAuthority) -> None:
    """Verified now, for a name the certificate does not carry: a VerificationError, but not about the date."""
    certificate = ca.issue_server_certificate(valid_days=1).certificate
    verifier = (
        PolicyBuilder().store(Store([ca.certificate])).build_server_verifier(x509.DNSName("example.com"))
    )
    with pytest.raises(VerificationError) as caught:
        verifier.verify(certificate, [])
    result = check.exercise_03_3(certificate, caught.value, ca_certificate=ca.certificate)
    assert not result.passed
    (problem,) = [text for ok, text in result.points if not ok]
    assert problem.startswith("that VerificationError is about something else (")
    assert problem.endswith("verify for localhost, two days from now, so that only the date can fail")


def test_3_3_the_expiry_error_is_named_as_such(ca: CertificateAuthority) -> None:
    certificate = ca.issue_server_certificate(valid_days=1).certificate
    result = check.exercise_03_3(
        certificate, verification_error_in_two_days(ca, certificate), ca_certificate=ca.certificate
    )
    assert "error_in_two_days is the verifier's refusal for the date ('not valid at validation time')" in str(
        result
    )


def test_3_3_strict_mode_raises(monkeypatch: pytest.MonkeyPatch, ca: CertificateAuthority) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    certificate = ca.issue_server_certificate().certificate
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_03_3(certificate, None, ca_certificate=ca.certificate)
