"""nginx in front of the lab: the article's three requests in each topology, and each forged-identity attack
made to work against its naive set-up, then made to fail by its fix. Real nginx, real sockets, real TLS."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from lab_helpers import (
    Backend,
    CertificateAuthority,
    ForwardedRequest,
    LabPaths,
    LabSession,
    MTLSServer,
    Nginx,
    attempt,
    build_server_context,
    client_cert_header,
    client_cert_header_from_nginx,
    get_with_sni,
    identity_from_certificate,
    lab_session,
    load_certificate,
    load_certificate_authority,
    nginx_available,
    nginx_escaped_pem,
    parse_client_cert_header,
    save_certificate,
    save_private_key,
)

pytestmark = pytest.mark.skipif(
    not nginx_available(), reason="nginx is not installed (apt-get install nginx)"
)

PROXY_ID = "spiffe://lab.example/service/nginx-proxy"

TERMINATION = """
server {
    listen 127.0.0.1:{{ port }} ssl;
    ssl_certificate        "{{ lab }}/server.crt";
    ssl_certificate_key    "{{ lab }}/server.key";
    ssl_client_certificate "{{ lab }}/ca.crt";
    ssl_verify_client      {{ verify }};
    location / {
        proxy_pass http://127.0.0.1:{{ backend }};
        proxy_set_header X-SSL-Client-Cert   $ssl_client_escaped_cert;
        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
        {{ sanitize }}
    }
}
"""

REENCRYPTION = """
server {
    listen 127.0.0.1:{{ port }} ssl;
    ssl_certificate        "{{ lab }}/server.crt";
    ssl_certificate_key    "{{ lab }}/server.key";
    ssl_client_certificate "{{ lab }}/ca.crt";
    ssl_verify_client      on;
    location / {
        proxy_pass https://127.0.0.1:{{ backend }};
        proxy_ssl_certificate         "{{ lab }}/proxy.crt";
        proxy_ssl_certificate_key     "{{ lab }}/proxy.key";
        proxy_ssl_trusted_certificate "{{ lab }}/ca.crt";
        proxy_ssl_verify              {{ upstream_verify }};
        proxy_ssl_name                localhost;
        proxy_ssl_server_name         on;
        proxy_set_header X-SSL-Client-Cert   $ssl_client_escaped_cert;
        proxy_set_header X-SSL-Client-Verify $ssl_client_verify;
        proxy_set_header Client-Cert         "";
    }
}
"""

PASSTHROUGH = """
map $ssl_preread_server_name $route {
    localhost        127.0.0.1:{{ lab_server }};
    api.lab.example  127.0.0.1:{{ api_server }};
    default          127.0.0.1:1;
}
log_format routed '$ssl_preread_server_name -> $route $status';
server {
    listen 127.0.0.1:{{ port }};
    ssl_preread on;
    proxy_pass  $route;
    access_log  "{{ dir }}/stream.log" routed;
}
"""


def trusting_app(request: ForwardedRequest) -> tuple[int, str]:
    """The naive application: nginx's header, else Client-Cert, from whoever sent them."""
    escaped = request.get("X-SSL-Client-Cert")
    value = client_cert_header_from_nginx(escaped) if escaped else request.get("Client-Cert")
    if value is None:
        return 401, "no certificate\n"
    return 200, f"Hello, {identity_from_certificate(parse_client_cert_header(value)).name}\n"


def checked_app(request: ForwardedRequest) -> tuple[int, str]:
    if request.get_all("X-SSL-Client-Verify") != ["SUCCESS"]:
        return 403, "not verified\n"
    certificates = request.get_all("X-SSL-Client-Cert")
    if len(certificates) != 1:
        return 400, "one certificate header expected\n"
    certificate = parse_client_cert_header(client_cert_header_from_nginx(certificates[0]))
    return 200, f"Hello, {identity_from_certificate(certificate).name}\n"


def proxy_only_app(request: ForwardedRequest) -> tuple[int, str]:
    if request.tls_peer is None or PROXY_ID not in request.tls_peer.uris:
        return 403, "not the proxy\n"
    return checked_app(request)


class Lab:
    """The lab PKI plus the proxy's certificate and an attacker's made-up alice."""

    def __init__(self, paths: LabPaths) -> None:
        self.paths = paths
        ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
        proxy = ca.issue_client_certificate("nginx-proxy", names=[PROXY_ID])
        save_private_key(proxy.private_key, paths.directory / "proxy.key")
        save_certificate(proxy.certificate, paths.directory / "proxy.crt")
        made_up = CertificateAuthority.create_root("attacker-ca").issue_client_certificate("alice")
        self.made_up = made_up.certificate
        self.made_up_files = {
            "cert_file": paths.directory / "made-up.crt",
            "key_file": paths.directory / "made-up.key",
        }
        save_private_key(made_up.private_key, self.made_up_files["key_file"])
        save_certificate(made_up.certificate, self.made_up_files["cert_file"])
        self.alice = load_certificate(paths.client_cert)
        self.forged = {"X-SSL-Client-Cert": nginx_escaped_pem(self.made_up), "X-SSL-Client-Verify": "SUCCESS"}

    def alice_session(self) -> requests.Session:
        return lab_session(
            ca_file=self.paths.ca_cert, cert_file=self.paths.client_cert, key_file=self.paths.client_key
        )

    def anonymous_session(self) -> requests.Session:
        return lab_session(ca_file=self.paths.ca_cert)

    def made_up_session(self) -> requests.Session:
        return lab_session(ca_file=self.paths.ca_cert, **self.made_up_files)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lab_pki: LabPaths) -> Lab:
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_pki.directory))
    return Lab(lab_pki)


@pytest.fixture
def plain_backend() -> Iterator[Backend]:
    with Backend(trusting_app, name=None) as backend:
        yield backend


@pytest.fixture
def termination(lab: Lab, plain_backend: Backend) -> Iterator[Nginx]:
    values = {"backend": plain_backend.port, "verify": "on", "sanitize": ""}
    with Nginx(http=TERMINATION, values=values, name=None) as proxy:
        yield proxy


def test_termination_the_articles_three_requests(
    lab: Lab, termination: Nginx, plain_backend: Backend
) -> None:
    with lab.alice_session() as alice:
        ok = attempt(termination.url, session=alice)
    assert ok.ok and ok.status == 200 and ok.body == "Hello, alice\n"
    seen = plain_backend.seen[-1].request
    assert seen.get("X-SSL-Client-Verify") == "SUCCESS"
    assert seen.get("X-SSL-Client-Cert") == nginx_escaped_pem(lab.alice)  # nginx escapes exactly so
    assert client_cert_header_from_nginx(seen.get("X-SSL-Client-Cert")) == client_cert_header(lab.alice)
    count = len(plain_backend.seen)

    no_ca = attempt(termination.url, cert_file=lab.paths.client_cert, key_file=lab.paths.client_key)
    assert not no_ca.ok and no_ca.error_class == "SSLError"

    with lab.anonymous_session() as anonymous:
        no_certificate = attempt(termination.url, session=anonymous)
    assert no_certificate.ok and no_certificate.status == 400  # nginx answers in HTTP, not with a TLS alert
    assert "No required SSL certificate was sent" in (no_certificate.body or "")
    assert "client sent no required SSL certificate" in termination.error_log(50)
    assert len(plain_backend.seen) == count  # neither failure reached the application


def test_termination_refuses_a_made_up_certificate_when_verification_is_on(
    lab: Lab, termination: Nginx
) -> None:
    with lab.made_up_session() as mallory:
        outcome = attempt(termination.url, session=mallory)
    assert outcome.status == 400 and "The SSL certificate error" in (outcome.body or "")


def test_attack_a_direct_forged_headers_then_reencryption_stops_them(
    lab: Lab, plain_backend: Backend
) -> None:
    with LabSession() as attacker:
        naive = attacker.get(plain_backend.url, headers=lab.forged)
    assert naive.status_code == 200 and naive.text == "Hello, alice\n"  # the attack works
    plain_backend.app = checked_app
    with LabSession() as attacker:
        still = attacker.get(plain_backend.url, headers=lab.forged)
    assert still.status_code == 200  # header checks cannot tell a forger from the proxy

    context = build_server_context(lab.paths.server_cert, lab.paths.server_key, lab.paths.ca_cert)
    with Backend(proxy_only_app, context=context, name=None) as secure:
        with LabSession() as attacker, pytest.raises(requests.exceptions.ConnectionError):
            attacker.get(f"http://127.0.0.1:{secure.port}/", headers=lab.forged)
        assert not attempt(secure.url, ca_file=lab.paths.ca_cert).ok
        with lab.alice_session() as alice:
            direct = alice.get(secure.url, headers=lab.forged)
        assert direct.status_code == 403 and direct.text == "not the proxy\n"


def test_attack_b_optional_no_ca_then_the_verify_check_stops_it(
    lab: Lab, termination: Nginx, plain_backend: Backend
) -> None:
    termination.reload(values={"verify": "optional_no_ca"})
    with lab.made_up_session() as mallory:
        naive = attempt(termination.url, session=mallory)
    assert naive.status == 200 and naive.body == "Hello, alice\n"  # the attack works
    assert plain_backend.seen[-1].request.get("X-SSL-Client-Verify").startswith("FAILED:")
    plain_backend.app = checked_app
    with lab.made_up_session() as mallory:
        fixed = attempt(termination.url, session=mallory)
    assert fixed.status == 403
    with lab.alice_session() as alice:
        assert attempt(termination.url, session=alice).body == "Hello, alice\n"  # the fix keeps alice in


def test_optional_no_ca_lets_through_only_an_unknown_issuer_not_an_expired_certificate(
    lab: Lab, termination: Nginx, plain_backend: Backend
) -> None:
    """optional_no_ca forgives one fault, an issuer nginx does not trust; a lab certificate that expired gets 400."""
    termination.reload(values={"verify": "optional_no_ca"})
    ca = load_certificate_authority(lab.paths.ca_cert, lab.paths.ca_key)
    expired = ca.issue_client_certificate(
        "alice", valid_from=datetime.now(timezone.utc) - timedelta(days=10), valid_days=1
    )
    files = {
        "cert_file": lab.paths.directory / "expired.crt",
        "key_file": lab.paths.directory / "expired.key",
    }
    save_certificate(expired.certificate, files["cert_file"])
    save_private_key(expired.private_key, files["key_file"])
    before = len(plain_backend.seen)
    with lab_session(ca_file=lab.paths.ca_cert, **files) as expired_alice:
        refused = attempt(termination.url, session=expired_alice)
    assert refused.status == 400 and "The SSL certificate error" in (refused.body or "")
    assert len(plain_backend.seen) == before
    with lab.made_up_session() as mallory:  # the twin: an unknown issuer is let through
        assert attempt(termination.url, session=mallory).status == 200
    assert plain_backend.seen[-1].request.get("X-SSL-Client-Verify").startswith("FAILED:")


def test_optional_refuses_a_failed_certificate_but_lets_no_certificate_through(
    lab: Lab, termination: Nginx
) -> None:
    termination.reload(values={"verify": "optional"})
    with lab.made_up_session() as mallory:
        assert attempt(termination.url, session=mallory).status == 400
    with lab.anonymous_session() as anonymous:
        assert attempt(termination.url, session=anonymous).status == 401  # reached the app, with no identity


def test_attack_c_an_unsanitized_client_cert_then_the_proxy_clears_it(
    lab: Lab, termination: Nginx, plain_backend: Backend
) -> None:
    termination.reload(values={"verify": "optional"})
    smuggled = {"Client-Cert": client_cert_header(lab.made_up), "X-SSL-Client-Cert": "forged too"}
    with lab.anonymous_session() as anonymous:
        naive = anonymous.get(termination.url, headers=smuggled)
    seen = plain_backend.seen[-1].request
    assert seen.get("X-SSL-Client-Cert") is None  # nginx's empty value removed the client's header...
    assert seen.get("Client-Cert") == smuggled["Client-Cert"]  # ...but passed the one it does not know
    assert naive.status_code == 200 and naive.text == "Hello, alice\n"  # the attack works

    termination.reload(values={"sanitize": 'proxy_set_header Client-Cert "";'})
    with lab.anonymous_session() as anonymous:
        fixed = anonymous.get(termination.url, headers=smuggled)
    assert plain_backend.seen[-1].request.get("Client-Cert") is None
    assert fixed.status_code == 401
    with lab.alice_session() as alice:  # and a real client is still greeted, even if it tries to smuggle
        assert alice.get(termination.url, headers=smuggled).text == "Hello, alice\n"


def test_reencryption_the_articles_three_requests_and_the_backend_sees_the_proxy(lab: Lab) -> None:
    context = build_server_context(lab.paths.server_cert, lab.paths.server_key, lab.paths.ca_cert)
    with (
        Backend(proxy_only_app, context=context, name=None) as secure,
        Nginx(
            http=REENCRYPTION, values={"backend": secure.port, "upstream_verify": "on"}, name=None
        ) as proxy,
    ):
        with lab.alice_session() as alice:
            assert attempt(proxy.url, session=alice).body == "Hello, alice\n"
        seen = secure.seen[-1].request
        assert seen.tls_peer is not None and seen.tls_peer.uris == (PROXY_ID,)
        assert not attempt(proxy.url, cert_file=lab.paths.client_cert, key_file=lab.paths.client_key).ok
        with lab.anonymous_session() as anonymous:
            assert attempt(proxy.url, session=anonymous).status == 400


def test_reencryption_verifies_the_backend_only_with_proxy_ssl_verify_on(lab: Lab) -> None:
    """nginx's default (proxy_ssl_verify off) talks to any backend; on, it refuses one from another CA."""
    impostor = CertificateAuthority.create_root("impostor-ca")
    issued = impostor.issue_server_certificate("localhost")
    save_private_key(issued.private_key, lab.paths.directory / "impostor.key")
    save_certificate(issued.certificate, lab.paths.directory / "impostor.crt")
    context = build_server_context(
        lab.paths.directory / "impostor.crt", lab.paths.directory / "impostor.key", lab.paths.ca_cert
    )
    with Backend(lambda request: (200, "impostor\n"), context=context, name=None) as fake:
        values = {"backend": fake.port, "upstream_verify": "off"}
        with Nginx(http=REENCRYPTION, values=values, name=None) as proxy, lab.alice_session() as alice:
            assert alice.get(proxy.url).text == "impostor\n"  # unverified upstream: the default
            proxy.reload(values={"upstream_verify": "on"})
            refused = alice.get(proxy.url)
            assert refused.status_code == 502 and "upstream SSL certificate verify error" in proxy.error_log(
                50
            )


@pytest.mark.skipif(
    not nginx_available(passthrough=True), reason="needs nginx's stream module (libnginx-mod-stream)"
)
def test_passthrough_routes_by_name_and_the_backend_sees_the_client_certificate(lab: Lab) -> None:
    paths = lab.paths
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    api = ca.issue_server_certificate("api.lab.example")
    save_private_key(api.private_key, paths.directory / "api.key")
    save_certificate(api.certificate, paths.directory / "api.crt")
    lab_context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert)
    api_context = build_server_context(
        paths.directory / "api.crt", paths.directory / "api.key", paths.ca_cert
    )
    with MTLSServer(lab_context, name=None) as lab_server, MTLSServer(api_context, name=None) as api_server:
        values = {"lab_server": lab_server.port, "api_server": api_server.port}
        with Nginx(stream=PASSTHROUGH, values=values, name=None) as router:
            with lab.alice_session() as alice:
                assert attempt(router.url, session=alice).body == "Hello, alice\n"
            assert lab_server.accepted == 1  # the lab server did the handshake with alice itself
            assert not attempt(
                router.url, cert_file=paths.client_cert, key_file=paths.client_key, server=lab_server
            ).ok
            no_certificate = attempt(router.url, ca_file=paths.ca_cert, server=lab_server)
            assert (
                not no_certificate.ok and no_certificate.server_reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
            )

            client = {"ca_file": paths.ca_cert, "cert_file": paths.client_cert, "key_file": paths.client_key}
            assert get_with_sni(router.port, server_name="api.lab.example", **client) == (
                200,
                "Hello, alice\n",
            )
            assert api_server.accepted == 1
            with pytest.raises(OSError):
                get_with_sni(router.port, server_name="unknown.lab.example", **client)
            lines = router.log_lines("stream.log", at_least=5)
    assert any(line.startswith("api.lab.example -> ") for line in lines)
    assert any(line.startswith("unknown.lab.example -> 127.0.0.1:1 502") for line in lines)
