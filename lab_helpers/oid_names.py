"""Names for the object identifiers the course prints: signature algorithms and ExtendedKeyUsage purposes.

``cryptography`` names an OID only through a private attribute (``oid._name``),
which teaching code should not lean on. These two small tables use the public
OID constants instead, and spell each name the way ``openssl x509 -text``
does, so that the Python output and OpenSSL's can be read side by side. An
OID that is not in a table is shown as its dotted number, as tools show an
OID they do not know.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

__all__ = ["PURPOSE_NAMES", "SIGNATURE_ALGORITHM_NAMES", "purpose_name", "signature_algorithm_name"]

#: ExtendedKeyUsage purposes by their RFC 5280 names (section 4.2.1.12).
PURPOSE_NAMES: dict[x509.ObjectIdentifier, str] = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}

#: Signature algorithms as ``openssl x509 -text`` prints them ("Signature Algorithm: ...").
SIGNATURE_ALGORITHM_NAMES: dict[x509.ObjectIdentifier, str] = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSASSA_PSS: "rsassaPss",
    SignatureAlgorithmOID.ED25519: "ED25519",
    SignatureAlgorithmOID.ED448: "ED448",
}


class _Signed(Protocol):
    @property
    def signature_algorithm_oid(self) -> x509.ObjectIdentifier: ...


def purpose_name(oid: x509.ObjectIdentifier) -> str:
    """``serverAuth``, ``clientAuth``...: an ExtendedKeyUsage purpose by name, or its dotted number."""
    return PURPOSE_NAMES.get(oid, oid.dotted_string)


def signature_algorithm_name(signed: _Signed) -> str:
    """How a certificate, CSR or CRL was signed (``ecdsa-with-SHA256``...), or the algorithm's dotted number."""
    oid = signed.signature_algorithm_oid
    return SIGNATURE_ALGORITHM_NAMES.get(oid, oid.dotted_string)
