"""The lab folder: where it is, how files are written (atomic, 0600 keys) and loaded (clear errors)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from platforms import POSIX

from lab_helpers import (
    CertificateAuthority,
    KeyMismatchError,
    KeyPasswordError,
    LabFileMissingError,
    LabPaths,
    NotPEMError,
    create_seed_pki,
    ensure_certificate_authority,
    ensure_seed_pki,
    generate_private_key,
    key_matches_certificate,
    lab_dir,
    load_certificate,
    load_certificate_authority,
    load_csr,
    load_private_key,
    save_certificate,
    save_csr,
    save_private_key,
    write_atomic,
)

SEED_FILES = {
    "ca.crt",
    "ca.key",
    "server.csr",
    "server.crt",
    "server.key",
    "client.csr",
    "client.crt",
    "client.key",
}
PRIVATE = {"ca.key", "server.key", "client.key"}


def mode(path: Path) -> int:
    if not POSIX:
        pytest.skip("file modes are POSIX: on Windows a key is protected by its folder's access list")
    return stat.S_IMODE(path.stat().st_mode)


def contents(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


# -- where the lab folder is ------------------------------------------------------------


def test_lab_dir_honours_mtls_lab_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path / "from-env"))
    monkeypatch.chdir(tmp_path)
    assert LabPaths.in_dir().directory == tmp_path / "from-env"
    assert (tmp_path / "from-env").is_dir()
    assert not (tmp_path / "lab-files").exists()


def test_lab_dir_defaults_to_lab_files_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MTLS_LAB_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert lab_dir() == tmp_path / "lab-files"
    assert LabPaths.in_dir().ca_cert == tmp_path / "lab-files" / "ca.crt"


def test_an_explicit_directory_wins_over_mtls_lab_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path / "from-env"))
    assert LabPaths.in_dir(tmp_path / "explicit").directory == tmp_path / "explicit"
    monkeypatch.chdir(tmp_path)
    assert lab_dir("relative") == tmp_path / "relative"  # made absolute against the working directory


# -- writing ------------------------------------------------------------------------------------


def test_seed_pki_writes_eight_files_with_private_keys_0600(lab_pki: LabPaths) -> None:
    assert {path.name for path in lab_pki.directory.iterdir()} == SEED_FILES
    for path in lab_pki.all():
        assert mode(path) == (0o600 if path.name in PRIVATE else 0o644), path.name


def test_private_key_is_0600_and_certificate_0644_right_after_write(tmp_path: Path) -> None:
    ca = CertificateAuthority.create_root()
    key_file = save_private_key(ca.private_key, tmp_path / "ca.key")
    assert mode(key_file) == 0o600
    cert_file = save_certificate(ca.certificate, tmp_path / "ca.crt")
    assert mode(cert_file) == 0o644
    csr_file = save_csr(ca.issue_client_certificate().csr, tmp_path / "client.csr")
    assert mode(csr_file) == 0o644


def test_a_private_key_replacing_a_public_file_becomes_0600(tmp_path: Path) -> None:
    target = tmp_path / "server.key"
    write_atomic(target, b"was public\n")
    assert mode(target) == 0o644
    save_private_key(generate_private_key(), target)
    assert mode(target) == 0o600


def test_write_atomic_replaces_the_file_and_leaves_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "ca.crt"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert contents(tmp_path) == {"ca.crt": b"new"}


@pytest.mark.parametrize("private", [False, True], ids=["public", "private"])
def test_write_atomic_leaves_the_target_untouched_when_the_rename_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, private: bool
) -> None:
    target = tmp_path / "ca.key"
    target.write_bytes(b"old")

    def failing_replace(source: object, destination: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new", private=private)
    assert contents(tmp_path) == {"ca.key": b"old"}  # no temporary file left behind


def test_write_atomic_leaves_no_temporary_file_when_the_write_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_atomic(tmp_path / "new.crt", b"data")
    assert list(tmp_path.iterdir()) == []


# -- loading: the happy path and each mistake ---------------------------------------------------


def test_load_round_trips_what_was_saved(lab_pki: LabPaths) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    client = load_certificate(lab_pki.client_cert)
    client.verify_directly_issued_by(ca.certificate)
    assert key_matches_certificate(load_private_key(lab_pki.client_key), client)
    assert load_csr(lab_pki.client_csr).public_key() == client.public_key()


@pytest.mark.parametrize("loader", [load_certificate, load_private_key, load_csr], ids=lambda f: f.__name__)
def test_a_missing_file_says_how_to_create_it(tmp_path: Path, loader) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere" / "client.crt"
    with pytest.raises(LabFileMissingError) as caught:
        loader(missing)
    message = str(caught.value)
    assert str(missing) in message and "does not exist" in message
    assert "python -m lab_helpers pki" in message
    assert isinstance(caught.value, FileNotFoundError)  # plain code can catch it too


def _der_certificate(lab_pki: LabPaths) -> bytes:
    return load_certificate(lab_pki.ca_cert).public_bytes(serialization.Encoding.DER)


NOT_PEM = [
    pytest.param(
        lambda paths: bytes([0xA5]) + os.urandom(255), "does not contain a PEM block", id="random-bytes"
    ),
    pytest.param(_der_certificate, "binary DER", id="der"),
    pytest.param(
        lambda paths: paths.ca_key.read_bytes(),
        "holds a PEM PRIVATE KEY, not a certificate",
        id="key-as-cert",
    ),
    pytest.param(
        lambda paths: paths.client_csr.read_bytes(), "holds a PEM CERTIFICATE REQUEST", id="csr-as-cert"
    ),
    pytest.param(
        lambda paths: b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        "damaged",
        id="damaged-pem",
    ),
]


@pytest.mark.parametrize(("make", "hint"), NOT_PEM)
def test_load_certificate_explains_what_the_file_is_instead(
    tmp_path: Path, lab_pki: LabPaths, make, hint: str
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "given.crt"
    path.write_bytes(make(lab_pki))
    with pytest.raises(NotPEMError, match=hint) as caught:
        load_certificate(path)
    assert str(path) in str(caught.value)


def test_load_private_key_refuses_a_certificate(lab_pki: LabPaths) -> None:
    with pytest.raises(NotPEMError, match="holds a PEM CERTIFICATE, not a private key"):
        load_private_key(lab_pki.client_cert)


def test_load_private_key_calls_a_damaged_key_damaged_not_a_password_problem(tmp_path: Path) -> None:
    path = tmp_path / "damaged.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(NotPEMError, match="damaged"):
        load_private_key(path)


def test_load_csr_refuses_a_certificate(lab_pki: LabPaths) -> None:
    with pytest.raises(NotPEMError, match="not a certificate signing request"):
        load_csr(lab_pki.client_cert)


@pytest.fixture
def encrypted_key(tmp_path: Path) -> tuple[Path, object]:
    key = generate_private_key()
    path = save_private_key(key, tmp_path / "encrypted.key", password=b"correct horse")
    return path, key


def test_an_encrypted_key_loads_with_its_password(encrypted_key: tuple[Path, object]) -> None:
    path, key = encrypted_key
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert mode(path) == 0o600
    loaded = load_private_key(path, password=b"correct horse")
    assert loaded.private_numbers() == key.private_numbers()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("password", "words"),
    [
        ("secret", "must be bytes, e.g. b'secret', not str"),
        (b"", "empty, which would save the key unencrypted"),
    ],
)
def test_a_password_that_is_text_or_empty_is_refused_before_anything_is_written(
    tmp_path: Path, password: object, words: str
) -> None:
    """Text reached cryptography as 'Password must be 1 or more bytes'; b'' wrote the key unencrypted, silently."""
    target = tmp_path / "ca.key"
    with pytest.raises(KeyPasswordError, match=words):
        save_private_key(generate_private_key(), target, password=password)  # type: ignore[arg-type]
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_ensure_certificate_authority_keeps_a_usable_ca_and_replaces_a_key_type_it_cannot_use(
    tmp_path: Path,
) -> None:
    ed25519_ca = CertificateAuthority.create_root(key_type="ed25519")
    save_private_key(ed25519_ca.private_key, tmp_path / "ca.key")
    save_certificate(ed25519_ca.certificate, tmp_path / "ca.crt")
    assert ensure_certificate_authority(tmp_path).certificate == ed25519_ca.certificate  # any key type: kept
    replaced = ensure_certificate_authority(tmp_path, key_types=("ec", "rsa"))
    assert replaced.certificate != ed25519_ca.certificate
    assert load_certificate(tmp_path / "ca.crt") == replaced.certificate  # saved in its place
    assert ensure_certificate_authority(tmp_path, key_types=("ec", "rsa")).certificate == replaced.certificate


def test_an_encrypted_key_without_its_password_is_refused(encrypted_key: tuple[Path, object]) -> None:
    path, _ = encrypted_key
    with pytest.raises(KeyPasswordError, match="is encrypted: pass its password"):
        load_private_key(path)


def test_an_encrypted_key_with_a_wrong_password_is_refused(encrypted_key: tuple[Path, object]) -> None:
    path, _ = encrypted_key
    wrong = "could not be decrypted: wrong password, or the file is damaged"
    with pytest.raises(KeyPasswordError, match=wrong):
        load_private_key(path, password=b"battery staple")


def test_a_password_for_a_plain_key_is_refused(lab_pki: LabPaths) -> None:
    with pytest.raises(KeyPasswordError, match="not encrypted"):
        load_private_key(lab_pki.client_key, password=b"secret")


def test_load_certificate_authority_checks_the_pair(lab_pki: LabPaths) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    assert key_matches_certificate(ca.private_key, ca.certificate)


def test_load_certificate_authority_refuses_a_key_from_another_pair(lab_pki: LabPaths) -> None:
    with pytest.raises(KeyMismatchError, match="KEY_VALUES_MISMATCH"):
        load_certificate_authority(lab_pki.ca_cert, lab_pki.server_key)


# -- ensure_seed_pki: reuse what is consistent, recreate what is not ------------------------------


def test_ensure_seed_pki_reuses_consistent_files(tmp_path: Path) -> None:
    paths = ensure_seed_pki(tmp_path)
    before = contents(tmp_path)
    assert set(before) == SEED_FILES
    assert ensure_seed_pki(tmp_path) == paths
    assert contents(tmp_path) == before


def test_ensure_seed_pki_uses_mtls_lab_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(tmp_path))
    assert ensure_seed_pki().directory == tmp_path
    assert set(contents(tmp_path)) == SEED_FILES


CLIENT_FILES = {"client.key", "client.csr", "client.crt"}
SERVER_FILES = {"server.key", "server.csr", "server.crt"}


def _changed(before: dict, after: dict) -> set[str]:
    return {name for name in SEED_FILES if after[name] != before[name]}


def test_ensure_seed_pki_reissues_only_the_leaf_whose_file_is_missing(tmp_path: Path) -> None:
    ensure_seed_pki(tmp_path)
    before = contents(tmp_path)
    (tmp_path / "client.key").unlink()
    paths = ensure_seed_pki(tmp_path)
    after = contents(tmp_path)
    assert set(after) == SEED_FILES
    assert _changed(before, after) == CLIENT_FILES  # the CA and the server are kept
    _assert_consistent(paths)


def test_ensure_seed_pki_keeps_the_ca_of_notebook_02(tmp_path: Path) -> None:
    ca = CertificateAuthority.create_root()
    save_certificate(ca.certificate, tmp_path / "ca.crt")
    save_private_key(ca.private_key, tmp_path / "ca.key")
    paths = ensure_seed_pki(tmp_path)
    assert load_certificate(paths.ca_cert) == ca.certificate
    _assert_consistent(paths)


def test_ensure_seed_pki_replaces_a_ca_whose_key_does_not_match(tmp_path: Path) -> None:
    paths = ensure_seed_pki(tmp_path)
    paths.ca_key.write_bytes(paths.server_key.read_bytes())
    before = contents(tmp_path)
    ensure_seed_pki(tmp_path)
    assert _changed(before, contents(tmp_path)) == SEED_FILES  # a new CA, so new leaves too
    _assert_consistent(paths)


def test_ensure_seed_pki_reissues_a_server_certificate_from_another_issuer(tmp_path: Path) -> None:
    paths = ensure_seed_pki(tmp_path)
    # Another root with the same name "lab-ca" signs the existing server key's CSR:
    # names and key match, only the signature gives it away.
    impostor = CertificateAuthority.create_root()
    save_certificate(impostor.sign_csr(load_csr(paths.server_csr), profile="server"), paths.server_cert)
    before = contents(tmp_path)
    ensure_seed_pki(tmp_path)
    assert _changed(before, contents(tmp_path)) == SERVER_FILES
    _assert_consistent(paths)


def test_ensure_seed_pki_reissues_a_certificate_that_expires_within_a_day(tmp_path: Path) -> None:
    paths = ensure_seed_pki(tmp_path)
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    save_certificate(
        ca.sign_csr(load_csr(paths.client_csr), profile="client", valid_days=0.5), paths.client_cert
    )
    before = contents(tmp_path)
    ensure_seed_pki(tmp_path)
    assert _changed(before, contents(tmp_path)) == CLIENT_FILES
    _assert_consistent(paths)


def test_ensure_seed_pki_reissues_when_a_key_belongs_to_another_certificate(tmp_path: Path) -> None:
    paths = ensure_seed_pki(tmp_path)
    paths.server_key.write_bytes(paths.client_key.read_bytes())
    before = contents(tmp_path)
    ensure_seed_pki(tmp_path)
    assert _changed(before, contents(tmp_path)) == SERVER_FILES
    _assert_consistent(paths)


def _assert_consistent(paths: LabPaths) -> None:
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    for cert_file, key_file in ((paths.server_cert, paths.server_key), (paths.client_cert, paths.client_key)):
        certificate = load_certificate(cert_file)
        certificate.verify_directly_issued_by(ca.certificate)
        assert key_matches_certificate(load_private_key(key_file), certificate)
    for path in paths.all():
        assert mode(path) == (0o600 if path.name in PRIVATE else 0o644), path.name


def test_create_seed_pki_for_each_key_type(lab_pki_of_key_type: LabPaths) -> None:
    _assert_consistent(lab_pki_of_key_type)


def test_create_seed_pki_leaves_the_folder_alone_on_a_bad_key_type(tmp_path: Path) -> None:
    from lab_helpers import LabError

    with pytest.raises(LabError, match="Unknown key type"):
        create_seed_pki(tmp_path, key_type="dsa")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


# -- a wrong password that passes the padding check by chance ------------------------------------------


def _pkcs8_encrypted_quickly(key: object, password: bytes) -> bytes:
    """PKCS#8 EncryptedPrivateKeyInfo as the lab writes it (PBES2, AES-256-CBC), with one PBKDF2 round.

    The same structure as ``BestAvailableEncryption`` makes; only the round count is low, so that
    trying thousands of wrong passwords takes a fraction of a second.
    """
    import base64
    import os as _os

    from cryptography.hazmat.primitives import hashes, padding, serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
    from odd_certificates import oid, sequence, tlv

    salt, iv = _os.urandom(16), _os.urandom(16)
    secret = PBKDF2HMAC(hashes.SHA256(), 32, salt, 1).derive(password)
    plain = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    hmac_sha256 = sequence(oid("1.2.840.113549.2.9"), tlv(0x05, b""))
    one_round = tlv(0x02, b"\x01")
    pbkdf2 = sequence(oid("1.2.840.113549.1.5.12"), sequence(tlv(0x04, salt), one_round, hmac_sha256))
    aes = sequence(oid("2.16.840.1.101.3.4.1.42"), tlv(0x04, iv))
    algorithm = sequence(oid("1.2.840.113549.1.5.13"), sequence(pbkdf2, aes))
    der = sequence(algorithm, tlv(0x04, ciphertext))
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    begin, end = b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n", b"\n-----END ENCRYPTED PRIVATE KEY-----\n"
    return begin + b"\n".join(lines) + end


def _traditional_encrypted(key: object, password: bytes) -> bytes:
    """OpenSSL's older encrypted PEM (Proc-Type: 4,ENCRYPTED), as `openssl genrsa -aes256` wrote it."""
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(password),
    )


def _lucky_wrong_password(data: bytes) -> bytes:
    """A wrong password whose decryption passes the padding check, found in a bounded search.

    About 1 wrong password in 256 ends in valid padding (measured here: 159 in 40,000);
    cryptography then fails on the garbage with a parsing error that says nothing of
    passwords. 20,000 tries miss it with a probability below 10^-30.
    """
    from cryptography.hazmat.primitives import serialization

    for attempt in range(20_000):
        guess = f"guess-{attempt}".encode()
        try:
            serialization.load_pem_private_key(data, password=guess)
        except ValueError as error:
            if "password" not in str(error).lower() and "decrypt" not in str(error).lower():
                return guess
    raise AssertionError("no wrong password passed the padding check in 20,000 tries")


@pytest.mark.parametrize(
    "encrypt", [_pkcs8_encrypted_quickly, _traditional_encrypted], ids=["pkcs8", "traditional"]
)
def test_a_wrong_password_that_passes_the_padding_check_is_still_a_password_error(
    encrypt: Callable[[object, bytes], bytes], tmp_path: Path
) -> None:
    key = generate_private_key()
    path = tmp_path / "encrypted.key"
    path.write_bytes(encrypt(key, b"correct horse"))
    loaded = load_private_key(path, password=b"correct horse")
    assert loaded.private_numbers() == key.private_numbers()  # type: ignore[attr-defined]
    lucky = _lucky_wrong_password(path.read_bytes())
    with pytest.raises(KeyPasswordError, match="wrong password, or the file is damaged") as caught:
        load_private_key(path, password=lucky)
    assert not isinstance(caught.value, NotPEMError) and "Check the password first" in str(caught.value)


def test_a_damaged_encrypted_key_with_its_password_is_reported_as_password_or_damage(
    encrypted_key: tuple[Path, object],
) -> None:
    path, _ = encrypted_key
    lines = path.read_bytes().splitlines(keepends=True)
    middle = len(lines) // 2
    lines[middle] = lines[middle][:10] + (b"A" if lines[middle][10:11] != b"A" else b"B") + lines[middle][11:]
    path.write_bytes(b"".join(lines))
    with pytest.raises(KeyPasswordError, match="wrong password, or the file is damaged"):
        load_private_key(path, password=b"correct horse")


def test_a_damaged_plain_key_is_still_called_damaged_not_a_password_problem(tmp_path: Path) -> None:
    """The twin: without encryption there is no password to blame."""
    path = tmp_path / "damaged.key"
    cut_short = b"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg"  # the start of a P-256 key, then nothing
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + cut_short + b"\n-----END PRIVATE KEY-----\n")
    with pytest.raises(NotPEMError, match="damaged"):
        load_private_key(path)
