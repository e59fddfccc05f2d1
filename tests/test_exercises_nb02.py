"""The checks of notebook 02's exercises: CA certificates built by hand, right and wrong field by field."""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lab_helpers import CertificateAuthority, check, save_private_key

UTC = datetime.timezone.utc
FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


@pytest.fixture(autouse=True)
def not_strict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    monkeypatch.chdir(tmp_path)


def key_usage(*on: str) -> x509.KeyUsage:
    return x509.KeyUsage(**{flag: flag in on for flag in FLAGS})


def build_ca(
    key: ec.EllipticCurvePrivateKey | None = None,
    *,
    path_length: int | None = 1,
    days: int = 3650,
    skew: datetime.timedelta = datetime.timedelta(minutes=5),
    usage: x509.KeyUsage | None = None,
    constraints_critical: bool = True,
    usage_critical: bool = True,
    with_ski: bool = True,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA of exercise 2.1 (by default), with any one field changed."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "decade-ca")])
    not_before = datetime.datetime.now(UTC) - skew
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=constraints_critical)
        .add_extension(usage or key_usage("key_cert_sign", "crl_sign"), critical=usage_critical)
    )
    if with_ski:
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        builder = builder.add_extension(ski, critical=False).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    return builder.sign(key, hashes.SHA256()), key


# -- 2.1 a CA for ten years, one level below -------------------------------------


def test_2_1_not_attempted() -> None:
    assert check.exercise_02_1(None, None).status == "not attempted yet"


def test_2_1_passes_with_the_ca_of_the_exercise() -> None:
    result = check.exercise_02_1(*build_ca())
    assert result.passed, result
    assert "below a second intermediate, the path length constraint refuses" in str(result)


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"path_length": None}, "the path length is None, not 1"),
        ({"path_length": 0}, "the path length is 0, not 1"),
        ({"days": 365}, "valid for 365 days, not ten years"),
        ({"skew": datetime.timedelta(0)}, "start 5 minutes before now"),
        ({"skew": -datetime.timedelta(hours=9)}, "it starts in the future"),
        ({"constraints_critical": False}, "BasicConstraints is not critical"),
        ({"usage_critical": False}, "KeyUsage is not critical"),
        ({"usage": key_usage("key_cert_sign")}, "KeyUsage lacks crl_sign"),
        (
            {"usage": key_usage("key_cert_sign", "crl_sign", "digital_signature")},
            "KeyUsage also allows digital_signature",
        ),
        ({"with_ski": False}, "SubjectKeyIdentifier is missing"),
    ],
)
def test_2_1_names_each_wrong_field(change: dict, missing: str) -> None:
    result = check.exercise_02_1(*build_ca(**change))
    assert not result.passed
    assert missing in str(result)
    failed = [text for ok, text in result.points if not ok]
    assert len(failed) == 1, failed  # only the field that was changed is reported


def test_2_1_step_8s_builder_with_the_lab_cas_identifiers_name_and_serial_is_named() -> None:
    """The learner copied step 8's builder and changed only the key, the path length and the validity.

    The SKI and AKI were still step 7's (the lab CA's key), the serial step 3's and the name lab-ca:
    every line used to say ✓.
    """
    lab_key = ec.generate_private_key(ec.SECP256R1())
    lab_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab-ca")])
    lab_ski = x509.SubjectKeyIdentifier.from_public_key(lab_key.public_key())
    lab_aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(lab_ski)
    serial = x509.random_serial_number()
    start = datetime.datetime.now(UTC) - datetime.timedelta(minutes=5)

    def builder(
        public_key: ec.EllipticCurvePublicKey, path_length: int | None, days: int
    ) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(lab_name)
            .issuer_name(lab_name)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
            .add_extension(lab_ski, critical=False)
            .add_extension(lab_aki, critical=False)
        )

    lab_ca_cert = builder(lab_key.public_key(), None, 365).sign(lab_key, hashes.SHA256())
    decade_key = ec.generate_private_key(ec.SECP256R1())
    decade = builder(decade_key.public_key(), 1, 3650).sign(decade_key, hashes.SHA256())

    result = check.exercise_02_1(decade, decade_key, lab_ca_certificate=lab_ca_cert)
    assert not result.passed
    problems = [text for ok, text in result.points if not ok]
    assert any(
        "its SubjectKeyIdentifier belongs to the lab CA's key (step 7's subject_key_id)" in p
        for p in problems
    )
    assert any("its serial number is the lab CA's (step 3's serial)" in p for p in problems)
    assert any("its subject is CN=lab-ca, the lab CA's name" in p for p in problems)
    assert any("the AuthorityKeyIdentifier points to another key" in p for p in problems)
    assert len(problems) == 4, problems
    assert "below a second intermediate" not in str(result)  # the CA is not tried until its fields are right


def test_2_1_a_made_up_subject_key_identifier_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "decade-ca")])
    start = datetime.datetime.now(UTC) - datetime.timedelta(minutes=5)
    made_up = x509.SubjectKeyIdentifier(b"\x01" * 20)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(key_usage("key_cert_sign", "crl_sign"), critical=True)
        .add_extension(made_up, critical=False)
        .sign(key, hashes.SHA256())
    )
    result = check.exercise_02_1(certificate, key)
    assert "its SubjectKeyIdentifier does not identify its key" in str(result)


def test_2_1_passes_beside_the_lab_ca() -> None:
    lab = CertificateAuthority.create_root("lab-ca")
    result = check.exercise_02_1(*build_ca(), lab_ca_certificate=lab.certificate)
    assert result.passed, result


def test_2_1_a_key_of_another_certificate() -> None:
    certificate, _ = build_ca()
    result = check.exercise_02_1(certificate, ec.generate_private_key(ec.SECP256R1()))
    assert not result.passed and "decade_ca_key does not belong to decade_ca_cert" in str(result)


def test_2_1_the_helper_root_lacks_the_path_length() -> None:
    root = CertificateAuthority.create_root(valid_days=3650)
    result = check.exercise_02_1(root.certificate, root.private_key)
    assert not result.passed and "the path length is None, not 1" in str(result)


def test_2_1_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_02_1(*build_ca(path_length=None))


# -- 2.2 a "CA" that may not sign certificates --------------------------------------


def no_sign_ca(
    usage: x509.KeyUsage | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate]:
    certificate, key = build_ca(path_length=None, days=365, usage=usage or key_usage("crl_sign"))
    leaf = CertificateAuthority(certificate, key).issue_server_certificate().certificate
    return certificate, key, leaf


def test_2_2_not_attempted() -> None:
    assert check.exercise_02_2(None, None, None).status == "not attempted yet"


def test_2_2_passes_when_keycertsign_alone_is_missing() -> None:
    result = check.exercise_02_2(*no_sign_ca())
    assert result.passed, result
    assert "keyCertSign alone makes the difference" in str(result)


def test_2_2_a_ca_that_may_sign_is_not_the_exercise() -> None:
    certificate, key = build_ca(path_length=None)
    leaf = CertificateAuthority(certificate, key).issue_server_certificate().certificate
    result = check.exercise_02_2(certificate, key, leaf)
    assert not result.passed and "its KeyUsage still allows keyCertSign" in str(result)


def test_2_2_a_leaf_from_another_ca() -> None:
    certificate, key, _ = no_sign_ca()
    other = CertificateAuthority.create_root().issue_server_certificate().certificate
    result = check.exercise_02_2(certificate, key, other)
    assert not result.passed and "no_sign_leaf was not signed by this CA" in str(result)


def test_2_2_a_leaf_refused_for_another_reason_fails_the_control() -> None:
    certificate, key = build_ca(path_length=None, usage=key_usage("crl_sign"))
    leaf = (
        CertificateAuthority(certificate, key)
        .issue_server_certificate(
            valid_from=datetime.datetime.now(UTC) - datetime.timedelta(days=10), valid_days=1
        )
        .certificate
    )  # expired: refused with keyCertSign or without
    result = check.exercise_02_2(certificate, key, leaf)
    assert not result.passed and "even with keyCertSign on, the leaf is refused" in str(result)


def test_2_2_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    certificate, key = build_ca(path_length=None)
    leaf = CertificateAuthority(certificate, key).issue_server_certificate().certificate
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_02_2(certificate, key, leaf)


# -- 2.3 an encrypted CA key ---------------------------------------------------------


@pytest.fixture
def ca_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_2_3_not_attempted(ca_key: ec.EllipticCurvePrivateKey) -> None:
    assert check.exercise_02_3(None, None, ca_key=ca_key).status == "not attempted yet"


def test_2_3_passes_with_an_encrypted_copy(ca_key: ec.EllipticCurvePrivateKey) -> None:
    path = save_private_key(ca_key, Path(tempfile.mkdtemp()) / "ca.key", password=b"correct horse")
    result = check.exercise_02_3(path, b"correct horse", ca_key=ca_key)
    assert result.passed, result


def test_2_3_an_unencrypted_key_is_refused(tmp_path: Path, ca_key: ec.EllipticCurvePrivateKey) -> None:
    path = save_private_key(ca_key, tmp_path / "ca.key")
    result = check.exercise_02_3(path, b"correct horse", ca_key=ca_key)
    assert not result.passed
    assert "pass password=... to save_private_key" in str(result) and "it loads without a password" in str(
        result
    )


def test_2_3_another_key_or_a_wrong_password(tmp_path: Path, ca_key: ec.EllipticCurvePrivateKey) -> None:
    other = save_private_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / "other.key", password=b"pw")
    assert "it loads, but it is another key than ca_key" in str(
        check.exercise_02_3(other, b"pw", ca_key=ca_key)
    )
    mine = save_private_key(ca_key, tmp_path / "ca.key", password=b"pw")
    wrong = str(check.exercise_02_3(mine, b"not the password", ca_key=ca_key))
    assert "key_password does not open the file" in wrong and "another key" not in wrong
    assert "should be bytes" in str(check.exercise_02_3(mine, "pw", ca_key=ca_key))
    assert "key_password is empty" in str(check.exercise_02_3(mine, b"", ca_key=ca_key))


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_2_3_a_key_readable_by_others(tmp_path: Path, ca_key: ec.EllipticCurvePrivateKey) -> None:
    path = save_private_key(ca_key, tmp_path / "ca.key", password=b"pw")
    path.chmod(0o644)
    result = check.exercise_02_3(path, b"pw", ca_key=ca_key)
    assert not result.passed and "its mode is 644, not 600" in str(result)


def test_2_3_strict_mode_raises(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca_key: ec.EllipticCurvePrivateKey
) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    path = save_private_key(ca_key, tmp_path / "ca.key")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_02_3(path, b"pw", ca_key=ca_key)
