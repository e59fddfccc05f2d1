"""Checks for notebook 14, "Put a proxy in front of your mTLS service".

Exercise 14.1 runs the learner's nginx configuration in a real nginx, in
front of a backend of its own (both unnamed, so they replace nothing the
notebook runs), forges identity headers on every path and reads what the
backend received. Without nginx it says so and stays "not attempted": it
cannot judge a configuration it cannot run.

Exercise 14.2 calls the learner's application function with requests built
as the backend builds them, from the proxy and from others; no nginx needed.
"""

from __future__ import annotations

from typing import Any, Callable

from cryptography import x509

from ..backend import Backend, ForwardedRequest
from ..client import lab_session
from ..files import LabPaths, load_certificate
from ..forwarded import ClientCertHeaderError, client_cert_header, nginx_escaped_pem
from ..identity import identity_from_certificate
from ..nginx import INSTALL_NGINX, Nginx, NginxError, nginx_available
from . import Checker, CheckResult, not_attempted

__all__ = ["exercise_1", "exercise_2"]


def _recording_app(request: ForwardedRequest) -> tuple[int, str]:
    return 200, "recorded\n"


def exercise_1(api_config: Any, *, paths: LabPaths, forged: x509.Certificate) -> CheckResult:
    """14.1: identity headers set (and Client-Cert cleared) on every location, the Host line kept."""
    checker = Checker(
        "14.1",
        "Identity headers on every location",
        hint="A location with its own proxy_set_header inherits none from the server level: repeat the "
        "identity headers (and the Client-Cert clearing) in /api/, next to the Host line.",
    )
    if not_attempted(api_config):
        return checker.not_attempted()
    if not isinstance(api_config, str) or "{{ port }}" not in api_config.replace("{{port}}", "{{ port }}"):
        return checker.fail(
            "api_config should be the configuration text, with {{ port }} and {{ backend }} in it."
        )
    if not nginx_available():
        skipped = Checker(
            "14.1", "Identity headers on every location", hint=f"This check runs nginx: {INSTALL_NGINX}."
        )
        return skipped.not_attempted()
    alice_pem = nginx_escaped_pem(load_certificate(paths.client_cert))
    forged_headers = {
        "X-SSL-Client-Cert": nginx_escaped_pem(forged),
        "X-SSL-Client-Verify": "SUCCESS",
        "Client-Cert": client_cert_header(forged),
    }
    try:
        with (
            Backend(_recording_app, name=None) as backend,
            Nginx(http=api_config, values={"backend": backend.port}, name=None) as proxy,
        ):
            with lab_session(
                ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key
            ) as alice:
                for path in ("/", "/api/"):
                    before = len(backend.seen)
                    answer = alice.get(proxy.url + path.lstrip("/"), headers=forged_headers)
                    if len(backend.seen) == before:
                        checker.require(
                            False,
                            "",
                            f"{path}: the request did not reach the backend ({answer.status_code}).",
                        )
                        continue
                    seen = backend.seen[-1].request
                    checker.require(
                        seen.get_all("X-SSL-Client-Cert") == [alice_pem],
                        f"{path}: the backend saw alice's real certificate, not the forged one",
                        f"{path}: the backend saw X-SSL-Client-Cert as the client sent it: nginx did not set it there.",
                    )
                    checker.require(
                        seen.get_all("X-SSL-Client-Verify") == ["SUCCESS"]
                        and not seen.get_all("Client-Cert"),
                        f"{path}: X-SSL-Client-Verify came from nginx, Client-Cert was removed",
                        f"{path}: X-SSL-Client-Verify or Client-Cert passed through as the client sent them.",
                    )
                    if path == "/api/":
                        checker.require(
                            seen.get("Host") == "localhost",
                            "/api/: the Host line still works (the backend saw Host: localhost)",
                            f"/api/: the backend saw Host: {seen.get('Host')}; keep `proxy_set_header Host $host;`.",
                        )
            with lab_session(ca_file=paths.ca_cert) as anonymous:
                refused = anonymous.get(proxy.url + "api/", headers=forged_headers)
            checker.require(
                refused.status_code == 400,
                "a client without a certificate is still refused (ssl_verify_client on)",
                f"a client without a certificate got {refused.status_code}: keep `ssl_verify_client on;`.",
            )
    except NginxError as error:
        return checker.fail(f"nginx refused the configuration: {error}")
    return checker.result()


def _request(headers: list[tuple[str, str]], tls_peer: x509.Certificate | None) -> ForwardedRequest:
    return ForwardedRequest(
        method="GET",
        path="/",
        headers=tuple(headers),
        peer="127.0.0.1:50000",
        tls_peer=identity_from_certificate(tls_peer) if tls_peer is not None else None,
    )


def _answer(app: Callable[[ForwardedRequest], Any], request: ForwardedRequest) -> tuple[int, str]:
    """What the backend would answer: a ClientCertHeaderError the app lets escape becomes its 400."""
    try:
        status, body = app(request)
    except ClientCertHeaderError as error:
        return error.status, str(error)
    return int(status), str(body)


def exercise_2(
    my_app: Any, *, proxy: x509.Certificate, alice: x509.Certificate, other: x509.Certificate
) -> CheckResult:
    """14.2: 200 only over mTLS from the proxy, verified, one certificate header; 403 or 400 otherwise."""
    checker = Checker(
        "14.2",
        "The application, done right",
        hint="Check request.tls_peer first (the proxy's URI), then X-SSL-Client-Verify == ['SUCCESS'], then "
        "exactly one X-SSL-Client-Cert; never read Client-Cert from the request.",
    )
    if not_attempted(my_app):
        return checker.not_attempted()
    if not callable(my_app):
        return checker.fail("my_app should be a function: my_app(request) -> (status, text).")
    alice_pem, other_pem = nginx_escaped_pem(alice), nginx_escaped_pem(other)
    verified = [("X-SSL-Client-Verify", "SUCCESS"), ("X-SSL-Client-Cert", alice_pem)]
    cases: list[tuple[str, ForwardedRequest, Callable[[int, str], bool], str]] = [
        (
            "from the proxy, verified alice",
            _request(verified, proxy),
            lambda s, b: s == 200 and "alice" in b,
            "200 with 'Hello, alice'",
        ),
        (
            "the same headers sent directly, without TLS",
            _request(verified, None),
            lambda s, b: s == 403,
            "403: nobody proved to be the proxy",
        ),
        (
            "the same headers from alice's own mTLS connection",
            _request(verified, alice),
            lambda s, b: s == 403,
            "403: alice is not the proxy",
        ),
        (
            "from the proxy, no client certificate (NONE)",
            _request([("X-SSL-Client-Verify", "NONE")], proxy),
            lambda s, b: s == 403,
            "403: the proxy verified nobody",
        ),
        (
            "from the proxy, a certificate that failed",
            _request(
                [
                    ("X-SSL-Client-Verify", "FAILED:unable to verify the first certificate"),
                    ("X-SSL-Client-Cert", other_pem),
                ],
                proxy,
            ),
            lambda s, b: s == 403,
            "403: verification failed",
        ),
        (
            "from the proxy, NONE and a smuggled Client-Cert",
            _request([("X-SSL-Client-Verify", "NONE"), ("Client-Cert", client_cert_header(alice))], proxy),
            lambda s, b: s == 403,
            "403: Client-Cert is never read",
        ),
        (
            "from the proxy, alice's header and a Client-Cert naming someone else",
            _request(verified + [("Client-Cert", client_cert_header(other))], proxy),
            lambda s, b: s == 200 and "alice" in b,
            "200 'Hello, alice': only nginx's header counts",
        ),
        (
            "from the proxy, two X-SSL-Client-Cert headers",
            _request(verified + [("X-SSL-Client-Cert", other_pem)], proxy),
            lambda s, b: s == 400,
            "400: exactly one is allowed",
        ),
        (
            "from the proxy, a malformed certificate header",
            _request([("X-SSL-Client-Verify", "SUCCESS"), ("X-SSL-Client-Cert", "garbage")], proxy),
            lambda s, b: s == 400,
            "400: the header is not a certificate",
        ),
    ]
    for title, request, expected, wanted in cases:
        try:
            status, body = _answer(my_app, request)
        except Exception as error:  # the learner's function crashed: say where
            checker.require(False, "", f"{title}: my_app raised {type(error).__name__}: {error}")
            continue
        checker.require(
            expected(status, body),
            f"{title}: {status}",
            f"{title}: got {status} {body.strip()!r}, expected {wanted}.",
        )
    return checker.result()
