"""Read what can be read of a certificate, field by field, when ``cryptography`` refuses part of it.

``x509.load_pem_x509_certificate`` checks the outer structure only. The
subject, the public key and the extensions are parsed later, when they are
first used, and ``certificate.extensions`` parses every extension at once: one
malformed extension (inner ASN.1 cut short, a ``*`` in a name constraint, the
same extension twice) makes all of them unreadable. Certificates like that
exist, and OpenSSL accepts some of them in a handshake.

This module reads each part on its own, so that one bad part is reported by
name and the rest is still shown: extensions are split out of the
to-be-signed bytes with a small DER reader, and each is parsed by
``cryptography`` alone, inside a copy of the certificate that holds only it.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.utils import CryptographyDeprecationWarning

__all__ = [
    "ExtensionReading",
    "extension_label",
    "name_text",
    "parse_problem",
    "read_extensions",
    "read_public_key",
    "unreadable_part",
]

#: Labels for the extensions a TLS certificate commonly carries, as ``openssl x509 -text`` names them
#: (without the X509v3 prefix) and in the course's spelling.
_LABELS = {
    "2.5.29.14": "SubjectKeyIdentifier",
    "2.5.29.15": "KeyUsage",
    "2.5.29.17": "SubjectAltName",
    "2.5.29.18": "IssuerAltName",
    "2.5.29.19": "BasicConstraints",
    "2.5.29.30": "NameConstraints",
    "2.5.29.31": "CRLDistributionPoints",
    "2.5.29.32": "CertificatePolicies",
    "2.5.29.33": "PolicyMappings",
    "2.5.29.35": "AuthorityKeyIdentifier",
    "2.5.29.36": "PolicyConstraints",
    "2.5.29.37": "ExtendedKeyUsage",
    "2.5.29.46": "FreshestCRL",
    "2.5.29.54": "InhibitAnyPolicy",
    "1.3.6.1.5.5.7.1.1": "AuthorityInfoAccess",
    "1.3.6.1.5.5.7.1.11": "SubjectInfoAccess",
    "1.3.6.1.5.5.7.1.24": "TLSFeature",
    "1.3.6.1.4.1.11129.2.4.2": "CT SCTs",
    "1.3.6.1.4.1.11129.2.4.3": "CT Precertificate Poison",
}


def extension_label(oid: x509.ObjectIdentifier) -> str:
    """``SubjectAltName`` for 2.5.29.17; cryptography's name, or the dotted OID, for the others."""
    if oid.dotted_string in _LABELS:
        return _LABELS[oid.dotted_string]
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


_ASN1_KINDS = {
    "ShortData": "the ASN.1 inside is cut short",
    "ExtraData": "bytes follow the value that belong to nothing",
    "UnexpectedTag": "an ASN.1 type where another was expected",
    "InvalidValue": "a value ASN.1 does not allow there",
    "InvalidLength": "an impossible ASN.1 length",
    "IntegerOverflow": "an integer too large for its field",
    "InvalidSetOrdering": "a SET whose elements are out of DER order",
    "EncodedDefault": "a DEFAULT value written out, which DER forbids",
    "OidTooLong": "an object identifier too long to read",
}


def parse_problem(error: BaseException) -> str:
    """A short reason from ``cryptography``'s exception; its ASN.1 parser's dump turned into words."""
    text = str(error).strip() or type(error).__name__
    match = re.match(r"error parsing asn1 value: ParseError \{ kind: (\w+)", text)
    if match:
        kind = match.group(1)
        return f"{_ASN1_KINDS.get(kind, 'malformed ASN.1')} ({kind})"
    return text


@dataclass(frozen=True)
class ExtensionReading:
    """One extension of a certificate: parsed (``extension``), or the reason it could not be (``problem``)."""

    oid: x509.ObjectIdentifier
    critical: bool
    extension: x509.Extension | None
    problem: str | None = None
    occurrences: int = 1  # RFC 5280 4.2: a certificate must not include an extension more than once

    @property
    def label(self) -> str:
        return extension_label(self.oid)

    @property
    def trouble(self) -> str | None:
        """What is wrong with it, in words, or None."""
        reasons = []
        if self.problem is not None:
            reasons.append(f"could not be parsed: {self.problem}")
        if self.occurrences > 1:
            reasons.append(
                f"it appears {self.occurrences} times, and RFC 5280 allows each extension once (verifiers refuse this)"
            )
        return "; ".join(reasons) or None


# -- a little DER, enough to split a certificate into its parts ---------------------


@dataclass(frozen=True)
class _Element:
    tag: int
    start: int  # where the tag is
    body: int  # where the body starts
    end: int  # one past the body

    def raw(self, data: bytes) -> bytes:
        return data[self.start : self.end]


def _element(data: bytes, start: int) -> _Element:
    if start + 2 > len(data):
        raise ValueError("truncated DER")
    tag, first = data[start], data[start + 1]
    if first < 0x80:
        body, length = start + 2, first
    else:
        count = first & 0x7F
        body = start + 2 + count
        length = int.from_bytes(data[start + 2 : body], "big")
    if body + length > len(data):
        raise ValueError("truncated DER")
    return _Element(tag, start, body, body + length)


def _children(data: bytes, parent: _Element) -> list[_Element]:
    children, position = [], parent.body
    while position < parent.end:
        child = _element(data, position)
        children.append(child)
        position = child.end
    return children


def _tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def _oid_text(body: bytes) -> str:
    numbers, value = [], 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    if not numbers:
        return "(empty OID)"
    first = min(numbers[0] // 40, 2)
    return ".".join(str(n) for n in [first, numbers[0] - 40 * first, *numbers[1:]])


def _tbs_parts(certificate: x509.Certificate) -> tuple[bytes, list[_Element], bytes]:
    """(to-be-signed bytes, its top-level elements, the signature algorithm and value after it)."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    outer = _element(der, 0)
    tbs_element, *rest = _children(der, outer)
    tbs = tbs_element.raw(der)
    return tbs, _children(tbs, _element(tbs, 0)), b"".join(part.raw(der) for part in rest)


# -- names ------------------------------------------------------------------------------

_STRING_CODECS = {
    0x0C: "utf-8",
    0x13: "ascii",
    0x16: "ascii",
    0x14: "latin-1",
    0x1E: "utf-16-be",
    0x1C: "utf-32-be",
}
_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
}  # fmt: skip


def _raw_name_text(tbs: bytes, name: _Element) -> str:
    """A Name as RFC 4514 text, read byte by byte: undecodable characters shown as escapes."""
    parts = []
    for rdn in reversed(_children(tbs, name)):
        attributes = []
        for attribute in _children(tbs, rdn):
            kind, value = _children(tbs, attribute)[:2]
            dotted = _oid_text(tbs[kind.body : kind.end])
            codec = _STRING_CODECS.get(value.tag, "latin-1")
            text = tbs[value.body : value.end].decode(codec, errors="backslashreplace")
            attributes.append(f"{_SHORT_NAMES.get(dotted, dotted)}={text}")
        parts.append("+".join(attributes))
    return ",".join(parts)


def name_text(certificate: x509.Certificate, which: Literal["subject", "issuer"]) -> tuple[str, str | None]:
    """(the subject or issuer as RFC 4514 text, None), or (a raw reading of it, why it is not valid)."""
    try:
        return getattr(certificate, which).rfc4514_string(), None
    except ValueError as error:
        problem = parse_problem(error)
    try:
        tbs, parts, _ = _tbs_parts(certificate)
        offset = 1 if parts[0].tag == 0xA0 else 0  # the optional [0] version
        name = parts[offset + (2 if which == "issuer" else 4)]
        return _raw_name_text(tbs, name), problem
    except (ValueError, IndexError):
        return "(unreadable)", problem


def names_equal(certificate: x509.Certificate) -> bool:
    """Subject and issuer are the same name (compared as bytes when they cannot be parsed)."""
    try:
        return certificate.subject == certificate.issuer
    except ValueError:
        tbs, parts, _ = _tbs_parts(certificate)
        offset = 1 if parts[0].tag == 0xA0 else 0
        return parts[offset + 2].raw(tbs) == parts[offset + 4].raw(tbs)


# -- the public key --------------------------------------------------------------------


def read_public_key(certificate: x509.Certificate) -> tuple[object | None, str | None]:
    """(the public key, None), or (None, why it cannot be read, with the algorithm's OID)."""
    try:
        return certificate.public_key(), None
    except (UnsupportedAlgorithm, ValueError) as error:
        oid = certificate.public_key_algorithm_oid
        name = oid.dotted_string if oid._name == "Unknown OID" else f"{oid._name} ({oid.dotted_string})"
        return None, f"a key of algorithm {name}: {parse_problem(error)}"


# -- extensions ----------------------------------------------------------------------------


def read_extensions(certificate: x509.Certificate) -> list[ExtensionReading]:
    """Every extension in the certificate's order: parsed, or with the reason it could not be."""
    try:
        return [
            ExtensionReading(extension.oid, extension.critical, extension)
            for extension in certificate.extensions
        ]
    except (ValueError, x509.DuplicateExtension, UnsupportedAlgorithm):
        pass  # one of them is bad: read them one by one
    tbs, parts, signature = _tbs_parts(certificate)
    block = next((part for part in parts if part.tag == 0xA3), None)
    if block is None:
        return []
    (sequence,) = _children(tbs, block)
    raw = [item.raw(tbs) for item in _children(tbs, sequence)]
    others = b"".join(part.raw(tbs) for part in parts if part.tag != 0xA3)
    readings = []
    for item in raw:
        fields = _children(item, _element(item, 0))
        oid = x509.ObjectIdentifier(_oid_text(item[fields[0].body : fields[0].end]))
        critical = len(fields) == 3 and item[fields[1].body : fields[1].end] != b"\x00"
        alone = _tlv(0x30, _tlv(0x30, others + _tlv(0xA3, _tlv(0x30, item))) + signature)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                extension = x509.load_der_x509_certificate(alone).extensions[0]
            readings.append(ExtensionReading(oid, critical, extension))
        except (ValueError, UnsupportedAlgorithm, IndexError) as error:
            readings.append(ExtensionReading(oid, critical, None, parse_problem(error)))
    counts = Counter(reading.oid for reading in readings)
    return [
        ExtensionReading(r.oid, r.critical, r.extension, r.problem, counts[r.oid]) if counts[r.oid] > 1 else r
        for r in readings
    ]


def unreadable_part(certificate: x509.Certificate) -> str | None:
    """The first part of ``certificate`` that cannot be read, and why; None when every part can be.

    The parts are those a verifier and a server rely on: the subject, the issuer, the public key and every
    extension. A certificate that fails here is malformed, whatever a lenient parser makes of it.
    """
    for which in ("subject", "issuer"):
        text, problem = name_text(certificate, which)  # type: ignore[arg-type]
        if problem is not None:
            return f"its {which} ({text}) is not valid: {problem}"
    _, problem = read_public_key(certificate)
    if problem is not None:
        return f"its public key cannot be read: {problem}"
    for reading in read_extensions(certificate):
        if reading.trouble:
            return f"its {reading.label} extension ({reading.oid.dotted_string}) {reading.trouble}"
    return None
