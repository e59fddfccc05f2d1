"""verify_chain's revocation checks, each against the OpenSSL that Python's ssl module runs.

Every case is decided twice: by ``verify_chain`` and by a real TLS handshake
(in memory, no socket) whose server context has the same CRLs and
``VERIFY_CRL_CHECK_LEAF`` or ``VERIFY_CRL_CHECK_CHAIN``. The two must agree,
and ``verify_chain``'s reason must start with OpenSSL's words. Each refusal
has its twin that passes.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from lab_helpers import CertificateAuthority, IssuedCertificate, LabError, verify_chain

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
UNKNOWN = x509.ObjectIdentifier("1.3.6.1.4.1.55555.1")


def crl_by_hand(
    ca: CertificateAuthority,
    *,
    revoked: tuple[x509.Certificate, ...] = (),
    last_update: datetime.datetime = NOW - DAY,
    next_update: datetime.datetime = NOW + DAY,
    number: int | None = 7,
    number_critical: bool = False,
    extra: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    aki: bool = True,
) -> x509.CertificateRevocationList:
    """A CRL built field by field, to make each thing a verifier must check go wrong on its own."""
    builder = x509.CertificateRevocationListBuilder().issuer_name(ca.certificate.subject)
    builder = builder.last_update(last_update).next_update(next_update)
    if number is not None:
        builder = builder.add_extension(x509.CRLNumber(number), critical=number_critical)
    if aki:
        ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    for extension, critical in extra:
        builder = builder.add_extension(extension, critical=critical)
    for certificate in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(last_update)
        )
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(ca.private_key, hashes.SHA256())


def idp(
    *, only_user: bool = False, only_ca: bool = False, reasons: bool = False
) -> x509.IssuingDistributionPoint:
    """An IssuingDistributionPoint that limits what a CRL covers."""
    some = frozenset({x509.ReasonFlags.key_compromise}) if reasons else None
    return x509.IssuingDistributionPoint(None, None, only_user, only_ca, some, False, False)


@dataclass
class Hierarchy:
    """lab-root -> lab-intermediate -> alice (a client), and a server certificate for the handshakes."""

    root: CertificateAuthority
    intermediate: CertificateAuthority
    alice: IssuedCertificate
    server: IssuedCertificate
    folder: Path

    def verdict(self, crls: list[x509.CertificateRevocationList], revocation: str | None) -> str | None:
        """verify_chain's reason for refusing alice, or None when it accepts her."""
        verdict = verify_chain(
            self.alice.certificate,
            roots=[self.root.certificate],
            intermediates=self.alice.chain,
            purpose="client",
            crls=crls,
            revocation=revocation,  # type: ignore[arg-type]
        )
        assert verdict.ok == (verdict.error is None)
        return verdict.error

    def openssl(self, crls: list[x509.CertificateRevocationList], flag: ssl.VerifyFlags) -> str | None:
        """What a server with these CRLs and this flag says of alice's certificate, or None when it accepts it."""
        return handshake_refusal(self, crls, flag)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Hierarchy:
    root = CertificateAuthority.create_root("lab-root")
    intermediate = root.create_intermediate("lab-intermediate")
    return Hierarchy(
        root,
        intermediate,
        intermediate.issue_client_certificate("alice"),
        root.issue_server_certificate(),
        tmp_path_factory.mktemp("revocation"),
    )


def _pem(item: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return item.public_bytes(serialization.Encoding.PEM)


def handshake_refusal(
    pki: Hierarchy, crls: list[x509.CertificateRevocationList], flag: ssl.VerifyFlags
) -> str | None:
    """An in-memory TLS handshake; the server's verify message, or None when the handshake completes."""
    folder = pki.folder
    (folder / "server.pem").write_bytes(pki.server.cert_pem + pki.server.key_pem)
    (folder / "alice.pem").write_bytes(pki.alice.chain_pem + pki.alice.key_pem)
    (folder / "root.pem").write_bytes(_pem(pki.root.certificate))
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(folder / "server.pem")
    server_context.verify_mode = ssl.CERT_REQUIRED
    server_context.load_verify_locations(cafile=folder / "root.pem")
    for number, crl in enumerate(crls):
        (folder / f"crl-{number}.pem").write_bytes(_pem(crl))
        server_context.load_verify_locations(cafile=folder / f"crl-{number}.pem")
    server_context.verify_flags |= flag
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_verify_locations(cafile=folder / "root.pem")
    client_context.load_cert_chain(folder / "alice.pem")
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_context.wrap_bio(to_client, from_client, server_hostname="localhost")
    server = server_context.wrap_bio(to_server, from_server, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):  # a handshake takes two or three flights; bounded all the same
        for side, tls, _inbox, outbox in (
            ("client", client, to_client, from_client),
            ("server", server, to_server, from_server),
        ):
            if not done[side]:
                try:
                    tls.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLCertVerificationError as error:
                    if side == "server":
                        return str(error.verify_message)
                    raise
            peer_inbox = to_server if side == "client" else to_client
            peer_inbox.write(outbox.read())
        if all(done.values()):
            return None
    raise AssertionError("the in-memory handshake did not finish in 10 rounds")


LEAF, CHAIN = ssl.VERIFY_CRL_CHECK_LEAF, ssl.VERIFY_CRL_CHECK_CHAIN


def _cases() -> list[
    tuple[str, str, Callable[[Hierarchy], list[x509.CertificateRevocationList]], str | None]
]:
    """(id, scope, the CRLs given, OpenSSL's verdict): each refusal next to the twin that passes."""

    def fresh_root(p: Hierarchy) -> x509.CertificateRevocationList:
        return p.root.create_crl([])

    def fresh_intermediate(p: Hierarchy) -> x509.CertificateRevocationList:
        return p.intermediate.create_crl([])

    def root_revokes_intermediate(p: Hierarchy) -> x509.CertificateRevocationList:
        return p.root.create_crl([p.intermediate.certificate])

    unknown = x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00")
    return [
        ("leaf: its issuer's CRL, not listed", "leaf", lambda p: [fresh_intermediate(p)], None),
        ("leaf: only the root's CRL", "leaf", lambda p: [fresh_root(p)], "unable to get certificate CRL"),
        ("leaf: no CRL at all", "leaf", lambda p: [], "unable to get certificate CRL"),
        (
            "leaf: listed by its issuer",
            "leaf",
            lambda p: [p.intermediate.create_crl([p.alice.certificate])],
            "certificate revoked",
        ),
        (
            "leaf: revoked intermediate goes unnoticed",
            "leaf",
            lambda p: [root_revokes_intermediate(p), fresh_intermediate(p)],
            None,
        ),
        (
            "chain: revoked intermediate",
            "chain",
            lambda p: [root_revokes_intermediate(p), fresh_intermediate(p)],
            "certificate revoked",
        ),
        ("chain: both CRLs, nothing listed", "chain", lambda p: [fresh_root(p), fresh_intermediate(p)], None),
        (
            "chain: the root's CRL missing",
            "chain",
            lambda p: [fresh_intermediate(p)],
            "unable to get certificate CRL",
        ),
        (
            "chain: the intermediate's CRL missing",
            "chain",
            lambda p: [fresh_root(p)],
            "unable to get certificate CRL",
        ),
        (
            "leaf: CRL past its nextUpdate",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, last_update=NOW - 10 * DAY, next_update=NOW - DAY)],
            "CRL has expired",
        ),
        (
            "leaf: a stale CRL says expired before revoked",
            "leaf",
            lambda p: [
                crl_by_hand(
                    p.intermediate,
                    revoked=(p.alice.certificate,),
                    last_update=NOW - 10 * DAY,
                    next_update=NOW - DAY,
                )
            ],
            "CRL has expired",
        ),
        (
            "leaf: a stale CRL beside a fresh one",
            "leaf",
            lambda p: [
                crl_by_hand(p.intermediate, last_update=NOW - 10 * DAY, next_update=NOW - DAY),
                fresh_intermediate(p),
            ],
            None,
        ),
        (
            "leaf: CRL that starts tomorrow",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, last_update=NOW + DAY, next_update=NOW + 10 * DAY)],
            "CRL is not yet valid",
        ),
        (
            "leaf: unknown critical CRL extension",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, extra=((unknown, True),))],
            "unhandled critical CRL extension",
        ),
        (
            "leaf: the same extension, not critical",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, extra=((unknown, False),))],
            None,
        ),
        (
            "leaf: critical CRLNumber",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, number_critical=True)],
            "unhandled critical CRL extension",
        ),
        (
            "leaf: signed by another key of a CA with the same name",
            "leaf",
            lambda p: [crl_by_hand(CertificateAuthority.create_root("lab-intermediate"), aki=False)],
            "CRL signature failure",
        ),
        (
            "leaf: a CRL for CA certificates only",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, extra=((idp(only_ca=True), True),))],
            "different CRL scope",
        ),
        (
            "leaf: a CRL for end entities only",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, extra=((idp(only_user=True), True),))],
            None,
        ),
        (
            "chain: the root's CRL covers end entities only",
            "chain",
            lambda p: [crl_by_hand(p.root, extra=((idp(only_user=True), True),)), fresh_intermediate(p)],
            "different CRL scope",
        ),
        (
            "leaf: a CRL for some reasons only",
            "leaf",
            lambda p: [crl_by_hand(p.intermediate, extra=((idp(reasons=True), True),))],
            "unable to get certificate CRL",
        ),
        (
            "leaf: AKI names another key of a CA with the same name",
            "leaf",
            lambda p: [CertificateAuthority.create_root("lab-intermediate").create_crl([])],
            "unable to get certificate CRL",
        ),
    ]


CASES = _cases()


@pytest.mark.parametrize(
    ("scope", "make_crls", "expected"), [case[1:] for case in CASES], ids=[case[0] for case in CASES]
)
def test_verify_chain_agrees_with_openssl(
    pki: Hierarchy, scope: str, make_crls: Callable, expected: str | None
) -> None:
    crls = make_crls(pki)
    openssl = pki.openssl(crls, LEAF if scope == "leaf" else CHAIN)
    assert openssl == expected, f"this OpenSSL ({ssl.OPENSSL_VERSION}) says {openssl!r}: update the case"
    reason = pki.verdict(crls, scope)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and reason.startswith(expected + ":"), reason


def test_without_a_scope_crls_given_mean_leaf_and_none_given_mean_no_check(pki: Hierarchy) -> None:
    revoked_intermediate = [
        pki.root.create_crl([pki.intermediate.certificate]),
        pki.intermediate.create_crl([]),
    ]
    assert pki.verdict(revoked_intermediate, None) is None  # the same as "leaf"
    assert pki.verdict(revoked_intermediate, "chain") is not None
    assert pki.verdict([], None) is None  # no CRLs, no check
    assert (pki.verdict([], "leaf") or "").startswith(
        "unable to get certificate CRL: no CRL from CN=lab-intermediate"
    )


def test_a_missing_crl_says_whose_crl_is_missing_and_what_to_pass(pki: Hierarchy) -> None:
    reason = pki.verdict([pki.intermediate.create_crl([])], "chain") or ""
    assert "no CRL from CN=lab-root, the issuer of CN=lab-intermediate, was given" in reason
    assert "Pass that CA's current CRL in crls=" in reason


def test_a_stale_crl_names_its_next_update(pki: Hierarchy) -> None:
    due = NOW - DAY
    reason = (
        pki.verdict([crl_by_hand(pki.intermediate, last_update=NOW - 10 * DAY, next_update=due)], "leaf")
        or ""
    )
    assert f"{due:%Y-%m-%d %H:%M} UTC (nextUpdate)" in reason and "Publish a fresh CRL" in reason


def test_the_unknown_critical_extension_is_named(pki: Hierarchy) -> None:
    unknown = x509.UnrecognizedExtension(UNKNOWN, b"\x05\x00")
    reason = pki.verdict([crl_by_hand(pki.intermediate, extra=((unknown, True),))], "leaf") or ""
    assert UNKNOWN.dotted_string in reason


def test_a_crl_without_crl_number_is_refused_though_openssl_accepts_it(pki: Hierarchy) -> None:
    """A departure on purpose: RFC 5280 5.2.3 requires the CRLNumber; OpenSSL does not check it."""
    without = [crl_by_hand(pki.intermediate, number=None)]
    assert pki.openssl(without, LEAF) is None
    assert "has no CRLNumber" in (pki.verdict(without, "leaf") or "")
    assert pki.verdict([crl_by_hand(pki.intermediate)], "leaf") is None  # the twin, with one


def test_the_trust_anchor_is_not_checked_even_if_its_own_crl_lists_it(pki: Hierarchy) -> None:
    """RFC 5280 takes the trust anchor as given; OpenSSL 3.0 looks a root up in its own CRL (openssl/openssl#8439)."""
    root_lists_itself = [pki.root.create_crl([pki.root.certificate]), pki.intermediate.create_crl([])]
    assert pki.verdict(root_lists_itself, "chain") is None
    assert pki.openssl(root_lists_itself, CHAIN) in (
        None,
        "certificate revoked",
    )  # 3.0 says revoked; newer skip it
    root_lists_intermediate = [
        pki.root.create_crl([pki.intermediate.certificate]),
        pki.intermediate.create_crl([]),
    ]
    assert pki.verdict(root_lists_intermediate, "chain") is not None  # the twin: below the anchor, it counts


def test_a_leaf_issued_by_the_root_needs_only_the_roots_crl_for_the_chain_check(pki: Hierarchy) -> None:
    bob = pki.root.issue_client_certificate("bob")
    for crls, refused in (
        ([pki.root.create_crl([])], False),
        ([pki.root.create_crl([bob.certificate])], True),
        ([], True),
    ):
        verdict = verify_chain(
            bob.certificate, roots=[pki.root.certificate], purpose="client", crls=crls, revocation="chain"
        )
        assert verdict.ok is not refused, verdict


def test_a_crl_at_a_given_time(pki: Hierarchy) -> None:
    """``at=`` moves the CRL's clock with the certificates': next week this CRL has expired."""
    crl = pki.intermediate.create_crl([])  # nextUpdate in 7 days
    common = {
        "roots": [pki.root.certificate],
        "intermediates": pki.alice.chain,
        "purpose": "client",
        "crls": [crl],
    }
    assert verify_chain(pki.alice.certificate, **common).ok  # type: ignore[arg-type]
    later = verify_chain(pki.alice.certificate, at=NOW + 8 * DAY, **common)  # type: ignore[arg-type]
    assert not later.ok and (later.error or "").startswith("CRL has expired:")


def test_an_unknown_scope_is_refused_with_the_choices() -> None:
    root = CertificateAuthority.create_root()
    with pytest.raises(LabError, match="use 'leaf', 'chain' or None"):
        verify_chain(root.certificate, roots=[root.certificate], revocation="all")  # type: ignore[arg-type]


def test_no_roots_at_all_is_a_verdict_not_a_traceback() -> None:
    leaf = CertificateAuthority.create_root().issue_client_certificate("alice").certificate
    verdict = verify_chain(leaf, roots=[], purpose="client")
    assert not verdict.ok and verdict.error


def test_a_delta_crl_alone_is_not_a_complete_list(pki: Hierarchy) -> None:
    """A departure on purpose: a delta CRL lists only changes since its base (RFC 5280 5.2.4), so leaving
    a serial out says nothing. OpenSSL 3.0 uses a lone delta as if it were complete; verify_chain fails closed."""
    delta = [crl_by_hand(pki.intermediate, extra=((x509.DeltaCRLIndicator(6), True),))]
    assert pki.openssl(delta, LEAF) in (None, "unable to get certificate CRL")
    reason = pki.verdict(delta, "leaf") or ""
    assert reason.startswith("unable to get certificate CRL:") and "delta CRL" in reason
    assert pki.verdict([crl_by_hand(pki.intermediate)], "leaf") is None  # the twin: a complete CRL
