"""RFC 9440's Client-Cert value and nginx's escaped PEM: round trips, and every malformed value refused with a 400."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from lab_helpers import (
    MAX_CLIENT_CERT_HEADER,
    Backend,
    ClientCertHeaderError,
    ForwardedRequest,
    LabError,
    LabPaths,
    LabSession,
    client_cert_header,
    client_cert_header_from_nginx,
    load_certificate,
    nginx_escaped_pem,
    parse_client_cert_header,
)


def test_a_certificate_round_trips_through_client_cert_for_every_key_type(
    lab_pki_of_key_type: LabPaths,
) -> None:
    certificate = load_certificate(lab_pki_of_key_type.client_cert)
    value = client_cert_header(certificate)
    assert value.startswith(":") and value.endswith(":") and "\n" not in value
    assert base64.b64decode(value[1:-1]) == certificate.public_bytes(Encoding.DER)
    assert parse_client_cert_header(value) == certificate


def test_nginx_escaped_pem_becomes_the_same_client_cert_value(lab_pki_of_key_type: LabPaths) -> None:
    certificate = load_certificate(lab_pki_of_key_type.client_cert)
    escaped = nginx_escaped_pem(certificate)
    assert escaped.startswith("-----BEGIN%20CERTIFICATE-----%0A") and "\n" not in escaped
    assert client_cert_header_from_nginx(escaped) == client_cert_header(certificate)
    # and back: the RFC 9440 value parses to the certificate nginx was given
    assert parse_client_cert_header(client_cert_header_from_nginx(escaped)) == certificate


def test_plain_pem_without_url_encoding_is_accepted_too(lab_pki: LabPaths) -> None:
    certificate = load_certificate(lab_pki.client_cert)
    pem = certificate.public_bytes(Encoding.PEM).decode()
    assert client_cert_header_from_nginx(pem) == client_cert_header(certificate)


def test_surrounding_spaces_and_missing_padding_are_accepted(lab_pki: LabPaths) -> None:
    certificate = load_certificate(lab_pki.client_cert)
    value = client_cert_header(certificate)
    assert parse_client_cert_header(f"  {value}\t") == certificate
    unpadded = value[:-1].rstrip("=") + ":"
    assert parse_client_cert_header(unpadded) == certificate  # RFC 8941: parsers should not insist on padding
    assert parse_client_cert_header([value]) == certificate  # one value, given as the list get_all returns


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "No Client-Cert header"),
        ([], "No Client-Cert header"),
        ("", "is empty"),
        ("alice", "not a byte sequence"),
        (":abc", "not a byte sequence"),
        ("::", "not a DER X.509 certificate"),
        (":a:b:", "not a byte sequence"),
        (":abc:;param=1", "not a byte sequence"),
        (":not base64!:", "not base64"),
        (":ab=cd:", "'=' padding before its end"),
        (":QUJD:", "not a DER X.509 certificate"),
        (":A:", "not valid base64"),
    ],
)
def test_a_malformed_client_cert_is_refused_with_a_400_and_one_line(value: object, words: str) -> None:
    with pytest.raises(ClientCertHeaderError) as caught:
        parse_client_cert_header(value)  # type: ignore[arg-type]
    assert caught.value.status == 400
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, LabError) and isinstance(caught.value, ValueError)


def test_two_client_cert_headers_are_refused(lab_pki: LabPaths) -> None:
    value = client_cert_header(load_certificate(lab_pki.client_cert))
    with pytest.raises(ClientCertHeaderError, match="exactly one"):
        parse_client_cert_header([value, value])


def test_an_oversized_client_cert_is_refused_unread() -> None:
    with pytest.raises(ClientCertHeaderError, match="over the limit"):
        parse_client_cert_header(":" + "A" * MAX_CLIENT_CERT_HEADER + ":")
    # the negative twin: just under the limit is read (and then found not to be a certificate)
    with pytest.raises(ClientCertHeaderError, match=r"not a DER X\.509 certificate"):
        parse_client_cert_header(":" + "A" * (MAX_CLIENT_CERT_HEADER - 4) + ":")


@pytest.mark.parametrize(
    ("escaped", "words"),
    [
        (None, "missing or empty"),
        ("   ", "missing or empty"),
        ("hello", "0 PEM certificates"),
        ("-----BEGIN%20CERTIFICATE-----%0A%21%21%0A-----END%20CERTIFICATE-----", "0 PEM certificates"),
        ("A" * (3 * MAX_CLIENT_CERT_HEADER + 1), "over the limit"),
        ("-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n", "not a DER X.509 certificate"),
    ],
)
def test_a_malformed_nginx_certificate_header_is_refused(escaped: str | None, words: str) -> None:
    with pytest.raises(ClientCertHeaderError, match=words) as caught:
        client_cert_header_from_nginx(escaped)
    assert caught.value.status == 400


def test_two_certificates_or_a_csr_in_nginx_header_are_refused(lab_pki: LabPaths) -> None:
    one = nginx_escaped_pem(load_certificate(lab_pki.client_cert))
    with pytest.raises(ClientCertHeaderError, match="2 PEM certificates"):
        client_cert_header_from_nginx(one + one)
    csr = lab_pki.client_csr.read_text()
    with pytest.raises(ClientCertHeaderError, match="0 PEM certificates"):
        client_cert_header_from_nginx(csr)


def test_an_nginx_header_that_is_not_utf_8_is_refused_with_a_400(lab_pki: LabPaths) -> None:
    """%FF decodes to a byte that is no UTF-8: a 400 with one line, not a UnicodeDecodeError (a 500)."""
    with pytest.raises(ClientCertHeaderError, match="not URL-encoded UTF-8") as caught:
        client_cert_header_from_nginx("-----BEGIN%20CERTIFICATE-----%0A%FF%0A-----END%20CERTIFICATE-----")
    assert caught.value.status == 400
    # the twin: the same spelling with the real certificate in it is read
    escaped = nginx_escaped_pem(load_certificate(lab_pki.client_cert))
    assert parse_client_cert_header(client_cert_header_from_nginx(escaped)) == load_certificate(
        lab_pki.client_cert
    )


def test_the_backend_answers_400_to_an_nginx_header_that_is_not_utf_8(lab_pki: LabPaths) -> None:
    """Through the backend, the forged header gets the client's-fault 400, and the app's error list stays empty."""

    def reads_nginx_header(request: ForwardedRequest) -> tuple[int, str]:
        value = client_cert_header_from_nginx(request.get("X-SSL-Client-Cert"))
        return 200, f"Hello, {parse_client_cert_header(value).subject.rfc4514_string()}\n"

    escaped = nginx_escaped_pem(load_certificate(lab_pki.client_cert))
    with Backend(reads_nginx_header, name=None) as backend, LabSession() as client:
        forged = client.get(backend.url, headers={"X-SSL-Client-Cert": "%FF"})
        real = client.get(backend.url, headers={"X-SSL-Client-Cert": escaped})
    assert (forged.status_code, forged.text) == (
        400,
        "Bad request: nginx's certificate header is not URL-encoded UTF-8.\n",
    )
    assert (real.status_code, real.text) == (200, "Hello, CN=alice\n")
    assert list(backend.errors) == []
