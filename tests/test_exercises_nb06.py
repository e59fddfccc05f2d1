"""The checks of notebook 06's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from exercise_checks import NOT_ATTEMPTED, missing

from lab_helpers import (
    CertificateAuthority,
    LabPaths,
    MTLSServer,
    attempt,
    build_server_context,
    check,
    explain,
    lab_session,
    load_certificate_authority,
    save_certificate,
    save_private_key,
)

pytestmark = pytest.mark.usefixtures("lenient_checks")

WATCHED = (
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
)


# -- 6.1 The three requests in plain requests ---------------------------------------------------


def right_plain_get(url, *, ca_file=None, cert_file=None, key_file=None, timeout=5.0):  # type: ignore[no-untyped-def]
    with requests.Session() as plain:
        plain.trust_env = False
        return plain.get(
            url,
            verify=str(ca_file) if ca_file is not None else True,
            cert=(str(cert_file), str(key_file)) if cert_file is not None else None,
            timeout=timeout,
        )


def careless_plain_get(url, *, ca_file=None, cert_file=None, key_file=None, timeout=5.0):  # type: ignore[no-untyped-def]
    """requests.get reads the environment: the proxy variable catches it."""
    return requests.get(
        url,
        verify=str(ca_file) if ca_file is not None else True,
        cert=(str(cert_file), str(key_file)) if cert_file is not None else None,
        timeout=timeout,
    )


def session_verify_plain_get(url, *, ca_file=None, cert_file=None, key_file=None, timeout=5.0):  # type: ignore[no-untyped-def]
    """The CA on the session, not the request, and no proxies: REQUESTS_CA_BUNDLE wins (psf/requests#3829)."""
    with requests.Session() as plain:
        plain.verify = str(ca_file) if ca_file is not None else True
        plain.cert = (str(cert_file), str(key_file)) if cert_file is not None else None
        return plain.get(url, timeout=timeout, proxies={"https": None, "all": None})


def no_timeout_plain_get(url, *, ca_file=None, cert_file=None, key_file=None, timeout=5.0):  # type: ignore[no-untyped-def]
    with requests.Session() as plain:
        plain.trust_env = False
        return plain.get(
            url,
            verify=str(ca_file) if ca_file is not None else True,
            cert=(str(cert_file), str(key_file)) if cert_file is not None else None,
        )


def lab_plain_get(url, *, ca_file=None, cert_file=None, key_file=None, timeout=5.0):  # type: ignore[no-untyped-def]
    return lab_session(ca_file=ca_file, cert_file=cert_file, key_file=key_file, timeout=timeout).get(url)


def test_6_1_not_attempted(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    assert check.exercise_06_1(None, server=mtls_server, paths=lab_pki).status == NOT_ATTEMPTED


def test_6_1_a_right_function_passes_and_the_environment_is_restored(
    mtls_server: MTLSServer, lab_pki: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    before = {name: os.environ.get(name) for name in WATCHED}
    result = check.exercise_06_1(right_plain_get, server=mtls_server, paths=lab_pki)
    assert result.passed, result
    assert {name: os.environ.get(name) for name in WATCHED} == before


def test_6_1_requests_get_goes_to_the_proxy(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = check.exercise_06_1(careless_plain_get, server=mtls_server, paths=lab_pki)
    assert not result.passed
    assert any(
        text.startswith("request 1 (CA and client certificate) failed: it went to the proxy")
        for text in missing(result)
    )


def test_6_1_the_ca_on_the_session_loses_to_the_variable(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = check.exercise_06_1(session_verify_plain_get, server=mtls_server, paths=lab_pki)
    assert not result.passed
    assert any("REQUESTS_CA_BUNDLE won" in text for text in missing(result))


def test_6_1_without_a_timeout(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = check.exercise_06_1(no_timeout_plain_get, server=mtls_server, paths=lab_pki)
    assert len(missing(result)) == 1  # the three requests themselves are right
    assert "never answers" in missing(result)[0] and "until the check's server hung up" in missing(result)[0]
    assert missing(result)[0].endswith("for ever if it never answers: pass timeout=timeout to requests")


def certificate_without_key_plain_get(url, *, ca_file=None, cert_file=None, key_file=None, timeout=5.0):  # type: ignore[no-untyped-def]
    """The timeout is passed, but the key is not: every request with a certificate fails before it connects."""
    with requests.Session() as plain:
        plain.trust_env = False
        return plain.get(
            url, verify=str(ca_file) if ca_file else True, cert=cert_file and str(cert_file), timeout=timeout
        )


def test_6_1_a_failure_before_the_timeout_is_not_blamed_on_the_timeout(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    result = check.exercise_06_1(certificate_without_key_plain_get, server=mtls_server, paths=lab_pki)
    never_answers = [text for text in missing(result) if "never answers" in text]
    assert len(never_answers) == 1 and "before any timeout could expire" in never_answers[0], missing(result)
    assert "pass timeout=timeout" not in never_answers[0]


def test_6_1_lab_session_is_not_plain_requests(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = check.exercise_06_1(lab_plain_get, server=mtls_server, paths=lab_pki)
    assert "it calls lab_session or attempt: make the request with requests itself" in missing(result)


def test_6_1_a_function_that_takes_other_arguments(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = check.exercise_06_1(lambda url: requests.get(url, timeout=5), server=mtls_server, paths=lab_pki)
    assert len(missing(result)) == 1
    assert missing(result)[0].startswith("plain_get cannot be called as plain_get(url, ca_file=...")


def test_6_1_a_stopped_lab_server_says_which_cell_starts_it(lab_pki: LabPaths) -> None:
    """After Run All the section's last cell has stopped the server: the check says what to run, and nothing else."""
    server = MTLSServer(
        build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert), name=None
    )
    server.start().stop()
    result = check.exercise_06_1(right_plain_get, server=server, paths=lab_pki)
    assert missing(result) == [
        "the lab server is not running (the last cell of this section stopped it): run the first cell of "
        '"On your own" again, which starts it, then this check'
    ]


def test_6_1_strict_mode_raises(
    mtls_server: MTLSServer, lab_pki: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_06_1(careless_plain_get, server=mtls_server, paths=lab_pki)


# -- 6.2 A certificate from another CA, explained ------------------------------------------------


@pytest.fixture
def other_ca_files(tmp_path: Path) -> dict[str, Path]:
    issued = CertificateAuthority.create_root("other-ca").issue_client_certificate("alice")
    return {
        "cert_file": save_certificate(issued.certificate, tmp_path / "other.crt"),
        "key_file": save_private_key(issued.private_key, tmp_path / "other.key"),
    }


def test_6_2_not_attempted(mtls_server: MTLSServer) -> None:
    assert check.exercise_06_2(None, None, server=mtls_server).status == NOT_ATTEMPTED


def test_6_2_the_servers_record_explained_passes(
    mtls_server: MTLSServer, lab_pki: LabPaths, other_ca_files: dict[str, Path]
) -> None:
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server, **other_ca_files)
    result = check.exercise_06_2(outcome, explain(outcome.server_reason), server=mtls_server)
    assert result.passed, result


def test_6_2_no_certificate_and_the_wrong_explanation(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server)
    the_clients_view = explain(
        ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    )  # one of its forms
    result = check.exercise_06_2(outcome, the_clients_view, server=mtls_server)
    assert "the server saw no client certificate: pass cert_file= and key_file=" in missing(result)
    assert any("explain what the server recorded instead" in text for text in missing(result))


def test_6_2_without_server_the_outcome_has_no_reason(
    mtls_server: MTLSServer, lab_pki: LabPaths, other_ca_files: dict[str, Path]
) -> None:
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, **other_ca_files)
    result = check.exercise_06_2(outcome, "unknown CA", server=mtls_server)
    assert "the outcome carries no server reason: pass server=server to attempt" in missing(result)
    assert "other_ca_explanation should be what explain(...) returned, not str" in missing(result)


def test_6_2_a_stopped_lab_server_says_which_cell_starts_it(
    lab_pki: LabPaths, other_ca_files: dict[str, Path]
) -> None:
    server = MTLSServer(
        build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert), name=None
    )
    server.start()
    outcome = attempt(server.url, ca_file=lab_pki.ca_cert, server=server, **other_ca_files)
    server.stop()
    result = check.exercise_06_2(
        outcome, explain(outcome.server_reason), server=server
    )  # used to raise LabError
    assert missing(result) == [
        "the lab server is not running (the last cell of this section stopped it): run the first cell of "
        '"On your own" again, which starts it, then this check'
    ]


def test_6_2_strict_mode_raises(
    mtls_server: MTLSServer, lab_pki: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server)
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_06_2(outcome, explain(outcome.server_reason), server=mtls_server)


# -- 6.3 The right server at the wrong address ---------------------------------------------------


@pytest.fixture
def no_ip_server(lab_pki: LabPaths, tmp_path: Path) -> Iterator[MTLSServer]:
    """A lab server whose certificate names localhost only (no IP entry)."""
    issued = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key).issue_server_certificate("localhost")
    cert = save_certificate(issued.certificate, tmp_path / "no-ip.crt")
    key = save_private_key(issued.private_key, tmp_path / "no-ip.key")
    server = MTLSServer(
        build_server_context(cert, key, lab_pki.ca_cert), name=None, handshake_timeout=2.0
    ).start()
    yield server
    server.stop()


def files(paths: LabPaths) -> dict[str, Path]:
    return {"ca_file": paths.ca_cert, "cert_file": paths.client_cert, "key_file": paths.client_key}


def test_6_3_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_06_3(None, paths=lab_pki).status == NOT_ATTEMPTED


def test_6_3_by_address_without_an_ip_entry_passes(no_ip_server: MTLSServer, lab_pki: LabPaths) -> None:
    outcome = attempt(f"https://127.0.0.1:{no_ip_server.port}/", server=no_ip_server, **files(lab_pki))
    result = check.exercise_06_3(outcome, paths=lab_pki)
    assert result.passed, result


def test_6_3_the_lab_certificate_has_an_ip_entry(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    outcome = attempt(f"https://127.0.0.1:{mtls_server.port}/", server=mtls_server, **files(lab_pki))
    result = check.exercise_06_3(outcome, paths=lab_pki)
    assert missing(result) == [
        (
            "the request succeeded: the server's certificate has an IP entry for that address (the lab's server.crt "
            "has 127.0.0.1); issue one for localhost only"
        )
    ]


def test_6_3_by_name_is_not_by_address(no_ip_server: MTLSServer, lab_pki: LabPaths) -> None:
    """By name, with a localhost-only certificate: only the URL is wrong, not the certificate."""
    outcome = attempt(no_ip_server.url, server=no_ip_server, **files(lab_pki))
    result = check.exercise_06_3(outcome, paths=lab_pki, server=no_ip_server)
    assert missing(result) == [
        "the URL names the server 'localhost': use its address, https://127.0.0.1:PORT/"
    ]
    assert "has an IP entry" not in str(result)


def test_6_3_a_stopped_server_says_to_run_the_exercise_cell_again(
    no_ip_server: MTLSServer, lab_pki: LabPaths
) -> None:
    outcome = attempt(f"https://127.0.0.1:{no_ip_server.port}/", server=no_ip_server, **files(lab_pki))
    no_ip_server.stop()
    result = check.exercise_06_3(outcome, paths=lab_pki, server=no_ip_server)
    assert missing(result) == [
        "no_ip_server is not running (the last cell of this section stopped it): run your exercise cell again, "
        "which starts it, then this check"
    ]


def test_6_3_a_stopped_server_cannot_show_the_name_works(no_ip_server: MTLSServer, lab_pki: LabPaths) -> None:
    outcome = attempt(f"https://127.0.0.1:{no_ip_server.port}/", server=no_ip_server, **files(lab_pki))
    no_ip_server.stop()
    result = check.exercise_06_3(outcome, paths=lab_pki)
    assert len(missing(result)) == 1 and "keep the server running" in missing(result)[0]


def test_6_3_strict_mode_raises(
    mtls_server: MTLSServer, lab_pki: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcome = attempt(f"https://127.0.0.1:{mtls_server.port}/", server=mtls_server, **files(lab_pki))
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_06_3(outcome, paths=lab_pki)
