"""The lab's client side: lab_session, attempt, Outcome, and the TLS error helpers.

The environment-variable tests prove the variables were really in effect:
the same request through a plain ``requests.Session`` fails with them set.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import requests
from urllib3.exceptions import MaxRetryError

from lab_helpers import (
    DEFAULT_TIMEOUT,
    KeyPasswordError,
    LabFileMissingError,
    LabPaths,
    LabSession,
    MTLSServer,
    NotPEMError,
    Outcome,
    attempt,
    lab_session,
    load_private_key,
    save_private_key,
)
from lab_helpers.tls import client_side_reason, exception_chain, innermost_tls_error, server_side_reason

DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens there

ENVIRONMENTS = [
    pytest.param({"REQUESTS_CA_BUNDLE": "certifi"}, requests.exceptions.SSLError, id="REQUESTS_CA_BUNDLE"),
    pytest.param({"CURL_CA_BUNDLE": "certifi"}, requests.exceptions.SSLError, id="CURL_CA_BUNDLE"),
    pytest.param({"HTTPS_PROXY": DEAD_PROXY}, requests.exceptions.ProxyError, id="HTTPS_PROXY"),
    pytest.param({"https_proxy": DEAD_PROXY}, requests.exceptions.ProxyError, id="https_proxy"),
    pytest.param(
        {"REQUESTS_CA_BUNDLE": "certifi", "HTTPS_PROXY": DEAD_PROXY},
        (requests.exceptions.SSLError, requests.exceptions.ProxyError),
        id="both",
    ),
]


def _set(monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], certifi_bundle: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, certifi_bundle if value == "certifi" else value)


# -- the environment ------------------------------------------------------------------------------


@pytest.mark.parametrize(("variables", "plain_failure"), ENVIRONMENTS)
def test_lab_session_ignores_proxy_and_ca_bundle_variables(
    clean_environment: pytest.MonkeyPatch,
    certifi_bundle: str,
    mtls_server: MTLSServer,
    client_files: dict,
    variables: dict[str, str],
    plain_failure: type,
) -> None:
    _set(clean_environment, variables, certifi_bundle)
    with lab_session(**client_files) as session:
        response = session.get(mtls_server.url)
    assert (response.status_code, response.text) == (200, "Hello, alice\n")
    assert attempt(mtls_server.url, **client_files).ok


@pytest.mark.parametrize(("variables", "plain_failure"), ENVIRONMENTS)
def test_a_plain_session_is_misled_by_the_same_variables(
    clean_environment: pytest.MonkeyPatch,
    certifi_bundle: str,
    mtls_server: MTLSServer,
    client_files: dict,
    variables: dict[str, str],
    plain_failure: type,
) -> None:
    """psf/requests#3829: REQUESTS_CA_BUNDLE overrides Session.verify; HTTPS_PROXY catches localhost."""
    _set(clean_environment, variables, certifi_bundle)
    with requests.Session() as session:
        session.verify = str(client_files["ca_file"])
        session.cert = (str(client_files["cert_file"]), str(client_files["key_file"]))
        with pytest.raises(plain_failure):
            session.get(mtls_server.url, timeout=5.0)


def test_a_plain_session_works_without_the_variables(
    clean_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, client_files: dict
) -> None:
    """The control for the test above: the plain session is right when the environment is clean."""
    with requests.Session() as session:
        session.verify = str(client_files["ca_file"])
        session.cert = (str(client_files["cert_file"]), str(client_files["key_file"]))
        assert session.get(mtls_server.url, timeout=5.0).text == "Hello, alice\n"


# -- timeouts --------------------------------------------------------------------------------------


def test_lab_session_has_a_default_timeout() -> None:
    session = LabSession()
    assert session.trust_env is False
    assert session.default_timeout == DEFAULT_TIMEOUT > 0
    assert lab_session(ca_file=None, timeout=0.5).default_timeout == 0.5


def test_lab_session_times_out_on_a_server_that_never_answers(silent_server: str, lab_pki: LabPaths) -> None:
    # No timeout passed to get(): the session's default must apply. Without it,
    # the silent server's safety timer would end the wait with a reset instead.
    with lab_session(ca_file=lab_pki.ca_cert, timeout=0.5) as session:
        with pytest.raises(requests.exceptions.Timeout):
            session.get(silent_server)


def test_the_same_short_timeout_is_enough_for_the_lab_server(
    mtls_server: MTLSServer, client_files: dict
) -> None:
    with lab_session(**client_files, timeout=0.5) as session:
        assert session.get(mtls_server.url).text == "Hello, alice\n"


def test_attempt_returns_an_outcome_on_timeout(silent_server: str, lab_pki: LabPaths) -> None:
    outcome = attempt(silent_server, ca_file=lab_pki.ca_cert, timeout=0.5)
    assert not outcome.ok
    assert outcome.failed_with(requests.exceptions.Timeout)
    assert outcome.reason == "timed out"
    assert outcome.server_reason is None


def test_attempt_uses_the_timeout_of_the_session_it_is_given(silent_server: str, lab_pki: LabPaths) -> None:
    outcome = attempt(silent_server, session=lab_session(ca_file=lab_pki.ca_cert, timeout=0.5))
    assert outcome.failed_with(requests.exceptions.Timeout), outcome  # not the 5 s default: reset at 3 s


def test_attempt_returns_an_outcome_when_nothing_listens(lab_pki: LabPaths) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    outcome = attempt(f"https://localhost:{port}/", ca_file=lab_pki.ca_cert)
    assert outcome.failed_with(requests.exceptions.ConnectionError)
    assert outcome.reason == "connection refused: nothing listens on that port"


# -- attempt and Outcome -----------------------------------------------------------------------------


def test_attempt_with_the_lab_ca_succeeds(mtls_server: MTLSServer, client_files: dict) -> None:
    outcome = attempt(mtls_server.url, server=mtls_server, **client_files)
    assert outcome == Outcome(url=mtls_server.url, ok=True, status=200, body="Hello, alice\n")
    assert outcome.error is None and not outcome.failed_with(Exception)


def test_attempt_without_the_lab_ca_fails_on_the_server_certificate(
    clean_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    outcome = attempt(
        mtls_server.url, cert_file=lab_pki.client_cert, key_file=lab_pki.client_key, server=mtls_server
    )
    assert outcome.failed_with(requests.exceptions.SSLError)
    assert outcome.reason is not None and outcome.reason.startswith("server certificate rejected")
    assert outcome.reason == "server certificate rejected: self-signed certificate in certificate chain"
    assert outcome.server_reason == "TLSV1_ALERT_UNKNOWN_CA"  # the client told the server why it hung up


def test_outcome_text_and_html_show_the_status(mtls_server: MTLSServer, client_files: dict) -> None:
    outcome = attempt(mtls_server.url, **client_files)
    assert str(outcome).startswith("OK") and "200" in str(outcome) and "Hello, alice" in str(outcome)
    assert "200" in outcome._repr_html_() and "Hello, alice" in outcome._repr_html_()


def test_outcome_text_and_html_show_the_reasons(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server)
    text, page = str(outcome), outcome._repr_html_()
    assert text.startswith("FAILED")
    for part in (outcome.error_class, outcome.reason, "PEER_DID_NOT_RETURN_A_CERTIFICATE"):
        assert part in text and part in page


def test_outcome_html_escapes_what_it_shows() -> None:
    outcome = Outcome(
        url="https://localhost/", ok=False, error_class="SSLError", reason="<script>", server_reason="a&b"
    )
    assert "<script>" not in outcome._repr_html_()
    assert "&lt;script&gt;" in outcome._repr_html_() and "a&amp;b" in outcome._repr_html_()


# -- the learner's own files ---------------------------------------------------------------------------


def test_lab_session_presents_a_certificate_with_its_key(client_files: dict) -> None:
    session = lab_session(**client_files)
    assert session.cert == (str(client_files["cert_file"]), str(client_files["key_file"]))
    assert session.verify == str(client_files["ca_file"])


def test_lab_session_refuses_a_certificate_without_its_key(lab_pki: LabPaths) -> None:
    with pytest.raises(ValueError, match="key_file"):
        lab_session(ca_file=lab_pki.ca_cert, cert_file=lab_pki.client_cert)


def test_lab_session_refuses_an_encrypted_client_key(tmp_path: Path, lab_pki: LabPaths) -> None:
    encrypted = save_private_key(
        load_private_key(lab_pki.client_key), tmp_path / "client.key", password=b"pw"
    )
    with pytest.raises(KeyPasswordError, match="requests cannot pass a password"):
        lab_session(ca_file=lab_pki.ca_cert, cert_file=lab_pki.client_cert, key_file=encrypted)


def test_lab_session_refuses_a_key_from_another_certificate(lab_pki: LabPaths) -> None:
    from lab_helpers import KeyMismatchError

    with pytest.raises(KeyMismatchError):
        lab_session(ca_file=lab_pki.ca_cert, cert_file=lab_pki.client_cert, key_file=lab_pki.server_key)


def test_lab_session_reports_a_missing_or_wrong_ca_file(lab_pki: LabPaths, tmp_path: Path) -> None:
    with pytest.raises(LabFileMissingError):
        lab_session(ca_file=tmp_path / "ca.crt")
    with pytest.raises(NotPEMError):
        lab_session(ca_file=lab_pki.ca_key)


def test_attempt_raises_for_the_learners_own_file_mistakes(mtls_server: MTLSServer, tmp_path: Path) -> None:
    """Only the request's failures become an Outcome; a missing file is the learner's to fix."""
    with pytest.raises(LabFileMissingError):
        attempt(mtls_server.url, ca_file=tmp_path / "missing.crt")


# -- the TLS error helpers -------------------------------------------------------------------------------


@pytest.fixture
def verification_error(
    clean_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths
) -> requests.exceptions.SSLError:
    """The real exception requests raises when the server's CA is not trusted."""
    with lab_session(ca_file=None, cert_file=lab_pki.client_cert, key_file=lab_pki.client_key) as session:
        with pytest.raises(requests.exceptions.SSLError) as caught:
            session.get(mtls_server.url)
    return caught.value


def test_exception_chain_walks_requests_urllib3_and_ssl(
    verification_error: requests.exceptions.SSLError,
) -> None:
    chain = list(exception_chain(verification_error))
    assert chain[0] is verification_error
    assert any(isinstance(error, MaxRetryError) for error in chain)
    innermost = innermost_tls_error(verification_error)
    assert isinstance(innermost, ssl.SSLCertVerificationError)
    assert innermost in chain
    assert innermost.verify_message == "self-signed certificate in certificate chain"
    assert client_side_reason(verification_error) == (
        "server certificate rejected: self-signed certificate in certificate chain"
    )


def test_innermost_tls_error_finds_no_verification_error_when_the_server_refused(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    with lab_session(ca_file=lab_pki.ca_cert) as session:
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            session.get(mtls_server.url)
    innermost = innermost_tls_error(caught.value)
    assert not isinstance(innermost, ssl.SSLCertVerificationError)
    assert isinstance(innermost, (ssl.SSLError, ConnectionError))
    # The alert, or (where the platform loses it) a bare EOF or reset: both say the server refused.
    assert client_side_reason(caught.value) in {
        "the server requires a client certificate (alert certificate_required)",
        "the server ended the connection",
    }


def test_innermost_tls_error_returns_a_non_tls_error_itself() -> None:
    error = ValueError("not TLS")
    assert list(exception_chain(error)) == [error]
    assert innermost_tls_error(error) is error


def test_exception_chain_visits_a_cycle_once() -> None:
    outer, inner = RuntimeError("outer"), RuntimeError("inner")
    outer.__cause__, inner.__context__ = inner, outer
    assert list(exception_chain(outer)) == [outer, inner]


def test_server_side_reason_words() -> None:
    assert server_side_reason(TimeoutError("timed out")) == "handshake timed out"
    assert (
        server_side_reason(ConnectionResetError(104, "reset"))
        == "client closed the connection during the handshake"
    )
