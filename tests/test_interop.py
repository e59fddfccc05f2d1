"""The article's tools against the lab server: curl and openssl s_client.

Each test skips with a reason when its tool is missing. curl always gets
``-q`` (no ~/.curlrc), ``--noproxy '*'`` and ``--max-time 10``; every
subprocess has a timeout.
"""

from __future__ import annotations

import subprocess

import pytest
from lab_checks import environment_without
from platforms import CURL_MISSING, OPENSSL_MISSING, curl_tool, openssl_tool

from lab_helpers import LabPaths, MTLSServer

CURL = curl_tool()
OPENSSL = openssl_tool()
needs_curl = pytest.mark.skipif(CURL is None, reason=CURL_MISSING)
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason=OPENSSL_MISSING)

HTTP_GET = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def curl(*arguments: str, **environment: str) -> subprocess.CompletedProcess[str]:
    command = [CURL, "-q", "--silent", "--show-error", "--noproxy", "*", "--max-time", "10", *arguments]
    return subprocess.run(
        command,  # type: ignore[arg-type]
        capture_output=True,
        text=True,
        timeout=30,
        env=environment_without("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", **environment),
    )


def s_client(server: MTLSServer, paths: LabPaths, *extra: str) -> subprocess.CompletedProcess[bytes]:
    command = [
        OPENSSL,
        "s_client",
        "-connect",
        f"127.0.0.1:{server.port}",
        "-servername",
        "localhost",
        "-CAfile",
        str(paths.ca_cert),
        *extra,
        "-brief",
        "-ign_eof",  # read until the server closes, not until stdin ends
    ]
    return subprocess.run(command, input=HTTP_GET, capture_output=True, timeout=30)  # type: ignore[arg-type]


# -- curl ----------------------------------------------------------------------------------------


@needs_curl
def test_curl_with_ca_and_client_certificate_gets_hello(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = curl(
        "--cacert",
        str(lab_pki.ca_cert),
        "--cert",
        str(lab_pki.client_cert),
        "--key",
        str(lab_pki.client_key),
        mtls_server.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, alice\n"


@needs_curl
def test_curl_without_the_lab_ca_fails_with_exit_60(
    mtls_server: MTLSServer, lab_pki: LabPaths, certifi_bundle: str
) -> None:
    result = curl(
        "--cert",
        str(lab_pki.client_cert),
        "--key",
        str(lab_pki.client_key),
        mtls_server.url,
        CURL_CA_BUNDLE=certifi_bundle,
    )
    assert result.returncode == 60, result.stderr  # peer certificate cannot be authenticated
    assert "Hello" not in result.stdout


@needs_curl
def test_curl_without_a_client_certificate_fails_with_exit_56_or_35(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    result = curl("--cacert", str(lab_pki.ca_cert), mtls_server.url)
    assert result.returncode in {56, 35}, result.stderr  # TLS 1.3: 56 (receive error); TLS 1.2: 35
    rejection = mtls_server.wait_for_rejection(0, timeout=5.0)
    assert rejection is not None and rejection.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


@needs_curl
def test_curl_without_a_client_certificate_over_tls_1_2_fails_with_exit_35(
    tls12_server: MTLSServer, lab_pki: LabPaths
) -> None:
    result = curl("--cacert", str(lab_pki.ca_cert), tls12_server.url)
    assert result.returncode == 35, result.stderr  # the handshake itself fails
    rejection = tls12_server.wait_for_rejection(0, timeout=5.0)
    assert rejection is not None and rejection.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


@needs_curl
def test_curl_works_for_every_key_type(
    mtls_server_of_key_type: MTLSServer, lab_pki_of_key_type: LabPaths
) -> None:
    paths = lab_pki_of_key_type
    result = curl(
        "--cacert",
        str(paths.ca_cert),
        "--cert",
        str(paths.client_cert),
        "--key",
        str(paths.client_key),
        mtls_server_of_key_type.url,
    )
    assert (result.returncode, result.stdout) == (0, "Hello, alice\n"), result.stderr


# -- openssl s_client ---------------------------------------------------------------------------------


@needs_openssl
def test_s_client_with_client_certificate_gets_hello(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = s_client(
        mtls_server, lab_pki, "-cert", str(lab_pki.client_cert), "-key", str(lab_pki.client_key)
    )
    output, errors = result.stdout.decode(), result.stderr.decode()
    assert "Verification: OK" in errors
    assert output.startswith("HTTP/1.1 200 OK\r\n")
    assert output.endswith("\r\n\r\nHello, alice\n")
    # The server ends TLS with close_notify: no "unexpected eof while reading".
    assert result.returncode == 0, errors
    assert "unexpected eof" not in errors


@needs_openssl
def test_s_client_without_client_certificate_is_refused(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    result = s_client(mtls_server, lab_pki)
    assert "Hello" not in result.stdout.decode()
    assert (
        "Verification: OK" in result.stderr.decode()
    )  # the client trusted the server; the server refused it
    rejection = mtls_server.wait_for_rejection(0, timeout=5.0)
    assert rejection is not None and rejection.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


@needs_openssl
def test_s_client_without_the_lab_ca_does_not_verify_the_server(
    mtls_server: MTLSServer, lab_pki: LabPaths, other_pki: LabPaths
) -> None:
    result = s_client(
        mtls_server,
        other_pki,
        "-verify_return_error",
        "-cert",
        str(lab_pki.client_cert),
        "-key",
        str(lab_pki.client_key),
    )
    assert result.returncode != 0
    assert "Hello" not in result.stdout.decode()
    assert "Verification: OK" not in result.stderr.decode()
