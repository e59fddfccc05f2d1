"""Notebook 13's stacks over real sockets: uvicorn + Starlette, aiohttp, httpx, urllib3, requests and gRPC.

For each stack, the article's three requests (success; a client that does
not trust the lab CA; a client without a certificate), and what the server
side saw. Then uvicorn's default that lets certificate-less clients in, the
ASGI TLS extension, and servers that stop and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import ssl
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from lab_helpers import (
    LabPaths,
    MTLSServer,
    build_server_context,
    create_seed_pki,
    explain,
    load_certificate_authority,
    save_certificate,
    save_private_key,
)

uvicorn = pytest.importorskip("uvicorn")
starlette_applications = pytest.importorskip("starlette.applications")
httpx = pytest.importorskip("httpx")
aiohttp = pytest.importorskip("aiohttp")
grpc = pytest.importorskip("grpc")

from aiohttp import web  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402

from lab_helpers import AiohttpServer, GrpcServer, UvicornServer, scope_client_certificate, with_tls_extension  # noqa: E402
from lab_helpers.asgi_tls import TLS_VERSIONS  # noqa: E402

#: A refused TLS 1.3 client sees an alert, an EOF or a disconnect, depending on timing and on the server.
REFUSED_WITHOUT_CERTIFICATE = {"client-certificate-missing", "server-closed-connection"}
NO_PROXY = [("grpc.enable_http_proxy", 0)]  # gRPC reads https_proxy; the lab's servers are local


def read(path: Path) -> bytes:
    return path.read_bytes()


def client_context(paths: LabPaths, *, trust: Path | None = None, certificate: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(trust or paths.ca_cert))
    if certificate:
        context.load_cert_chain(str(paths.client_cert), str(paths.client_key))
    return context


# A daemon thread that a library starts once per process, the first time it is needed, and keeps for the life of
# the process: not the server's, and not a leak. pycares (aiohttp's DNS resolver whenever aiodns is installed, as
# requirements-instructor.txt's JupyterHub installs it) destroys closed DNS channels on it and starts it with its
# first channel, so the first aiohttp client session a worker creates starts it, whichever test that is:
# https://github.com/saghul/pycares/blob/master/src/pycares/__init__.py (_ChannelShutdownManager)
PROCESS_WIDE_THREAD_TARGETS = ("(_run_safe_shutdown_loop)",)


def assert_stopped(server: Any, port: int, threads_before: set[str]) -> None:
    """The server's port refuses connections and none of its threads is alive."""
    assert not server.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    left = {
        thread.name
        for thread in threading.enumerate()
        if thread.name not in threads_before and not thread.name.endswith(PROCESS_WIDE_THREAD_TARGETS)
    }
    assert not left, f"threads left behind: {left}"


# -- uvicorn + Starlette ------------------------------------------------------------------------


def greeting_app(seen: list[dict[str, Any]]) -> Any:
    """A Starlette app that greets the client named in the ASGI TLS extension and records each scope's extension."""

    async def hello(request: Any) -> PlainTextResponse:
        seen.append(request.scope.get("extensions", {}).get("tls"))
        certificate = scope_client_certificate(request.scope)
        if certificate is None:
            return PlainTextResponse("Hello, whoever you are\n")
        name = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        return PlainTextResponse(f"Hello, {name}\n")

    async def extension(request: Any) -> JSONResponse:
        return JSONResponse(request.scope.get("extensions", {}).get("tls", "absent"))

    return starlette_applications.Starlette(routes=[Route("/", hello), Route("/tls", extension)])


def uvicorn_config(app: Any, paths: LabPaths | None, **options: Any) -> Any:
    tls = {}
    if paths is not None:
        tls = {
            "ssl_certfile": str(paths.server_cert_to_send),
            "ssl_keyfile": str(paths.server_key),
            "ssl_ca_certs": str(paths.ca_cert),
        }
    return uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        http=with_tls_extension(H11Protocol),
        **tls,
        **options,
    )


@pytest.fixture
def started() -> Iterator[list[Any]]:
    servers: list[Any] = []
    yield servers
    for server in servers:
        server.stop()


def test_uvicorn_default_serves_a_client_without_a_certificate(lab_pki: LabPaths, started: list[Any]) -> None:
    """The trap: ssl_ca_certs set, ssl_cert_reqs left at its default, and a certificate-less client gets 200."""
    seen: list[dict[str, Any]] = []
    server = UvicornServer(uvicorn_config(greeting_app(seen), lab_pki), name=None).start()
    started.append(server)
    with httpx.Client(
        verify=client_context(lab_pki, certificate=False), trust_env=False, timeout=5
    ) as client:
        response = client.get(server.url)
    assert response.status_code == 200 and response.text == "Hello, whoever you are\n"
    # With the default the server does not even ask: alice's certificate stays on her side.
    with httpx.Client(verify=client_context(lab_pki), trust_env=False, timeout=5) as client:
        response = client.get(server.url)
    assert response.text == "Hello, whoever you are\n"
    assert [extension["client_cert_chain"] for extension in seen] == [[], []]


def test_uvicorn_with_cert_required_refuses_a_client_without_a_certificate(
    lab_pki: LabPaths, started: list[Any]
) -> None:
    seen: list[dict[str, Any]] = []
    config = uvicorn_config(greeting_app(seen), lab_pki, ssl_cert_reqs=ssl.CERT_REQUIRED)
    server = UvicornServer(config, name=None).start()
    started.append(server)
    with httpx.Client(
        verify=client_context(lab_pki, certificate=False), trust_env=False, timeout=5
    ) as client:
        with pytest.raises(httpx.HTTPError) as refused:
            client.get(server.url)
    assert explain(refused.value).key in REFUSED_WITHOUT_CERTIFICATE
    assert seen == []  # the app never heard of it
    with httpx.Client(verify=client_context(lab_pki), trust_env=False, timeout=5) as client:
        assert client.get(server.url).text == "Hello, alice\n"
    assert len(seen) == 1


def test_uvicorn_httpx_client_that_does_not_trust_the_lab_ca(
    lab_pki: LabPaths, other_pki: LabPaths, started: list[Any]
) -> None:
    server = UvicornServer(
        uvicorn_config(greeting_app([]), lab_pki, ssl_cert_reqs=ssl.CERT_REQUIRED), name=None
    ).start()
    started.append(server)
    with httpx.Client(
        verify=client_context(lab_pki, trust=other_pki.ca_cert), trust_env=False, timeout=5
    ) as client:
        with pytest.raises(httpx.ConnectError) as untrusted:
            client.get(server.url)
    explanation = explain(untrusted.value)
    assert explanation.key == "server-ca-not-trusted"
    assert "verify=" in explanation.fix  # said in httpx's terms


def test_tls_extension_holds_the_verified_chain_leaf_first(tmp_path: Path, started: list[Any]) -> None:
    paths = create_seed_pki(tmp_path / "chain", intermediate=True)
    config = uvicorn_config(greeting_app([]), paths, ssl_cert_reqs=ssl.CERT_REQUIRED)
    server = UvicornServer(config, name=None).start()
    started.append(server)
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    context.load_cert_chain(
        str(paths.client_chain), str(paths.client_key)
    )  # the client sends its intermediate
    with httpx.Client(verify=context, trust_env=False, timeout=5) as client:
        extension = client.get(server.url + "tls").json()
    chain = [x509.load_pem_x509_certificate(pem.encode()) for pem in extension["client_cert_chain"]]
    client_certificate = x509.load_pem_x509_certificate(paths.client_cert.read_bytes())
    assert chain[0] == client_certificate  # leaf first
    assert chain[1:] == [
        x509.load_pem_x509_certificate(paths.intermediate_cert.read_bytes()),
        x509.load_pem_x509_certificate(paths.ca_cert.read_bytes()),
    ]
    for certificate, issuer in itertools.pairwise(chain):
        certificate.verify_directly_issued_by(issuer)
    assert extension["client_cert_name"] == "CN=alice"
    assert extension["client_cert_error"] is None
    assert extension["tls_version"] == 0x0304
    assert extension["cipher_suite"] in {0x1301, 0x1302, 0x1303}  # the TLS 1.3 suites (RFC 8446, B.4)
    server_leaf = x509.load_pem_x509_certificate(extension["server_cert"].encode())
    assert server_leaf == x509.load_pem_x509_certificate(paths.server_cert.read_bytes())


def test_tls_extension_numbers_over_tls_1_2(lab_pki: LabPaths, started: list[Any]) -> None:
    server = UvicornServer(
        uvicorn_config(greeting_app([]), lab_pki, ssl_cert_reqs=ssl.CERT_REQUIRED), name=None
    ).start()
    started.append(server)
    context = client_context(lab_pki)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with httpx.Client(verify=context, trust_env=False, timeout=5) as client:
        extension = client.get(server.url + "tls").json()
    assert extension["tls_version"] == TLS_VERSIONS["TLSv1.2"] == 0x0303
    assert extension["cipher_suite"] == 0xC02B  # TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (RFC 5289)


def get_on_new_connections(port: int, context: ssl.SSLContext, count: int = 2) -> list[tuple[bool, bytes]]:
    """GET /tls on ``count`` connections, each resuming the TLS session of the one before, as curl does.

    Returns (was the session resumed, the response body) for each. With TLS 1.3
    the session ticket arrives after the handshake, so each response is read
    in full before its session is kept.
    """
    session, results = None, []
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
                tls.sendall(b"GET /tls HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                response = b""
                while chunk := tls.recv(65536):
                    response += chunk
                results.append((tls.session_reused, response.split(b"\r\n\r\n", 1)[1]))
                session = tls.session
    return results


@pytest.mark.parametrize(
    "version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLSv1.3", "TLSv1.2"]
)
def test_tls_extension_on_a_resumed_session_still_names_the_client(
    lab_pki: LabPaths, started: list[Any], version: ssl.TLSVersion
) -> None:
    """A resumed session is not verified again and OpenSSL has no verified chain for it: the leaf still counts."""
    server = UvicornServer(
        uvicorn_config(greeting_app([]), lab_pki, ssl_cert_reqs=ssl.CERT_REQUIRED), name=None
    ).start()
    started.append(server)
    context = client_context(lab_pki)
    context.maximum_version = version
    (first_reused, first), (second_reused, second) = get_on_new_connections(server.port, context)
    assert (first_reused, second_reused) == (False, True)  # the second connection really resumed
    full, resumed = json.loads(first), json.loads(second)
    alice = x509.load_pem_x509_certificate(lab_pki.client_cert.read_bytes())
    assert len(full["client_cert_chain"]) == 2  # alice, then the lab CA
    assert [x509.load_pem_x509_certificate(pem.encode()) for pem in resumed["client_cert_chain"]] == [alice]
    assert resumed["client_cert_name"] == "CN=alice"


def test_tls_extension_on_a_resumed_session_without_a_certificate_stays_empty(
    lab_pki: LabPaths, started: list[Any]
) -> None:
    """The negative twin: resuming the session of a client that sent no certificate invents none."""
    server = UvicornServer(
        uvicorn_config(greeting_app([]), lab_pki, ssl_cert_reqs=ssl.CERT_OPTIONAL), name=None
    ).start()
    started.append(server)
    results = get_on_new_connections(server.port, client_context(lab_pki, certificate=False))
    assert [reused for reused, _ in results] == [False, True]
    for _, body in results:
        extension = json.loads(body)
        assert extension["client_cert_chain"] == [] and extension["client_cert_name"] is None


def test_server_cert_is_read_again_when_the_file_changes(lab_pki: LabPaths, tmp_path: Path) -> None:
    """A certificate renewed at the same path (notebook 10) is what a new server reports, not the old one."""
    from lab_helpers.asgi_tls import _first_certificate_pem

    path = tmp_path / "server.crt"
    path.write_bytes(lab_pki.server_cert.read_bytes())
    first = _first_certificate_pem(str(path))
    assert first is not None and first == _first_certificate_pem(str(path))  # unchanged: the same answer
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    renewed = tmp_path / "renewed.crt"
    save_certificate(ca.issue_server_certificate("localhost").certificate, renewed)
    renewed.replace(path)  # an atomic rename, as the lab writes files
    second = _first_certificate_pem(str(path))
    assert second is not None and second != first
    assert x509.load_pem_x509_certificate(second.encode()) == x509.load_pem_x509_certificate(
        path.read_bytes()
    )
    path.unlink()
    assert _first_certificate_pem(str(path)) is None


def test_tls_extension_is_absent_over_plain_http(started: list[Any]) -> None:
    server = UvicornServer(uvicorn_config(greeting_app([]), None), name=None).start()
    started.append(server)
    assert server.url.startswith("http://")
    response = httpx.get(server.url + "tls", trust_env=False, timeout=5)
    assert response.json() == "absent"


def test_uvicorn_server_stops_and_leaves_nothing_behind(lab_pki: LabPaths) -> None:
    threads_before = {thread.name for thread in threading.enumerate()}
    server = UvicornServer(
        uvicorn_config(greeting_app([]), lab_pki, ssl_cert_reqs=ssl.CERT_REQUIRED), name=None
    ).start()
    port = server.port
    client = httpx.Client(verify=client_context(lab_pki), trust_env=False, timeout=5)
    assert client.get(server.url).status_code == 200  # a keep-alive connection stays open
    server.stop()
    client.close()
    assert_stopped(server, port, threads_before)


def test_uvicorn_server_under_a_name_replaces_the_previous_one(lab_pki: LabPaths) -> None:
    first = UvicornServer(uvicorn_config(greeting_app([]), lab_pki), name="test-rerun").start()
    second = UvicornServer(uvicorn_config(greeting_app([]), lab_pki), name="test-rerun").start()
    try:
        assert not first.running and second.running
    finally:
        second.stop()


def test_uvicorn_server_refuses_a_fixed_port_and_a_public_address(lab_pki: LabPaths) -> None:
    from lab_helpers import LabError

    with pytest.raises(LabError, match="port=0"):
        UvicornServer(uvicorn.Config(greeting_app([]), host="127.0.0.1", port=8443))
    with pytest.raises(LabError, match="loopback"):
        UvicornServer(uvicorn.Config(greeting_app([]), host="0.0.0.0", port=0))


# -- aiohttp ------------------------------------------------------------------------------------


def aiohttp_app(seen: list[str]) -> web.Application:
    async def hello(request: web.Request) -> web.Response:
        der = request.transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        seen.append(name)
        return web.Response(text=f"Hello, {name}\n")

    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def aiohttp_get(url: str, context: ssl.SSLContext) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, ssl=context, timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status, await response.text()


def test_aiohttp_three_requests(lab_pki: LabPaths, other_pki: LabPaths, started: list[Any]) -> None:
    seen: list[str] = []
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    server = AiohttpServer(aiohttp_app(seen), ssl_context=context, name=None).start()
    started.append(server)

    assert asyncio.run(aiohttp_get(server.url, client_context(lab_pki))) == (200, "Hello, CN=alice\n")
    assert seen == ["CN=alice"]

    with pytest.raises(aiohttp.ClientConnectorCertificateError) as untrusted:
        asyncio.run(aiohttp_get(server.url, client_context(lab_pki, trust=other_pki.ca_cert)))
    assert explain(untrusted.value).key == "server-ca-not-trusted"
    assert "ssl=" in explain(untrusted.value).fix

    with pytest.raises(aiohttp.ClientError) as refused:
        asyncio.run(aiohttp_get(server.url, client_context(lab_pki, certificate=False)))
    assert explain(refused.value).key in REFUSED_WITHOUT_CERTIFICATE
    assert seen == ["CN=alice"]  # the handler never ran for the refused client


def test_aiohttp_server_stops_and_leaves_nothing_behind(lab_pki: LabPaths) -> None:
    threads_before = {thread.name for thread in threading.enumerate()}
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    server = AiohttpServer(aiohttp_app([]), ssl_context=context, name=None).start()
    port = server.port
    assert asyncio.run(aiohttp_get(server.url, client_context(lab_pki)))[0] == 200
    server.stop()
    assert_stopped(server, port, threads_before)


# -- urllib3 and requests with an encrypted key ---------------------------------------------------


@pytest.fixture
def encrypted_alice(lab_pki: LabPaths, tmp_path: Path) -> tuple[Path, Path, bytes]:
    """alice's certificate and her key encrypted with a password."""
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    issued = ca.issue_client_certificate("alice")
    cert, key, password = tmp_path / "alice.crt", tmp_path / "alice-encrypted.key", b"lab password"
    save_certificate(issued.certificate, cert)
    save_private_key(issued.private_key, key, password=password)
    return cert, key, password


def test_urllib3_takes_an_encrypted_key_with_its_password(
    mtls_server: MTLSServer, lab_pki: LabPaths, other_pki: LabPaths, encrypted_alice: tuple[Path, Path, bytes]
) -> None:
    import urllib3

    cert, key, password = encrypted_alice
    with urllib3.PoolManager(
        ca_certs=str(lab_pki.ca_cert),
        cert_file=str(cert),
        key_file=str(key),
        key_password=password.decode(),
        retries=False,
        timeout=5,
    ) as pool:
        response = pool.request("GET", mtls_server.url)
    assert (response.status, response.data) == (200, b"Hello, alice\n")

    with urllib3.PoolManager(ca_certs=str(other_pki.ca_cert), retries=False, timeout=5) as pool:
        with pytest.raises(urllib3.exceptions.SSLError) as untrusted:
            pool.request("GET", mtls_server.url)
    assert explain(untrusted.value).key == "server-ca-not-trusted"
    assert "ca_certs=" in explain(untrusted.value).fix

    with urllib3.PoolManager(ca_certs=str(lab_pki.ca_cert), retries=False, timeout=5) as pool:
        with pytest.raises(urllib3.exceptions.HTTPError) as refused:
            pool.request("GET", mtls_server.url)
    assert explain(refused.value).key in REFUSED_WITHOUT_CERTIFICATE
    # The server records each refusal from the connection's own thread, so the two may arrive in either order.
    for index in range(2):
        assert mtls_server.wait_for_rejection(index, timeout=3) is not None
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in {rejection.reason for rejection in mtls_server.rejections}


def test_urllib3_with_a_wrong_key_password(
    mtls_server: MTLSServer, lab_pki: LabPaths, encrypted_alice: tuple[Path, Path, bytes]
) -> None:
    import urllib3

    cert, key, _ = encrypted_alice
    with urllib3.PoolManager(
        ca_certs=str(lab_pki.ca_cert),
        cert_file=str(cert),
        key_file=str(key),
        key_password="not it",
        retries=False,
        timeout=5,
    ) as pool:
        with pytest.raises(urllib3.exceptions.SSLError):
            pool.request("GET", mtls_server.url)


def requests_session_with_context(context: ssl.SSLContext) -> Any:
    import requests
    from requests.adapters import HTTPAdapter

    class SSLContextAdapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

    session = requests.Session()
    session.trust_env = False
    session.mount("https://", SSLContextAdapter())
    return session


def test_requests_through_an_adapter_with_its_own_context(
    mtls_server: MTLSServer, lab_pki: LabPaths, encrypted_alice: tuple[Path, Path, bytes]
) -> None:
    import requests

    cert, key, password = encrypted_alice
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    context.load_cert_chain(str(cert), str(key), password=password)
    with requests_session_with_context(context) as session:
        assert session.get(mtls_server.url, timeout=5).text == "Hello, alice\n"
    without_certificate = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    with requests_session_with_context(without_certificate) as session:
        with pytest.raises(requests.exceptions.ConnectionError) as refused:
            session.get(mtls_server.url, timeout=5)
    assert explain(refused.value).key in REFUSED_WITHOUT_CERTIFICATE


def test_httpx_cert_argument_is_deprecated(lab_pki: LabPaths, mtls_server: MTLSServer) -> None:
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    with pytest.warns(
        DeprecationWarning, match=r"`cert=\.\.\.` is deprecated\. Use `verify=<ssl_context>` instead"
    ):
        client = httpx.Client(
            verify=context, cert=(str(lab_pki.client_cert), str(lab_pki.client_key)), trust_env=False
        )
    with client:
        assert client.get(mtls_server.url).text == "Hello, alice\n"  # deprecated, and still working
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the context route warns about nothing
        with httpx.Client(verify=client_context(lab_pki), trust_env=False, timeout=5) as client:
            assert client.get(mtls_server.url).text == "Hello, alice\n"


# -- gRPC -----------------------------------------------------------------------------------------


def greeter(calls: list[dict[str, list[bytes]]]) -> Any:
    def greet(request: bytes, context: Any) -> bytes:
        identity = context.auth_context()
        calls.append(identity)
        return b"Hello, " + identity["x509_common_name"][0] + b": " + request

    return grpc.method_handlers_generic_handler(
        "lab.Greeter", {"Greet": grpc.unary_unary_rpc_method_handler(greet)}
    )


def grpc_server(paths: LabPaths, calls: list[dict[str, list[bytes]]]) -> GrpcServer:
    credentials = grpc.ssl_server_credentials(
        [(read(paths.server_key), read(paths.server_cert))],
        root_certificates=read(paths.ca_cert),
        require_client_auth=True,
    )
    return GrpcServer([greeter(calls)], credentials, name=None).start()


def grpc_call(target: str, credentials: Any) -> bytes:
    with grpc.secure_channel(target, credentials, options=NO_PROXY) as channel:
        return channel.unary_unary("/lab.Greeter/Greet")(b"hi", timeout=5)


def test_grpc_three_calls_and_the_identity(
    lab_pki: LabPaths, other_pki: LabPaths, started: list[Any]
) -> None:
    calls: list[dict[str, list[bytes]]] = []
    server = grpc_server(lab_pki, calls)
    started.append(server)
    alice = grpc.ssl_channel_credentials(
        read(lab_pki.ca_cert), read(lab_pki.client_key), read(lab_pki.client_cert)
    )
    assert grpc_call(server.target, alice) == b"Hello, alice: hi"
    identity = calls[0]
    assert identity["x509_common_name"] == [b"alice"]
    assert identity["x509_subject_alternative_name"] == [b"spiffe://lab.example/user/alice"]
    assert identity["transport_security_type"] == [b"ssl"]
    assert x509.load_pem_x509_certificate(identity["x509_pem_cert"][0]) == x509.load_pem_x509_certificate(
        lab_pki.client_cert.read_bytes()
    )

    untrusting = grpc.ssl_channel_credentials(
        read(other_pki.ca_cert), read(lab_pki.client_key), read(lab_pki.client_cert)
    )
    with pytest.raises(grpc.RpcError) as untrusted:
        grpc_call(server.target, untrusting)
    assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.value.details()
    assert explain(untrusted.value).key == "server-ca-not-trusted"
    assert "root_certificates" in explain(untrusted.value).fix

    with pytest.raises(grpc.RpcError) as refused:
        grpc_call(server.target, grpc.ssl_channel_credentials(read(lab_pki.ca_cert)))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Socket closed" in refused.value.details()  # all the client is told
    assert explain(refused.value).key == "grpc-handshake-refused"
    assert len(calls) == 1  # the handler never ran for the refused calls


def test_grpc_server_stops_and_leaves_nothing_behind(lab_pki: LabPaths) -> None:
    threads_before = {thread.name for thread in threading.enumerate()}
    server = grpc_server(lab_pki, [])
    port = server.port
    alice = grpc.ssl_channel_credentials(
        read(lab_pki.ca_cert), read(lab_pki.client_key), read(lab_pki.client_cert)
    )
    assert grpc_call(server.target, alice).startswith(b"Hello, alice")
    server.stop()
    assert_stopped(server, port, threads_before)


def test_grpc_channel_uses_the_lowercase_proxy_variable_unless_told_not_to(
    lab_pki: LabPaths, started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """gRPC reads https_proxy (lower case), as the dead proxy of CI sets it; the channel option turns that off."""
    server = grpc_server(lab_pki, [])
    started.append(server)
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    alice = grpc.ssl_channel_credentials(
        read(lab_pki.ca_cert), read(lab_pki.client_key), read(lab_pki.client_cert)
    )
    with grpc.secure_channel(server.target, alice) as channel:
        with pytest.raises(grpc.RpcError) as through_proxy:
            channel.unary_unary("/lab.Greeter/Greet")(b"hi", timeout=5)
    assert "127.0.0.1:9" in through_proxy.value.details()
    assert grpc_call(server.target, alice).startswith(b"Hello, alice")


def test_servers_refuse_a_public_address(lab_pki: LabPaths) -> None:
    from lab_helpers import LabError

    with pytest.raises(LabError, match="loopback"):
        AiohttpServer(web.Application(), ssl_context=None, host="0.0.0.0")
    with pytest.raises(LabError, match="loopback"):
        GrpcServer(
            [],
            grpc.ssl_server_credentials([(read(lab_pki.server_key), read(lab_pki.server_cert))]),
            host="192.0.2.1",
        )


def test_stack_servers_import_their_library_only_when_they_start() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lab_helpers; lab_helpers.UvicornServer; lab_helpers.GrpcServer; "
        "print(sorted(m for m in ('uvicorn', 'grpc', 'aiohttp', 'starlette') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_grpc_default_does_not_ask_for_a_client_certificate(lab_pki: LabPaths, started: list[Any]) -> None:
    """require_client_auth left at its default: the certificate-less client is served, and alice is not identified."""
    calls: list[dict[str, list[bytes]]] = []

    def greet(request: bytes, context: Any) -> bytes:
        calls.append(context.auth_context())
        return b"served"

    handler = grpc.method_handlers_generic_handler(
        "lab.Greeter", {"Greet": grpc.unary_unary_rpc_method_handler(greet)}
    )
    lenient = grpc.ssl_server_credentials(
        [(read(lab_pki.server_key), read(lab_pki.server_cert))], root_certificates=read(lab_pki.ca_cert)
    )
    server = GrpcServer([handler], lenient, name=None).start()
    started.append(server)
    assert grpc_call(server.target, grpc.ssl_channel_credentials(read(lab_pki.ca_cert))) == b"served"
    alice = grpc.ssl_channel_credentials(
        read(lab_pki.ca_cert), read(lab_pki.client_key), read(lab_pki.client_cert)
    )
    assert grpc_call(server.target, alice) == b"served"
    assert all("x509_common_name" not in identity for identity in calls)
