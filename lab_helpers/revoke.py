"""``python -m lab_helpers revoke``: add a certificate to the lab's certificate revocation list."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from .errors import LabError
from .files import LabPaths, load_certificate, load_certificate_authority, load_crl, save_crl
from .pki import CertificateAuthority

__all__ = ["revoke_certificate", "RevocationResult", "issuing_authority"]


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


def issuing_authority(paths: LabPaths, certificate: x509.Certificate) -> CertificateAuthority:
    """The lab CA (root or intermediate) that signed ``certificate``: only it may revoke it."""
    candidates = [(paths.intermediate_cert, paths.intermediate_key), (paths.ca_cert, paths.ca_key)]
    for cert_path, key_path in candidates:
        if not cert_path.exists():
            continue
        ca = load_certificate_authority(cert_path, key_path)
        try:
            certificate.verify_directly_issued_by(ca.certificate)
        except Exception:  # another issuer: ValueError (name), InvalidSignature, TypeError (key type)
            continue
        return ca
    raise LabError(
        f"No CA in {paths.directory} issued this certificate (its issuer is {certificate.issuer.rfc4514_string()}). "
        "Revoke it with the lab folder of the CA that signed it."
    )


def revoke_certificate(
    directory: str | os.PathLike[str] | None,
    cert_file: str | os.PathLike[str],
    *,
    crl_path: str | os.PathLike[str] | None = None,
) -> RevocationResult:
    """Add ``cert_file`` to the CRL (``ca.crl`` by default), keeping every earlier entry."""
    paths = LabPaths.in_dir(directory, create=False)
    certificate = load_certificate(cert_file)
    ca = issuing_authority(paths, certificate)
    target = Path(crl_path) if crl_path else paths.crl
    previous = load_crl(target) if target.exists() else None
    if previous is not None and previous.issuer != ca.certificate.subject:
        raise LabError(
            f"{target} was issued by {previous.issuer.rfc4514_string()}, not by the CA that issued this "
            "certificate. Use one CRL per issuing CA: pass --crl with another file name."
        )
    crl = ca.create_crl([certificate], previous=previous)
    save_crl(crl, target)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return RevocationResult(target, certificate.serial_number, number, len(list(crl)))
