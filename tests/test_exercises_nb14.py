"""The checks of notebook 14's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import pytest
from cryptography import x509

from lab_helpers import (
    CertificateAuthority,
    ClientCertHeaderError,
    ForwardedRequest,
    LabPaths,
    check,
    client_cert_header_from_nginx,
    identity_from_certificate,
    load_certificate,
    load_certificate_authority,
    nginx_available,
    parse_client_cert_header,
)
from exercise_checks import NOT_ATTEMPTED, missing, strict

pytestmark = pytest.mark.usefixtures("lenient_checks")

PROXY_ID = "spiffe://lab.example/service/nginx-proxy"

API_CONFIG = """
server {
    listen 127.0.0.1:{{ port }} ssl;
    ssl_certificate        "{{ lab }}/server.crt";
    ssl_certificate_key    "{{ lab }}/server.key";
    ssl_client_certificate "{{ lab }}/ca.crt";
    ssl_verify_client      on;

    proxy_set_header X-SSL-Client-Cert   $ssl_client_escaped_cert;
    proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
    proxy_set_header Client-Cert         "";

    location / {
        proxy_pass http://127.0.0.1:{{ backend }};
    }
    location /api/ {
        proxy_pass http://127.0.0.1:{{ backend }};
        proxy_set_header Host $host;
    }
}
"""
IDENTITY = """        proxy_set_header X-SSL-Client-Cert   $ssl_client_escaped_cert;
        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
        proxy_set_header Client-Cert         "";
"""
FIXED = API_CONFIG.replace(
    "        proxy_set_header Host $host;\n", "        proxy_set_header Host $host;\n" + IDENTITY
)

needs_nginx = pytest.mark.skipif(
    not nginx_available(), reason="nginx is not installed (apt-get install nginx)"
)


@pytest.fixture
def made_up() -> x509.Certificate:
    return CertificateAuthority.create_root("attacker-ca").issue_client_certificate("bob").certificate


@pytest.fixture
def proxy_certificate(lab_pki: LabPaths) -> x509.Certificate:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    return ca.issue_client_certificate("nginx-proxy", names=[PROXY_ID]).certificate


# -- 14.1 Identity headers on every location ------------------------------------------------------


def test_14_1_not_attempted(lab_pki: LabPaths, made_up: x509.Certificate) -> None:
    assert check.exercise_14_1(None, paths=lab_pki, forged=made_up).status == NOT_ATTEMPTED


def test_14_1_without_nginx_stays_not_attempted_and_says_why(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_NGINX", "off")
    strict(monkeypatch)  # even in a solution notebook, a check that cannot run does not fail
    result = check.exercise_14_1(FIXED, paths=lab_pki, forged=made_up)
    assert result.status == NOT_ATTEMPTED and "apt-get install nginx" in (result.hint or "")


def test_14_1_wrong_type_is_explained(lab_pki: LabPaths, made_up: x509.Certificate) -> None:
    assert "configuration text" in missing(check.exercise_14_1(42, paths=lab_pki, forged=made_up))[0]


@needs_nginx
def test_14_1_the_fixed_configuration_passes(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    result = check.exercise_14_1(FIXED, paths=lab_pki, forged=made_up)
    assert result.passed, result


@needs_nginx
def test_14_1_the_colleagues_configuration_fails_on_api(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    result = check.exercise_14_1(API_CONFIG, paths=lab_pki, forged=made_up)
    assert not result.passed
    problems = missing(result)
    assert any(
        p.startswith("/api/: the backend saw X-SSL-Client-Cert as the client sent it") for p in problems
    )
    assert not any(p.startswith("/:") for p in problems)  # the / location was right all along
    strict(monkeypatch)
    with pytest.raises(AssertionError):
        check.exercise_14_1(API_CONFIG, paths=lab_pki, forged=made_up)


@needs_nginx
def test_14_1_dropping_the_host_line_or_the_verification_is_caught(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    no_host = API_CONFIG.replace("        proxy_set_header Host $host;\n", "")
    assert any(
        "keep `proxy_set_header Host $host;`" in p
        for p in missing(check.exercise_14_1(no_host, paths=lab_pki, forged=made_up))
    )
    optional = FIXED.replace("ssl_verify_client      on;", "ssl_verify_client      optional;")
    assert any(
        "keep `ssl_verify_client on;`" in p
        for p in missing(check.exercise_14_1(optional, paths=lab_pki, forged=made_up))
    )


@needs_nginx
def test_14_1_a_configuration_nginx_refuses_gets_nginxs_words(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    broken = FIXED.replace("ssl_verify_client      on;", "ssl_verify_client      sometimes;")
    assert (
        "nginx refused the configuration"
        in missing(check.exercise_14_1(broken, paths=lab_pki, forged=made_up))[0]
    )


# -- 14.2 The application, done right -----------------------------------------------------------------


def right_app(request: ForwardedRequest) -> tuple[int, str]:
    if request.tls_peer is None or PROXY_ID not in request.tls_peer.uris:
        return 403, "not the proxy\n"
    if request.get_all("X-SSL-Client-Verify") != ["SUCCESS"]:
        return 403, "not verified\n"
    certificates = request.get_all("X-SSL-Client-Cert")
    if len(certificates) != 1:
        return 400, "one expected\n"
    certificate = parse_client_cert_header(client_cert_header_from_nginx(certificates[0]))  # 400 by raising
    return 200, f"Hello, {identity_from_certificate(certificate).name}\n"


def _without_peer_check(request: ForwardedRequest) -> tuple[int, str]:
    if request.get_all("X-SSL-Client-Verify") != ["SUCCESS"]:
        return 403, "not verified\n"
    certificates = request.get_all("X-SSL-Client-Cert")
    if len(certificates) != 1:
        return 400, "one expected\n"
    certificate = parse_client_cert_header(client_cert_header_from_nginx(certificates[0]))
    return 200, f"Hello, {identity_from_certificate(certificate).name}\n"


def trusting_app(request: ForwardedRequest) -> tuple[int, str]:
    escaped = request.get("X-SSL-Client-Cert")
    value = client_cert_header_from_nginx(escaped) if escaped else request.get("Client-Cert")
    if value is None:
        return 401, "no certificate\n"
    return 200, f"Hello, {identity_from_certificate(parse_client_cert_header(value)).name}\n"


def check_14_2(app: object, lab_pki: LabPaths, proxy: x509.Certificate, other: x509.Certificate):  # noqa: ANN201
    return check.exercise_14_2(app, proxy=proxy, alice=load_certificate(lab_pki.client_cert), other=other)


def test_14_2_not_attempted(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    assert check_14_2(None, lab_pki, proxy_certificate, made_up).status == NOT_ATTEMPTED


def test_14_2_the_right_app_passes_and_its_raised_400_counts(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    result = check_14_2(right_app, lab_pki, proxy_certificate, made_up)
    assert result.passed, result


def test_14_2_checking_headers_without_the_peer_fails_on_direct_requests(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    problems = missing(check_14_2(_without_peer_check, lab_pki, proxy_certificate, made_up))
    assert {p.split(":")[0] for p in problems} == {
        "the same headers sent directly, without TLS",
        "the same headers from alice's own mTLS connection",
    }


def test_14_2_the_trusting_app_fails_almost_everything(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    problems = " | ".join(missing(check_14_2(trusting_app, lab_pki, proxy_certificate, made_up)))
    for case in (
        "sent directly",
        "alice's own mTLS connection",
        "a certificate that failed",
        "a smuggled Client-Cert",
        "two X-SSL-Client-Cert headers",
    ):
        assert case in problems


def test_14_2_a_crashing_app_is_reported_not_raised(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    def crashing(request: ForwardedRequest) -> tuple[int, str]:
        raise KeyError("oops")

    problems = missing(check_14_2(crashing, lab_pki, proxy_certificate, made_up))
    assert problems and all("my_app raised KeyError" in p for p in problems)
    assert not isinstance(KeyError("x"), ClientCertHeaderError)


def test_14_2_a_non_function_is_explained(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    assert "should be a function" in missing(check_14_2("app", lab_pki, proxy_certificate, made_up))[0]


def test_14_2_strict_mode_raises_for_a_wrong_app(
    lab_pki: LabPaths,
    proxy_certificate: x509.Certificate,
    made_up: x509.Certificate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    strict(monkeypatch)
    with pytest.raises(AssertionError):
        check_14_2(trusting_app, lab_pki, proxy_certificate, made_up)
    assert check_14_2(right_app, lab_pki, proxy_certificate, made_up).passed
