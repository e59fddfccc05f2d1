"""Describe a certificate in words a learner can read (text in a terminal, a table in Jupyter)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .files import load_certificate
from .identity import fingerprint

__all__ = ["describe", "CertificateDescription", "describe_key"]


def describe_key(public_key: object) -> str:
    """``ECDSA P-256``, ``RSA 2048-bit`` or ``Ed25519``."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            public_key.curve.name, public_key.curve.name
        )
        return f"ECDSA {curve}"
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA {public_key.key_size}-bit"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return type(public_key).__name__


#: The labels ``openssl x509 -text`` uses, so the two outputs can be compared.
_SAN_LABELS = {
    x509.DNSName: "DNS",
    x509.IPAddress: "IP Address",
    x509.UniformResourceIdentifier: "URI",
    x509.RFC822Name: "email",
}


_KEY_USAGE_FLAGS = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)


def _key_usage_flag(usage: x509.KeyUsage, name: str) -> bool:
    # cryptography raises for encipher_only/decipher_only unless key_agreement is set.
    try:
        return bool(getattr(usage, name))
    except ValueError:
        return False


def _extension(certificate: x509.Certificate, kind: type) -> x509.Extension | None:
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _critical(extension: x509.Extension) -> str:
    return " (critical)" if extension.critical else ""


def _rows(certificate: x509.Certificate) -> list[tuple[str, str]]:
    rows = [
        ("Subject", certificate.subject.rfc4514_string() or "(empty)"),
        ("Issuer", certificate.issuer.rfc4514_string() or "(empty)"),
        ("Self-signed", "yes" if certificate.subject == certificate.issuer else "no"),
        ("Valid from", certificate.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")),
        ("Valid until", certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")),
        ("Key", describe_key(certificate.public_key())),
        ("Serial", f"{certificate.serial_number:x}"),
        ("Version", f"X.509 v{certificate.version.value + 1}"),
    ]
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is None:
        rows.append(("BasicConstraints", "absent"))
    else:
        value = constraints.value
        text = "CA:TRUE" if value.ca else "CA:FALSE"
        if value.ca and value.path_length is not None:
            text += f", pathlen:{value.path_length}"
        rows.append(("BasicConstraints", text + _critical(constraints)))
    usage = _extension(certificate, x509.KeyUsage)
    if usage is not None:
        flags = [name for name in _KEY_USAGE_FLAGS if _key_usage_flag(usage.value, name)]
        rows.append(("KeyUsage", ", ".join(flags) + _critical(usage)))
    eku = _extension(certificate, x509.ExtendedKeyUsage)
    rows.append(("ExtendedKeyUsage", ", ".join(oid._name for oid in eku.value) if eku else "absent (any purpose)"))
    san = _extension(certificate, x509.SubjectAlternativeName)
    if san is None:
        rows.append(("SubjectAltName", "absent"))
    else:
        names = [f"{_SAN_LABELS.get(type(name), type(name).__name__)}:{name.value}" for name in san.value]
        rows.append(("SubjectAltName", ", ".join(names) + _critical(san)))
    rows.append(("SHA-256 fingerprint", fingerprint(certificate)))
    return rows


@dataclass(frozen=True)
class CertificateDescription:
    """A certificate summary: ``print()`` it for text; Jupyter shows it as a table."""

    rows: tuple[tuple[str, str], ...]

    def __getitem__(self, field: str) -> str:
        return dict(self.rows)[field]

    def __repr__(self) -> str:
        return str(self)  # where HTML is not rendered (a terminal), show the text

    def __str__(self) -> str:
        width = max(len(label) for label, _ in self.rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in self.rows)

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
            f"<td style='text-align:left'><code>{html.escape(value)}</code></td></tr>"
            for label, value in self.rows
        )
        return f"<table>{body}</table>"


def describe(certificate: x509.Certificate | str | os.PathLike[str]) -> CertificateDescription:
    """Summarise a certificate (object or PEM file path): names, validity, key, extensions, fingerprint."""
    if not isinstance(certificate, x509.Certificate):
        certificate = load_certificate(certificate)
    return CertificateDescription(tuple(_rows(certificate)))
