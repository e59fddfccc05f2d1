"""Checks for notebook 14, "Put a proxy in front of your mTLS service".

Exercise 14.1 runs the learner's nginx configuration in a real nginx, in
front of a backend of its own (both unnamed, so they replace nothing the
notebook runs), forges identity headers on every path and reads what the
backend received. Without nginx it cannot judge a configuration it cannot
run: it answers "cannot be checked here", neither passed nor failed (a
:class:`NotJudged` result, whose status is "not attempted yet", so a
solution notebook run without nginx does not fail either).

Exercise 14.2 calls the learner's application function with requests built
as the backend builds them, from the proxy and from others, with
certificates issued on the spot by the lab CA; no nginx needed.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ..backend import Backend, ForwardedRequest
from ..client import lab_session
from ..files import LabPaths, load_certificate
from ..forwarded import ClientCertHeaderError, client_cert_header, nginx_escaped_pem
from ..identity import identity_from_certificate
from ..nginx import Nginx, NginxError, NginxUnavailable, nginx_info
from ..pki import CertificateAuthority
from . import NOT_ATTEMPTED, Checker, CheckResult, not_attempted

__all__ = ["NotJudged", "exercise_1", "exercise_2"]

PROXY_ID = "spiffe://lab.example/service/nginx-proxy"
ALICE_URI = "spiffe://lab.example/user/alice"


@dataclass
class NotJudged(CheckResult):
    """A check that cannot run on this machine: neither passed nor failed, and it says why.

    Its status is "not attempted yet" (the framework's one status that is
    neither a pass nor a failure, so strict mode does not raise), but it shows
    as "cannot be checked here" with the reason and what to do.
    """

    reason: str = ""

    def __str__(self) -> str:
        return f"⏸ Exercise {self.exercise}: {self.title}: cannot be checked here\n   {self.reason}"

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return (
            "<div style='border-left:4px solid #666;padding-left:8px'>"
            f"<b>Exercise {html.escape(self.exercise)}: {html.escape(self.title)}</b>: "
            f"<span style='color:#666'>cannot be checked here</span><p>{html.escape(self.reason)}</p></div>"
        )


def _recording_app(request: ForwardedRequest) -> tuple[int, str]:
    return 200, "recorded\n"


def exercise_1(api_config: Any, *, paths: LabPaths, forged: x509.Certificate) -> CheckResult:
    """14.1: identity headers set (and Client-Cert cleared) on every location, the Host line kept."""
    checker = Checker(
        "14.1",
        "Identity headers on every location",
        hint="Which level does /api/ take its proxy_set_header lines from, now that it has one of its own?",
    )
    if not_attempted(api_config):
        return checker.not_attempted()
    if not isinstance(api_config, str) or "{{ port }}" not in api_config.replace("{{port}}", "{{ port }}"):
        return checker.fail(
            "api_config should be the configuration text, with {{ port }} and {{ backend }} in it."
        )
    try:
        nginx_info()
    except NginxUnavailable as missing:
        return NotJudged(
            checker.exercise,
            checker.title,
            NOT_ATTEMPTED,
            reason=f"This check runs nginx, and {missing} Your configuration was not judged.",
        )
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
                        seen.get_all("X-SSL-Client-Verify") == ["SUCCESS"],
                        f"{path}: X-SSL-Client-Verify came from nginx",
                        f"{path}: the backend saw X-SSL-Client-Verify {seen.get_all('X-SSL-Client-Verify')}, "
                        "as the client sent it: nginx did not set it there.",
                    )
                    checker.require(
                        not seen.get_all("Client-Cert"),
                        f"{path}: the Client-Cert the client sent was removed",
                        f"{path}: the Client-Cert the client made up reached the backend: nginx did not clear it "
                        'there (proxy_set_header Client-Cert "";).',
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
    except NginxError as error:  # its message starts "nginx refused the configuration: " and names the line
        return checker.fail(str(error))
    return checker.result()


def _request(
    headers: list[tuple[str, str]], tls_peer: x509.Certificate | None, path: str = "/"
) -> ForwardedRequest:
    return ForwardedRequest(
        method="GET",
        path=path,
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
    my_app: Any,
    *,
    proxy: x509.Certificate,
    alice: x509.Certificate,
    other: x509.Certificate,
    ca: CertificateAuthority,
) -> CheckResult:
    """14.2: 200 only over mTLS from the proxy, verified, one certificate header, /admin for alice's URI alone.

    ``ca`` is the lab CA: the check issues bob, a commonName-alice with
    another URI, and a commonName-nginx-proxy with another URI, so that
    every certificate is one the backend's TLS would accept.
    """
    checker = Checker(
        "14.2",
        "The application, done right",
        hint="Three questions, in order: who opened the connection (by its URI), did that speaker verify the "
        "client, and which one certificate did it forward? Then the path: who may read /admin?",
    )
    if not_attempted(my_app):
        return checker.not_attempted()
    if not callable(my_app):
        return checker.fail("my_app should be a function: my_app(request) -> (status, text).")
    alice_pem, other_pem = nginx_escaped_pem(alice), nginx_escaped_pem(other)
    verified = [("X-SSL-Client-Verify", "SUCCESS"), ("X-SSL-Client-Cert", alice_pem)]
    bob = ca.issue_client_certificate("bob").certificate
    named_alice = ca.issue_client_certificate(
        "alice", names=["spiffe://lab.example/user/mallory"]
    ).certificate
    named_proxy = ca.issue_client_certificate(
        "nginx-proxy", names=["spiffe://lab.example/service/other"]
    ).certificate
    bob_verified = [("X-SSL-Client-Verify", "SUCCESS"), ("X-SSL-Client-Cert", nginx_escaped_pem(bob))]
    named_alice_verified = [
        ("X-SSL-Client-Verify", "SUCCESS"),
        ("X-SSL-Client-Cert", nginx_escaped_pem(named_alice)),
    ]
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
        (
            "from a lab certificate with commonName nginx-proxy but another URI",
            _request(verified, named_proxy),
            lambda s, b: s == 403,
            f"403: the proxy is its URI, {PROXY_ID}, not a name anyone can be issued",
        ),
        (
            "from the proxy, verified bob",
            _request(bob_verified, proxy),
            lambda s, b: s == 200 and "bob" in b,
            "200 with 'Hello, bob': / is open to every verified client",
        ),
        (
            "from the proxy, verified alice, /admin",
            _request(verified, proxy, "/admin"),
            lambda s, b: s == 200 and "alice" in b,
            "200 with 'Hello, alice': /admin is alice's",
        ),
        (
            "from the proxy, verified bob, /admin",
            _request(bob_verified, proxy, "/admin"),
            lambda s, b: s == 403,
            "403: /admin is alice's alone",
        ),
        (
            "from the proxy, verified commonName alice with another URI, /admin",
            _request(named_alice_verified, proxy, "/admin"),
            lambda s, b: s == 403,
            f"403: alice is her URI, {ALICE_URI}, not her commonName",
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
