"""The checks of notebook 13's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from exercise_checks import NOT_ATTEMPTED, missing

from lab_helpers import (
    LabPaths,
    check,
    identity_from_certificate,
    scope_client_certificate,
    with_tls_extension,
)

uvicorn = pytest.importorskip("uvicorn")
grpc = pytest.importorskip("grpc")
pytest.importorskip("starlette")

from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402
from uvicorn.protocols.http.h11_impl import H11Protocol  # noqa: E402

from lab_helpers import GrpcServer, UvicornServer  # noqa: E402

pytestmark = pytest.mark.usefixtures("lenient_checks")
ALICE = "spiffe://lab.example/user/alice"


@pytest.fixture
def started() -> Iterator[list[Any]]:
    servers: list[Any] = []
    yield servers
    for server in servers:
        server.stop()


async def answer_with_uri(request: Any) -> PlainTextResponse:
    return PlainTextResponse(
        identity_from_certificate(scope_client_certificate(request.scope)).uris[0] + "\n"
    )


async def answer_alice(request: Any) -> PlainTextResponse:
    return PlainTextResponse(ALICE + "\n")  # the answer written into the code


def uri_server(
    paths: LabPaths,
    started: list[Any],
    *,
    endpoint: Any = answer_with_uri,
    name: str = "uvicorn-uri",
    http: Any = None,
    **tls: Any,
) -> UvicornServer:
    config = uvicorn.Config(
        Starlette(routes=[Route("/", endpoint)]),
        host="127.0.0.1",
        port=0,
        log_level="critical",  # the endpoint's tracebacks, when it crashes on purpose, are not the test's output
        http=http or with_tls_extension(H11Protocol),
        ssl_certfile=paths.server_cert,
        ssl_keyfile=paths.server_key,
        ssl_ca_certs=paths.ca_cert,
        **tls,
    )
    server = UvicornServer(config, name=name).start()
    started.append(server)
    return server


# -- 13.1 A uvicorn server that answers with its client's URI -------------------------------------------


def test_13_1_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_13_1(None, paths=lab_pki).status == NOT_ATTEMPTED


def test_13_1_a_server_that_requires_certificates_and_reads_the_uri_passes(
    lab_pki: LabPaths, started: list[Any]
) -> None:
    result = check.exercise_13_1(uri_server(lab_pki, started, ssl_cert_reqs=ssl.CERT_REQUIRED), paths=lab_pki)
    assert result.passed, result


def test_13_1_the_default_ssl_cert_reqs_is_caught(lab_pki: LabPaths, started: list[Any]) -> None:
    result = check.exercise_13_1(uri_server(lab_pki, started, endpoint=answer_alice), paths=lab_pki)
    assert not result.passed
    problems = missing(result)
    assert problems[0].startswith("a client without a certificate was answered 200")
    assert problems[0].endswith("set ssl_cert_reqs=ssl.CERT_REQUIRED")


def test_13_1_a_constant_answer_is_caught_by_the_second_client(lab_pki: LabPaths, started: list[Any]) -> None:
    server = uri_server(lab_pki, started, endpoint=answer_alice, ssl_cert_reqs=ssl.CERT_REQUIRED)
    result = check.exercise_13_1(server, paths=lab_pki)
    assert len(missing(result)) == 1
    assert missing(result)[0].endswith("read the URI from the request's certificate, not from a constant")


def test_13_1_without_the_extension_class_the_crash_is_explained(
    lab_pki: LabPaths, started: list[Any]
) -> None:
    """uvicorn's own H11Protocol: no certificate in the scope, the endpoint raises, alice gets 500, and the check says why."""
    server = uri_server(lab_pki, started, http=H11Protocol, ssl_cert_reqs=ssl.CERT_REQUIRED)
    problems = missing(check.exercise_13_1(server, paths=lab_pki))
    assert problems[0].startswith("alice got 500: your endpoint raised (see the traceback above).")
    assert "uvicorn's http= is not with_tls_extension(H11Protocol)" in problems[0]
    assert problems[1].endswith("got 500 'Internal Server Error' too")
    assert not any("not from a constant" in p for p in problems)  # not the mistake made here


def test_13_1_the_default_ssl_cert_reqs_with_a_right_endpoint_is_explained(
    lab_pki: LabPaths, started: list[Any]
) -> None:
    """The server never asks for a certificate: the certificate-less client and alice both reach a crashing endpoint."""
    problems = missing(check.exercise_13_1(uri_server(lab_pki, started), paths=lab_pki))
    assert problems[0].endswith("answered 500 'Internal Server Error': set ssl_cert_reqs=ssl.CERT_REQUIRED")
    assert problems[1].startswith("alice got 500") and "(ssl_cert_reqs)" in problems[1]
    assert not any("not from a constant" in p for p in problems)


def test_13_1_another_name_and_a_stopped_server(lab_pki: LabPaths, started: list[Any]) -> None:
    server = uri_server(lab_pki, started, name="elsewhere", ssl_cert_reqs=ssl.CERT_REQUIRED)
    assert missing(check.exercise_13_1(server, paths=lab_pki)) == [
        "it runs under the name 'elsewhere': name it 'uvicorn-uri', so that a re-run replaces it"
    ]
    server.stop()
    assert missing(check.exercise_13_1(server, paths=lab_pki)) == [
        "uri_server is not running: start() it, and keep it running until the check has run"
    ]
    assert missing(check.exercise_13_1("https://localhost:1/", paths=lab_pki)) == [
        "uri_server should be the UvicornServer you started, not str"
    ]


def test_13_1_strict_mode_raises(
    lab_pki: LabPaths, started: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = uri_server(lab_pki, started)
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_13_1(server, paths=lab_pki)


# -- 13.2 A gRPC method for alice only -------------------------------------------------------------------


def by_uri(request: bytes, context: Any) -> bytes:
    if context.auth_context().get("peer_uri", []) != [ALICE.encode()]:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return b"Hello, alice"


def by_subject_alternative_names(request: bytes, context: Any) -> bytes:
    """The answer the notebook used to teach: every SAN, of every kind, as one list of bytes."""
    if context.auth_context().get("x509_subject_alternative_name", []) != [ALICE.encode()]:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return b"Hello, alice"


def by_any_san_containing_alice(request: bytes, context: Any) -> bytes:
    if ALICE.encode() not in context.auth_context().get("x509_subject_alternative_name", []):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return b"Hello, alice"


def comparing_str_with_bytes(request: bytes, context: Any) -> bytes:
    if context.auth_context().get("peer_uri", []) != [ALICE]:  # str: never equal to the bytes gRPC gives
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return b"Hello, alice"


def returning_str(request: bytes, context: Any) -> str:
    if context.auth_context().get("peer_uri", []) != [ALICE.encode()]:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return "Hello, alice"


def by_common_name(request: bytes, context: Any) -> bytes:
    if context.auth_context().get("x509_common_name", []) != [b"alice"]:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "only alice")
    return b"Hello, alice"


def greeter_server(
    paths: LabPaths, started: list[Any], method: Any, *, require_client_auth: bool = True
) -> GrpcServer:
    handler = grpc.method_handlers_generic_handler(
        "lab.Greeter", {"Greet": grpc.unary_unary_rpc_method_handler(method)}
    )
    credentials = grpc.ssl_server_credentials(
        [(paths.server_key.read_bytes(), paths.server_cert.read_bytes())],
        root_certificates=paths.ca_cert.read_bytes(),
        require_client_auth=require_client_auth,
    )
    server = GrpcServer([handler], credentials, name="test-grpc-alice").start()
    started.append(server)
    return server


def test_13_2_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_13_2(None, paths=lab_pki).status == NOT_ATTEMPTED


def test_13_2_a_decision_on_the_uri_passes(lab_pki: LabPaths, started: list[Any]) -> None:
    result = check.exercise_13_2(greeter_server(lab_pki, started, by_uri), paths=lab_pki)
    assert result.passed, result


def test_13_2_a_decision_on_the_common_name_lets_the_impostor_in(
    lab_pki: LabPaths, started: list[Any]
) -> None:
    result = check.exercise_13_2(greeter_server(lab_pki, started, by_common_name), paths=lab_pki)
    assert len(missing(result)) == 1
    assert missing(result)[0].endswith("decide on the URI (peer_uri), not on x509_common_name")


@pytest.mark.parametrize("method", [by_subject_alternative_names, by_any_san_containing_alice])
def test_13_2_a_decision_on_every_san_lets_a_dns_name_in(
    lab_pki: LabPaths, started: list[Any], method: Any
) -> None:
    """x509_subject_alternative_name holds DNS names and emails too: a DNS name spelling alice's URI passes it."""
    problems = missing(check.exercise_13_2(greeter_server(lab_pki, started, method), paths=lab_pki))
    assert len(problems) == 1
    assert problems[0].startswith(
        f"a client whose only SAN is the DNS name {ALICE!r} got the reply b'Hello, alice'"
    )
    assert problems[0].endswith("peer_uri holds the URIs alone")


def test_13_2_comparing_str_with_bytes_is_named(lab_pki: LabPaths, started: list[Any]) -> None:
    problems = missing(
        check.exercise_13_2(greeter_server(lab_pki, started, comparing_str_with_bytes), paths=lab_pki)
    )
    assert problems[0].startswith("alice got PERMISSION_DENIED 'only alice', expected b'Hello, alice'.")
    assert "lists of bytes: compare with [ALICE.encode()]" in problems[0]
    assert not any("decide on" in p for p in problems)  # the impostors were refused: not the mistake here


def test_13_2_lenient_credentials_are_named(lab_pki: LabPaths, started: list[Any]) -> None:
    """Without require_client_auth the handler sees no certificate: alice is refused, and the check says why."""
    server = greeter_server(lab_pki, started, by_uri, require_client_auth=False)
    problems = missing(check.exercise_13_2(server, paths=lab_pki))
    assert problems[0].startswith("alice got PERMISSION_DENIED") and problems[0].endswith(
        "the server sees no certificate at all unless require_client_auth=True"
    )


def test_13_2_a_handler_returning_str_is_named(lab_pki: LabPaths, started: list[Any]) -> None:
    """gRPC cannot send a str: the call hangs until its deadline, and the check says it is the return type."""
    problems = missing(check.exercise_13_2(greeter_server(lab_pki, started, returning_str), paths=lab_pki))
    assert problems == [
        "alice's call never got an answer (DEADLINE_EXCEEDED): the handler must return bytes, b'Hello, alice'; "
        "a str makes gRPC fail after the handler returned (its traceback is above)"
    ]


def test_13_2_a_server_that_does_not_require_certificates(lab_pki: LabPaths, started: list[Any]) -> None:
    """gRPC's default, require_client_auth=False: the certificate-less client reaches the handler, which refuses it."""
    result = check.exercise_13_2(
        greeter_server(lab_pki, started, by_uri, require_client_auth=False), paths=lab_pki
    )
    problems = missing(result)
    assert any(p.endswith("pass require_client_auth=True to ssl_server_credentials") for p in problems), (
        problems
    )


def test_13_2_not_a_grpc_server(lab_pki: LabPaths, started: list[Any]) -> None:
    server = uri_server(lab_pki, started, ssl_cert_reqs=ssl.CERT_REQUIRED)
    assert missing(check.exercise_13_2(server, paths=lab_pki)) == [
        "alice_only_server should be the GrpcServer you started, not UvicornServer"
    ]
