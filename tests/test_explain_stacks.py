"""explain() on real failures of httpx, aiohttp, urllib3 and gRPC: each stack x each common failure.

Every failure is made to happen for real, over 127.0.0.1, by the stack's
own client, as code that never heard of lab_helpers writes it. Where the
server refuses the client, what the server recorded is explained too: over
TLS 1.3 the client may see only a disconnect, and the server's side names
the cause.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab_helpers import GrpcServer, MTLSServer, build_server_context, explain
from lab_helpers.catalog import CatalogLab
from lab_helpers.diagnosis import CASES
from lab_helpers.stack_errors import _PHRASES, STACK_CASES, STACK_FIXES, which_stack

httpx = pytest.importorskip("httpx")
aiohttp = pytest.importorskip("aiohttp")
grpc = pytest.importorskip("grpc")
urllib3 = pytest.importorskip("urllib3")

Pair = tuple[Path, Path]

#: failure -> (server certificate, CA the client trusts, client pair, host name), each taken from the catalog's lab.
FAILURES: dict[str, Callable[[CatalogLab], tuple[Pair, Path, Pair | None]]] = {
    "untrusted server CA": lambda lab: (lab.server, lab.other_ca_file, lab.client),
    "hostname mismatch": lambda lab: (lab.server_other_host, lab.ca_file, lab.client),
    "expired server certificate": lambda lab: (lab.server_expired, lab.ca_file, lab.client),
    "no client certificate": lambda lab: (lab.server, lab.ca_file, None),
    "client certificate from another CA": lambda lab: (lab.server, lab.ca_file, lab.client_from_other_ca),
    "client key does not match its certificate": lambda lab: (
        lab.server,
        lab.ca_file,
        lab.client_with_wrong_key,
    ),
}

#: What the client's error must be explained as (a set where TLS 1.3 timing decides between two).
REFUSED = {"client-certificate-missing", "server-closed-connection"}
OTHER_CA = {"client-ca-not-trusted", "server-closed-connection"}
EXPECTED: dict[str, dict[str, str | set[str]]] = {
    "untrusted server CA": dict.fromkeys(("httpx", "aiohttp", "urllib3", "grpc"), "server-ca-not-trusted"),
    "hostname mismatch": dict.fromkeys(("httpx", "aiohttp", "urllib3", "grpc"), "server-name-mismatch"),
    "expired server certificate": dict.fromkeys(
        ("httpx", "aiohttp", "urllib3", "grpc"), "server-certificate-expired"
    ),
    "no client certificate": {
        "httpx": REFUSED,
        "aiohttp": REFUSED,
        "urllib3": REFUSED,
        "grpc": "grpc-handshake-refused",
    },
    "client certificate from another CA": {
        "httpx": OTHER_CA,
        "aiohttp": OTHER_CA,
        "urllib3": OTHER_CA,
        "grpc": "grpc-handshake-refused",
    },
    "client key does not match its certificate": {
        "httpx": "client-key-mismatch",
        "aiohttp": "client-key-mismatch",
        "urllib3": "client-key-mismatch",
        "grpc": "grpc-credentials-refused",
    },
}

#: The reason the server records, explained from its side, when it is the one that refused.
SERVER_SIDE = {
    "no client certificate": "client-certificate-missing",
    "client certificate from another CA": "client-ca-not-trusted",
}


@pytest.fixture(scope="module")
def lab() -> Iterator[CatalogLab]:
    with CatalogLab() as lab:
        yield lab


def context_for(trust: Path, pair: Pair | None) -> ssl.SSLContext:
    """The client SSLContext that httpx (verify=) and aiohttp (ssl=) are given; building it can fail too."""
    context = ssl.create_default_context(cafile=str(trust))
    if pair is not None:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    return context


def httpx_get(url: str, trust: Path, pair: Pair | None) -> None:
    with httpx.Client(verify=context_for(trust, pair), trust_env=False, timeout=5) as client:
        client.get(url)


def aiohttp_get(url: str, trust: Path, pair: Pair | None) -> None:
    async def get() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(
                url, ssl=context_for(trust, pair), timeout=aiohttp.ClientTimeout(total=5)
            ) as response:
                await response.read()

    asyncio.run(get())


def urllib3_get(url: str, trust: Path, pair: Pair | None) -> None:
    files = {"cert_file": str(pair[0]), "key_file": str(pair[1])} if pair else {}
    with urllib3.PoolManager(ca_certs=str(trust), retries=False, timeout=5, **files) as pool:
        pool.request("GET", url)


def grpc_call(target: str, trust: Path, pair: Pair | None) -> None:
    keys = {"private_key": pair[1].read_bytes(), "certificate_chain": pair[0].read_bytes()} if pair else {}
    credentials = grpc.ssl_channel_credentials(trust.read_bytes(), **keys)
    with grpc.secure_channel(target, credentials, options=[("grpc.enable_http_proxy", 0)]) as channel:
        channel.unary_unary("/lab.Greeter/Greet")(b"hi", timeout=5)


CLIENTS = {"httpx": httpx_get, "aiohttp": aiohttp_get, "urllib3": urllib3_get, "grpc": grpc_call}


def https_server(lab: CatalogLab, certificate: Pair) -> MTLSServer:
    context = build_server_context(certificate[0], certificate[1], lab.ca_file)
    return MTLSServer(context, name=None, handshake_timeout=2.0).start()


def grpc_server(lab: CatalogLab, certificate: Pair) -> GrpcServer:
    handler = grpc.method_handlers_generic_handler(
        "lab.Greeter", {"Greet": grpc.unary_unary_rpc_method_handler(lambda request, context: b"Hello")}
    )
    credentials = grpc.ssl_server_credentials(
        [(certificate[1].read_bytes(), certificate[0].read_bytes())],
        root_certificates=lab.ca_file.read_bytes(),
        require_client_auth=True,
    )
    return GrpcServer([handler], credentials, name=None).start()


@pytest.fixture
def started() -> Iterator[list[Any]]:
    servers: list[Any] = []
    yield servers
    for server in servers:
        server.stop()


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("stack", list(CLIENTS))
def test_explain_names_the_cause(stack: str, failure: str, lab: CatalogLab, started: list[Any]) -> None:
    server_certificate, trust, pair = FAILURES[failure](lab)
    server = (
        grpc_server(lab, server_certificate) if stack == "grpc" else https_server(lab, server_certificate)
    )
    started.append(server)
    before = 0 if stack == "grpc" else len(server.rejections)
    with pytest.raises(Exception) as caught:
        CLIENTS[stack](server.url, trust, pair)
    error = caught.value
    explanation = explain(error)
    expected = EXPECTED[failure][stack]
    assert explanation.key in (expected if isinstance(expected, set) else {expected}), (explanation, error)
    assert explanation.recognised and explanation.fix and explanation.evidence

    raised_by_ssl = failure.startswith("client key") and stack in ("httpx", "aiohttp")
    if raised_by_ssl:  # the code that builds the SSLContext for these two fails first: load_cert_chain
        assert isinstance(error, ssl.SSLError)
    elif stack == "grpc":
        assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.UNAVAILABLE
    else:
        assert which_stack(error) == stack
    if failure in SERVER_SIDE and stack != "grpc":
        rejection = server.wait_for_rejection(before, timeout=3)
        assert rejection is not None and explain(rejection).key == SERVER_SIDE[failure]


def test_fixes_are_said_in_the_stacks_terms(lab: CatalogLab, started: list[Any]) -> None:
    server = grpc_server(lab, lab.server)
    started.append(server)
    with pytest.raises(grpc.RpcError) as caught:
        grpc_call(server.url, lab.other_ca_file, lab.client)
    assert "ssl_channel_credentials(root_certificates=" in explain(caught.value).fix


@pytest.mark.parametrize(
    ("stack", "client_pair"),
    [
        ("httpx", "load_cert_chain('client.crt', 'client.key')"),
        ("aiohttp", "load_cert_chain('client.crt', 'client.key')"),
        ("urllib3", "cert_file='client.crt', key_file='client.key'"),
        ("grpc", "private_key=key_pem, certificate_chain=cert_pem"),
    ],
)
def test_the_fix_for_an_untrusted_server_keeps_the_client_certificate(stack: str, client_pair: str) -> None:
    """Copied as it is, the fix for "no CA" must not drop the client's pair: that would trade one failure for another."""
    fix = STACK_FIXES[stack]["server-ca-not-trusted"]
    assert "ca.crt" in fix or "root_certificates=ca_pem" in fix
    assert client_pair in fix


def test_every_stack_phrase_and_fix_names_a_known_case() -> None:
    known = {case.key for case in CASES} | {case.key for case in STACK_CASES}
    for stack, phrases in _PHRASES.items():
        for _, key in phrases:
            assert key in known, (stack, key)
    for stack, fixes in STACK_FIXES.items():
        assert set(fixes) <= known, stack
    for case in STACK_CASES:
        assert case.who and case.cause and case.fix


def test_a_requests_error_is_left_to_the_catalog(lab: CatalogLab) -> None:
    import requests

    assert which_stack(requests.exceptions.ConnectionError("x")) is None
    assert which_stack(ssl.SSLError(1, "x")) is None


def test_an_unknown_grpc_error_is_honestly_not_recognised() -> None:
    class FakeRpcError(grpc.RpcError):
        def details(self) -> str:
            return "the flux capacitor is out of alignment"

    error = FakeRpcError()
    assert which_stack(error) == "grpc"
    explanation = explain(error)
    assert not explanation.recognised
    assert explanation.key == "not-recognised"
