"""The article's three requests, run and checked: ``python -m lab_helpers demo``.

1. CA and client certificate given: the request succeeds.
2. No CA given: the client rejects the server (the lab CA is not a public CA).
3. No client certificate: the server rejects the client.

Each outcome is compared with what it should be; the exit status is 0 only
when all three are as expected, so the demo doubles as a smoke test.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass

import requests

from .client import Outcome, attempt
from .files import create_seed_pki
from .server import MTLSServer, build_server_context

__all__ = ["SEED_CASES", "DemoCase", "run_demo"]


@dataclass(frozen=True)
class DemoCase:
    title: str
    curl: str  # the article's command for the same request
    expected: str  # what should happen, in words
    check: Callable[[Outcome], bool]


SEED_CASES = (
    DemoCase(
        "CA and client certificate",
        "curl --cacert ca.crt --key client.key --cert client.crt https://localhost:PORT",
        "200 Hello, alice",
        lambda outcome: outcome.ok and outcome.status == 200 and outcome.body == "Hello, alice\n",
    ),
    DemoCase(
        "no CA: the client cannot verify the server",
        "curl --key client.key --cert client.crt https://localhost:PORT",
        "the client rejects the server's certificate",
        lambda outcome: (
            outcome.failed_with(requests.exceptions.SSLError)
            and (outcome.reason or "").startswith("server certificate rejected")
        ),
    ),
    DemoCase(
        "no client certificate: the server cannot verify the client",
        "curl --cacert ca.crt https://localhost:PORT",
        "the server rejects the client (PEER_DID_NOT_RETURN_A_CERTIFICATE)",
        lambda outcome: (
            outcome.failed_with(requests.exceptions.ConnectionError)
            and outcome.server_reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
        ),
    ),
)


def run_demo(print_line: Callable[[str], None] = print) -> int:
    with tempfile.TemporaryDirectory(prefix="mtls-demo-") as directory:
        paths = create_seed_pki(directory)
        context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert)
        with MTLSServer(context, name=None) as server:
            print_line(f"Lab PKI in {directory}; mTLS server on {server.url}\n")
            requests_made = (
                dict(ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key),
                dict(ca_file=None, cert_file=paths.client_cert, key_file=paths.client_key),
                dict(ca_file=paths.ca_cert),
            )
            failures = 0
            for number, (case, files) in enumerate(zip(SEED_CASES, requests_made), start=1):
                outcome = attempt(server.url, server=server, **files)
                as_expected = case.check(outcome)
                failures += not as_expected
                print_line(f"{number}. {case.title}")
                print_line(f"   article:  {case.curl.replace('PORT', str(server.port))}")
                print_line(f"   expected: {case.expected}")
                for line in str(outcome).splitlines():
                    print_line(f"   got:      {line.strip()}")
                print_line(f"   {'as expected' if as_expected else 'NOT AS EXPECTED'}\n")
    print_line(
        "All three outcomes as expected." if not failures else f"{failures} outcome(s) not as expected."
    )
    return 0 if not failures else 1
