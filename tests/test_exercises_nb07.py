"""The checks of notebook 07's exercises: quiet until attempted, pass on a real solution, name what is wrong, strict."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from exercise_checks import NOT_ATTEMPTED, missing

from lab_helpers import CatalogLab, MTLSServer, attempt, build_server_context, lab_session, run_case
from lab_helpers.exercises import nb07
from lab_helpers.files import load_certificate, save_certificate, save_private_key
from lab_helpers.pki import CertificateAuthority


@pytest.fixture(autouse=True)
def not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> CatalogLab:
    return CatalogLab(tmp_path_factory.mktemp("catalog"))


@pytest.fixture
def server(lab: CatalogLab) -> Iterator[MTLSServer]:
    with MTLSServer(build_server_context(*lab.server, lab.ca_file), name=None) as running:
        yield running


# -- 7.1 a failure that is not in the catalog -------------------------------------


def alice_with_extension(
    lab: CatalogLab, *, critical: bool, signer: CertificateAuthority | None = None
) -> x509.Certificate:
    original = load_certificate(lab.client[0])
    builder = (
        x509.CertificateBuilder()
        .subject_name(original.subject)
        .issuer_name(original.issuer)
        .public_key(original.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(original.not_valid_before_utc)
        .not_valid_after(original.not_valid_after_utc)
    )
    for extension in original.extensions:
        builder = builder.add_extension(extension.value, critical=extension.critical)
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    builder = builder.add_extension(unknown, critical=critical)
    return builder.sign((signer or lab.ca).private_key, hashes.SHA256())


def present(lab: CatalogLab, server: MTLSServer, certificate: x509.Certificate, tmp_path: Path):
    cert_file = save_certificate(certificate, tmp_path / "presented.crt")
    with lab_session(ca_file=lab.ca_file, cert_file=cert_file, key_file=lab.client[1]) as session:
        return attempt(server.url, session=session, server=server)


def test_7_1_not_attempted(lab: CatalogLab) -> None:
    assert nb07.exercise_1(None, None, ca_certificate=lab.ca.certificate).status == NOT_ATTEMPTED


def test_7_1_passes_for_a_critical_unknown_extension(
    lab: CatalogLab, server: MTLSServer, tmp_path: Path
) -> None:
    certificate = alice_with_extension(lab, critical=True)
    outcome = present(lab, server, certificate, tmp_path)
    result = nb07.exercise_1(certificate, outcome, ca_certificate=lab.ca.certificate)
    assert result.passed, result


def test_7_1_a_non_critical_extension_is_accepted_and_says_so(
    lab: CatalogLab, server: MTLSServer, tmp_path: Path
) -> None:
    certificate = alice_with_extension(lab, critical=False)
    outcome = present(lab, server, certificate, tmp_path)
    assert outcome.ok  # the negative control: a non-critical unknown extension is simply ignored
    result = nb07.exercise_1(certificate, outcome, ca_certificate=lab.ca.certificate)
    assert not result.passed
    assert any("no unrecognised extension marked critical" in text for text in missing(result))
    assert any("the request succeeded" in text for text in missing(result))


def test_7_1_the_original_session_means_the_server_never_saw_the_new_certificate(
    lab: CatalogLab, server: MTLSServer
) -> None:
    """The learner's slip: the right certificate, sent with alice_session, which presents her original one."""
    certificate = alice_with_extension(lab, critical=True)
    with lab_session(ca_file=lab.ca_file, cert_file=lab.client[0], key_file=lab.client[1]) as alice_session:
        outcome = attempt(server.url, session=alice_session, server=server)
    assert outcome.ok  # the server saw alice's original certificate, and let her in
    result = nb07.exercise_1(certificate, outcome, ca_certificate=lab.ca.certificate)
    assert missing(result) == [
        "the request succeeded, so the server never saw your new certificate: present the file you saved "
        "(cert_file=..., key_file=lab.client[1])"
    ]  # and no false "pass server=server", which was passed


def test_7_1_a_non_critical_extension_says_why_the_request_succeeded(
    lab: CatalogLab, server: MTLSServer, tmp_path: Path
) -> None:
    outcome = present(lab, server, alice_with_extension(lab, critical=False), tmp_path)
    result = nb07.exercise_1(
        alice_with_extension(lab, critical=False), outcome, ca_certificate=lab.ca.certificate
    )
    assert (
        "the request succeeded: an extension nobody knows is ignored unless it is marked critical"
        in missing(result)
    )
    assert not any("server=server" in text for text in missing(result))


def test_7_1_an_outcome_without_the_server_side_says_so(
    lab: CatalogLab, server: MTLSServer, tmp_path: Path
) -> None:
    certificate = alice_with_extension(lab, critical=True)
    cert_file = save_certificate(certificate, tmp_path / "presented.crt")
    outcome = attempt(
        server.url, ca_file=lab.ca_file, cert_file=cert_file, key_file=lab.client[1]
    )  # no server=
    result = nb07.exercise_1(certificate, outcome, ca_certificate=lab.ca.certificate)
    assert missing(result) == [
        "your outcome has no server side: pass server=server to attempt(), so that it carries the reason the "
        "server recorded"
    ]
    assert "RFC 5280" in (result.hint or "") and "UnrecognizedExtension" not in (
        result.hint or ""
    )  # the idea, not the code


def test_7_1_the_signature_is_checked_even_when_the_server_objects_to_the_extension_first(
    lab: CatalogLab, server: MTLSServer, tmp_path: Path
) -> None:
    certificate = alice_with_extension(lab, critical=True, signer=lab.other_ca)
    outcome = present(lab, server, certificate, tmp_path)
    assert (
        outcome.server_reason == "unhandled critical extension"
    )  # OpenSSL looks at extensions before signatures
    result = nb07.exercise_1(certificate, outcome, ca_certificate=lab.ca.certificate)
    assert not result.passed
    assert missing(result) == [
        "it is not signed by the lab CA: set issuer_name to the lab CA's subject and sign with lab.ca.private_key"
    ]


def test_7_1_an_outcome_of_a_catalogued_failure_is_not_it(lab: CatalogLab) -> None:
    certificate = alice_with_extension(lab, critical=True)
    outcome = run_case("client-certificate-expired", lab).outcome
    result = nb07.exercise_1(certificate, outcome, ca_certificate=lab.ca.certificate)
    assert not result.passed
    assert any(
        "recorded 'certificate has expired', not 'unhandled critical extension'" in text
        for text in missing(result)
    )
    assert any("explain() recognises 'certificate has expired'" in text for text in missing(result))


def test_7_1_wrong_types_say_what_is_expected(lab: CatalogLab) -> None:
    result = nb07.exercise_1("alice.crt", None, ca_certificate=lab.ca.certificate)  # type: ignore[arg-type]
    assert not result.passed and "should be an x509.Certificate" in missing(result)[0]


def test_7_1_strict_mode_raises(lab: CatalogLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        nb07.exercise_1(load_certificate(lab.client[0]), None, ca_certificate=lab.ca.certificate)


# -- 7.2 the alert for a server certificate that is not yet valid -------------------


def test_7_2_not_attempted(lab: CatalogLab) -> None:
    assert nb07.exercise_2(None, None, lab=lab).status == NOT_ATTEMPTED


def test_7_2_passes_with_the_live_alert(lab: CatalogLab) -> None:
    outcome = nb07.live_not_yet_valid_server_reason(lab)
    result = nb07.exercise_2("SSLV3_ALERT_BAD_CERTIFICATE", outcome, lab=lab)
    assert result.passed, result


def test_7_2_the_rfc_name_of_the_alert_passes_too(lab: CatalogLab) -> None:
    outcome = nb07.live_not_yet_valid_server_reason(lab)
    result = nb07.exercise_2(" bad_certificate", outcome, lab=lab)
    assert result.passed
    # RFC 8446 6.2 defines certificate_expired for "expired or not currently valid": the choice is OpenSSL's.
    assert "OpenSSL sends the generic bad_certificate" in result.points[-1][1]
    assert "TLS has no" not in result.points[-1][1]


def test_7_2_the_expired_alert_is_named_as_case_11s(lab: CatalogLab) -> None:
    """The plausible guess: the alert follows the error's name. The message says why not, without the value."""
    outcome = nb07.live_not_yet_valid_server_reason(lab)
    for guess in ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "certificate_expired"):
        result = nb07.exercise_2(guess, outcome, lab=lab)
        assert not result.passed
        [problem] = missing(result)
        assert problem.startswith(f"{guess!r} is case 11's alert. RFC 8446 would allow it here too")
        assert "OpenSSL sends it only for a certificate past its notAfter" in problem
        assert (
            "BAD_CERTIFICATE" not in problem.upper() and "copy" not in problem
        )  # points at the idea, not the value
    assert "BAD_CERTIFICATE" not in (result.hint or "").upper()


def test_7_2_the_clients_message_is_not_an_alert(lab: CatalogLab) -> None:
    outcome = nb07.live_not_yet_valid_server_reason(lab)
    result = nb07.exercise_2("certificate is not yet valid", outcome, lab=lab)
    assert missing(result) == [
        "'certificate is not yet valid' is the client's own verification message, and it never crosses the network: "
        "the server learns only the alert the client sends. Read the server's side of your outcome"
    ]


def test_7_2_an_outcome_without_the_server_side_says_so(lab: CatalogLab, tmp_path: Path) -> None:
    tomorrow = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    future = lab.ca.issue_server_certificate(valid_from=tomorrow)
    files = (
        save_certificate(future.certificate, tmp_path / "f.crt"),
        save_private_key(future.private_key, tmp_path / "f.key"),
    )
    with MTLSServer(build_server_context(*files, lab.ca_file), name=None) as server:
        with lab_session(ca_file=lab.ca_file, cert_file=lab.client[0], key_file=lab.client[1]) as session:
            outcome = attempt(
                server.url, session=session
            )  # no server=: the outcome has only the client's side
    result = nb07.exercise_2("SSLV3_ALERT_BAD_CERTIFICATE", outcome, lab=lab)
    assert missing(result) == ["your outcome has no server side: pass server=... to attempt() to record it"]


def test_7_2_an_expired_server_certificate_is_another_failure(lab: CatalogLab) -> None:
    outcome = run_case("server-certificate-expired", lab).outcome
    result = nb07.exercise_2(outcome.server_reason, outcome, lab=lab)
    assert not result.passed
    assert any(
        "'server-certificate-expired', not 'server-certificate-not-yet-valid'" in text
        for text in missing(result)
    )


def test_7_2_strict_mode_raises(lab: CatalogLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        nb07.exercise_2("bad certificate", None, lab=lab)


# -- 7.3 repair a broken set-up ---------------------------------------------------


@pytest.fixture(scope="module")
def repaired(lab: CatalogLab) -> dict[str, object]:
    both = lab.ca.issue_server_certificate("api.example.com", "localhost")
    fresh = lab.ca.issue_client_certificate("alice")
    folder = lab.directory
    return {
        "server_pair": (
            save_certificate(both.certificate, folder / "t-both.crt"),
            save_private_key(both.private_key, folder / "t-both.key"),
        ),
        "verify": lab.ca_file,
        "client_pair": (
            save_certificate(fresh.certificate, folder / "t-alice.crt"),
            save_private_key(fresh.private_key, folder / "t-alice.key"),
        ),
    }


def test_7_3_not_attempted(lab: CatalogLab) -> None:
    assert nb07.exercise_3(None, None, None, lab=lab).status == NOT_ATTEMPTED


def test_7_3_passes_when_a_real_request_succeeds(lab: CatalogLab, repaired: dict[str, object]) -> None:
    result = nb07.exercise_3(
        repaired["server_pair"], str(repaired["verify"]), repaired["client_pair"], lab=lab
    )
    assert result.passed, result


def test_7_3_the_broken_set_up_fails(lab: CatalogLab) -> None:
    result = nb07.exercise_3(lab.server_other_host, lab.other_ca_file, lab.client_expired, lab=lab)
    assert not result.passed
    assert any("does not name localhost" in text for text in missing(result))
    assert any(
        text.startswith("the request still fails: SSLError (server-ca-not-trusted)")
        for text in missing(result)
    )


def test_7_3_an_expired_client_is_still_found(lab: CatalogLab, repaired: dict[str, object]) -> None:
    result = nb07.exercise_3(repaired["server_pair"], repaired["verify"], lab.client_expired, lab=lab)
    assert not result.passed
    assert any("the server saw 'certificate has expired'" in text for text in missing(result))


def test_7_3_dropping_a_name_or_verification_is_not_a_repair(
    lab: CatalogLab, repaired: dict[str, object]
) -> None:
    result = nb07.exercise_3(lab.server, repaired["verify"], repaired["client_pair"], lab=lab)
    assert not result.passed and missing(result) == [
        "the server's certificate lost api.example.com: clients use that name too, keep it"
    ]
    result = nb07.exercise_3(repaired["server_pair"], False, repaired["client_pair"], lab=lab)
    assert not result.passed and "verification stays on" in missing(result)[0]


def test_7_3_the_hint_points_at_the_method_not_the_three_fixes(lab: CatalogLab) -> None:
    hint = nb07.exercise_3(lab.server_other_host, lab.other_ca_file, lab.client_expired, lab=lab).hint or ""
    assert "explain()" in hint and "localhost" not in hint and "api.example.com" not in hint


def test_7_3_strict_mode_raises(lab: CatalogLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        nb07.exercise_3(lab.server_other_host, lab.other_ca_file, lab.client_expired, lab=lab)
