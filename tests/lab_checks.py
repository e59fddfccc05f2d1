"""Shared checks for the tests (in trustme's style: values AND criticality).

``assert_is_ca`` and ``assert_is_leaf`` check a certificate's profile field by
field; ``build_certificate`` makes certificates by hand, with exactly the
extensions a test wants (to show what strict verifiers reject);
``get_over_tls`` makes one request over a raw ``ssl`` socket.
"""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

UTC = datetime.timezone.utc

CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
PURPOSES = {"server": ExtendedKeyUsageOID.SERVER_AUTH, "client": ExtendedKeyUsageOID.CLIENT_AUTH}


def extension(certificate: x509.Certificate, kind: type) -> x509.Extension:
    return certificate.extensions.get_extension_for_class(kind)


def assert_signed_with_sha256_or_ed25519(certificate: x509.Certificate, issuer_key_type: str) -> None:
    if issuer_key_type == "ed25519":
        assert certificate.signature_algorithm_oid == SignatureAlgorithmOID.ED25519
        assert certificate.signature_hash_algorithm is None
    else:
        assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)


def assert_common_fields(certificate: x509.Certificate, issuer_key_type: str) -> None:
    """What every lab certificate has: v3, a long positive serial, aware validity, a good signature hash."""
    assert certificate.version is x509.Version.v3
    assert certificate.serial_number > 0
    assert certificate.serial_number.bit_length() >= 64  # CA/B Forum: at least 64 random bits
    assert certificate.not_valid_before_utc.tzinfo is UTC
    assert certificate.not_valid_before_utc < certificate.not_valid_after_utc
    assert_signed_with_sha256_or_ed25519(certificate, issuer_key_type)
    ski = extension(certificate, x509.SubjectKeyIdentifier)
    assert ski.critical is False
    assert ski.value == x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())


def assert_starts_about_five_minutes_ago(certificate: x509.Certificate) -> None:
    """Validity starts in the past (clock skew allowance), by about five minutes, not hours."""
    started = datetime.datetime.now(UTC) - certificate.not_valid_before_utc
    assert datetime.timedelta(minutes=4) < started < datetime.timedelta(minutes=7), started


def assert_is_ca(certificate: x509.Certificate, *, key_type: str) -> None:
    """A self-signed root: CA:TRUE critical, keyCertSign+cRLSign only (critical), SKI."""
    assert_common_fields(certificate, key_type)
    assert certificate.subject == certificate.issuer
    certificate.verify_directly_issued_by(certificate)  # self-signed, and the signature holds

    constraints = extension(certificate, x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is True
    assert constraints.value.path_length is None

    usage = extension(certificate, x509.KeyUsage)
    assert usage.critical is True
    assert usage.value == CA_KEY_USAGE

    try:
        aki = extension(certificate, x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        pass
    else:  # optional on a root; when present it must name the root's own key
        assert aki.critical is False
        assert aki.value.key_identifier == extension(certificate, x509.SubjectKeyIdentifier).value.digest

    for absent in (x509.ExtendedKeyUsage, x509.SubjectAlternativeName):
        try:
            extension(certificate, absent)
        except x509.ExtensionNotFound:
            continue
        raise AssertionError(f"a root CA should not carry {absent.__name__}")


def assert_is_leaf(
    certificate: x509.Certificate,
    ca_certificate: x509.Certificate,
    *,
    purpose: str,
    names: Iterable[x509.GeneralName],
    key_type: str,
    valid_days: float = 90,
) -> None:
    """A leaf issued by ``ca_certificate`` with ``purpose`` ('server' or 'client') and SAN ``names``."""
    assert_common_fields(certificate, key_type)
    assert certificate.issuer == ca_certificate.subject
    assert certificate.subject != certificate.issuer
    certificate.verify_directly_issued_by(ca_certificate)

    constraints = extension(certificate, x509.BasicConstraints)
    assert constraints.critical is True
    assert constraints.value.ca is False

    usage = extension(certificate, x509.KeyUsage)
    assert usage.critical is True
    assert usage.value == LEAF_KEY_USAGE

    eku = extension(certificate, x509.ExtendedKeyUsage)
    assert eku.critical is False
    assert list(eku.value) == [PURPOSES[purpose]]

    san = extension(certificate, x509.SubjectAlternativeName)
    assert san.critical is False  # the subject is not empty
    assert list(san.value) == list(names)

    aki = extension(certificate, x509.AuthorityKeyIdentifier)
    assert aki.critical is False
    assert aki.value.key_identifier == extension(ca_certificate, x509.SubjectKeyIdentifier).value.digest

    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=valid_days)


def common_name(certificate: x509.Certificate) -> str:
    return str(certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# -- certificates made by hand ------------------------------------------------


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def build_certificate(
    subject: str,
    public_key: object,
    issuer: str,
    issuer_key: object,
    extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
    *,
    valid_days: int = 30,
) -> x509.Certificate:
    """A certificate with exactly ``extensions`` ((value, critical) pairs), nothing added."""
    now = datetime.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(name(issuer))
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )
    for value, critical in extensions:
        builder = builder.add_extension(value, critical=critical)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)  # type: ignore[arg-type]


def ca_extensions(
    public_key: object, *, critical_constraints: bool = True
) -> list[tuple[x509.ExtensionType, bool]]:
    return [
        (x509.BasicConstraints(ca=True, path_length=None), critical_constraints),
        (CA_KEY_USAGE, True),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),  # type: ignore[arg-type]
    ]


def server_extensions(
    public_key: object, issuer_public_key: object, *, with_aki: bool = True
) -> list[tuple[x509.ExtensionType, bool]]:
    import ipaddress

    extensions: list[tuple[x509.ExtensionType, bool]] = [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (LEAF_KEY_USAGE, True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        ),
        (x509.SubjectKeyIdentifier.from_public_key(public_key), False),  # type: ignore[arg-type]
    ]
    if with_aki:
        extensions.append(
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), False)  # type: ignore[arg-type]
        )
    return extensions


# -- talking to a server -------------------------------------------------------


def get_over_tls(context: ssl.SSLContext, port: int, *, server_hostname: str = "localhost") -> str:
    """One ``GET /`` over a raw TLS socket (Connection: close); the whole response, bounded."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            chunks = []
            for _ in range(100):  # bounded: the answer is a few hundred bytes
                chunk = tls.recv(4096)
                if not chunk:
                    break
                chunks.append(chunk)
    return b"".join(chunks).decode()


def strict_client_context(
    ca_file: object, cert_file: object = None, key_file: object = None
) -> ssl.SSLContext:
    """A client context with Python 3.13's default strictness, on any Python."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    context.load_verify_locations(cafile=os.fspath(ca_file))  # type: ignore[arg-type]
    if cert_file is not None:
        context.load_cert_chain(os.fspath(cert_file), os.fspath(key_file), password=b"")  # type: ignore[arg-type]
    return context


def wait_until(condition: Callable[[], bool], *, timeout: float = 5.0, interval: float = 0.02) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def lab_threads() -> list[str]:
    """Names of the lab server's threads still alive in this process."""
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("mtls-lab")]


def environment_without(*names: str, **extra: str) -> dict[str, str]:
    """A copy of os.environ for a subprocess, without ``names``, plus ``extra``."""
    environment = {key: value for key, value in os.environ.items() if key not in names}
    environment.update(extra)
    return environment
