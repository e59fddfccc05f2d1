"""``python -m lab_helpers revoke``: add a certificate to the lab's certificate revocation list."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from .errors import KeyPasswordError, LabError
from .files import LabPaths, load_certificate, load_certificate_authority, load_crl, save_crl
from .pki import CertificateAuthority
from .tolerant import name_text

__all__ = ["RevocationResult", "check_crl_for_clients", "issuing_authority", "revoke_certificate"]


@dataclass(frozen=True)
class RevocationResult:
    crl_path: Path
    serial_number: int
    crl_number: int
    listed: int

    def __str__(self) -> str:
        return (
            f"Revoked serial {self.serial_number:x}. {self.crl_path} (CRL number {self.crl_number}) "
            f"now lists {self.listed} certificate(s). Servers reading it (serve --crl) reject it from now on."
        )


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """``issuer``'s key made ``certificate``'s signature (names aside)."""
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def _lab_cas(paths: LabPaths) -> list[tuple[Path, Path]]:
    """The lab folder's CAs, nearest to the leaves first: the intermediate (if any), then the root."""
    pairs = ((paths.intermediate_cert, paths.intermediate_key), (paths.ca_cert, paths.ca_key))
    return [(cert, key) for cert, key in pairs if cert.exists()]


def _same_name_other_key(what: str, issuer: x509.Name, ca_file: Path) -> LabError:
    return LabError(
        f"{what} names {issuer.rfc4514_string()} as its issuer, as {ca_file.name} is named, but the key of "
        f"{ca_file.name} did not sign it: same name, different key (another CA, perhaps made again under the "
        "same name). Use the lab folder, or the file, of the CA that really signed it."
    )


def issuing_authority(paths: LabPaths, certificate: x509.Certificate) -> CertificateAuthority:
    """The lab CA (root or intermediate) that signed ``certificate``: only it may revoke it."""
    same_name = None
    for cert_path, key_path in _lab_cas(paths):
        ca_certificate = load_certificate(cert_path)
        if certificate.issuer != ca_certificate.subject:
            continue
        if not _signed_by(certificate, ca_certificate):
            same_name = same_name or cert_path
            continue
        try:
            return load_certificate_authority(cert_path, key_path)
        except KeyPasswordError:
            raise LabError(
                f"{key_path} is encrypted, and the command line cannot ask for its password. "
                "Revoke from Python: load_certificate_authority(cert, key, password=...), "
                "then create_crl() and save_crl()."
            ) from None
    if same_name is not None:
        raise _same_name_other_key("This certificate", certificate.issuer, same_name)
    issuer, _ = name_text(certificate, "issuer")
    raise LabError(
        f"No CA in {paths.directory} issued this certificate (its issuer is {issuer}). "
        "Revoke it with the lab folder of the CA that signed it."
    )


def _refuse_a_root(certificate: x509.Certificate, cert_file: str | os.PathLike[str]) -> None:
    if certificate.subject == certificate.issuer and _signed_by(certificate, certificate):
        raise LabError(
            f"{cert_file} is a self-signed root, and its own CRL cannot revoke it: path validation takes "
            "a trust anchor as given (RFC 5280 6.1), and whoever holds its key can sign a new CRL without "
            "it. To stop trusting it, remove it from every trust store (--cacert, load_verify_locations, "
            "the CA bundle). "
            "An intermediate is revoked in its parent's CRL, and only a chain check sees it "
            "(VERIFY_CRL_CHECK_CHAIN, verify_chain(..., revocation='chain'))."
        )


def revoke_certificate(
    directory: str | os.PathLike[str] | None,
    cert_file: str | os.PathLike[str],
    *,
    crl_path: str | os.PathLike[str] | None = None,
) -> RevocationResult:
    """Add ``cert_file`` to the CRL (``ca.crl`` by default), keeping every earlier entry.

    Refused, with nothing written: a self-signed root (no CRL of its own can
    revoke it), a certificate no CA of the folder issued (or one from a CA
    with the same name and another key), a CRL file of another CA, and a
    certificate the CRL lists already.
    """
    paths = LabPaths.in_dir(directory, create=False)
    certificate = load_certificate(cert_file)
    _refuse_a_root(certificate, cert_file)
    ca = issuing_authority(paths, certificate)
    ca_file = next(cert for cert, _ in _lab_cas(paths) if load_certificate(cert) == ca.certificate)
    target = Path(crl_path) if crl_path else paths.crl
    previous = load_crl(target) if target.exists() else None
    if previous is not None:
        if previous.issuer != ca.certificate.subject:
            raise LabError(
                f"{target} was issued by {previous.issuer.rfc4514_string()}, not by the CA that issued this "
                "certificate. Use one CRL per issuing CA: pass --crl with another file name."
            )
        if not previous.is_signature_valid(ca.certificate.public_key()):  # type: ignore[arg-type]
            raise _same_name_other_key(str(target), previous.issuer, ca_file)
        entry = previous.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is not None:
            number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            raise LabError(
                f"Serial {certificate.serial_number:x} is already revoked in {target} (CRL number {number}, "
                f"since {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC). Nothing was changed."
            )
    crl = ca.create_crl([certificate], previous=previous)
    save_crl(crl, target)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return RevocationResult(target, certificate.serial_number, number, len(list(crl)))


def check_crl_for_clients(
    paths: LabPaths, crl_file: str | os.PathLike[str]
) -> x509.CertificateRevocationList:
    """The CRL ``serve --crl`` will enforce, checked: it exists, and the CA that issues the clients signed it.

    A CRL from any other CA would make the server refuse every client
    (``unable to get certificate CRL``), which is a mistake to catch before
    the server starts.
    """
    crl_path = Path(crl_file)
    if not crl_path.exists():
        raise LabError(
            f"{crl_path} does not exist. Make the lab CRL first: `python -m lab_helpers revoke --dir "
            f"{paths.directory} --cert FILE` writes ca.crl with the certificate it revokes."
        )
    crl = load_crl(crl_path)
    cert_path = paths.intermediate_cert if paths.intermediate_cert.exists() else paths.ca_cert
    issuer = load_certificate(cert_path)
    if crl.issuer != issuer.subject:
        raise LabError(
            f"{crl_path} was issued by {crl.issuer.rfc4514_string()}, but the client certificates come from "
            f"{issuer.subject.rfc4514_string()} ({cert_path.name}): with it every client would be refused "
            "(unable to get certificate CRL). Pass the CRL of the CA that issues the client certificates."
        )
    if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
        raise _same_name_other_key(str(crl_path), crl.issuer, cert_path)
    return crl
