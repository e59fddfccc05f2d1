"""Checks for notebook 02 (create a CA): CA certificates built by hand, read field by field.

The checks read the certificate the way a strict verifier does, name each
field that is missing or wrong, and then try the CA for real: they issue
certificates with it and ask ``cryptography``'s path validator (the one
notebook 03 introduces) for its verdict.
"""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..chains import ChainVerdict, verify_chain
from ..errors import KeyPasswordError, LabError
from ..files import load_private_key
from ..pki import CertificateAuthority, PrivateKey, key_matches_certificate
from . import Checker, CheckResult, not_attempted
from .evidence import extension, public_key_der, signed_by

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

_FLAGS = (
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
_TEN_YEARS = (datetime.timedelta(days=3650), datetime.timedelta(days=3653))  # 365 * 10, up to three leap days
_LAB_CA_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lab-ca")])  # notebook 02's name, step 2


def _flags_on(usage: x509.KeyUsage) -> set[str]:
    on = set()
    for flag in _FLAGS:
        try:
            if getattr(usage, flag):
                on.add(flag)
        except ValueError:  # encipher_only/decipher_only raise unless key_agreement is set
            pass
    return on


def exercise_1(
    certificate: x509.Certificate | None,
    private_key: PrivateKey | None,
    *,
    lab_ca_certificate: x509.Certificate | None = None,
    now: datetime.datetime | None = None,
) -> CheckResult:
    """2.1 A CA for ten years, one level below: path length 1, validity from 5 minutes ago, strict extensions.

    Each field is checked on its own and named when it is missing or wrong.
    A new CA is a new identity: its SubjectKeyIdentifier must identify its own
    key, and its name and serial must not be those of the lab CA
    (``lab_ca_certificate``, the notebook's ``ca_cert``), which is what
    copying step 8's builder unchanged gives. Then the CA is used: it signs an
    intermediate that signs a server certificate (path length 1 allows that
    one level), and a second intermediate below the first must be refused.
    """
    c = Checker(
        "2.1",
        "A CA for ten years, one level below",
        hint="Step 5 says what a path length limits, and step 4 how a validity period is set. And a new CA is "
        "a new identity: which values of steps 1 to 8 belong to lab-ca alone?",
    )
    if not_attempted(certificate, private_key):
        return c.not_attempted()
    if not isinstance(certificate, x509.Certificate):
        return c.fail(
            "decade_ca_cert should be an x509.Certificate, the result of CertificateBuilder().sign(...)"
        )
    if private_key is None or not hasattr(private_key, "public_key"):
        return c.fail("decade_ca_key should be the private key you signed decade_ca_cert with")
    now = now or datetime.datetime.now(datetime.timezone.utc)

    c.require(
        key_matches_certificate(private_key, certificate),
        "decade_ca_key is the key of decade_ca_cert",
        "decade_ca_key does not belong to decade_ca_cert: put decade_ca_key.public_key() in the builder",
    )
    c.require(
        certificate.subject == certificate.issuer and signed_by(certificate, certificate),
        "it is self-signed: issuer = subject, and its own key verifies the signature",
        "it is not self-signed: use the same name for subject_name and issuer_name, and sign with decade_ca_key",
    )

    constraints = extension(certificate, x509.BasicConstraints)
    if constraints is None:
        c.require(
            False,
            "",
            "BasicConstraints is missing: add x509.BasicConstraints(ca=True, path_length=1), critical=True",
        )
    else:
        c.require(
            constraints.critical,
            "BasicConstraints is critical",
            "BasicConstraints is not critical: critical=True",
        )
        c.require(
            constraints.value.ca, "BasicConstraints says CA:TRUE", "BasicConstraints says CA:FALSE: ca=True"
        )
        c.require(
            constraints.value.path_length == 1,
            "the path length is 1: one level of intermediates may sit below",
            f"the path length is {constraints.value.path_length}, not 1: path_length=1",
        )

    usage = extension(certificate, x509.KeyUsage)
    if usage is None:
        c.require(False, "", "KeyUsage is missing: add the KeyUsage of step 6, critical=True")
    else:
        c.require(usage.critical, "KeyUsage is critical", "KeyUsage is not critical: critical=True")
        on = _flags_on(usage.value)
        for flag in ("key_cert_sign", "crl_sign"):
            c.require(flag in on, f"KeyUsage allows {flag}", f"KeyUsage lacks {flag}: {flag}=True")
        others = sorted(on - {"key_cert_sign", "crl_sign"})
        c.require(
            not others,
            "no other KeyUsage flag is on",
            f"KeyUsage also allows {', '.join(others)}: a CA key needs only key_cert_sign and crl_sign",
        )

    ski = extension(certificate, x509.SubjectKeyIdentifier)
    if ski is None:
        c.require(
            False, "", "SubjectKeyIdentifier is missing: x509.SubjectKeyIdentifier.from_public_key(...)"
        )
    else:  # step 7's method, RFC 5280's SHA-1 of the key: what a verifier would compute to match the AKIs below
        own = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest  # type: ignore[arg-type]
        lab_ski = (
            extension(lab_ca_certificate, x509.SubjectKeyIdentifier)
            if lab_ca_certificate is not None
            else None
        )
        if ski.value.digest == own:
            c.require(True, "its SubjectKeyIdentifier identifies its own key", "")
        elif lab_ski is not None and ski.value.digest == lab_ski.value.digest:
            c.require(
                False,
                "",
                "its SubjectKeyIdentifier belongs to the lab CA's key (step 7's subject_key_id): "
                "compute it from decade_ca_key.public_key()",
            )
        else:
            c.require(
                False,
                "",
                "its SubjectKeyIdentifier does not identify its key: "
                "x509.SubjectKeyIdentifier.from_public_key(decade_ca_key.public_key())",
            )
        aki = extension(certificate, x509.AuthorityKeyIdentifier)
        if aki is not None:
            c.require(
                aki.value.key_identifier == own,
                "the AuthorityKeyIdentifier points to its own key, as a root's does",
                "the AuthorityKeyIdentifier points to another key: a root's AKI repeats the identifier of its own "
                "key, made from decade_ca_key.public_key() like its SubjectKeyIdentifier",
            )

    if lab_ca_certificate is not None and certificate.serial_number == lab_ca_certificate.serial_number:
        c.require(
            False,
            "",
            "its serial number is the lab CA's (step 3's serial): every certificate draws its own, "
            "x509.random_serial_number()",
        )
    lab_name = lab_ca_certificate.subject if lab_ca_certificate is not None else _LAB_CA_NAME
    if certificate.subject == lab_name:
        c.require(
            False,
            "",
            f"its subject is {lab_name.rfc4514_string()}, the lab CA's name: a verifier finds an issuer by its "
            "name, and would now find two. Give this CA a name of its own, such as CN=decade-ca",
        )
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if start > now:
        c.require(
            False,
            "",
            f"it starts in the future ({start:%Y-%m-%d %H:%M} UTC): use an aware datetime.now(datetime.timezone.utc) "
            "minus 5 minutes (a naive datetime is read as UTC)",
        )
    else:
        c.require(
            datetime.timedelta(minutes=4) <= now - start <= datetime.timedelta(days=1),
            "it started a few minutes before it was made",
            f"it started {now - start} ago: start 5 minutes before now (created_at - CLOCK_SKEW)",
        )
    lifetime = end - start
    c.require(
        _TEN_YEARS[0] <= lifetime <= _TEN_YEARS[1],
        f"it is valid for ten years ({lifetime.days} days)",
        f"it is valid for {lifetime.days} days, not ten years: not_after = not_before + datetime.timedelta(days=3650)",
    )

    if all(ok for ok, _ in c.points):
        _try_path_length(c, certificate, private_key)
    return c.result()


def _try_path_length(c: Checker, certificate: x509.Certificate, private_key: PrivateKey) -> None:
    """Use the CA: one intermediate below it is accepted, a second one is refused."""
    ca = CertificateAuthority(certificate, private_key)
    first = ca.create_intermediate("exercise-level-1", path_length=None)
    one_level = first.issue_server_certificate("localhost")
    verdict = verify_chain(
        one_level.certificate, roots=[certificate], intermediates=[first.certificate], name="localhost"
    )
    key_hint = (
        " (Ed25519 keys are refused by this verifier: use ec.SECP256R1())"
        if isinstance(private_key, ed25519.Ed25519PrivateKey)
        else ""
    )
    c.require(
        verdict.ok,
        "a server certificate below one intermediate verifies up to it",
        f"a server certificate below one intermediate is refused: {verdict.error}{key_hint}",
    )
    second = first.create_intermediate("exercise-level-2", path_length=0)
    two_levels = second.issue_server_certificate("localhost")
    verdict = verify_chain(
        two_levels.certificate,
        roots=[certificate],
        intermediates=[first.certificate, second.certificate],
        name="localhost",
    )
    c.require(
        not verdict.ok,
        "below a second intermediate, the path length constraint refuses the certificate",
        "a second level of intermediates was accepted: path_length=1 should forbid it",
    )


def _twin_with_cert_sign(certificate: x509.Certificate, private_key: PrivateKey) -> x509.Certificate:
    """The same CA (name, key, dates, extensions) with keyCertSign switched on: the control."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(certificate.subject)
        .issuer_name(certificate.issuer)
        .public_key(certificate.public_key())  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(certificate.not_valid_before_utc)
        .not_valid_after(certificate.not_valid_after_utc)
    )
    on = {"key_cert_sign", "crl_sign"}
    for ext in certificate.extensions:
        if isinstance(ext.value, x509.KeyUsage):
            on |= _flags_on(ext.value)
            continue
        builder = builder.add_extension(ext.value, critical=ext.critical)
    flags = {flag: flag in on for flag in _FLAGS}
    if not flags["key_agreement"]:  # cryptography allows these two only together with key_agreement
        flags["encipher_only"] = flags["decipher_only"] = False
    builder = builder.add_extension(x509.KeyUsage(**flags), critical=True)
    algorithm = None if isinstance(private_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(private_key, algorithm)


def _chain_verdict(leaf: x509.Certificate, root: x509.Certificate) -> ChainVerdict | None:
    """Verify ``leaf`` as what it is: a server certificate for its first name, or a client certificate."""
    usage = extension(leaf, x509.ExtendedKeyUsage)
    purposes = list(usage.value) if usage is not None else []
    if ExtendedKeyUsageOID.SERVER_AUTH in purposes:
        san = extension(leaf, x509.SubjectAlternativeName)
        names = list(san.value) if san is not None else []
        name = next((entry for entry in names if isinstance(entry, (x509.DNSName, x509.IPAddress))), None)
        if name is None:
            return None
        return verify_chain(leaf, roots=[root], purpose="server", name=name)
    if ExtendedKeyUsageOID.CLIENT_AUTH in purposes:
        return verify_chain(leaf, roots=[root], purpose="client")
    return None


def exercise_2(
    ca_certificate: x509.Certificate | None,
    ca_private_key: PrivateKey | None,
    leaf: x509.Certificate | None,
) -> CheckResult:
    """2.2 A "CA" that may not sign certificates: CA:TRUE, but KeyUsage without keyCertSign.

    The leaf it signs must be refused, and only because of keyCertSign: the
    check signs a twin of the CA with keyCertSign on (same name, key and
    extensions) and the same leaf must then be accepted.
    """
    c = Checker(
        "2.2",
        'A "CA" that may not sign certificates',
        hint="Which of step 6's nine flags is the permission to sign certificates? Build the CA as in steps 1 "
        "to 8 with that one flag off, then let `CertificateAuthority` issue the leaf (step 14 shows it wrapping a CA).",
    )
    if not_attempted(ca_certificate, ca_private_key, leaf):
        return c.not_attempted()
    if not isinstance(ca_certificate, x509.Certificate):
        return c.fail("no_sign_ca_cert should be an x509.Certificate")
    if not isinstance(leaf, x509.Certificate):
        return c.fail("no_sign_leaf should be an x509.Certificate, e.g. issued.certificate")
    if ca_private_key is None or not hasattr(ca_private_key, "public_key"):
        return c.fail("no_sign_ca_key should be the private key of no_sign_ca_cert")

    constraints = extension(ca_certificate, x509.BasicConstraints)
    c.require(
        constraints is not None and constraints.value.ca and constraints.critical,
        "it claims to be a CA (critical BasicConstraints CA:TRUE), so only its KeyUsage is wrong",
        "it does not claim to be a CA: keep BasicConstraints(ca=True, path_length=None), critical=True, "
        "so that keyCertSign is the only thing missing",
    )
    usage = extension(ca_certificate, x509.KeyUsage)
    if usage is None:
        c.require(
            False,
            "",
            "it has no KeyUsage at all, which allows every use: add a KeyUsage with key_cert_sign=False",
        )
    else:
        c.require(
            "key_cert_sign" not in _flags_on(usage.value),
            "its KeyUsage does not allow keyCertSign",
            "its KeyUsage still allows keyCertSign: key_cert_sign=False",
        )
    c.require(
        key_matches_certificate(ca_private_key, ca_certificate),
        "no_sign_ca_key is its key",
        "no_sign_ca_key does not belong to no_sign_ca_cert",
    )
    signed = signed_by(leaf, ca_certificate)
    c.require(
        signed,
        "its key signed no_sign_leaf (the signature itself is fine)",
        "no_sign_leaf was not signed by this CA: issue it with CertificateAuthority(no_sign_ca_cert, no_sign_ca_key)",
    )
    if not all(ok for ok, _ in c.points):
        return c.result()

    verdict = _chain_verdict(leaf, ca_certificate)
    if verdict is None:
        return c.fail(
            "no_sign_leaf is neither a server nor a client certificate: use .issue_server_certificate()"
        )
    c.require(
        not verdict.ok,
        f"a verifier refuses the leaf ({verdict.error})" if not verdict.ok else "",
        "the leaf was accepted: a verifier should refuse what a CA without keyCertSign signs",
    )
    control = _chain_verdict(leaf, _twin_with_cert_sign(ca_certificate, ca_private_key))
    c.require(
        control is not None and control.ok,
        "the same CA with keyCertSign switched on would be accepted: keyCertSign alone makes the difference",
        "even with keyCertSign on, the leaf is refused "
        f"({control.error if control is not None else 'no name'}): something else is wrong too; "
        "issue the leaf with .issue_server_certificate() and give the CA an ECDSA key",
    )
    return c.result()


def exercise_3(
    key_path: str | os.PathLike[str] | None,
    password: bytes | None,
    *,
    ca_key: PrivateKey,
) -> CheckResult:
    """2.3 An encrypted CA key: ``ca_key`` saved with a password, refused without it, mode 0600.

    Why: a CA key on disk is the CA. Encrypted, a copied file is useless
    without the password; and ``load_private_key`` never prompts for one.
    """
    c = Checker(
        "2.3",
        "An encrypted CA key",
        hint="Step 10 saved ca.key without a password: which argument of save_private_key adds one, and of "
        "which type must the password be?",
    )
    if not_attempted(key_path, password):
        return c.not_attempted()
    try:
        path = Path(os.fspath(key_path))  # type: ignore[arg-type]
    except TypeError:
        return c.fail(
            "encrypted_key_path should be the path of the file, e.g. what save_private_key returned"
        )
    if not path.is_file():
        return c.fail(f"{path} does not exist: save the key there first")
    if not isinstance(password, bytes):
        return c.fail(
            "key_password should be bytes, e.g. b'correct horse': cryptography takes bytes, not str"
        )
    if not password:
        return c.fail(
            "key_password is empty: a key saved with it would not be encrypted; choose a real password"
        )
    first_line = path.read_text(errors="replace").splitlines()[:1]
    c.require(
        first_line == ["-----BEGIN ENCRYPTED PRIVATE KEY-----"],
        "the file is an encrypted PKCS#8 key (BEGIN ENCRYPTED PRIVATE KEY)",
        f"the file starts with {first_line[0] if first_line else '(nothing)'}: pass password=... to save_private_key",
    )
    try:
        load_private_key(path)
        refused = False
    except KeyPasswordError:
        refused = True
    except LabError:
        refused = False
    c.require(
        refused, "without the password it cannot be loaded (KeyPasswordError)", "it loads without a password"
    )
    try:
        loaded = load_private_key(path, password=password)
    except LabError as error:  # a wrong password (or a damaged file): the file does not open with it
        c.require(
            False,
            "",
            f"key_password does not open the file ({type(error).__name__}): "
            "give the password you saved it with",
        )
    else:
        c.require(
            _same_key(loaded, ca_key),
            "with key_password it loads, and it is ca_key",
            "with key_password it loads, but it is another key than ca_key: save ca_key itself",
        )
    if os.name == "posix":
        mode = stat.S_IMODE(path.stat().st_mode)
        c.require(mode == 0o600, "it is readable by you alone (mode 600)", f"its mode is {mode:o}, not 600")
    return c.result()


def _same_key(a: PrivateKey, b: PrivateKey) -> bool:
    """Two private keys are the same key when their public halves are."""
    return public_key_der(a) == public_key_der(b)
