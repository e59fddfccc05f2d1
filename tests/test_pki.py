"""The lab PKI: keys, CSRs, the root CA and the two leaf profiles, field by field.

Every profile test runs for each key type, and every success has its negative
twin right after it: the same check must fail when the certificate is not
right, or the check proves nothing.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from lab_checks import (
    UTC,
    assert_is_ca,
    assert_is_leaf,
    assert_starts_about_five_minutes_ago,
    build_certificate,
    ca_extensions,
    common_name,
    extension,
)

from lab_helpers import (
    CertificateAuthority,
    KeyMismatchError,
    LabError,
    NotACAError,
    TamperedCSRError,
    create_csr,
    generate_private_key,
    key_matches_certificate,
)

SERVER_NAMES = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
ALICE_NAMES = [x509.UniformResourceIdentifier("spiffe://lab.example/user/alice")]


@pytest.fixture
def ca(key_type: str) -> CertificateAuthority:
    """A fresh root CA of each key type."""
    return CertificateAuthority.create_root(key_type=key_type)


# -- keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [("ec", ec.EllipticCurvePrivateKey), ("rsa", rsa.RSAPrivateKey), ("ed25519", ed25519.Ed25519PrivateKey)],
)
def test_generate_private_key_makes_each_key_type(key_type: str, expected: type) -> None:
    key = generate_private_key(key_type)  # type: ignore[arg-type]
    assert isinstance(key, expected)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        assert isinstance(key.curve, ec.SECP256R1)
    if isinstance(key, rsa.RSAPrivateKey):
        assert key.key_size == 2048


def test_generate_private_key_refuses_an_unknown_key_type() -> None:
    with pytest.raises(LabError, match="Unknown key type 'dsa'"):
        generate_private_key("dsa")  # type: ignore[arg-type]
    with pytest.raises(LabError, match="Unknown key type"):
        CertificateAuthority.create_root(key_type="ecdsa")  # type: ignore[arg-type]


def test_rsa_keys_of_2048_bits_and_more_are_accepted() -> None:
    assert generate_private_key("rsa", rsa_bits=3072).key_size == 3072  # type: ignore[union-attr]


def test_rsa_keys_under_2048_bits_are_refused() -> None:
    with pytest.raises(LabError, match="EE_KEY_TOO_SMALL"):
        generate_private_key("rsa", rsa_bits=1024)


def test_key_matches_certificate(key_type: str) -> None:
    ca = CertificateAuthority.create_root(key_type=key_type)
    assert key_matches_certificate(ca.private_key, ca.certificate)


def test_key_matches_certificate_is_false_for_another_key(key_type: str) -> None:
    ca = CertificateAuthority.create_root(key_type=key_type)
    assert not key_matches_certificate(generate_private_key(key_type), ca.certificate)  # type: ignore[arg-type]


# -- the root CA ----------------------------------------------------------------


def test_root_profile(ca: CertificateAuthority, key_type: str) -> None:
    assert_is_ca(ca.certificate, key_type=key_type)
    assert common_name(ca.certificate) == "lab-ca"
    assert_starts_about_five_minutes_ago(ca.certificate)
    lifetime = ca.certificate.not_valid_after_utc - ca.certificate.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=365)
    assert key_matches_certificate(ca.private_key, ca.certificate)


def test_root_profile_check_fails_for_a_leaf_and_for_a_non_critical_ca(
    ca: CertificateAuthority, key_type: str
) -> None:
    """The negative control: assert_is_ca must not pass what is not a strict root."""
    leaf = ca.issue_server_certificate(key_type=key_type).certificate  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        assert_is_ca(leaf, key_type=key_type)
    key = generate_private_key(key_type)  # type: ignore[arg-type]
    lax_root = build_certificate(
        "lax-ca", key.public_key(), "lax-ca", key, ca_extensions(key.public_key(), critical_constraints=False)
    )
    with pytest.raises(AssertionError):
        assert_is_ca(lax_root, key_type=key_type)


def test_root_validity_is_aware_utc_in_any_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A naive datetime.now() would start 9 hours in the future in Tokyo; the lab uses aware UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        ca = CertificateAuthority.create_root()
        leaf = ca.issue_client_certificate("alice").certificate
    finally:
        monkeypatch.undo()
        time.tzset()
    assert_starts_about_five_minutes_ago(ca.certificate)
    assert_starts_about_five_minutes_ago(leaf)


def test_a_naive_valid_from_is_refused() -> None:
    ca = CertificateAuthority.create_root()
    with pytest.raises(LabError, match="no time zone"):
        ca.issue_server_certificate(valid_from=datetime.datetime.now())
    with pytest.raises(LabError, match="no time zone"):
        ca.issue_client_certificate("alice", valid_from=datetime.datetime(2030, 1, 1))


# -- the server profile -----------------------------------------------------------


def test_server_leaf_profile(ca: CertificateAuthority, key_type: str) -> None:
    issued = ca.issue_server_certificate(key_type=key_type)  # type: ignore[arg-type]
    assert_is_leaf(
        issued.certificate, ca.certificate, purpose="server", names=SERVER_NAMES, key_type=key_type
    )
    assert common_name(issued.certificate) == "localhost"
    assert_starts_about_five_minutes_ago(issued.certificate)
    assert key_matches_certificate(issued.private_key, issued.certificate)
    assert issued.csr.is_signature_valid


def test_server_leaf_profile_check_fails_for_another_purpose_or_another_ca(
    ca: CertificateAuthority, key_type: str
) -> None:
    issued = ca.issue_server_certificate(key_type=key_type)  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        assert_is_leaf(
            issued.certificate, ca.certificate, purpose="client", names=SERVER_NAMES, key_type=key_type
        )
    other = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    # Same subject name "lab-ca": only the signature tells the two CAs apart.
    with pytest.raises(InvalidSignature):
        assert_is_leaf(
            issued.certificate, other.certificate, purpose="server", names=SERVER_NAMES, key_type=key_type
        )


def test_server_leaf_validity_is_configurable() -> None:
    ca = CertificateAuthority.create_root()
    start = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    issued = ca.issue_server_certificate("example.test", valid_days=7, valid_from=start)
    assert issued.certificate.not_valid_before_utc == start
    assert issued.certificate.not_valid_after_utc == start + datetime.timedelta(days=7)
    assert list(extension(issued.certificate, x509.SubjectAlternativeName).value) == [
        x509.DNSName("example.test")
    ]


def test_server_leaf_validity_defaults_to_90_days_not_more() -> None:
    ca = CertificateAuthority.create_root()
    certificate = ca.issue_server_certificate().certificate
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == datetime.timedelta(days=90)
    longer = ca.issue_server_certificate(valid_days=397).certificate
    assert longer.not_valid_after_utc - longer.not_valid_before_utc != datetime.timedelta(days=90)


# -- the client profile -----------------------------------------------------------


def test_client_leaf_profile(ca: CertificateAuthority, key_type: str) -> None:
    issued = ca.issue_client_certificate("alice", key_type=key_type)  # type: ignore[arg-type]
    assert_is_leaf(issued.certificate, ca.certificate, purpose="client", names=ALICE_NAMES, key_type=key_type)
    assert common_name(issued.certificate) == "alice"
    assert_starts_about_five_minutes_ago(issued.certificate)
    assert key_matches_certificate(issued.private_key, issued.certificate)


def test_client_leaf_profile_check_fails_for_the_server_purpose(
    ca: CertificateAuthority, key_type: str
) -> None:
    issued = ca.issue_client_certificate("alice", key_type=key_type)  # type: ignore[arg-type]
    with pytest.raises(AssertionError):
        assert_is_leaf(
            issued.certificate, ca.certificate, purpose="server", names=ALICE_NAMES, key_type=key_type
        )
    with pytest.raises(AssertionError):
        assert_is_leaf(
            issued.certificate, ca.certificate, purpose="client", names=SERVER_NAMES, key_type=key_type
        )


def test_issued_certificate_pem_round_trips() -> None:
    issued = CertificateAuthority.create_root().issue_client_certificate("bob")
    assert x509.load_pem_x509_certificate(issued.cert_pem) == issued.certificate
    assert x509.load_pem_x509_csr(issued.csr_pem) == issued.csr
    key = serialization.load_pem_private_key(issued.key_pem, password=None)
    assert key_matches_certificate(key, issued.certificate)  # type: ignore[arg-type]
    assert issued.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, not encrypted


# -- signing CSRs -------------------------------------------------------------------


def test_sign_csr_uses_the_names_the_csr_asks_for() -> None:
    ca = CertificateAuthority.create_root()
    csr = create_csr(generate_private_key(), "api", names=["api.lab.test", "10.0.0.7"])
    certificate = ca.sign_csr(csr, profile="server")
    expected = [x509.DNSName("api.lab.test"), x509.IPAddress(ipaddress.ip_address("10.0.0.7"))]
    assert list(extension(certificate, x509.SubjectAlternativeName).value) == expected


def test_sign_csr_defaults_when_the_csr_asks_for_no_names() -> None:
    ca = CertificateAuthority.create_root()
    server = ca.sign_csr(create_csr(generate_private_key(), "web"), profile="server")
    assert list(extension(server, x509.SubjectAlternativeName).value) == SERVER_NAMES
    client = ca.sign_csr(create_csr(generate_private_key(), "alice"), profile="client")
    assert list(extension(client, x509.SubjectAlternativeName).value) == ALICE_NAMES


def test_sign_csr_names_override_the_csr() -> None:
    ca = CertificateAuthority.create_root()
    csr = create_csr(generate_private_key(), "api", names=["api.lab.test"])
    certificate = ca.sign_csr(csr, profile="server", names=["localhost"])
    assert list(extension(certificate, x509.SubjectAlternativeName).value) == [x509.DNSName("localhost")]


def test_an_email_name_is_the_bare_address_and_mailto_is_refused() -> None:
    ca = CertificateAuthority.create_root()
    csr = create_csr(generate_private_key(), "bob")
    certificate = ca.sign_csr(csr, profile="client", names=["bob@lab.example"])
    assert list(extension(certificate, x509.SubjectAlternativeName).value) == [
        x509.RFC822Name("bob@lab.example")
    ]
    with pytest.raises(LabError, match=re.escape("the bare address, 'bob@lab.example', without mailto:")):
        ca.sign_csr(csr, profile="client", names=["mailto:bob@lab.example"])


def test_sign_csr_refuses_an_unknown_profile() -> None:
    ca = CertificateAuthority.create_root()
    csr = create_csr(generate_private_key(), "alice")
    with pytest.raises(LabError, match="Unknown profile"):
        ca.sign_csr(csr, profile="email")  # type: ignore[arg-type]


def test_sign_csr_with_an_explicit_empty_name_list_leaves_the_san_out() -> None:
    ca = CertificateAuthority.create_root()
    certificate = ca.sign_csr(create_csr(generate_private_key(), "alice"), profile="client", names=[])
    with pytest.raises(x509.ExtensionNotFound):
        certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_sign_csr_refuses_a_certificate_that_names_nobody() -> None:
    ca = CertificateAuthority.create_root()
    nameless = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(generate_private_key(), hashes.SHA256())
    )
    with pytest.raises(LabError, match="names nobody"):
        ca.sign_csr(nameless, profile="client", names=[])


def _csr_der(common: str = "alice", key: object = None) -> tuple[bytes, object]:
    key = key or generate_private_key()
    csr = create_csr(key, common, names=["spiffe://lab.example/user/" + common])  # type: ignore[arg-type]
    return csr.public_bytes(serialization.Encoding.DER), key


def _tamper_subject() -> x509.CertificateSigningRequest:
    """Change the commonName inside the signed bytes: 'alice' becomes 'oscar', same length."""
    der, _ = _csr_der("alice")
    start = der.index(b"alice")  # the subject comes first in the signed part
    tampered = der[:start] + b"oscar" + der[start + 5 :]
    csr = x509.load_der_x509_csr(tampered)
    assert common_name(csr) == "oscar"  # type: ignore[arg-type]
    return csr


def _swap_public_key() -> x509.CertificateSigningRequest:
    """Put somebody else's public key into alice's signed CSR (P-256 keys have the same length)."""
    der, key = _csr_der("alice")
    spki = key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    victim = (
        generate_private_key()
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert len(spki) == len(victim) and der.count(spki) == 1
    return x509.load_der_x509_csr(der.replace(spki, victim))


def test_sign_csr_accepts_an_intact_csr() -> None:
    ca = CertificateAuthority.create_root()
    der, key = _csr_der("alice")
    csr = x509.load_der_x509_csr(der)
    assert csr.is_signature_valid
    certificate = ca.sign_csr(csr, profile="client")
    assert key_matches_certificate(key, certificate)  # type: ignore[arg-type]
    assert common_name(certificate) == "alice"


@pytest.mark.parametrize(
    "tamper", [_tamper_subject, _swap_public_key], ids=["subject-changed", "public-key-swapped"]
)
def test_sign_csr_refuses_a_tampered_csr(tamper) -> None:  # type: ignore[no-untyped-def]
    ca = CertificateAuthority.create_root()
    csr = tamper()
    assert not csr.is_signature_valid
    with pytest.raises(TamperedCSRError, match="Create a new CSR"):
        ca.sign_csr(csr, profile="client")


# -- the CA pair ------------------------------------------------------------------


def test_a_ca_pair_is_accepted_and_signs(key_type: str) -> None:
    root = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    again = CertificateAuthority(root.certificate, root.private_key)
    leaf = again.issue_client_certificate("alice").certificate
    leaf.verify_directly_issued_by(root.certificate)


def test_a_leaf_cannot_act_as_a_ca(key_type: str) -> None:
    root = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    leaf = root.issue_server_certificate(key_type=key_type)  # type: ignore[arg-type]
    with pytest.raises(NotACAError, match="not a CA"):
        CertificateAuthority(leaf.certificate, leaf.private_key)


def test_a_certificate_without_basic_constraints_cannot_act_as_a_ca() -> None:
    key = generate_private_key()
    bare = build_certificate("bare", key.public_key(), "bare", key)
    with pytest.raises(NotACAError):
        CertificateAuthority(bare, key)


def test_a_ca_with_another_key_is_refused(key_type: str) -> None:
    root = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    with pytest.raises(KeyMismatchError, match="does not belong"):
        CertificateAuthority(root.certificate, generate_private_key(key_type))  # type: ignore[arg-type]
