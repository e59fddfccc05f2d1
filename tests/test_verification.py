"""The lab certificates pass the strict verifiers, and what strict verifiers refuse is really refused.

- cryptography's own verifier (``x509.verification``), with the server and the
  client policy: EKU decides which certificate fits which role;
- Python 3.13's default strictness (``VERIFY_X509_STRICT``) in a real
  loopback handshake, on any Python;
- ``openssl verify -x509_strict -purpose sslserver|sslclient``.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from lab_checks import (
    UTC,
    build_certificate,
    ca_extensions,
    get_over_tls,
    server_extensions,
    strict_client_context,
)
from platforms import OPENSSL_MISSING, openssl_tool

from lab_helpers import (
    CertificateAuthority,
    LabPaths,
    MTLSServer,
    build_server_context,
    generate_private_key,
    load_certificate,
    save_certificate,
    save_private_key,
)

# cryptography's verifier applies the CA/Browser Forum's Web PKI profile,
# which allows RSA and ECDSA keys only: it refuses Ed25519 ("Forbidden public
# key algorithm"). Python's ssl (OpenSSL) accepts Ed25519; see the tests below.
WEB_PKI_KEY_TYPES = [
    "ec",
    "rsa",
    pytest.param(
        "ed25519", marks=pytest.mark.skip(reason="cryptography's Web PKI verifier forbids Ed25519 keys")
    ),
]


def _policy(ca: CertificateAuthority) -> PolicyBuilder:
    return PolicyBuilder().store(Store([ca.certificate])).time(datetime.datetime.now(UTC))


@pytest.fixture(params=WEB_PKI_KEY_TYPES)
def web_pki_ca(request: pytest.FixtureRequest) -> CertificateAuthority:
    return CertificateAuthority.create_root(key_type=request.param)


# -- cryptography's verifier -----------------------------------------------------------


@pytest.mark.parametrize(
    "subject", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], ids=str
)
def test_server_verifier_accepts_the_server_certificate(web_pki_ca: CertificateAuthority, subject) -> None:  # type: ignore[no-untyped-def]
    server = web_pki_ca.issue_server_certificate(key_type=_key_type(web_pki_ca))
    chain = _policy(web_pki_ca).build_server_verifier(subject).verify(server.certificate, [])
    assert chain[0] == server.certificate and chain[-1] == web_pki_ca.certificate


@pytest.mark.parametrize(
    "subject", [x509.DNSName("example.com"), x509.IPAddress(ipaddress.ip_address("127.0.0.2"))], ids=str
)
def test_server_verifier_rejects_the_server_certificate_for_another_name(
    web_pki_ca: CertificateAuthority,
    subject,  # type: ignore[no-untyped-def]
) -> None:
    server = web_pki_ca.issue_server_certificate(key_type=_key_type(web_pki_ca))
    with pytest.raises(VerificationError):
        _policy(web_pki_ca).build_server_verifier(subject).verify(server.certificate, [])


def test_client_verifier_accepts_the_client_certificate(web_pki_ca: CertificateAuthority) -> None:
    client = web_pki_ca.issue_client_certificate("alice", key_type=_key_type(web_pki_ca))
    verified = _policy(web_pki_ca).build_client_verifier().verify(client.certificate, [])
    assert verified.subjects == [x509.UniformResourceIdentifier("spiffe://lab.example/user/alice")]
    assert verified.chain[-1] == web_pki_ca.certificate


def test_client_verifier_rejects_the_server_certificate(web_pki_ca: CertificateAuthority) -> None:
    server = web_pki_ca.issue_server_certificate(key_type=_key_type(web_pki_ca))
    with pytest.raises(VerificationError, match="EKU"):
        _policy(web_pki_ca).build_client_verifier().verify(server.certificate, [])


def test_server_verifier_accepts_localhost_with_the_server_profile(web_pki_ca: CertificateAuthority) -> None:
    """The control for the next test: same names, server profile."""
    csr = web_pki_ca.issue_client_certificate("alice").csr
    certificate = web_pki_ca.sign_csr(csr, profile="server", names=["localhost"])
    _policy(web_pki_ca).build_server_verifier(x509.DNSName("localhost")).verify(certificate, [])


def test_server_verifier_rejects_a_client_certificate_even_with_the_right_name(
    web_pki_ca: CertificateAuthority,
) -> None:
    """A client certificate naming localhost is still refused by a client checking a server: EKU."""
    csr = web_pki_ca.issue_client_certificate("alice").csr
    certificate = web_pki_ca.sign_csr(csr, profile="client", names=["localhost"])
    with pytest.raises(VerificationError, match="EKU"):
        _policy(web_pki_ca).build_server_verifier(x509.DNSName("localhost")).verify(certificate, [])


def test_verifiers_reject_a_certificate_from_another_ca(web_pki_ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create_root(key_type=_key_type(web_pki_ca))
    client = other.issue_client_certificate("alice", key_type=_key_type(web_pki_ca))
    with pytest.raises(VerificationError):
        _policy(web_pki_ca).build_client_verifier().verify(client.certificate, [])


def _key_type(ca: CertificateAuthority) -> str:
    return "ec" if isinstance(ca.private_key, ec.EllipticCurvePrivateKey) else "rsa"


# -- Python 3.13's strictness, on a real handshake ----------------------------------------


def test_strict_client_completes_a_handshake_for_every_key_type(
    lab_pki_of_key_type: LabPaths, mtls_server_of_key_type: MTLSServer
) -> None:
    paths = lab_pki_of_key_type
    context = strict_client_context(paths.ca_cert, paths.client_cert, paths.client_key)
    assert context.verify_flags & ssl.VERIFY_X509_STRICT
    response = get_over_tls(context, mtls_server_of_key_type.port)
    assert response.startswith("HTTP/1.1 200 ")
    assert response.endswith("Hello, alice\n")
    assert mtls_server_of_key_type.rejections == []


def _serve_hand_made(
    tmp_path: Path, lab_pki: LabPaths, certificate: x509.Certificate, key: object
) -> MTLSServer:
    """A lab server presenting a hand-made certificate (it still requires lab clients)."""
    cert_file = save_certificate(certificate, tmp_path / "hand-made.crt")
    key_file = save_private_key(key, tmp_path / "hand-made.key")  # type: ignore[arg-type]
    context = build_server_context(cert_file, key_file, lab_pki.ca_cert)
    return MTLSServer(context, name=None, handshake_timeout=2.0).start()


def _lax_ca_and_leaf(
    *, critical_constraints: bool, with_aki: bool
) -> tuple[x509.Certificate, x509.Certificate, object]:
    ca_key = generate_private_key()
    ca_cert = build_certificate(
        "hand-made-ca",
        ca_key.public_key(),
        "hand-made-ca",
        ca_key,
        ca_extensions(ca_key.public_key(), critical_constraints=critical_constraints),
    )
    leaf_key = generate_private_key()
    leaf = build_certificate(
        "localhost",
        leaf_key.public_key(),
        "hand-made-ca",
        ca_key,
        server_extensions(leaf_key.public_key(), ca_key.public_key(), with_aki=with_aki),
    )
    return ca_cert, leaf, leaf_key


STRICT_FAILURES = [
    pytest.param(
        dict(critical_constraints=True, with_aki=False),
        "Missing Authority Key Identifier",
        id="leaf-without-aki",
    ),
    pytest.param(
        dict(critical_constraints=False, with_aki=True),
        "Basic Constraints of CA cert not marked critical",
        id="ca-with-non-critical-basic-constraints",
    ),
]


@pytest.mark.parametrize(("flaw", "message"), STRICT_FAILURES)
def test_a_lax_chain_passes_without_the_strict_flag(
    tmp_path: Path, lab_pki: LabPaths, flaw: dict, message: str
) -> None:
    """The control: what Python 3.11's default accepts (so the flag is what makes the difference)."""
    ca_cert, leaf, leaf_key = _lax_ca_and_leaf(**flaw)
    ca_file = save_certificate(ca_cert, tmp_path / "hand-made-ca.crt")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cafile=str(ca_file))
    context.load_cert_chain(lab_pki.client_cert, lab_pki.client_key)
    with _serve_hand_made(tmp_path, lab_pki, leaf, leaf_key) as server:
        assert get_over_tls(context, server.port).endswith("Hello, alice\n")


@pytest.mark.parametrize(("flaw", "message"), STRICT_FAILURES)
def test_a_lax_chain_fails_under_the_strict_flag(
    tmp_path: Path, lab_pki: LabPaths, flaw: dict, message: str
) -> None:
    ca_cert, leaf, leaf_key = _lax_ca_and_leaf(**flaw)
    ca_file = save_certificate(ca_cert, tmp_path / "hand-made-ca.crt")
    context = strict_client_context(ca_file, lab_pki.client_cert, lab_pki.client_key)
    with _serve_hand_made(tmp_path, lab_pki, leaf, leaf_key) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as caught:
            get_over_tls(context, server.port)
    assert caught.value.verify_message == message


# -- openssl verify ---------------------------------------------------------------------------

OPENSSL = openssl_tool()
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason=OPENSSL_MISSING)


def _openssl_verify(paths: LabPaths, purpose: str, certificate: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            OPENSSL,
            "verify",
            "-x509_strict",
            "-purpose",
            purpose,
            "-CAfile",
            str(paths.ca_cert),
            str(certificate),
        ],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=30,
    )


@needs_openssl
@pytest.mark.parametrize(("purpose", "which"), [("sslserver", "server_cert"), ("sslclient", "client_cert")])
def test_openssl_verify_accepts_each_leaf_for_its_purpose(
    lab_pki_of_key_type: LabPaths, purpose: str, which: str
) -> None:
    result = _openssl_verify(lab_pki_of_key_type, purpose, getattr(lab_pki_of_key_type, which))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


@needs_openssl
@pytest.mark.parametrize(("purpose", "which"), [("sslclient", "server_cert"), ("sslserver", "client_cert")])
def test_openssl_verify_rejects_each_leaf_for_the_other_purpose(
    lab_pki_of_key_type: LabPaths, purpose: str, which: str
) -> None:
    result = _openssl_verify(lab_pki_of_key_type, purpose, getattr(lab_pki_of_key_type, which))
    assert result.returncode != 0
    # OpenSSL 3 says "unsuitable", 1.1 said "unsupported": error 26 either way.
    assert "certificate purpose" in result.stdout + result.stderr


@needs_openssl
def test_openssl_verify_rejects_a_leaf_from_another_ca(lab_pki: LabPaths, other_pki: LabPaths) -> None:
    result = _openssl_verify(lab_pki, "sslclient", other_pki.client_cert)
    assert result.returncode != 0
    assert "unable to get local issuer certificate" in result.stdout + result.stderr
    # Both CAs are named CN=lab-ca: only the signature tells them apart.
    assert load_certificate(other_pki.client_cert).issuer == load_certificate(lab_pki.ca_cert).subject
