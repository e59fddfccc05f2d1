"""explain() on failures made by plain requests and ssl code, with no lab_helpers client in between."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import requests

from lab_helpers import (
    LabPaths,
    MTLSServer,
    explain,
    load_certificate_authority,
    save_certificate,
    save_private_key,
)
from lab_helpers.diagnosis import CASES as EXPLANATIONS


@pytest.fixture
def plain_environment(clean_environment: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Plain requests reads the environment: no proxy, no CA bundle, so each test sets only what it is about."""
    return clean_environment


def plain_get(url: str, **kwargs: object) -> BaseException:
    """A module-level requests.get, as code that never heard of lab_helpers writes it; returns its error."""
    with pytest.raises(requests.exceptions.RequestException) as caught:
        requests.get(url, timeout=5, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_a_successful_request_has_nothing_to_explain(
    plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    response = requests.get(
        mtls_server.url,
        verify=str(lab_pki.ca_cert),
        cert=(str(lab_pki.client_cert), str(lab_pki.client_key)),
        timeout=5,
    )
    assert response.text == "Hello, alice\n"


def test_requests_without_the_lab_ca(
    plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths, certifi_bundle: str
) -> None:
    error = plain_get(
        mtls_server.url, verify=certifi_bundle, cert=(str(lab_pki.client_cert), str(lab_pki.client_key))
    )
    explanation = explain(error)
    assert explanation.key == "server-ca-not-trusted"
    assert explanation.recognised
    assert "--cacert" in explanation.fix
    assert "Fix:" in str(explanation) and "<table" in explanation._repr_html_()


def test_requests_without_a_client_certificate(
    plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    error = plain_get(mtls_server.url, verify=str(lab_pki.ca_cert))
    assert isinstance(error, requests.exceptions.ConnectionError)
    assert explain(error).key in {"client-certificate-missing", "server-closed-connection"}


def test_requests_behind_a_dead_proxy(
    plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    plain_environment.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    error = plain_get(mtls_server.url, verify=str(lab_pki.ca_cert))
    assert explain(error).key == "proxy-in-the-way"


def test_requests_to_a_port_where_nothing_listens(plain_environment: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the request: nothing listens there
    assert explain(plain_get(f"https://localhost:{port}/")).key == "nothing-listening"


def test_requests_to_a_server_that_never_answers(
    plain_environment: pytest.MonkeyPatch, silent_server: str
) -> None:
    with pytest.raises(requests.exceptions.Timeout) as caught:
        requests.get(silent_server, timeout=0.3)
    assert explain(caught.value).key == "timeout"


def test_requests_with_a_missing_certificate_file(
    plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, tmp_path: Path
) -> None:
    with pytest.raises(OSError) as caught:  # requests raises a plain OSError here, not a RequestException
        requests.get(mtls_server.url, cert=(str(tmp_path / "no.crt"), str(tmp_path / "no.key")), timeout=5)
    assert explain(caught.value).key == "client-files-missing"


def test_ssl_socket_that_does_not_trust_the_server(mtls_server: MTLSServer, other_pki: LabPaths) -> None:
    context = ssl.create_default_context(cafile=str(other_pki.ca_cert))
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        with socket.create_connection(("127.0.0.1", mtls_server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost"):
                pass
    assert explain(caught.value).key == "server-ca-not-trusted"


def test_ssl_socket_with_a_host_name_the_certificate_lacks(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    with pytest.raises(ssl.SSLCertVerificationError) as caught:
        with socket.create_connection(("127.0.0.1", mtls_server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="api.example.com"):
                pass
    assert explain(caught.value).key == "server-name-mismatch"


def test_ssl_socket_without_a_client_certificate_over_tls_1_3(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    with pytest.raises((ssl.SSLError, OSError)) as caught:
        with socket.create_connection(("127.0.0.1", mtls_server.port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")  # the handshake "succeeded"...
                tls.recv(1024)  # ...and the rejection arrives at the first read
    assert explain(caught.value).key in {"client-certificate-missing", "server-closed-connection"}


def test_ssl_context_given_a_key_of_another_certificate(lab_pki: LabPaths) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with pytest.raises(ssl.SSLError) as caught:
        context.load_cert_chain(str(lab_pki.client_cert), str(lab_pki.server_key))
    assert explain(caught.value).key == "client-key-mismatch"


def test_requests_with_an_encrypted_key(
    plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer, lab_pki: LabPaths, tmp_path: Path
) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    issued = ca.issue_client_certificate("alice")
    cert, key = tmp_path / "alice.crt", tmp_path / "alice.key"
    save_certificate(issued.certificate, cert)
    save_private_key(issued.private_key, key, password=b"secret")
    error = plain_get(mtls_server.url, verify=str(lab_pki.ca_cert), cert=(str(cert), str(key)))
    assert explain(error).key == "client-key-encrypted"


def test_plain_http_to_the_tls_port(plain_environment: pytest.MonkeyPatch, mtls_server: MTLSServer) -> None:
    error = plain_get(mtls_server.url.replace("https://", "http://"))
    assert explain(error).key == "plain-http-to-tls-port"
    assert explain(mtls_server.wait_for_rejection(0, timeout=3)).key == "plain-http-to-tls-port"


@pytest.mark.parametrize(
    ("server_reason", "key"),
    [
        ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "client-certificate-missing"),
        # The same alert means opposite things on the two sides: on the server,
        # "unknown CA" says the CLIENT did not trust the server.
        ("TLSV1_ALERT_UNKNOWN_CA", "server-ca-not-trusted"),
        ("unable to get local issuer certificate", "client-ca-not-trusted"),
        ("certificate has expired", "client-certificate-expired"),
        ("SSLV3_ALERT_CERTIFICATE_EXPIRED", "server-certificate-expired"),
        ("unsuitable certificate purpose", "client-certificate-wrong-purpose"),
        ("SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "server-certificate-wrong-purpose"),
        ("HTTP_REQUEST", "plain-http-to-tls-port"),
        ("handshake timed out", "handshake-timeout"),
    ],
)
def test_server_reasons_are_explained_from_the_servers_side(server_reason: str, key: str) -> None:
    assert explain(server_reason).key == key


def test_an_unknown_error_is_honestly_not_recognised() -> None:
    explanation = explain(ValueError("the flux capacitor is out of alignment"))
    assert not explanation.recognised
    assert explanation.key == "not-recognised"
    assert "flux capacitor" in explanation.evidence
    assert "Not recognised" in str(explanation)


def test_an_unknown_server_reason_is_not_recognised() -> None:
    assert not explain("SOMETHING_NEW_IN_OPENSSL_4").recognised


def test_every_explanation_says_what_to_do() -> None:
    for case in EXPLANATIONS:
        assert case.fix and case.cause and case.who, case.key
    assert len({case.key for case in EXPLANATIONS}) == len(EXPLANATIONS), "keys are unique"


@pytest.mark.parametrize(
    ("server_reason", "key"),
    [
        ("unable to get certificate CRL", "crl-missing"),
        ("CRL has expired", "crl-stale"),
        ("CRL signature failure", "crl-signature-failure"),
        ("self-signed certificate in certificate chain", "client-ca-not-trusted"),
        ("invalid or inconsistent certificate extension", "client-certificate-malformed"),
    ],
)
def test_revocation_and_chain_reasons_from_the_server(server_reason: str, key: str) -> None:
    assert explain(server_reason).key == key


def _rsa_pair(bits: int, folder: Path) -> tuple[Path, Path]:
    """A self-signed RSA certificate and key of ``bits`` bits (cryptography makes any size; the lab refuses < 2048)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert = save_certificate(certificate, folder / f"rsa{bits}.crt")
    key_file = folder / f"rsa{bits}.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert, key_file


def test_a_small_rsa_key_is_refused_by_pythons_ssl_and_the_explanation_says_who(tmp_path: Path) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert context.security_level == 2  # what the explanation says Python sets
    with pytest.raises(ssl.SSLError) as caught:
        context.load_cert_chain(*_rsa_pair(1024, tmp_path))
    explanation = explain(caught.value)
    assert explanation.key == "key-too-small" and explanation.evidence == "EE_KEY_TOO_SMALL"
    assert "@SECLEVEL=2" in explanation.cause and "level 1 before 3.2" in explanation.cause
    assert "in its default build" in explanation.cause and "Fedora" in explanation.cause  # not every build
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
        *_rsa_pair(2048, tmp_path)
    )  # the twin: 2048 bits load


#: Words a fix must never use: the course teaches failures by making them happen, never by switching checks off.
UNSAFE_FIX_WORDS = (
    "turn the check off",
    "turn it off",
    "disable",
    "verify=false",
    "cert_none",
    "check_hostname",
)


def unsafe_words(fix: str) -> list[str]:
    return [word for word in UNSAFE_FIX_WORDS if word in fix.lower()]


def test_no_fix_advises_turning_a_check_off() -> None:
    assert unsafe_words("Load the CRL into the server, or turn the check off.") == [
        "turn the check off"
    ]  # the twin
    for case in EXPLANATIONS:
        assert not unsafe_words(case.fix), (case.key, case.fix)


def test_a_missing_crl_gives_only_safe_fixes() -> None:
    explanation = explain("unable to get certificate CRL")
    assert explanation.key == "crl-missing"
    assert (
        "crl_file=" in explanation.fix
        and "fails closed" in explanation.fix
        and not unsafe_words(explanation.fix)
    )


def test_a_missing_crl_reaches_the_client_as_unknown_ca_and_the_explanation_says_so(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    """OpenSSL maps 'unable to get certificate CRL' to the alert unknown_ca (ssl/statem/statem_lib.c, x509table).

    Over TLS 1.2 the alert arrives during the handshake, so the client's error is stable.
    """
    from lab_helpers import attempt, build_server_context, lab_session

    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF  # check revocation, with no CRL to check against
    mtls_server.replace_context(context)
    files = {"ca_file": lab_pki.ca_cert, "cert_file": lab_pki.client_cert, "key_file": lab_pki.client_key}
    with lab_session(**files, maximum_version=ssl.TLSVersion.TLSv1_2) as session:
        outcome = attempt(mtls_server.url, session=session, server=mtls_server)
    assert outcome.server_reason == "unable to get certificate CRL"
    assert outcome.error is not None
    explanation = explain(outcome.error)
    assert explanation.key == "client-ca-not-trusted" and explanation.evidence == "TLSV1_ALERT_UNKNOWN_CA"
    assert "checks CRLs and has none for that CA" in explanation.cause
    assert "unable to get certificate CRL" in explanation.fix and not unsafe_words(explanation.fix)


def test_a_name_mismatch_says_which_clients_still_read_the_common_name() -> None:
    """Notebook 03 shows curl and ssl.create_default_context() accepting a CN-only certificate: no 'modern clients'."""
    from lab_helpers.diagnosis import case

    cause = case("server-name-mismatch").cause
    assert "curl, Java and ssl.create_default_context() still fall back to it" in cause
    assert "modern clients ignore" not in cause
