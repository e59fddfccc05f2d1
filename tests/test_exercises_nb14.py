"""The checks of notebook 14's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import pytest
from cryptography import x509
from exercise_checks import NOT_ATTEMPTED, missing, strict

from lab_helpers import (
    ANY_CLIENT,
    AccessPolicy,
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
from lab_helpers.exercises.nb14 import NotJudged

pytestmark = pytest.mark.usefixtures("lenient_checks")

PROXY_ID = "spiffe://lab.example/service/nginx-proxy"
ALICE = "spiffe://lab.example/user/alice"

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


def test_14_1_without_nginx_says_it_cannot_be_checked_here(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filled-in answer without nginx: neither passed nor failed nor "not attempted", and the words say why."""
    monkeypatch.setenv("MTLS_NGINX", "off")
    strict(monkeypatch)  # even in a solution notebook, a check that cannot run does not fail
    result = check.exercise_14_1(FIXED, paths=lab_pki, forged=made_up)
    assert isinstance(result, NotJudged) and result.status == NOT_ATTEMPTED and not result.passed
    shown = str(result)
    assert shown.startswith("⏸ Exercise 14.1: Identity headers on every location: cannot be checked here")
    assert "nginx is hidden here (MTLS_NGINX=off)" in shown and "apt-get install nginx" in shown
    assert shown.endswith("Your configuration was not judged.")
    assert "not attempted" not in shown and "cannot be checked here" in result._repr_html_()
    # the twin: an untouched cell is still "not attempted yet", not "cannot be checked"
    untouched = check.exercise_14_1(None, paths=lab_pki, forged=made_up)
    assert not isinstance(untouched, NotJudged) and untouched.status == NOT_ATTEMPTED


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
    assert any(
        p.startswith("/api/: the Client-Cert the client made up reached the backend") for p in problems
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


@needs_nginx
def test_14_1_a_missing_semicolon_is_named_once_on_the_learners_line(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The learner's own line, once: not nginx.conf's line 35 under a doubled prefix."""
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    broken = FIXED.replace(
        'proxy_set_header Client-Cert         "";\n    }', 'proxy_set_header Client-Cert         ""\n    }'
    )
    assert broken != FIXED
    (problem,) = missing(check.exercise_14_1(broken, paths=lab_pki, forged=made_up))
    assert problem.count("nginx refused the configuration") == 1
    line = next(
        number for number, text in enumerate(broken.splitlines(), 1) if text.strip() == "}" and number > 20
    )
    assert problem.endswith(f"(line {line} of the http= text: '}}')")


@needs_nginx
def test_14_1_forgetting_to_clear_client_cert_names_that_header(
    lab_pki: LabPaths, made_up: x509.Certificate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    without_clearing = FIXED.replace('        proxy_set_header Client-Cert         "";\n', "", 1)
    problems = missing(check.exercise_14_1(without_clearing, paths=lab_pki, forged=made_up))
    assert problems == [
        "/api/: the Client-Cert the client made up reached the backend: nginx did not clear it there "
        '(proxy_set_header Client-Cert "";).'
    ]


# -- 14.2 The application, done right -----------------------------------------------------------------


POLICY = AccessPolicy().allow("/", ANY_CLIENT, exact=True).allow("/admin", ALICE)


def forwarded_client(request: ForwardedRequest) -> tuple[int, str]:
    """What checked_app of step 5 does, and the policy on the forwarded identity."""
    if request.get_all("X-SSL-Client-Verify") != ["SUCCESS"]:
        return 403, "not verified\n"
    certificates = request.get_all("X-SSL-Client-Cert")
    if len(certificates) != 1:
        return 400, "one expected\n"
    certificate = parse_client_cert_header(client_cert_header_from_nginx(certificates[0]))  # 400 by raising
    identity = identity_from_certificate(certificate)
    if not POLICY.decide(identity, request.path).allowed:
        return 403, "not for you\n"
    return 200, f"Hello, {identity.name}\n"


def right_app(request: ForwardedRequest) -> tuple[int, str]:
    if request.tls_peer is None or PROXY_ID not in request.tls_peer.uris:
        return 403, "not the proxy\n"
    return forwarded_client(request)


def _without_peer_check(request: ForwardedRequest) -> tuple[int, str]:
    return forwarded_client(request)


def peer_by_common_name(request: ForwardedRequest) -> tuple[int, str]:
    """The mistake notebooks 08 and 13 teach against: "nginx-proxy" is a name any lab certificate can carry."""
    if request.tls_peer is None or request.tls_peer.name != "nginx-proxy":
        return 403, "not the proxy\n"
    return forwarded_client(request)


def step_6_proxy_only_app(request: ForwardedRequest) -> tuple[int, str]:
    """Step 6's proxy_only_app, as the notebook shows it: right about the proxy, with no rule for /admin."""
    if request.tls_peer is None or PROXY_ID not in request.tls_peer.uris:
        return 403, "not the proxy\n"
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


def check_14_2(app: object, lab_pki: LabPaths, proxy: x509.Certificate, other: x509.Certificate):
    return check.exercise_14_2(
        app,
        proxy=proxy,
        alice=load_certificate(lab_pki.client_cert),
        other=other,
        ca=load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key),
    )


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
        "from a lab certificate with commonName nginx-proxy but another URI",
    }


def test_14_2_recognising_the_proxy_by_its_common_name_is_caught(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    problems = missing(check_14_2(peer_by_common_name, lab_pki, proxy_certificate, made_up))
    assert problems == [
        "from a lab certificate with commonName nginx-proxy but another URI: got 200 'Hello, alice', expected "
        f"403: the proxy is its URI, {PROXY_ID}, not a name anyone can be issued."
    ]


def test_14_2_step_6_alone_does_not_solve_it(
    lab_pki: LabPaths, proxy_certificate: x509.Certificate, made_up: x509.Certificate
) -> None:
    """The exercise asks for one thing step 6 did not do: /admin for alice's URI alone."""
    problems = missing(check_14_2(step_6_proxy_only_app, lab_pki, proxy_certificate, made_up))
    assert [p.split(":")[0] for p in problems] == [
        "from the proxy, verified bob, /admin",
        "from the proxy, verified commonName alice with another URI, /admin",
    ]


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
