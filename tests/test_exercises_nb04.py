"""The checks of notebook 04's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from exercise_checks import NOT_ATTEMPTED, missing, strict

from lab_helpers import CertificateAuthority, check, create_csr, generate_private_key, write_atomic

pytestmark = pytest.mark.usefixtures("lenient_checks")

BOB_NAMES = ["spiffe://lab.example/user/bob", "bob@lab.example"]


# -- 4.1 Two names for bob ---------------------------------------------------------


def test_4_1_not_attempted(lab_ca: CertificateAuthority) -> None:
    assert check.exercise_04_1(None, None, ca=lab_ca).status == NOT_ATTEMPTED


def test_4_1_bob_with_a_uri_and_an_email_passes_and_is_greeted(lab_ca: CertificateAuthority) -> None:
    key = generate_private_key()
    certificate = lab_ca.sign_csr(create_csr(key, "bob"), profile="client", names=BOB_NAMES)
    result = check.exercise_04_1(certificate, key, ca=lab_ca)
    assert result.passed, result
    assert any("Hello, bob" in text for ok, text in result.points if ok)


def test_4_1_an_issued_certificate_is_accepted_as_it_is(lab_ca: CertificateAuthority) -> None:
    issued = lab_ca.issue_client_certificate("bob", names=BOB_NAMES)
    assert check.exercise_04_1(issued, None, ca=lab_ca).passed


def test_4_1_without_the_email_says_so(lab_ca: CertificateAuthority) -> None:
    issued = lab_ca.issue_client_certificate("bob")  # URI only
    result = check.exercise_04_1(issued.certificate, issued.private_key, ca=lab_ca)
    assert not result.passed
    assert any("add bob@lab.example" in text for text in missing(result))


def test_4_1_alices_key_for_bob_is_named(lab_ca: CertificateAuthority) -> None:
    """The learner signed bob's CSR with client_key, alice's key: it used to pass."""
    alice = lab_ca.issue_client_certificate("alice")
    bob = lab_ca.sign_csr(create_csr(alice.private_key, "bob"), profile="client", names=BOB_NAMES)
    result = check.exercise_04_1(bob, alice.private_key, ca=lab_ca, alice_certificate=alice.certificate)
    assert missing(result) == [
        "bob_key is alice's key (client_key): give bob a key of his own, generated as in step 3"
    ]
    own = generate_private_key()
    bob = lab_ca.sign_csr(create_csr(own, "bob"), profile="client", names=BOB_NAMES)
    assert check.exercise_04_1(bob, own, ca=lab_ca, alice_certificate=alice.certificate).passed


def test_4_1_a_mailto_email_is_named(lab_ca: CertificateAuthority) -> None:
    """An RFC822Name written as a mailto: URI; sign_csr refuses it in names=, a hand-written CSR can still ask."""
    key = generate_private_key()
    san = x509.SubjectAlternativeName(
        [x509.UniformResourceIdentifier(BOB_NAMES[0]), x509.RFC822Name("mailto:bob@lab.example")]
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bob")]))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    result = check.exercise_04_1(lab_ca.sign_csr(csr, profile="client"), key, ca=lab_ca)
    assert missing(result) == [
        "its SAN emails are ['mailto:bob@lab.example']: an email entry is the bare address, bob@lab.example, "
        "without mailto:"
    ]


def test_4_1_another_ca_is_not_the_lab_ca(lab_ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create_root("other-ca").issue_client_certificate("bob", names=BOB_NAMES)
    result = check.exercise_04_1(other, None, ca=lab_ca)
    assert any("the lab CA did not sign it" in text for text in missing(result))
    assert any("not tried" in text for text in missing(result))


def test_4_1_a_key_that_is_not_a_key(lab_ca: CertificateAuthority) -> None:
    issued = lab_ca.issue_client_certificate("bob", names=BOB_NAMES)
    result = check.exercise_04_1(issued.certificate, "bob.key", ca=lab_ca)
    assert missing(result) == [
        "bob_key should be the certificate's private key (an EC, RSA or Ed25519 private key), not str"
    ]


def test_4_1_strict_mode_raises(lab_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = lab_ca.issue_client_certificate("alice")
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_04_1(issued, None, ca=lab_ca)


# -- 4.2 A certificate the server turns away -------------------------------------------


def test_4_2_not_attempted(lab_ca: CertificateAuthority) -> None:
    assert check.exercise_04_2(None, None, ca=lab_ca).status == NOT_ATTEMPTED


def test_4_2_a_server_certificate_is_refused_for_its_purpose(lab_ca: CertificateAuthority) -> None:
    key = generate_private_key()
    certificate = lab_ca.sign_csr(create_csr(key, "alice"), profile="server")
    result = check.exercise_04_2(certificate, key, ca=lab_ca)
    assert result.passed, result


def test_4_2_a_client_certificate_is_accepted_so_it_fails(lab_ca: CertificateAuthority) -> None:
    issued = lab_ca.issue_client_certificate("alice")
    result = check.exercise_04_2(issued.certificate, issued.private_key, ca=lab_ca)
    assert not result.passed
    assert "a real mTLS server accepted it" in missing(result)
    assert any("includes clientAuth" in text for text in missing(result))


def test_4_2_another_ca_would_be_refused_for_the_wrong_reason(lab_ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create_root("other-ca").issue_server_certificate("alice")
    result = check.exercise_04_2(other, None, ca=lab_ca)
    assert any("refuse it for its CA, not its purpose" in text for text in missing(result))


def test_4_2_strict_mode_raises(lab_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = lab_ca.issue_client_certificate("alice")
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_04_2(issued, None, ca=lab_ca)


# -- 4.3 A certificate without names ------------------------------------------------------


def test_4_3_not_attempted(lab_ca: CertificateAuthority) -> None:
    assert check.exercise_04_3(None, None, None, ca=lab_ca).status == NOT_ATTEMPTED


def test_4_3_names_empty_leaves_the_san_out_and_the_validator_refuses(lab_ca: CertificateAuthority) -> None:
    key = generate_private_key()
    certificate = lab_ca.sign_csr(create_csr(key, "alice"), profile="client", names=[])
    result = check.exercise_04_3(certificate, key, False, ca=lab_ca)
    assert result.passed, result
    assert any("greeted alice" in text for ok, text in result.points if ok)
    assert "two verifiers, two answers" in str(
        result
    )  # the lesson comes with the answer, not before the exercise


def test_4_3_a_certificate_with_a_san_and_a_wrong_verdict(lab_ca: CertificateAuthority) -> None:
    issued = lab_ca.issue_client_certificate("alice")
    result = check.exercise_04_3(issued, None, False, ca=lab_ca)
    assert "it still has a SubjectAlternativeName: pass names=[] to ca.sign_csr" in missing(result)
    assert any("the path validator accepts it" in text for text in missing(result))


def test_4_3_the_verdict_must_be_a_bool(lab_ca: CertificateAuthority) -> None:
    key = generate_private_key()
    certificate = lab_ca.sign_csr(create_csr(key, "alice"), profile="client", names=[])
    result = check.exercise_04_3(certificate, key, "no", ca=lab_ca)
    assert any("should be True or False" in text for text in missing(result))


def test_4_3_strict_mode_raises(lab_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = lab_ca.issue_client_certificate("alice")
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_04_3(issued, None, True, ca=lab_ca)


# -- 4.4 A bundle with its CA ---------------------------------------------------------------


def _bundle(
    lab_ca: CertificateAuthority, path: Path, *, password: bytes | None, cas: bool, private: bool = True
):
    issued = lab_ca.issue_client_certificate("alice")
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    data = pkcs12.serialize_key_and_certificates(
        b"alice", issued.private_key, issued.certificate, [lab_ca.certificate] if cas else None, encryption
    )
    return issued, write_atomic(path, data, private=private)


def test_4_4_not_attempted(lab_ca: CertificateAuthority) -> None:
    result = check.exercise_04_4(
        None, None, client_certificate=lab_ca.certificate, ca_certificate=lab_ca.certificate
    )
    assert result.status == NOT_ATTEMPTED


def test_4_4_an_encrypted_bundle_with_the_ca_passes(lab_ca: CertificateAuthority, tmp_path: Path) -> None:
    issued, path = _bundle(lab_ca, tmp_path / "alice.p12", password=b"secret", cas=True)
    result = check.exercise_04_4(
        path, b"secret", client_certificate=issued.certificate, ca_certificate=lab_ca.certificate
    )
    assert result.passed, result


def test_4_4_without_the_ca_or_a_password(lab_ca: CertificateAuthority, tmp_path: Path) -> None:
    issued, path = _bundle(lab_ca, tmp_path / "alice.p12", password=None, cas=False, private=False)
    result = check.exercise_04_4(
        path, b"secret", client_certificate=issued.certificate, ca_certificate=lab_ca.certificate
    )
    assert not result.passed
    assert (
        "it opens without a password: encrypt it with serialization.BestAvailableEncryption(password)"
        in missing(result)
    )
    assert "it does not carry the lab CA certificate: pass cas=[ca.certificate]" in missing(result)
    if os.name == "posix":  # file modes exist there only
        assert any("so others can read it" in text for text in missing(result))


def test_4_4_a_wrong_password(lab_ca: CertificateAuthority, tmp_path: Path) -> None:
    issued, path = _bundle(lab_ca, tmp_path / "alice.p12", password=b"secret", cas=True)
    result = check.exercise_04_4(
        path, b"guess", client_certificate=issued.certificate, ca_certificate=lab_ca.certificate
    )
    assert any("does not open with alice_p12_password" in text for text in missing(result))


def test_4_4_a_missing_file(lab_ca: CertificateAuthority, tmp_path: Path) -> None:
    result = check.exercise_04_4(
        tmp_path / "nowhere.p12",
        b"secret",
        client_certificate=lab_ca.certificate,
        ca_certificate=lab_ca.certificate,
    )
    assert any("does not exist" in text for text in missing(result))


def test_4_4_strict_mode_raises(
    lab_ca: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued, path = _bundle(lab_ca, tmp_path / "alice.p12", password=b"secret", cas=False)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_04_4(
            path, b"secret", client_certificate=issued.certificate, ca_certificate=lab_ca.certificate
        )
