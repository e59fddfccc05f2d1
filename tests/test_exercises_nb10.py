"""The checks of notebook 10's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from exercise_checks import NOT_ATTEMPTED, missing, strict

from lab_helpers import (
    CertificateAuthority,
    IssuedCertificate,
    LabPaths,
    MTLSServer,
    Outcome,
    attempt,
    build_server_context,
    check,
    create_csr,
    generate_private_key,
    load_crl,
    save_certificate,
    save_crl,
    save_private_key,
)

pytestmark = pytest.mark.usefixtures("lenient_checks")

ERIN_URI = "spiffe://lab.example/user/erin"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
def started() -> Iterator[list[MTLSServer]]:
    """Servers a test starts; each is stopped at teardown."""
    servers: list[MTLSServer] = []
    yield servers
    for server in servers:
        server.stop()


def crl_server(started: list[MTLSServer], paths: LabPaths) -> MTLSServer:
    """The notebook's server: the lab files, checking client certificates against paths.crl."""
    context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert, crl_file=paths.crl)
    server = MTLSServer(context, name=None, handshake_timeout=2.0).start()
    started.append(server)
    return server


def request_as(issued: IssuedCertificate, server: MTLSServer, paths: LabPaths, folder: Path) -> Outcome:
    """What the notebook's files_of + attempt do: save the client's files, request on a new connection."""
    name = issued.certificate.subject.rfc4514_string().removeprefix("CN=")
    cert_file = save_certificate(issued.certificate, folder / f"{name}.crt")
    key_file = save_private_key(issued.private_key, folder / f"{name}.key")
    return attempt(server.url, ca_file=paths.ca_cert, cert_file=cert_file, key_file=key_file, server=server)


def stale_crl(
    ca: CertificateAuthority,
    *,
    last: datetime.timedelta,
    next_: datetime.timedelta,
    signer: CertificateAuthority | None = None,
) -> x509.CertificateRevocationList:
    """A CRL built by hand, as in the notebook's step 2, with thisUpdate and nextUpdate relative to now."""
    key = (signer or ca).private_key
    moment = now()
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(moment + last)
        .next_update(moment + next_)
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


# -- 10.1 Revoke frank, live -----------------------------------------------------------------


@pytest.fixture
def revoked_before(lab_pki: LabPaths, lab_ca: CertificateAuthority) -> list[x509.Certificate]:
    """alice was revoked before the exercise: the published CRL (version 1) lists her."""
    alice = lab_ca.issue_client_certificate("alice")
    save_crl(lab_ca.create_crl([alice.certificate]), lab_pki.crl)
    return [alice.certificate]


def revoke_frank(
    paths: LabPaths, ca: CertificateAuthority, frank: IssuedCertificate, *, keep: bool = True
) -> None:
    save_crl(ca.create_crl([frank.certificate], previous=load_crl(paths.crl) if keep else None), paths.crl)


def test_10_1_not_attempted(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
) -> None:
    server = crl_server(started, lab_pki)
    result = check.exercise_10_1(None, None, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=[])
    assert result.status == NOT_ATTEMPTED


def test_10_1_a_new_context_on_the_running_server_passes(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    server = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, server, lab_pki, tmp_path)
    revoke_frank(lab_pki, lab_ca, frank)
    server.replace_context(
        build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, crl_file=lab_pki.crl)
    )
    result = check.exercise_10_1(
        frank, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=revoked_before
    )
    assert result.passed, result
    assert "a new request as frank was refused: the running server recorded 'certificate revoked'" in [
        text for ok, text in result.points if ok
    ]


def test_10_1_a_published_crl_the_server_never_got(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    server = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, server, lab_pki, tmp_path)
    revoke_frank(lab_pki, lab_ca, frank)  # published, but no replace_context
    result = check.exercise_10_1(
        frank, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=revoked_before
    )
    assert missing(result) == [
        "frank still gets in: the running server does not use the new CRL; give it a context built with "
        "crl_file=paths.crl (server.replace_context)"
    ]


def test_10_1_a_crl_without_previous_forgets_alice(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    server = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, server, lab_pki, tmp_path)
    revoke_frank(lab_pki, lab_ca, frank, keep=False)
    server.replace_context(
        build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, crl_file=lab_pki.crl)
    )
    result = check.exercise_10_1(
        frank, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=revoked_before
    )
    assert missing(result) == [
        "it no longer lists alice: a new CRL replaces the old one entirely, and previous= copies only what the list "
        "it is given holds. The published file has lost them, so build the new list on step 8's, which still holds "
        "them (previous=root_crl), publish it and give the server a new context"
    ]


def test_10_1_a_list_published_without_previous_names_each_lost_entry_by_its_file_and_recovers(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    """The learner's trap: one publish without previous=. Two alices are told apart; the advice then works."""
    alice, current = lab_ca.issue_client_certificate("alice"), lab_ca.issue_client_certificate("alice")
    intermediate = lab_ca.create_intermediate("lab-issuing-ca", path_length=0)
    complete = lab_ca.create_crl(
        [alice.certificate, current.certificate, intermediate.certificate]
    )  # step 8's
    save_crl(complete, lab_pki.crl)
    earlier = {
        "alice.crt": alice.certificate,
        "alice-current.crt": current.certificate,
        "lab-issuing-ca (step 8)": intermediate.certificate,
    }
    server = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, server, lab_pki, tmp_path)
    revoke_frank(lab_pki, lab_ca, frank, keep=False)  # the slip: frank alone
    revoke_frank(lab_pki, lab_ca, frank)  # and the old advice, previous=load_crl(paths.crl), cannot undo it
    server.replace_context(
        build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, crl_file=lab_pki.crl)
    )
    result = check.exercise_10_1(
        frank, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=earlier
    )
    [lost] = missing(result)
    assert lost.startswith("it no longer lists alice.crt, alice-current.crt, lab-issuing-ca (step 8): ")
    assert "previous=root_crl" in lost
    # The advice, followed: the new list built on step 8's, published, and a new context.
    save_crl(lab_ca.create_crl([frank.certificate], previous=complete), lab_pki.crl)
    server.replace_context(
        build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, crl_file=lab_pki.crl)
    )
    result = check.exercise_10_1(
        frank, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=earlier
    )
    assert result.passed, result
    assert "crl_file" not in (result.hint or "") and "previous=" not in (
        result.hint or ""
    )  # the idea, not the code


def test_10_1_a_restart_is_noticed(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    first = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, first, lab_pki, tmp_path)
    revoke_frank(lab_pki, lab_ca, frank)
    first.stop()
    restarted = crl_server(started, lab_pki)  # a new server: a new free port
    result = check.exercise_10_1(
        frank, frank_before, server=restarted, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=revoked_before
    )
    assert len(missing(result)) == 1
    assert missing(result)[0].startswith(
        f"frank_before went to {frank_before.url}, but the server now listens on"
    )


def test_10_1_frank_must_be_the_issued_certificate(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    server = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, server, lab_pki, tmp_path)
    result = check.exercise_10_1(
        frank.certificate, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=[]
    )
    assert missing(result)[0].startswith("frank should be what issue_client('frank') returns")


def test_10_1_strict_mode_raises(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    revoked_before: list[x509.Certificate],
    started: list[MTLSServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = crl_server(started, lab_pki)
    frank = lab_ca.issue_client_certificate("frank")
    frank_before = request_as(frank, server, lab_pki, tmp_path)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_10_1(
            frank, frank_before, server=server, ca=lab_ca, crl_file=lab_pki.crl, still_revoked=revoked_before
        )


# -- 10.2 Let a CRL go stale ------------------------------------------------------------------


def serve_crl(
    started: list[MTLSServer], paths: LabPaths, crl: x509.CertificateRevocationList, folder: Path
) -> MTLSServer:
    crl_file = save_crl(crl, folder / "stale.crl")
    context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert, crl_file=crl_file)
    server = MTLSServer(context, name=None, handshake_timeout=2.0).start()
    started.append(server)
    return server


def as_alice(server: MTLSServer, paths: LabPaths) -> Outcome:
    return attempt(
        server.url,
        ca_file=paths.ca_cert,
        cert_file=paths.client_cert,
        key_file=paths.client_key,
        server=server,
    )


def test_10_2_not_attempted(lab_ca: CertificateAuthority) -> None:
    assert check.exercise_10_2(None, None, ca=lab_ca).status == NOT_ATTEMPTED


def test_10_2_a_list_past_its_next_update_passes(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    crl = stale_crl(lab_ca, last=-datetime.timedelta(days=2), next_=-datetime.timedelta(days=1))
    outcome = as_alice(serve_crl(started, lab_pki, crl, tmp_path), lab_pki)
    result = check.exercise_10_2(crl, outcome, ca=lab_ca)
    assert result.passed, result
    assert any("(crl-stale)" in text for ok, text in result.points if ok)


def test_10_2_the_path_of_the_file_will_do(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    crl = stale_crl(lab_ca, last=-datetime.timedelta(days=2), next_=-datetime.timedelta(days=1))
    outcome = as_alice(serve_crl(started, lab_pki, crl, tmp_path), lab_pki)
    assert check.exercise_10_2(tmp_path / "stale.crl", outcome, ca=lab_ca).passed


def test_10_2_a_fresh_list_is_not_stale(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    crl = lab_ca.create_crl([])
    outcome = as_alice(serve_crl(started, lab_pki, crl, tmp_path), lab_pki)
    result = check.exercise_10_2(crl, outcome, ca=lab_ca)
    assert "its nextUpdate is still ahead: the list is fresh; put next_update one day in the past" in missing(
        result
    )
    # The list was loaded: the request got in because it is fresh, not because the server lacks it.
    assert "your request got in: expected, your list is not stale yet" in missing(result)
    assert not any("load the stale list" in text for text in missing(result))


def test_10_2_a_stale_list_the_server_never_loaded(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    crl = stale_crl(lab_ca, last=-datetime.timedelta(days=2), next_=-datetime.timedelta(days=1))
    outcome = as_alice(
        serve_crl(started, lab_pki, lab_ca.create_crl([]), tmp_path), lab_pki
    )  # a fresh list served
    result = check.exercise_10_2(crl, outcome, ca=lab_ca)
    assert missing(result) == [
        "your request got in: load the stale list with build_server_context(..., crl_file=...)"
    ]
    assert "create_crl" in (result.hint or "") and "last_update" not in (
        result.hint or ""
    )  # the idea, not the code


def test_10_2_a_list_signed_by_another_key_is_not_only_stale(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    impostor = CertificateAuthority.create_root("lab-ca")  # the same name, another key
    crl = stale_crl(
        lab_ca, last=-datetime.timedelta(days=2), next_=-datetime.timedelta(days=1), signer=impostor
    )
    outcome = as_alice(serve_crl(started, lab_pki, crl, tmp_path), lab_pki)
    result = check.exercise_10_2(crl, outcome, ca=lab_ca)
    assert any(text.startswith("the lab CA of this folder did not sign it") for text in missing(result))
    assert any("not tried until its signature and dates are right" in text for text in missing(result))


def test_10_2_a_list_from_the_future_is_refused_for_another_reason(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    crl = stale_crl(lab_ca, last=datetime.timedelta(days=1), next_=datetime.timedelta(days=2))
    outcome = as_alice(serve_crl(started, lab_pki, crl, tmp_path), lab_pki)
    result = check.exercise_10_2(crl, outcome, ca=lab_ca)
    assert missing(result) == [
        "its thisUpdate is in the future: OpenSSL would say 'CRL is not yet valid'; make it two days ago",
        "its nextUpdate is still ahead: the list is fresh; put next_update one day in the past",
        "your request was refused, but the server recorded 'CRL is not yet valid', not 'CRL has expired'",
        "a real handshake with your list: not tried until its signature and dates are right",
    ]


def test_10_2_an_outcome_without_the_server(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    crl = stale_crl(lab_ca, last=-datetime.timedelta(days=2), next_=-datetime.timedelta(days=1))
    server = serve_crl(started, lab_pki, crl, tmp_path)
    outcome = attempt(
        server.url, ca_file=lab_pki.ca_cert, cert_file=lab_pki.client_cert, key_file=lab_pki.client_key
    )
    result = check.exercise_10_2(crl, outcome, ca=lab_ca)
    assert any(text.endswith("so that the outcome carries the server's reason)") for text in missing(result))


def test_10_2_strict_mode_raises(lab_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_10_2(lab_ca.create_crl([]), "not an outcome", ca=lab_ca)


# -- 10.3 Renew erin ----------------------------------------------------------------------------


@pytest.fixture
def erin(lab_ca: CertificateAuthority) -> IssuedCertificate:
    """erin's certificate, issued 65 days ago: two thirds of its 90 days have passed."""
    return lab_ca.issue_client_certificate("erin", valid_from=now() - datetime.timedelta(days=65))


def renew(ca: CertificateAuthority, *, name: str = "erin") -> tuple[x509.Certificate, object]:
    key = generate_private_key()
    certificate = ca.sign_csr(
        create_csr(key, name, names=[f"spiffe://lab.example/user/{name}"]), profile="client"
    )
    return certificate, key


def test_10_3_not_attempted(lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate) -> None:
    assert check.exercise_10_3(None, None, old=erin, ca=lab_ca, crl_file=lab_pki.crl).status == NOT_ATTEMPTED


def test_10_3_a_new_key_and_the_old_one_revoked_passes(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate
) -> None:
    certificate, key = renew(lab_ca)
    save_crl(lab_ca.create_crl([erin.certificate]), lab_pki.crl)
    result = check.exercise_10_3(certificate, key, old=erin, ca=lab_ca, crl_file=lab_pki.crl)
    assert result.passed, result
    assert "and the old one was refused: 'certificate revoked'" in [text for ok, text in result.points if ok]


def test_10_3_an_issued_certificate_is_accepted_as_it_is(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate
) -> None:
    renewed = lab_ca.issue_client_certificate("erin")
    save_crl(lab_ca.create_crl([erin.certificate]), lab_pki.crl)
    assert check.exercise_10_3(renewed, None, old=erin, ca=lab_ca, crl_file=lab_pki.crl).passed


def test_10_3_the_same_key_again(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate
) -> None:
    same_key = lab_ca.sign_csr(erin.csr, profile="client")  # new dates and serial, old key
    save_crl(lab_ca.create_crl([erin.certificate]), lab_pki.crl)
    result = check.exercise_10_3(same_key, erin.private_key, old=erin, ca=lab_ca, crl_file=lab_pki.crl)
    assert missing(result) == [
        "it carries the old public key: a renewal is the moment to retire a key; make a new one"
    ]


def test_10_3_the_old_certificate_still_works(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate
) -> None:
    certificate, key = renew(lab_ca)
    save_crl(lab_ca.create_crl([]), lab_pki.crl)
    result = check.exercise_10_3(certificate, key, old=erin, ca=lab_ca, crl_file=lab_pki.crl)
    assert any(
        text.startswith("the published CRL does not list the old certificate") for text in missing(result)
    )
    assert "and the old one still got in" in missing(result)


def test_10_3_another_identity(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate
) -> None:
    certificate, key = renew(lab_ca, name="erin2")
    save_crl(lab_ca.create_crl([erin.certificate]), lab_pki.crl)
    result = check.exercise_10_3(certificate, key, old=erin, ca=lab_ca, crl_file=lab_pki.crl)
    assert any(text.startswith("the identity changed: subject CN=erin2") for text in missing(result))


def test_10_3_no_published_crl(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate
) -> None:
    certificate, key = renew(lab_ca)
    result = check.exercise_10_3(
        certificate, key, old=erin, ca=lab_ca, crl_file=lab_pki.directory / "none.crl"
    )
    assert missing(result)[-1].startswith("the published CRL cannot be loaded")


def test_10_3_strict_mode_raises(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, erin: IssuedCertificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate, key = renew(lab_ca)
    save_crl(lab_ca.create_crl([certificate]), lab_pki.crl)  # the new one revoked instead of the old
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_10_3(certificate, key, old=erin, ca=lab_ca, crl_file=lab_pki.crl)
