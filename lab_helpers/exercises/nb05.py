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
    return attempt(
        server.url,
        ca_file=paths.ca_cert,
        cert_file=paths.client_cert,
        key_file=paths.client_key,
        server=server,
    )


def _first_uri(certificate: x509.Certificate) -> str | None:
    san = extension(certificate, x509.SubjectAlternativeName)
    if san is None:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _answered_with(outcome: Outcome, uri: str | None) -> bool:
    return outcome.ok and outcome.status == 200 and (outcome.body or "").strip() == uri


def _what_came_back(outcome: Outcome, expected: str | None, other_uri: str | None, server: MTLSServer) -> str:
    """What a request to the learner's handler got, compared with the URI it should have got, in words."""
    if not outcome.ok:
        if server.handler_errors:
            error = server.handler_errors[-1]
            return (
                f"got no answer: your do_GET raised {type(error).__name__}: {error} "
                "(the server keeps each one in uri_server.handler_errors)"
            )
        return f"failed: {outcome}"
    body = (outcome.body or "").strip()
    if outcome.status != 200:
        return f"got status {outcome.status} with {body!r}: answer with self.send_text(200, ...)"
    if other_uri is not None and body == other_uri:
        return (
            f"got {body!r}, the URI of another client: read the URI from self.client_identity, "
            "which holds the certificate of this connection, not from a constant"
        )
    if expected is not None and expected in body:
        if body.startswith(("(", "[")):
            return (
                f"got {body!r}: that is the whole tuple self.client_identity.uris, printed; "
                "send its first item, uris[0], a string"
            )
        return f"got {body!r}: the URI is in it, with more around it; send the URI alone (and a newline)"
    return f"got {body!r}, not {expected}: send self.client_identity.uris[0]"


def _exercise_server_problem(server: object, variable: str) -> str | None:
    """Why the learner's server cannot be examined, in words that say what to run again."""
    if isinstance(server, MTLSServer) and not server.running:
        return (
            f"{variable} is not running (the last cell of this section stops the exercise servers): "
            "run your exercise cell again, which starts it, then this check"
        )
    return server_problem(server, variable)


def exercise_1(
    server: MTLSServer | None, *, paths: LabPaths, context: ssl.SSLContext | None = None
) -> CheckResult:
    """5.1 A TLS 1.3-only server, on the lab files, under a name of its own.

    The check makes two real requests with alice's certificate: one from a
    client capped at TLS 1.2, which the server must refuse for the protocol
    version, and one from a normal client, which it must answer. ``context``
    is step 2's context: a server built on it, changed in place, would change
    exercise 5.2's server as well.
    """
    c = Checker(
        "5.1",
        "A TLS 1.3-only server",
        hint="Step 2b set the lowest TLS version a context accepts; `build_server_context` takes the same setting. "
        "And which argument of MTLSServer keeps a re-run from replacing the lab server?",
    )
    if not_attempted(server):
        return c.not_attempted()
    problem = _exercise_server_problem(server, "tls13_server")
    if problem:
        return c.fail(problem)
    assert isinstance(server, MTLSServer)
    name = server.name
    c.require(
        name is not None and name != "lab",
        f"it runs under a name of its own ({name!r}): a re-run of its cell replaces it, and nothing else",
        "it runs under the name 'lab', the course's main server: a re-run of step 6 would replace it. "
        "Choose another name"
        if name == "lab"
        else "it has no name, so each re-run of its cell starts one more server: give it a name, such as 'lab-tls13'",
    )
    if context is not None:
        c.require(
            server.context is not context,
            "it has a context of its own: step 2's `context` is left as it was",
            "it serves with step 2's `context`, changed in place: exercise 5.2 starts from that context too, and "
            "it would refuse TLS 1.2 as well. Build a new context (build_server_context takes minimum_version=), "
            "and set context.minimum_version back to ssl.TLSVersion.TLSv1_2",
        )
    minimum = server.context.minimum_version
    c.require(
        minimum == ssl.TLSVersion.TLSv1_3,
        "its context's minimum_version is TLS 1.3",
        f"its context's minimum_version is {minimum.name}: set it to ssl.TLSVersion.TLSv1_3",
    )
    with lab_session(
        ca_file=paths.ca_cert,
        cert_file=paths.client_cert,
        key_file=paths.client_key,
        maximum_version=ssl.TLSVersion.TLSv1_2,
    ) as capped_session:
        capped = attempt(server.url, session=capped_session, server=server)
    if capped.ok:
        c.require(False, "", "a client limited to TLS 1.2 was served: the server still accepts TLS 1.2")
    else:
        version_refused = explain(capped.server_reason or "").key == "protocol-version-mismatch"
        c.require(
            version_refused,
            f"a client limited to TLS 1.2 was refused during the handshake (server: {capped.server_reason})",
            f"a client limited to TLS 1.2 failed, but the server recorded {capped.server_reason!r}, "
            "not a protocol version: check the server's certificate, key and CA (use the lab files)",
        )
    modern = _as_alice(server, paths)
    c.require(
        modern.ok and modern.status == 200,
        f"a normal client was answered: {modern.body!r}",
        f"a normal client with alice's certificate got: {modern}",
    )
    return c.result()


def exercise_2(server: MTLSServer | None, *, paths: LabPaths) -> CheckResult:
    """5.2 A handler that answers with the client's SAN URI, read from the verified certificate.

    The check sends alice's certificate, then one it issues on the spot for
    another user, carol, so that an answer written into the code cannot pass:
    each must get its own URI back.
    """
    c = Checker(
        "5.2",
        "Answer with the client's URI",
        hint="Where does a handler find the certificate of the connection it serves, and which of its names is "
        "the URI? The task names both attributes; send one URI, as text, with a newline.",
    )
    if not_attempted(server):
        return c.not_attempted()
    problem = _exercise_server_problem(server, "uri_server")
    if problem:
        return c.fail(problem)
    assert isinstance(server, MTLSServer)
    c.require(
        server.handler is not LabRequestHandler,
        f"it serves with your handler, {server.handler.__name__}",
        "it serves with the lab's own handler, which greets by commonName: pass handler=YourHandler",
    )
    alice_uri = _first_uri(load_certificate(paths.client_cert))
    alice = _as_alice(server, paths)
    c.require(
        _answered_with(alice, alice_uri),
        f"alice's request was answered with her URI, {alice_uri}",
        f"alice's request {_what_came_back(alice, alice_uri, None, server)}",
    )
    ca = load_certificate_authority(paths.ca_cert, paths.ca_key)
    carol = ca.issue_client_certificate("carol")
    carol_uri = _first_uri(carol.certificate)
    with tempfile.TemporaryDirectory(prefix="mtls-check-") as folder:
        files = Path(folder)
        save_certificate(carol.certificate, files / "carol.crt")
        save_private_key(carol.private_key, files / "carol.key")
        answer = attempt(
            server.url,
            ca_file=paths.ca_cert,
            cert_file=files / "carol.crt",
            key_file=files / "carol.key",
            server=server,
        )
    c.require(
        _answered_with(answer, carol_uri),
        f"a client the check made on the spot was answered with its own URI, {carol_uri}",
        f"a client the check made on the spot, {carol_uri}: its request "
        + _what_came_back(answer, carol_uri, alice_uri, server),
    )
    return c.result()
