"""Names for signature algorithms and ExtendedKeyUsage purposes: public OIDs in, the names OpenSSL prints out."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from lab_helpers import (
    CertificateAuthority,
    create_csr,
    generate_private_key,
    purpose_name,
    signature_algorithm_name,
)


@pytest.mark.parametrize(
    ("key_type", "expected"),
    [("ec", "ecdsa-with-SHA256"), ("rsa", "sha256WithRSAEncryption"), ("ed25519", "ED25519")],
)
def test_signature_algorithm_names_for_each_key_type(key_type: str, expected: str) -> None:
    ca = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    assert signature_algorithm_name(ca.certificate) == expected
    csr = create_csr(generate_private_key(key_type), "localhost")  # type: ignore[arg-type]
    assert signature_algorithm_name(csr) == expected  # a CSR is signed by its own key


@pytest.mark.parametrize("key_type", ["ec", "rsa", "ed25519"])
def test_the_names_are_the_ones_openssl_prints(key_type: str) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certificate = CertificateAuthority.create_root(key_type=key_type).certificate  # type: ignore[arg-type]
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"],
        input=certificate.public_bytes(Encoding.PEM),
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout.decode()
    printed = re.search(r"Signature Algorithm: (\S+)", text)
    assert printed is not None and printed.group(1) == signature_algorithm_name(certificate)


def test_purposes_by_name_and_an_unknown_oid_by_number() -> None:
    ca = CertificateAuthority.create_root()
    server = ca.issue_server_certificate().certificate
    client = ca.issue_client_certificate("alice").certificate
    purposes = [
        purpose_name(oid) for oid in server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ]
    assert purposes == ["serverAuth"]
    assert [
        purpose_name(oid) for oid in client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ] == ["clientAuth"]
    assert purpose_name(x509.ObjectIdentifier("1.2.3.4")) == "1.2.3.4"
