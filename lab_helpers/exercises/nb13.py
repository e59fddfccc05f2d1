"""Checks for notebook 13, "Use mTLS in your own stack".

Each check talks to the learner's server for real: without a certificate,
as alice, and as clients it issues on the spot from the lab CA, so that an
answer written into the code, or a decision on the wrong name, cannot pass.
When something fails, the message names the mistake that explains what the
check saw (a crash in the endpoint, str where gRPC wants bytes), not only
the symptom.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from ..files import LabPaths, load_certificate_authority, save_certificate, save_private_key
from ..pki import CertificateAuthority, IssuedCertificate, generate_private_key
from ..stack_servers import BackgroundServer, GrpcServer, UvicornServer
from . import Checker, CheckResult, not_attempted

__all__ = ["exercise_1", "exercise_2"]

ALICE_URI = "spiffe://lab.example/user/alice"
NO_PROXY = [("grpc.enable_http_proxy", 0)]


def _server_problem(server: object, variable: str, kind: type[BackgroundServer]) -> str | None:
    if not isinstance(server, kind):
        return f"{variable} should be the {kind.__name__} you started, not {type(server).__name__}"
    if not server.running:
        return f"{variable} is not running: start() it, and keep it running until the check has run"
    return None


def _saved(issued: IssuedCertificate, folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    save_certificate(issued.certificate, cert)
    save_private_key(issued.private_key, key)
    return cert, key


def _httpx_get(url: str, paths: LabPaths, pair: tuple[Path, Path] | None) -> tuple[int | None, str]:
    """(status, body) of a GET, or (None, the error's class name) when it failed."""
    import httpx

    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    if pair is not None:
        context.load_cert_chain(str(pair[0]), str(pair[1]))
    try:
        with httpx.Client(verify=context, trust_env=False, timeout=5) as client:
            response = client.get(url)
    except httpx.HTTPError as error:
        return None, type(error).__name__
    return response.status_code, response.text


#: Why an endpoint that reads the ASGI TLS extension answers 500: it found no certificate there.
_NO_CERTIFICATE_IN_SCOPE = (
    "your endpoint raised (see the traceback above). scope_client_certificate(request.scope) is None when "
    "uvicorn's http= is not with_tls_extension(H11Protocol), or when the server never asked for a "
    "certificate (ssl_cert_reqs)"
)


def exercise_1(server: UvicornServer | None, *, paths: LabPaths) -> CheckResult:
    """13.1 A uvicorn server that answers with its client's URI, and refuses clients without a certificate."""
    c = Checker(
        "13.1",
        "A uvicorn server that answers with its client's URI",
        hint="Two settings from steps 3 and 4 together: one makes uvicorn ask for the certificate, one puts "
        "it in the scope. Step 4's middleware shows how to turn a scope into an identity.",
    )
    if not_attempted(server):
        return c.not_attempted()
    problem = _server_problem(server, "uri_server", UvicornServer)
    if problem:
        return c.fail(problem)
    assert isinstance(server, UvicornServer)
    c.require(
        server.name == "uvicorn-uri",
        "it runs under the name 'uvicorn-uri': a re-run of its cell replaces it",
        f"it runs under the name {server.name!r}: name it 'uvicorn-uri', so that a re-run replaces it",
    )
    status, body = _httpx_get(server.url, paths, None)
    c.require(
        status is None,
        f"a client without a certificate was refused ({body})",
        f"a client without a certificate was answered {status} {body!r}: set ssl_cert_reqs=ssl.CERT_REQUIRED",
    )
    status, body = _httpx_get(server.url, paths, (paths.client_cert, paths.client_key))
    if status == 500:
        wrong = f"alice got 500: {_NO_CERTIFICATE_IN_SCOPE}"
    elif status is None:
        wrong = f"alice's request failed ({body}): is the server's http= the with_tls_extension class?"
    else:
        wrong = f"alice got {status} {body.strip()!r}, expected {ALICE_URI} and a newline"
    alice_passed = c.require(
        status == 200 and body.strip() == ALICE_URI, f"alice was answered with her URI, {ALICE_URI}", wrong
    )
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    carol_uri = "spiffe://lab.example/user/carol"
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        carol = _saved(ca.issue_client_certificate("carol"), Path(folder), "carol")
        status, body = _httpx_get(server.url, paths, carol)
    if alice_passed:
        wrong = (
            f"a client the check made on the spot, {carol_uri}, got {status} {body.strip()!r}: read the URI "
            "from the request's certificate, not from a constant"
        )
    else:
        wrong = f"a client the check made on the spot, {carol_uri}, got {status} {body.strip()!r} too"
    c.require(
        status == 200 and body.strip() == carol_uri,
        f"a client the check made on the spot was answered with its own URI, {carol_uri}",
        wrong,
    )
    return c.result()


def _grpc_call(target: str, paths: LabPaths, pair: tuple[Path, Path] | None) -> tuple[Any, bytes | str]:
    """(None, reply) of a call to /lab.Greeter/Greet, or (status code, details) when it failed."""
    import grpc

    keys = {"private_key": pair[1].read_bytes(), "certificate_chain": pair[0].read_bytes()} if pair else {}
    credentials = grpc.ssl_channel_credentials(paths.ca_cert.read_bytes(), **keys)
    with grpc.secure_channel(target, credentials, options=NO_PROXY) as channel:
        try:
            return None, channel.unary_unary("/lab.Greeter/Greet")(b"hi", timeout=5)
        except grpc.RpcError as error:
            return error.code(), str(error.details())


def _with_dns_name(ca: CertificateAuthority, common_name: str, dns_name: str) -> IssuedCertificate:
    """A client certificate whose only SubjectAltName is a DNS name (any text the requester asked for)."""
    key = generate_private_key("ec")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return IssuedCertificate(ca.sign_csr(csr, profile="client"), key, csr, ca.chain)


def _outcome(code: Any, reply: bytes | str) -> str:
    return f"{code.name} {reply!r}" if code is not None else f"the reply {reply!r}"


def exercise_2(server: GrpcServer | None, *, paths: LabPaths) -> CheckResult:
    """13.2 A gRPC method for alice only: decided on the URI SAN (peer_uri), refused with PERMISSION_DENIED."""
    c = Checker(
        "13.2",
        "A gRPC method for alice only",
        hint="auth_context() gives lists of bytes: which of its keys holds the certificate's URIs, and "
        "nothing else? Which status code means 'I know who you are, and no'?",
    )
    if not_attempted(server):
        return c.not_attempted()
    problem = _server_problem(server, "alice_only_server", GrpcServer)
    if problem:
        return c.fail(problem)
    assert isinstance(server, GrpcServer)
    import grpc

    code, reply = _grpc_call(server.target, paths, (paths.client_cert, paths.client_key))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        wrong = (
            "alice's call never got an answer (DEADLINE_EXCEEDED): the handler must return bytes, "
            "b'Hello, alice'; a str makes gRPC fail after the handler returned (its traceback is above)"
        )
    elif code is not None:
        wrong = (
            f"alice got {_outcome(code, reply)}, expected b'Hello, alice'. auth_context() values are lists of "
            "bytes: compare with [ALICE.encode()]. And the server sees no certificate at all unless "
            "require_client_auth=True"
        )
    else:
        wrong = f"alice got {_outcome(code, reply)}, expected b'Hello, alice'"
    alice_passed = c.require(
        code is None and reply == b"Hello, alice", "alice was answered b'Hello, alice'", wrong
    )
    code, reply = _grpc_call(server.target, paths, None)
    c.require(
        code == grpc.StatusCode.UNAVAILABLE,
        "a client without a certificate was refused during the handshake (UNAVAILABLE)",
        f"a client without a certificate got {_outcome(code, reply)}: "
        "pass require_client_auth=True to ssl_server_credentials",
    )
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        bob = _saved(ca.issue_client_certificate("bob"), Path(folder), "bob")
        impostor = _saved(
            ca.issue_client_certificate("alice", names=["spiffe://lab.example/user/mallory"]),
            Path(folder),
            "impostor",
        )
        dns_impostor = _saved(_with_dns_name(ca, "mallory", ALICE_URI), Path(folder), "dns-impostor")
        bob_code, bob_reply = _grpc_call(server.target, paths, bob)
        impostor_code, impostor_reply = _grpc_call(server.target, paths, impostor)
        dns_code, dns_reply = _grpc_call(server.target, paths, dns_impostor)
    c.require(
        bob_code == grpc.StatusCode.PERMISSION_DENIED,
        "bob was refused with PERMISSION_DENIED",
        f"bob got {_outcome(bob_code, bob_reply)}, expected PERMISSION_DENIED "
        "(context.abort(grpc.StatusCode.PERMISSION_DENIED, ...))",
    )
    refused_impostor = impostor_code == grpc.StatusCode.PERMISSION_DENIED
    wrong = f"a client with commonName alice and URI spiffe://lab.example/user/mallory got {_outcome(impostor_code, impostor_reply)}"
    if alice_passed and not refused_impostor:
        wrong += ": decide on the URI (peer_uri), not on x509_common_name"
    c.require(
        refused_impostor,
        "a client with commonName alice and another URI was refused: the decision reads the URI",
        wrong,
    )
    refused_dns_impostor = dns_code == grpc.StatusCode.PERMISSION_DENIED
    wrong = f"a client whose only SAN is the DNS name {ALICE_URI!r} got {_outcome(dns_code, dns_reply)}"
    if alice_passed and not refused_dns_impostor:
        wrong += (
            ": x509_subject_alternative_name mixes DNS names, emails and URIs as bare bytes; "
            "peer_uri holds the URIs alone"
        )
    c.require(
        refused_dns_impostor,
        "a client whose DNS name spells alice's URI was refused: the decision reads URIs only",
        wrong,
    )
    return c.result()
