"""Checks for notebook 05, "Run an mTLS server".

Each check takes the server the learner started and talks to it for real,
with the lab's client files: a server is right when clients see it behave
as asked, not when its settings merely look right.
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path

from cryptography import x509

from ..client import Outcome, attempt, lab_session
from ..diagnosis import explain
from ..files import LabPaths, load_certificate, load_certificate_authority, save_certificate, save_private_key
from ..server import LabRequestHandler, MTLSServer
from . import Checker, CheckResult, not_attempted
from .evidence import extension, server_problem

__all__ = ["exercise_1", "exercise_2"]


def _as_alice(server: MTLSServer, paths: LabPaths) -> Outcome:
    return attempt(server.url, ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key, server=server)


def _first_uri(certificate: x509.Certificate) -> str | None:
    san = extension(certificate, x509.SubjectAlternativeName)
    if san is None:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def exercise_1(server: MTLSServer | None, *, paths: LabPaths) -> CheckResult:
    """5.1 A TLS 1.3-only server, on the lab files, under a name of its own.

    The check makes two real requests with alice's certificate: one from a
    client capped at TLS 1.2, which the server must refuse for the protocol
    version, and one from a normal client, which it must answer.
    """
    c = Checker(
        "5.1", "A TLS 1.3-only server",
        hint="build_server_context(...) takes minimum_version=ssl.TLSVersion...; MTLSServer(...) takes name=.",
    )
    if not_attempted(server):
        return c.not_attempted()
    problem = server_problem(server, "tls13_server")
    if problem:
        return c.fail(problem)
    assert isinstance(server, MTLSServer)
    name = server.name
    c.require(
        name is not None and name != "lab",
        f"it runs under a name of its own ({name!r}): a re-run of its cell replaces it, and nothing else",
        "it runs under the name 'lab', so it replaced the lab server (and will be replaced by it): choose another name"
        if name == "lab" else
        "it has no name, so each re-run of its cell starts one more server: give it a name, such as 'lab-tls13'",
    )
    minimum = server.context.minimum_version
    c.require(minimum == ssl.TLSVersion.TLSv1_3, "its context's minimum_version is TLS 1.3",
              f"its context's minimum_version is {minimum.name}: set it to ssl.TLSVersion.TLSv1_3")
    with lab_session(
        ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key,
        maximum_version=ssl.TLSVersion.TLSv1_2,
    ) as capped_session:
        capped = attempt(server.url, session=capped_session, server=server)
    if capped.ok:
        c.require(False, "", "a client limited to TLS 1.2 was served: the server still accepts TLS 1.2")
    else:
        version_refused = explain(capped.server_reason or "").key == "protocol-version-mismatch"
        c.require(version_refused,
                  f"a client limited to TLS 1.2 was refused during the handshake (server: {capped.server_reason})",
                  f"a client limited to TLS 1.2 failed, but the server recorded {capped.server_reason!r}, "
                  "not a protocol version: check the server's certificate, key and CA (use the lab files)")
    modern = _as_alice(server, paths)
    c.require(modern.ok and modern.status == 200, f"a normal client was answered: {modern.body!r}",
              f"a normal client with alice's certificate got: {modern}")
    return c.result()


def exercise_2(server: MTLSServer | None, *, paths: LabPaths) -> CheckResult:
    """5.2 A handler that answers with the client's SAN URI, read from the verified certificate.

    The check sends alice's certificate, then one it issues on the spot for
    another user, carol, so that an answer written into the code cannot pass:
    each must get its own URI back.
    """
    c = Checker(
        "5.2", "Answer with the client's URI",
        hint="Subclass LabRequestHandler and write its do_GET; self.client_identity.uris holds the client's URIs; "
             "MTLSServer(context, name=..., handler=YourHandler) serves with it.",
    )
    if not_attempted(server):
        return c.not_attempted()
    problem = server_problem(server, "uri_server")
    if problem:
        return c.fail(problem)
    assert isinstance(server, MTLSServer)
    c.require(server.handler is not LabRequestHandler, f"it serves with your handler, {server.handler.__name__}",
              "it serves with the lab's own handler, which greets by commonName: pass handler=YourHandler")
    alice_uri = _first_uri(load_certificate(paths.client_cert))
    alice = _as_alice(server, paths)
    c.require(alice.ok and alice.status == 200 and (alice.body or "").strip() == alice_uri,
              f"alice's request was answered with her URI, {alice_uri}",
              f"alice's request got: {alice}; expected her URI, {alice_uri}"
              + ("" if alice.ok else " (when do_GET raises an exception, the server drops the connection: look for the "
                                    "traceback Python printed, in the cell's output or the kernel's log)"))
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    carol = ca.issue_client_certificate("carol")
    carol_uri = _first_uri(carol.certificate)
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        files = Path(folder)
        save_certificate(carol.certificate, files / "carol.crt")
        save_private_key(carol.private_key, files / "carol.key")
        answer = attempt(server.url, ca_file=paths.ca_cert, cert_file=files / "carol.crt", key_file=files / "carol.key",
                         server=server)
    c.require(answer.ok and (answer.body or "").strip() == carol_uri,
              f"a client the check made on the spot was answered with its own URI, {carol_uri}",
              f"a client the check made on the spot, {carol_uri}, got: {answer}; "
              "read the URI from self.client_identity, not from a constant")
    return c.result()
