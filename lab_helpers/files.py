"""The lab folder: where certificates and keys live, written safely.

All lab files go to one folder: ``$MTLS_LAB_DIR`` when it is set, else
``lab-files/`` in the current working directory (a notebook's kernel runs in
the notebook's folder, so that is ``notebooks/lab-files/``, which git ignores).
Each learner on a shared JupyterHub has a home of their own, so their lab
files never meet.

Files keep the article's names (``ca.crt``, ``server.key``...) so that
its ``openssl`` and ``curl`` commands work on them unchanged. Every write is
atomic (a temporary file in the same folder, then ``os.replace``), and private
keys are created with mode 0600 from their first byte, never chmod-ed after.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .errors import (
    KeyMismatchError,
    KeyPasswordError,
    LabError,
    LabFileMissingError,
    NotPEMError,
    UnreadableCertificateError,
)
from .pki import (
    CertificateAuthority,
    IssuedCertificate,
    KeyType,
    PrivateKey,
    key_matches_certificate,
)
from .tolerant import read_public_key

__all__ = [
    "LAB_DIR_VARIABLE",
    "LabPaths",
    "create_seed_pki",
    "ensure_certificate_authority",
    "ensure_seed_pki",
    "lab_dir",
    "load_certificate",
    "load_certificate_authority",
    "load_certificates",
    "load_crl",
    "load_csr",
    "load_private_key",
    "save_certificate",
    "save_chain",
    "save_crl",
    "save_csr",
    "save_private_key",
    "write_atomic",
]

LAB_DIR_VARIABLE = "MTLS_LAB_DIR"
_T = TypeVar("_T")


def lab_dir(directory: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """The lab folder: ``directory``, else ``$MTLS_LAB_DIR``, else ``./lab-files``.

    It is created when missing, unless ``create=False`` (for commands that
    only read lab files: a typo in a folder name should not make a new folder).
    """
    chosen = directory or os.environ.get(LAB_DIR_VARIABLE) or "lab-files"
    path = Path(chosen).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise LabError(
            f"{path} is a file, not a folder. Name a folder for the lab files (it is created when missing)."
        )
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as error:  # a file where a parent folder should be, no permission, a read-only disk
            raise LabError(
                f"Cannot create the lab folder {path} ({error.strerror}). Choose a folder you can write in."
            ) from None
    elif not path.is_dir():
        raise LabFileMissingError(
            f"The lab folder {path} does not exist. Create the lab files first: "
            f"`python -m lab_helpers pki --dir {path}`."
        )
    return path


@dataclass(frozen=True)
class LabPaths:
    """The article's eight file names inside one lab folder."""

    directory: Path

    @classmethod
    def in_dir(cls, directory: str | os.PathLike[str] | None = None, *, create: bool = True) -> LabPaths:
        return cls(lab_dir(directory, create=create))

    ca_cert = property(lambda self: self.directory / "ca.crt")
    ca_key = property(lambda self: self.directory / "ca.key")
    server_csr = property(lambda self: self.directory / "server.csr")
    server_cert = property(lambda self: self.directory / "server.crt")
    server_key = property(lambda self: self.directory / "server.key")
    client_csr = property(lambda self: self.directory / "client.csr")
    client_cert = property(lambda self: self.directory / "client.crt")
    client_key = property(lambda self: self.directory / "client.key")

    # With an intermediate CA (``pki --intermediate``, notebook 09):
    intermediate_cert = property(lambda self: self.directory / "intermediate.crt")
    intermediate_key = property(lambda self: self.directory / "intermediate.key")
    server_chain = property(lambda self: self.directory / "server-chain.crt")
    client_chain = property(lambda self: self.directory / "client-chain.crt")
    # The lab CRL (``revoke``, notebook 10):
    crl = property(lambda self: self.directory / "ca.crl")

    def all(self) -> list[Path]:
        """The article's eight files."""
        return [
            self.ca_cert,
            self.ca_key,
            self.server_csr,
            self.server_cert,
            self.server_key,
            self.client_csr,
            self.client_cert,
            self.client_key,
        ]

    def intermediate_files(self) -> list[Path]:
        """The four files an intermediate CA adds."""
        return [self.intermediate_cert, self.intermediate_key, self.server_chain, self.client_chain]

    @property
    def server_cert_to_send(self) -> Path:
        """What the server presents: its chain file when there is an intermediate, else its certificate."""
        return self.server_chain if self.server_chain.exists() else self.server_cert

    @property
    def client_cert_to_send(self) -> Path:
        return self.client_chain if self.client_chain.exists() else self.client_cert


def write_atomic(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The bytes go to a temporary file in the same folder (created 0600, so a
    private key is never readable by others, not even for a moment), are
    flushed to disk, and then replace ``path`` in one rename. On any error the
    temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file with O_EXCL and mode 0600.
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if not private:
            os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def save_certificate(certificate: x509.Certificate, path: str | os.PathLike[str]) -> Path:
    return write_atomic(path, certificate.public_bytes(serialization.Encoding.PEM))


def save_csr(csr: x509.CertificateSigningRequest, path: str | os.PathLike[str]) -> Path:
    return write_atomic(path, csr.public_bytes(serialization.Encoding.PEM))


def save_private_key(
    private_key: PrivateKey, path: str | os.PathLike[str], *, password: bytes | None = None
) -> Path:
    """Save a key as PKCS#8 PEM, mode 0600; encrypted when ``password`` is given.

    The password is checked before anything is written: text instead of bytes
    would reach ``cryptography`` as a confusing ``ValueError``, and an empty
    ``b""`` would silently write the key unencrypted.
    """
    if password is not None:
        if not isinstance(password, bytes):
            raise KeyPasswordError(
                f"The password must be bytes, e.g. b'secret', not {type(password).__name__}: "
                "write it with a b in front, or encode text with .encode()."
            )
        if not password:
            raise KeyPasswordError(
                "The password is empty, which would save the key unencrypted: give a real password, "
                "or leave password out (None) to save it unencrypted on purpose."
            )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    data = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return write_atomic(path, data, private=True)


def save_chain(certificates: Iterable[x509.Certificate], path: str | os.PathLike[str]) -> Path:
    """Several certificates in one PEM file, in order: leaf first, then its intermediates."""
    return write_atomic(path, b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates))


def save_crl(crl: x509.CertificateRevocationList, path: str | os.PathLike[str]) -> Path:
    return write_atomic(path, crl.public_bytes(serialization.Encoding.PEM))


def load_crl(path: str | os.PathLike[str]) -> x509.CertificateRevocationList:
    """Load a CRL in PEM or DER (``openssl ca -gencrl`` writes PEM; some CAs publish DER)."""
    data = _read(path, "CRL")
    if b"-----BEGIN X509 CRL-----" not in data:
        try:
            return x509.load_der_x509_crl(data)
        except ValueError:
            pass  # not DER either: the PEM parser below says what the file is instead
    return _parse_pem(data, str(path), "CRL", x509.load_pem_x509_crl)


def load_certificates(path: str | os.PathLike[str]) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a chain file, or a bundle of CAs)."""
    data = _read(path, "certificates")
    _parse_pem(
        data, str(path), "certificate", x509.load_pem_x509_certificate
    )  # a clear error if there is none
    return x509.load_pem_x509_certificates(data)


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    file = Path(path)
    try:
        return file.read_bytes()
    except IsADirectoryError:
        raise LabError(f"{file} is a folder, not a file: pass the {what} file itself.") from None
    except PermissionError:
        raise LabError(f"{file} cannot be read (permission denied): check its owner and mode.") from None
    except FileNotFoundError:
        if what == "CRL":
            how = f"`python -m lab_helpers revoke --dir {file.parent} --cert FILE`, or ca.create_crl() and save_crl()"
        else:
            how = f"run the notebook that makes them, or `python -m lab_helpers pki --dir {file.parent}`"
        raise LabFileMissingError(
            f"{file} does not exist, so the {what} cannot be loaded. Create it first: {how}."
        ) from None


_PEM_LABELS = {
    "certificate": (b"CERTIFICATE",),
    "private key": (b"PRIVATE KEY", b"EC PRIVATE KEY", b"RSA PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"),
    "certificate signing request": (b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST"),
    "CRL": (b"X509 CRL",),
}


def _parse_pem(data: bytes, source: str, what: str, parse: Callable[[bytes], _T]) -> _T:
    """Parse PEM, or explain what the data is instead (DER, another PEM type, not PEM at all)."""
    labels = _PEM_LABELS[what]
    if not any(b"-----BEGIN " + label + b"-----" in data for label in labels):
        if b"-----BEGIN " in data:
            found = data.split(b"-----BEGIN ", 1)[1].split(b"-----", 1)[0].decode(errors="replace")
            hint = f"it holds a PEM {found}, not a {what}. Check which file you passed."
        elif data[:1] == b"\x30":
            hint = (
                "it looks like binary DER. Convert it to PEM, e.g. "
                "`openssl x509 -inform der -in FILE -out FILE.pem` for a certificate."
            )
        else:
            hint = f"it does not contain a PEM block (-----BEGIN ...-----). Pass the {what} file itself."
        raise NotPEMError(f"{source} is not a PEM {what}: {hint}")
    try:
        return parse(data)
    except (ValueError, TypeError) as error:
        if what == "private key" and ("password" in str(error).lower() or "decrypt" in str(error).lower()):
            raise
        raise NotPEMError(
            f"{source} has a PEM {what} marker but its contents are damaged ({error}). Recreate the file."
        ) from None


def load_certificate(path: str | os.PathLike[str]) -> x509.Certificate:
    """Load a PEM certificate, with a clear error for a missing or non-PEM file."""
    return _parse_pem(_read(path, "certificate"), str(path), "certificate", x509.load_pem_x509_certificate)


def load_csr(path: str | os.PathLike[str]) -> x509.CertificateSigningRequest:
    return _parse_pem(_read(path, "CSR"), str(path), "certificate signing request", x509.load_pem_x509_csr)


def _is_encrypted(data: bytes) -> bool:
    """An encrypted key in PEM: PKCS#8 (what the lab writes) or OpenSSL's traditional Proc-Type form."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_private_key(path: str | os.PathLike[str], *, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key; an encrypted key needs its ``password`` (never prompted for).

    With a password, any failure to decrypt or parse an encrypted key is reported
    as a password error. A wrong password is caught by the padding check of the
    last cipher block only most of the time: about 1 time in 256 the padding is
    valid by chance, and what fails is the parsing of the garbage that comes out.
    That is still a wrong password far more often than a damaged file, and a learner
    told to recreate a key whose password they mistyped would lose the key.
    """
    data = _read(path, "private key")
    encrypted = _is_encrypted(data)
    try:
        key = _parse_pem(
            data,
            str(path),
            "private key",
            lambda blob: serialization.load_pem_private_key(blob, password=password),
        )
    except TypeError as error:
        if password is None:
            raise KeyPasswordError(
                f"{path} is encrypted: pass its password, e.g. load_private_key(path, password=b'...')."
            ) from error
        raise KeyPasswordError(
            f"{path} is not encrypted: call load_private_key without a password."
        ) from error
    except ValueError as error:
        if encrypted and password is not None:
            raise KeyPasswordError(
                f"{path} could not be decrypted: wrong password, or the file is damaged. Check the password "
                "first (a key is not lost because its password was mistyped); if it is right, restore the "
                "file from a copy or make a new key."
            ) from error
        if isinstance(error, NotPEMError):
            raise
        raise KeyPasswordError(
            f"The password for {path} is wrong (the key could not be decrypted). Check it, or recreate the key."
        ) from error
    return key  # type: ignore[return-value]


def check_key_matches(
    private_key: PrivateKey, certificate: x509.Certificate, *, key_path: object, cert_path: object
) -> None:
    _, problem = read_public_key(certificate)
    if problem is not None:
        raise UnreadableCertificateError(
            f"The public key in {cert_path} cannot be read ({problem}), so it cannot be paired with "
            f"{key_path}. Use a certificate with an ECDSA, RSA or Ed25519 key."
        )
    if not key_matches_certificate(private_key, certificate):
        raise KeyMismatchError(
            f"{key_path} is not the private key of {cert_path} (their public keys differ; "
            "OpenSSL says KEY_VALUES_MISMATCH). Use the key the certificate was issued for, "
            "or issue a new certificate for this key."
        )


def load_certificate_authority(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str], *, password: bytes | None = None
) -> CertificateAuthority:
    """Load ``ca.crt`` and ``ca.key`` and check that they belong together and form a CA."""
    certificate = load_certificate(cert_path)
    key = load_private_key(key_path, password=password)
    check_key_matches(key, certificate, key_path=key_path, cert_path=cert_path)
    return CertificateAuthority(certificate, key)


def _save_leaf(issued: IssuedCertificate, csr_path: Path, cert_path: Path, key_path: Path) -> None:
    save_private_key(issued.private_key, key_path)
    save_csr(issued.csr, csr_path)
    save_certificate(issued.certificate, cert_path)


def create_seed_pki(
    directory: str | os.PathLike[str] | None = None,
    *,
    key_type: KeyType = "ec",
    client_name: str = "alice",
    intermediate: bool = False,
) -> LabPaths:
    """Create the article's eight files: a CA, a server certificate and a client certificate.

    With ``intermediate=True`` the root signs an intermediate CA (path length
    0), which issues both leaves; ``intermediate.crt``/``.key`` and the chain
    files ``server-chain.crt`` and ``client-chain.crt`` (leaf + intermediate,
    what each side must send) are written too.

    Everything is generated in memory first, so a failure (say, a bad key
    type) leaves the folder as it was; each file is then written atomically.
    """
    paths = LabPaths.in_dir(directory)
    root = CertificateAuthority.create_root(key_type=key_type)
    issuing = root.create_intermediate(key_type=key_type) if intermediate else root
    server = issuing.issue_server_certificate(key_type=key_type)
    client = issuing.issue_client_certificate(client_name, key_type=key_type)
    save_private_key(root.private_key, paths.ca_key)
    save_certificate(root.certificate, paths.ca_cert)
    _save_leaf(server, paths.server_csr, paths.server_cert, paths.server_key)
    _save_leaf(client, paths.client_csr, paths.client_cert, paths.client_key)
    if intermediate:
        save_private_key(issuing.private_key, paths.intermediate_key)
        save_certificate(issuing.certificate, paths.intermediate_cert)
        write_atomic(paths.server_chain, server.chain_pem)
        write_atomic(paths.client_chain, client.chain_pem)
    else:
        for stale in paths.intermediate_files():  # from an earlier --intermediate run: they no longer match
            stale.unlink(missing_ok=True)
    return paths


def ensure_seed_pki(directory: str | os.PathLike[str] | None = None, *, key_type: KeyType = "ec") -> LabPaths:
    """Keep the lab files that are usable; make only what is missing or broken.

    The CA is reused when it is usable (see :func:`ensure_certificate_authority`).
    The server and client certificates are reused when their key matches, the
    lab CA signed them and they stay valid for a day more; otherwise they are
    issued again. This is how a notebook run on its own, without the notebooks
    before it, gets what it needs, and how a re-run keeps what a learner made.
    """
    paths = LabPaths.in_dir(directory)
    ca = ensure_certificate_authority(paths.directory, key_type=key_type)
    if not _leaf_is_usable(ca, paths.server_cert, paths.server_key, paths.server_csr):
        _save_leaf(
            ca.issue_server_certificate(key_type=key_type),
            paths.server_csr,
            paths.server_cert,
            paths.server_key,
        )
        paths.server_chain.unlink(missing_ok=True)  # it held the old leaf
    if not _leaf_is_usable(ca, paths.client_cert, paths.client_key, paths.client_csr):
        _save_leaf(
            ca.issue_client_certificate(key_type=key_type),
            paths.client_csr,
            paths.client_cert,
            paths.client_key,
        )
        paths.client_chain.unlink(missing_ok=True)
    return paths


def ensure_certificate_authority(
    directory: str | os.PathLike[str] | None = None,
    *,
    key_type: KeyType = "ec",
    key_types: Collection[KeyType] | None = None,
) -> CertificateAuthority:
    """The lab CA from ``ca.crt``/``ca.key``, or a new one saved there when they are missing or unusable.

    Unusable means: unreadable, not a CA, key not matching, expiring within
    a day, or (when ``key_types`` is given) a key of another type than those
    listed: ``cryptography``'s path validator, which notebooks 03 and 04 use,
    accepts RSA and ECDSA keys only, so they pass ``key_types=("ec", "rsa")``.
    A new CA gets a ``key_type`` key. Notebooks 03 and 04 call this so that
    they keep the CA notebook 02 made, and still run on their own.
    """
    paths = LabPaths.in_dir(directory)
    try:
        ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
        if ca.certificate.not_valid_after_utc > _tomorrow() and (
            key_types is None or _key_type(ca.private_key) in key_types
        ):
            return ca
    except LabError:
        pass
    ca = CertificateAuthority.create_root(key_type=key_type)
    save_private_key(ca.private_key, paths.ca_key)
    save_certificate(ca.certificate, paths.ca_cert)
    return ca


def _key_type(private_key: PrivateKey) -> KeyType:
    if isinstance(private_key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    return "ec"


def _tomorrow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)


def _leaf_is_usable(ca: CertificateAuthority, cert_path: Path, key_path: Path, csr_path: Path) -> bool:
    """The leaf exists with its CSR, its key matches, the CA signed it, and it is valid for a day more."""
    if not csr_path.exists():
        return False
    try:
        certificate = load_certificate(cert_path)
        check_key_matches(load_private_key(key_path), certificate, key_path=key_path, cert_path=cert_path)
        certificate.verify_directly_issued_by(ca.certificate)
    except (LabError, ValueError, TypeError, InvalidSignature):
        return False
    return certificate.not_valid_after_utc > _tomorrow()
