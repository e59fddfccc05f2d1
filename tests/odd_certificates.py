"""A corpus of odd certificates: each one loads, and each one is unusual or malformed in its own way.

Most are made with ``cryptography``'s builder and an ``UnrecognizedExtension``
under a known OID, whose bytes are written by hand: the builder copies them
as they are, and the parser later finds what is wrong with them. Two
corruptions the builder refuses (the same extension twice, an unknown
public-key algorithm) are made by editing the to-be-signed bytes and signing
them again, so every certificate here carries a valid signature from its CA
and can be presented in a real handshake.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from lab_helpers import CertificateAuthority, generate_private_key
from lab_helpers.pki import PrivateKey

# -- DER, by hand ---------------------------------------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    """One DER element: tag, definite length, body."""
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def sequence(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def oid(dotted: str) -> bytes:
    numbers = [int(part) for part in dotted.split(".")]
    body = bytearray([40 * numbers[0] + numbers[1]])
    for number in numbers[2:]:
        chunk = [number & 0x7F]
        number >>= 7
        while number:
            chunk.append(0x80 | (number & 0x7F))
            number >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def _element(data: bytes, offset: int) -> tuple[int, int]:
    """(header length, body length) of the DER element at ``offset``."""
    first = data[offset + 1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    return 2 + count, int.from_bytes(data[offset + 2 : offset + 2 + count], "big")


def resign(certificate: x509.Certificate, tbs: bytes, key: PrivateKey) -> x509.Certificate:
    """``certificate`` with its to-be-signed part replaced by ``tbs``, signed again with ``key``."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    header, _ = _element(der, 0)
    tbs_header, tbs_body = _element(der, header)
    algorithm_at = header + tbs_header + tbs_body
    algorithm_header, algorithm_body = _element(der, algorithm_at)
    algorithm = der[algorithm_at : algorithm_at + algorithm_header + algorithm_body]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    elif isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = key.sign(tbs)  # type: ignore[call-arg]
    return x509.load_der_x509_certificate(sequence(tbs, algorithm, tlv(0x03, b"\x00" + signature)))


# -- the corpus -------------------------------------------------------------------

#: OIDs of the same encoded length as the ones they stand in for, replaced after building.
_STAND_IN_SAN = "2.5.29.90"  # 55 1D 5A, replaced by 2.5.29.17 (55 1D 11)


@dataclass(frozen=True)
class OddCertificate:
    """One certificate of the corpus, with the key it was issued for."""

    name: str
    what: str  # what is odd about it, in words
    certificate: x509.Certificate
    private_key: PrivateKey


def _base(
    ca: CertificateAuthority,
    key: PrivateKey,
    common_name: str,
    *,
    omit: tuple[str, ...] = (),
    serial: int | None = None,
) -> x509.CertificateBuilder:
    """A client certificate as the lab CA issues it, without its SAN and the extensions named in ``omit``."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())  # type: ignore[arg-type]
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    usual: dict[str, tuple[x509.ExtensionType, bool]] = {
        "basic-constraints": (x509.BasicConstraints(ca=False, path_length=None), True),
        "key-usage": (x509.KeyUsage(True, False, False, False, False, False, False, False, False), True),
        "eku": (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        "ski": (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),  # type: ignore[arg-type]
        "aki": (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
    }
    for name, (extension, critical) in usual.items():
        if name not in omit:
            builder = builder.add_extension(extension, critical=critical)
    return builder


def _sign(builder: x509.CertificateBuilder, ca: CertificateAuthority) -> x509.Certificate:
    return builder.sign(ca.private_key, hashes.SHA256())  # type: ignore[arg-type]


def _raw(dotted: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(dotted), value)


def _san(*names: x509.GeneralName) -> x509.SubjectAlternativeName:
    return x509.SubjectAlternativeName(list(names))


_URI = x509.UniformResourceIdentifier("spiffe://lab.example/user/odd")
_URI_DER = tlv(0x86, b"spiffe://lab.example/user/odd")


def _with(
    extension: x509.ExtensionType, *, critical: bool = False, san: bool = True, omit: tuple[str, ...] = ()
) -> Callable:
    """A maker: the base certificate (less ``omit``) plus ``extension``, and the usual SAN unless ``san=False``."""

    def make(ca: CertificateAuthority, key: PrivateKey, name: str) -> x509.Certificate:
        builder = _base(ca, key, name, omit=omit).add_extension(extension, critical=critical)
        if san:
            builder = builder.add_extension(_san(_URI), critical=False)
        return _sign(builder, ca)

    return make


def _duplicate_san(ca: CertificateAuthority, key: PrivateKey, name: str) -> x509.Certificate:
    builder = _base(ca, key, name).add_extension(_san(_URI), critical=False)
    builder = builder.add_extension(_raw(_STAND_IN_SAN, sequence(_URI_DER)), critical=False)
    certificate = _sign(builder, ca)
    tbs = certificate.tbs_certificate_bytes.replace(
        oid(_STAND_IN_SAN), oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
    )
    return resign(certificate, tbs, ca.private_key)


def _unknown_key_algorithm(ca: CertificateAuthority, key: PrivateKey, name: str) -> x509.Certificate:
    """The SubjectPublicKeyInfo names an algorithm nobody knows (a private OID of the same length as id-ecPublicKey)."""
    certificate = _sign(_base(ca, key, name).add_extension(_san(_URI), critical=False), ca)
    ec_public_key = oid("1.2.840.10045.2.1")  # 06 07 2A 86 48 CE 3D 02 01
    stand_in = oid("1.2.840.99999.1")  # also 7 bytes long
    assert len(stand_in) == len(ec_public_key)
    return resign(
        certificate, certificate.tbs_certificate_bytes.replace(ec_public_key, stand_in, 1), ca.private_key
    )


def _bad_subject_string(ca: CertificateAuthority, key: PrivateKey, name: str) -> x509.Certificate:
    """A commonName declared UTF8String whose bytes are not UTF-8."""
    placeholder = b"odd-subject-bytes"
    builder = _base(ca, key, placeholder.decode()).add_extension(_san(_URI), critical=False)
    certificate = _sign(builder, ca)
    not_utf8 = b"odd-\xff\xfe-bytes-abcd"
    assert len(not_utf8) == len(placeholder)
    tbs = certificate.tbs_certificate_bytes.replace(placeholder, not_utf8, 1)
    return resign(certificate, tbs, ca.private_key)


def _negative_serial(ca: CertificateAuthority, key: PrivateKey, name: str) -> x509.Certificate:
    builder = _base(ca, key, name, serial=0x7F0102030405).add_extension(_san(_URI), critical=False)
    certificate = _sign(builder, ca)
    tbs = certificate.tbs_certificate_bytes.replace(
        tlv(0x02, bytes.fromhex("7f0102030405")), tlv(0x02, bytes.fromhex("ff0102030405")), 1
    )
    return resign(certificate, tbs, ca.private_key)


def _aki_issuer_without_serial(ca: CertificateAuthority, key: PrivateKey, name: str) -> x509.Certificate:
    """keyIdentifier and authorityCertIssuer (the CA's issuer's name), but no authorityCertSerialNumber."""
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    issuer = tlv(
        0xA1, tlv(0xA4, ca.certificate.issuer.public_bytes())
    )  # [1] GeneralNames { [4] directoryName }
    value = sequence(tlv(0x80, ca_ski), issuer)
    return _with(_raw("2.5.29.35", value), omit=("aki",))(ca, key, name)


_IP_RANGE_NONCONTIGUOUS = tlv(0x87, bytes([10, 0, 0, 0, 255, 0, 255, 0]))  # mask 255.0.255.0: not a prefix

#: name -> (what is odd, maker). Each maker returns a certificate issued for ``key`` by ``ca``.
MAKERS: dict[str, tuple[str, Callable[[CertificateAuthority, PrivateKey, str], x509.Certificate]]] = {
    "san-truncated": (
        "a SubjectAltName whose inner ASN.1 is cut short",
        _with(_raw("2.5.29.17", bytes.fromhex("3010") + _URI_DER[:6]), san=False),
    ),
    "san-twice": ("the SubjectAltName extension twice", _duplicate_san),
    "name-constraints-wildcard": (
        "NameConstraints permitting the DNS name '*.example.com' (a '*' is not allowed there)",
        _with(_raw("2.5.29.30", sequence(tlv(0xA0, sequence(tlv(0x82, b"*.example.com"))))), critical=True),
    ),
    "name-constraints-bad-ip-range": (
        "NameConstraints with an IP range whose mask is not a prefix (10.0.0.0/255.0.255.0)",
        _with(_raw("2.5.29.30", sequence(tlv(0xA0, sequence(_IP_RANGE_NONCONTIGUOUS)))), critical=True),
    ),
    "aki-issuer-without-serial": (
        "an AuthorityKeyIdentifier with an authorityCertIssuer but no serial number",
        _aki_issuer_without_serial,
    ),
    "key-usage-bad-bits": (
        "a KeyUsage BIT STRING that claims 9 unused bits",
        _with(_raw("2.5.29.15", tlv(0x03, b"\x09\x80")), critical=True, omit=("key-usage",)),
    ),
    "basic-constraints-negative-pathlen": (
        "BasicConstraints with a negative path length",
        _with(
            _raw("2.5.29.19", sequence(tlv(0x01, b"\xff"), tlv(0x02, b"\xff"))),
            critical=True,
            omit=("basic-constraints",),
        ),
    ),
    "eku-not-an-oid": (
        "an ExtendedKeyUsage that lists an INTEGER instead of an OID",
        _with(_raw("2.5.29.37", sequence(tlv(0x02, b"\x01"))), omit=("eku",)),
    ),
    "san-ip-three-bytes": (
        "a SubjectAltName IP address three bytes long",
        _with(_raw("2.5.29.17", sequence(tlv(0x87, b"\x7f\x00\x01"), _URI_DER)), san=False),
    ),
    "san-dns-not-ascii": (
        "a SubjectAltName DNS name with bytes that are not ASCII",
        _with(_raw("2.5.29.17", sequence(tlv(0x82, "bücher.example".encode()), _URI_DER)), san=False),
    ),
    "policy-constraints-empty": (
        "PolicyConstraints with neither of its two fields",
        _with(_raw("2.5.29.36", sequence())),
    ),
    "aia-garbage": (
        "an AuthorityInfoAccess whose bytes are not DER at all",
        _with(_raw("1.3.6.1.5.5.7.1.1", b"\x01\x02\x03")),
    ),
    "sct-list-garbage": (
        "a Certificate Transparency SCT list that does not parse",
        _with(_raw("1.3.6.1.4.1.11129.2.4.2", tlv(0x04, b"\x00\x05abc"))),
    ),
    "crl-distribution-points-bad": (
        "CRLDistributionPoints with a reasons field that is not a BIT STRING",
        _with(_raw("2.5.29.31", sequence(sequence(tlv(0x81, b"\x05"))))),
    ),
    "unknown-critical": (
        "a critical extension under a private OID nobody knows",
        _with(_raw("1.3.6.1.4.1.55555.7", tlv(0x05, b"")), critical=True),
    ),
    "trailing-bytes": (
        "a SubjectKeyIdentifier followed by bytes that belong to nothing",
        _with(_raw("2.5.29.14", tlv(0x04, b"\x01" * 20) + b"\x05\x00"), omit=("ski",)),
    ),
    "unknown-key-algorithm": ("a public key of an algorithm nobody knows", _unknown_key_algorithm),
    "subject-not-utf8": ("a commonName declared UTF-8 whose bytes are not", _bad_subject_string),
    "negative-serial": ("a negative serial number", _negative_serial),
}


def odd_certificates(ca: CertificateAuthority, *, key_type: str = "ec") -> list[OddCertificate]:
    """Every certificate of the corpus, issued by ``ca`` for a fresh key each."""
    corpus = []
    for name, (what, make) in MAKERS.items():
        key = generate_private_key(key_type)  # type: ignore[arg-type]
        corpus.append(OddCertificate(name, what, make(ca, key, f"odd-{name}"), key))
    return corpus


__all__ = ["MAKERS", "OddCertificate", "odd_certificates", "oid", "resign", "sequence", "tlv"]
