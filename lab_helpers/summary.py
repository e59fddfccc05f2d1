"""Describe a certificate in words a learner can read (text in a terminal, a table in Jupyter).

Any certificate that loads can be described: a part that cannot be parsed
(a malformed extension, a subject that is not valid UTF-8, a key of an
unknown algorithm) is listed by name with the reason, and the rest is
shown as usual (:mod:`lab_helpers.tolerant` reads the parts one by one).
"""

from __future__ import annotations

import datetime
import html
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import NotPEMError
from .files import _parse_pem, load_certificate
from .identity import fingerprint
from .oid_names import signature_algorithm_name
from .tolerant import ExtensionReading, name_text, names_equal, read_extensions, read_public_key

__all__ = ["CertificateDescription", "creation_profile", "describe", "describe_key"]


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
    x509.DirectoryName: "DirName",
    x509.RegisteredID: "Registered ID",
    x509.OtherName: "othername",
}


_KEY_USAGE_FLAGS = (
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


def _key_usage_flag(usage: x509.KeyUsage, name: str) -> bool:
    # cryptography raises for encipher_only/decipher_only unless key_agreement is set.
    try:
        return bool(getattr(usage, name))
    except ValueError:
        return False


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    return oid.dotted_string if oid._name == "Unknown OID" else oid._name


def _general_name(name: x509.GeneralName) -> str:
    label = _SAN_LABELS.get(type(name), type(name).__name__)
    if isinstance(name, x509.DirectoryName):
        return f"{label}:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"{label}:{_oid_name(name.value)}"
    if isinstance(name, x509.OtherName):
        return f"{label}:{_oid_name(name.type_id)}"
    return f"{label}:{name.value}"


def _names(names: Iterable[x509.GeneralName] | None) -> str:
    return ", ".join(_general_name(name) for name in names or ())


def _hex(data: bytes) -> str:
    return data.hex(":").upper()


def _basic_constraints(value: x509.BasicConstraints) -> str:
    text = "CA:TRUE" if value.ca else "CA:FALSE"
    if value.ca and value.path_length is not None:
        text += f", pathlen:{value.path_length}"
    return text


def _authority_key_identifier(value: x509.AuthorityKeyIdentifier) -> str:
    parts = [f"keyid:{_hex(value.key_identifier)}"] if value.key_identifier is not None else []
    if value.authority_cert_issuer:
        parts.append(f"issuer:{_names(value.authority_cert_issuer)}")
    if value.authority_cert_serial_number is not None:
        parts.append(f"serial:{value.authority_cert_serial_number:x}")
    return ", ".join(parts) or "(empty)"


def _name_constraints(value: x509.NameConstraints) -> str:
    parts = []
    if value.permitted_subtrees:
        parts.append(f"permitted: {_names(value.permitted_subtrees)}")
    if value.excluded_subtrees:
        parts.append(f"excluded: {_names(value.excluded_subtrees)}")
    return "; ".join(parts)


def _distribution_points(value: x509.CRLDistributionPoints | x509.FreshestCRL) -> str:
    return ", ".join(_names(point.full_name) or "(relative name)" for point in value)


def _access(value: x509.AuthorityInformationAccess | x509.SubjectInformationAccess) -> str:
    return ", ".join(
        f"{_oid_name(item.access_method)}: {_general_name(item.access_location)}" for item in value
    )


#: How each kind of extension reads in one line.
_FORMATS: dict[type, Callable[[Any], str]] = {
    x509.BasicConstraints: _basic_constraints,
    x509.KeyUsage: lambda value: ", ".join(name for name in _KEY_USAGE_FLAGS if _key_usage_flag(value, name)),
    x509.ExtendedKeyUsage: lambda value: ", ".join(_oid_name(oid) for oid in value),
    x509.SubjectAlternativeName: _names,
    x509.IssuerAlternativeName: _names,
    x509.SubjectKeyIdentifier: lambda value: _hex(value.digest),
    x509.AuthorityKeyIdentifier: _authority_key_identifier,
    x509.NameConstraints: _name_constraints,
    x509.CRLDistributionPoints: _distribution_points,
    x509.FreshestCRL: _distribution_points,
    x509.AuthorityInformationAccess: _access,
    x509.SubjectInformationAccess: _access,
    x509.CertificatePolicies: lambda value: ", ".join(
        _oid_name(policy.policy_identifier) for policy in value
    ),
    x509.PrecertificateSignedCertificateTimestamps: lambda value: (
        f"{len(value)} signed certificate timestamp(s)"
    ),
    x509.TLSFeature: lambda value: ", ".join(feature.name for feature in value),
    x509.UnrecognizedExtension: lambda value: f"not known to this reader ({len(value.value)} bytes)",
}


def _extension_text(reading: ExtensionReading) -> str:
    """The extension in one line, with its criticality; or why it cannot be read, by name and OID."""
    critical = " (critical)" if reading.critical else ""
    if reading.extension is None:
        return f"could not be parsed: {reading.problem} (OID {reading.oid.dotted_string}{', critical' if reading.critical else ''})"
    value = reading.extension.value
    formatter = _FORMATS.get(type(value))
    try:
        text = formatter(value) if formatter else f"present ({type(value).__name__})"
    except (ValueError, TypeError, AttributeError) as error:  # a value cryptography parsed but cannot render
        text = f"present, could not be shown: {error}"
    if reading.occurrences > 1:
        text += f"; {reading.trouble}"
    return text + critical


#: Rows every description has, in this order, with the text when the extension is absent
#: (None: no row at all). An absent KeyUsage or ExtendedKeyUsage restricts nothing: RFC 5280
#: reads it as "any use" and "any purpose", which is why the row says so.
_FIXED_ROWS: tuple[tuple[type, str, str | None], ...] = (
    (x509.BasicConstraints, "BasicConstraints", "absent"),
    (x509.KeyUsage, "KeyUsage", "absent (any use)"),
    (x509.ExtendedKeyUsage, "ExtendedKeyUsage", "absent (any purpose)"),
    (x509.SubjectAlternativeName, "SubjectAltName", "absent"),
)


def _key_text(certificate: x509.Certificate) -> str:
    key, problem = read_public_key(certificate)
    return describe_key(key) if problem is None else f"could not be parsed: {problem}"


def _serial_text(serial: int) -> str:
    if serial > 0:
        return f"{serial:x}"
    return f"{serial:x} (not valid: RFC 5280 requires a positive serial number)"


def _version_text(certificate: x509.Certificate) -> str:
    try:
        return f"X.509 v{certificate.version.value + 1}"
    except x509.InvalidVersion as error:
        return f"unknown (version field {error.parsed_version}; only v1 to v3 exist)"


def _name_row(certificate: x509.Certificate, which: Literal["subject", "issuer"]) -> str:
    text, problem = name_text(certificate, which)
    text = text or "(empty)"
    return text if problem is None else f"{text} (not valid: {problem})"


def _rows(certificate: x509.Certificate) -> list[tuple[str, str]]:
    rows = [
        ("Subject", _name_row(certificate, "subject")),
        ("Issuer", _name_row(certificate, "issuer")),
        ("Self-signed", "yes" if names_equal(certificate) else "no"),
        ("Valid from", certificate.not_valid_before_utc.strftime("%Y-%m-%d %H:%M UTC")),
        ("Valid until", certificate.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")),
        ("Key", _key_text(certificate)),
        ("Serial", _serial_text(certificate.serial_number)),
        ("Version", _version_text(certificate)),
    ]
    readings = read_extensions(certificate)
    shown: set[int] = set()
    for kind, label, absent in _FIXED_ROWS:
        index = next((i for i, reading in enumerate(readings) if reading.oid == kind.oid), None)  # type: ignore[attr-defined]
        if index is not None:
            rows.append((label, _extension_text(readings[index])))
            shown.add(index)
        elif absent is not None:
            rows.append((label, absent))
    labels = {label for label, _ in rows}
    for index, reading in enumerate(readings):
        if index in shown:
            continue
        label = reading.label
        while label in labels:  # the same extension again: RFC 5280 forbids it, and the reader says so
            label += " (again)"
        labels.add(label)
        rows.append((label, _extension_text(reading)))
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


def describe(certificate: x509.Certificate | bytes | str | os.PathLike[str]) -> CertificateDescription:
    """Summarise a certificate: names, validity, key, every extension, fingerprint.

    Give a certificate object, the path of a PEM or DER file, or the certificate itself
    as PEM text (pasted in a cell) or as PEM or DER bytes.
    """
    if not isinstance(certificate, x509.Certificate):
        certificate = _load_any(certificate)
    return CertificateDescription(tuple(_rows(certificate)))


def _load_any(source: bytes | str | os.PathLike[str]) -> x509.Certificate:
    """A certificate from PEM text, PEM or DER bytes, or a PEM or DER file."""
    if isinstance(source, str) and "-----BEGIN" in source:
        source = source.encode()
    if isinstance(source, bytes):
        data, where = source, "the data given"
    else:
        path = Path(source)
        if not path.is_file():
            return load_certificate(path)  # the lab's clear errors for a missing file or a folder
        data, where = path.read_bytes(), str(path)
    if b"-----BEGIN" not in data and data[:1] == b"\x30":
        try:
            return x509.load_der_x509_certificate(data)
        except ValueError as error:
            raise NotPEMError(
                f"{where} looks like DER but is not a certificate ({error}). Pass a certificate."
            ) from None
    return _parse_pem(data, where, "certificate", x509.load_pem_x509_certificate)


def _extension_summary(certificate: x509.Certificate, kind: type[x509.ExtensionType]) -> str:
    try:
        extension = certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return "absent"
    value = extension.value
    if isinstance(value, x509.BasicConstraints):
        text = _basic_constraints(value)
    elif isinstance(value, x509.KeyUsage):
        text = ", ".join(name for name in _KEY_USAGE_FLAGS if _key_usage_flag(value, name)) or "no flag on"
    else:
        text = "present"
    return text + (", critical" if extension.critical else ", not critical")


def creation_profile(
    certificate: x509.Certificate, *, made_at: datetime.datetime, key_file: str | os.PathLike[str]
) -> dict[str, str]:
    """How a CA certificate and its key file were made, in a few comparable lines.

    Notebook 02 puts its hand-built CA beside the one ``openssl req -x509``
    makes: the key and signature, how many random bits the serial has, when
    validity starts compared with ``made_at`` (an aware datetime: the moment
    the certificate was made), its lifetime, the four extensions a CA needs
    with their criticality ("absent" when missing), and how the key file
    starts and which mode it has. The rows have the same keys for every
    certificate, so two profiles make a table.
    """
    key_path = Path(key_file)
    margin = round((made_at - certificate.not_valid_before_utc).total_seconds() / 60)
    first_line = key_path.read_text(errors="replace").splitlines()[:1] or ["(empty file)"]
    return {
        "version": certificate.version.name,
        "key": _key_text(certificate),
        "signature": signature_algorithm_name(certificate),
        "serial": f"{certificate.serial_number.bit_length()} bits",
        "starts": f"{margin} min before it was made" if margin > 0 else "when it was made (no margin)",
        "lifetime": f"{(certificate.not_valid_after_utc - certificate.not_valid_before_utc).days} days",
        "BasicConstraints": _extension_summary(certificate, x509.BasicConstraints),
        "KeyUsage": _extension_summary(certificate, x509.KeyUsage),
        "SubjectKeyIdentifier": _extension_summary(certificate, x509.SubjectKeyIdentifier),
        "AuthorityKeyIdentifier": _extension_summary(certificate, x509.AuthorityKeyIdentifier),
        "key file": f"{first_line[0].strip('- ')}, mode {stat.S_IMODE(key_path.stat().st_mode):o}",
    }
