"""describe(): a certificate in words (text for print, a table for Jupyter), and the peer identity."""

from __future__ import annotations

import datetime
import html
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lab_checks import build_certificate

from lab_helpers import (
    CertificateAuthority,
    LabPaths,
    creation_profile,
    describe,
    fingerprint,
    generate_private_key,
    identity_from_certificate,
    load_certificate,
    save_private_key,
)


def test_describe_a_server_certificate_in_text_and_html(lab_pki: LabPaths) -> None:
    certificate = load_certificate(lab_pki.server_cert)
    description = describe(lab_pki.server_cert)  # a path works as well as an object
    assert description == describe(certificate)
    expected = {
        "Subject": "CN=localhost",
        "Issuer": "CN=lab-ca",
        "Self-signed": "no",
        "Key": "ECDSA P-256",
        "Version": "X.509 v3",
        "BasicConstraints": "CA:FALSE (critical)",
        "KeyUsage": "digital_signature (critical)",
        "ExtendedKeyUsage": "serverAuth",
        "SubjectAltName": "DNS:localhost, IP Address:127.0.0.1",
        "SHA-256 fingerprint": fingerprint(certificate),
        "Serial": f"{certificate.serial_number:x}",
    }
    for label, value in expected.items():
        assert description[label] == value, label
    text, page = str(description), description._repr_html_()
    for label, value in expected.items():
        assert label in text and value in text, label
        assert html.escape(label) in page and html.escape(value) in page, label
    assert page.startswith("<table>")


def test_describe_the_ca_and_a_client(lab_pki: LabPaths) -> None:
    ca = describe(lab_pki.ca_cert)
    assert ca["BasicConstraints"] == "CA:TRUE (critical)"
    assert ca["KeyUsage"] == "key_cert_sign, crl_sign (critical)"
    assert ca["Self-signed"] == "yes"
    assert ca["ExtendedKeyUsage"] == "absent (any purpose)"
    assert ca["SubjectAltName"] == "absent"
    client = describe(lab_pki.client_cert)
    assert client["ExtendedKeyUsage"] == "clientAuth"
    assert client["SubjectAltName"] == "URI:spiffe://lab.example/user/alice"


def test_describe_says_absent_for_a_certificate_without_extensions() -> None:
    """Like the article's `openssl x509 -req` output: a CN and nothing else."""
    key = generate_private_key()
    bare = build_certificate("localhost", key.public_key(), "localhost", key)
    description = describe(bare)
    assert description["BasicConstraints"] == "absent"
    assert description["SubjectAltName"] == "absent"
    assert description["ExtendedKeyUsage"] == "absent (any purpose)"
    assert description["KeyUsage"] == "absent (any use)"  # listed like the other absent extensions
    assert "absent" in str(description) and "absent" in description._repr_html_()


@pytest.mark.parametrize(
    ("key_type", "words"), [("ec", "ECDSA P-256"), ("rsa", "RSA 2048-bit"), ("ed25519", "Ed25519")]
)
def test_describe_names_each_key_type(key_type: str, words: str) -> None:
    ca = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    assert describe(ca.certificate)["Key"] == words


def test_describe_an_unknown_field_raises_key_error(lab_pki: LabPaths) -> None:
    with pytest.raises(KeyError):
        describe(lab_pki.ca_cert)["Colour"]


def test_fingerprint_is_openssl_style_sha256(lab_pki: LabPaths) -> None:
    certificate = load_certificate(lab_pki.ca_cert)
    value = fingerprint(certificate)
    assert value == certificate.fingerprint(hashes.SHA256()).hex(":").upper()
    assert len(value.split(":")) == 32


def test_identity_from_a_client_certificate(lab_pki: LabPaths) -> None:
    identity = identity_from_certificate(load_certificate(lab_pki.client_cert))
    assert identity.common_name == "alice" and identity.name == "alice"
    assert identity.uris == ("spiffe://lab.example/user/alice",)
    assert identity.issuer == "CN=lab-ca"


def test_identity_of_no_certificate_says_so(lab_pki: LabPaths) -> None:
    """None (no certificate reached the code) is named as such, not an AttributeError from the parser."""
    with pytest.raises(TypeError, match="got None: no client certificate reached this code"):
        identity_from_certificate(None)  # type: ignore[arg-type]
    assert identity_from_certificate(load_certificate(lab_pki.client_cert)).name == "alice"  # the twin


def test_identity_without_a_common_name_falls_back_to_the_uri() -> None:
    ca = CertificateAuthority.create_root()
    key = generate_private_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
    certificate = ca.sign_csr(csr, profile="client", names=["spiffe://lab.example/user/carol"])
    identity = identity_from_certificate(certificate)
    assert identity.common_name is None and identity.name == "spiffe://lab.example/user/carol"
    # RFC 5280: with an empty subject the SAN must be critical.
    assert certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).critical is True


def test_creation_profile_of_a_lab_root(tmp_path: Path) -> None:
    made_at = datetime.datetime.now(datetime.timezone.utc)
    ca = CertificateAuthority.create_root()
    profile = creation_profile(
        ca.certificate, made_at=made_at, key_file=save_private_key(ca.private_key, tmp_path / "ca.key")
    )
    assert (
        profile["version"] == "v3"
        and profile["key"] == "ECDSA P-256"
        and profile["signature"] == "ecdsa-with-SHA256"
    )
    assert profile["starts"] == "5 min before it was made"
    assert profile["lifetime"] in {"365 days", "364 days"}  # measured from a start five minutes back
    assert profile["BasicConstraints"] == "CA:TRUE, critical"
    assert profile["KeyUsage"] == "key_cert_sign, crl_sign, critical"
    assert profile["SubjectKeyIdentifier"] == "present, not critical"
    assert profile["AuthorityKeyIdentifier"] == "present, not critical"
    expected_mode = "600" if os.name == "posix" else ""
    assert profile["key file"].startswith("BEGIN PRIVATE KEY, mode " + expected_mode)


def test_creation_profile_names_what_is_missing(tmp_path: Path) -> None:
    """The negative twin: a bare certificate that starts the second it is made, with no extension at all."""
    key = generate_private_key()
    bare = build_certificate("example-ca", key.public_key(), "example-ca", key)
    made_at = bare.not_valid_before_utc
    profile = creation_profile(
        bare, made_at=made_at, key_file=save_private_key(key, tmp_path / "ca.key", password=b"pw")
    )
    assert profile["starts"] == "when it was made (no margin)"
    for row in ("BasicConstraints", "KeyUsage", "SubjectKeyIdentifier", "AuthorityKeyIdentifier"):
        assert profile[row] == "absent", row
    assert profile["key file"].startswith("BEGIN ENCRYPTED PRIVATE KEY, mode ")
