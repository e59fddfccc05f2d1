"""The lab's mTLS server: real sockets on 127.0.0.1, real handshakes, real failures.

Each failure is asserted by the class the client sees (over TLS 1.3 a
rejected client certificate arrives as an alert, an EOF or a reset: always a
``requests.exceptions.ConnectionError``) and by the reason the server
recorded, which is stable.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from lab_checks import UTC, get_over_tls, lab_threads, strict_client_context, wait_until

import lab_helpers.client as client_module
from lab_helpers import (
    CertificateAuthority,
    IssuedCertificate,
    KeyMismatchError,
    KeyPasswordError,
    LabError,
    LabFileMissingError,
    LabPaths,
    LabRequestHandler,
    MTLSServer,
    attempt,
    build_server_context,
    lab_session,
    load_private_key,
    running_servers,
    save_certificate,
    save_private_key,
)
from lab_helpers.tls import innermost_tls_error


def save_pair(issued: IssuedCertificate, directory: Path, stem: str) -> dict[str, Path]:
    """Write a certificate and its key; return them as attempt()'s cert_file/key_file."""
    return {
        "cert_file": save_certificate(issued.certificate, directory / f"{stem}.crt"),
        "key_file": save_private_key(issued.private_key, directory / f"{stem}.key"),
    }


def context_for(paths: LabPaths, **options: object) -> ssl.SSLContext:
    return build_server_context(paths.server_cert, paths.server_key, paths.ca_cert, **options)


def connection_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2.0).close()
    except ConnectionRefusedError:
        return True
    return False


# -- binding and start-up -----------------------------------------------------------------


def test_server_binds_127_0_0_1_on_a_free_port(mtls_server: MTLSServer) -> None:
    assert mtls_server.host == "127.0.0.1"
    assert mtls_server.port > 0
    listening = mtls_server._httpd.socket.getsockname()  # type: ignore[union-attr]
    assert listening == ("127.0.0.1", mtls_server.port)
    assert mtls_server.url == f"https://localhost:{mtls_server.port}/"


def test_port_0_gives_each_server_its_own_port(lab_pki: LabPaths, mtls_server: MTLSServer) -> None:
    with MTLSServer(context_for(lab_pki), name=None) as second:
        assert second.port != mtls_server.port


def test_start_returns_once_the_server_accepts(lab_pki: LabPaths) -> None:
    server = MTLSServer(context_for(lab_pki), name=None)
    try:
        returned = server.start()
        assert returned is server and server.running
        socket.create_connection(("127.0.0.1", server.port), timeout=2.0).close()  # no sleep, no retry
    finally:
        server.stop()


def test_a_stopped_server_refuses_connections(lab_pki: LabPaths) -> None:
    server = MTLSServer(context_for(lab_pki), name=None).start()
    port = server.port
    server.stop()
    assert not server.running
    assert connection_refused(port)
    with pytest.raises(LabError, match="not running"):
        _ = server.port


# -- success, and the missing client certificate ---------------------------------------------


def test_request_with_ca_and_client_certificate_succeeds(mtls_server: MTLSServer, client_files: dict) -> None:
    outcome = attempt(mtls_server.url, server=mtls_server, **client_files)
    assert outcome.ok, outcome
    assert (outcome.status, outcome.body) == (200, "Hello, alice\n")
    assert mtls_server.accepted == 1 and mtls_server.rejections == []
    assert any('"GET / HTTP/1.1" 200' in line for line in mtls_server.log)


def test_request_without_client_certificate_fails_over_tls_1_3(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server)
    assert not outcome.ok
    assert outcome.failed_with(requests.exceptions.ConnectionError)  # alert, EOF or reset: never the message
    assert outcome.server_reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert mtls_server.accepted == 0


def test_a_rejected_tls_1_3_client_reads_the_alert_every_time(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    """The server lets the client read its alert before closing (no reset that would destroy it)."""
    seen = set()
    for _ in range(20):
        outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server)
        assert outcome.failed_with(requests.exceptions.SSLError)
        seen.add(getattr(innermost_tls_error(outcome.error), "reason", None))  # type: ignore[arg-type]
    assert seen == {"TLSV13_ALERT_CERTIFICATE_REQUIRED"}


@pytest.fixture
def at_once_server(lab_pki: LabPaths) -> Iterator[MTLSServer]:
    """The lab server, except that it closes a refused connection at once instead of lingering."""
    server = MTLSServer(
        context_for(lab_pki), name=None, handshake_timeout=2.0, close_rejected_at_once=True
    ).start()
    yield server
    server.stop()


def test_a_server_that_closes_at_once_still_refuses_every_client_without_a_certificate(
    at_once_server: MTLSServer, lab_pki: LabPaths
) -> None:
    """Twenty requests, counted: the same class and the same server reason every time.

    What the client reads varies (the alert, or an EOF when the server's
    reset comes first), so only the class is asserted; the kinds are counted
    to show that only the client's view varies.
    """
    kinds: dict[str, int] = {}
    for _ in range(20):
        outcome = attempt(at_once_server.url, ca_file=lab_pki.ca_cert, server=at_once_server)
        assert outcome.failed_with(requests.exceptions.ConnectionError), outcome
        assert outcome.server_reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"
        kinds[str(outcome.reason)] = kinds.get(str(outcome.reason), 0) + 1
    assert sum(kinds.values()) == 20 and set(kinds) <= {
        "the server requires a client certificate (alert certificate_required)",
        "the server ended the connection",
    }, kinds
    assert at_once_server.accepted == 0 and len(at_once_server.rejections) == 20


def request_after_the_server_decided(server: MTLSServer, ca_file: Path) -> str:
    """A TLS 1.3 client without a certificate that sends its request only after the server has refused it.

    Returns what the client saw: the alert's reason, or the class of the error
    its write (or read) ended with. The careful server lingers, so the late
    request is read and the alert waits for the client; a server that closed
    at once has answered with a reset, and the client's write fails first.
    """
    context = ssl.create_default_context(cafile=str(ca_file))
    before = len(server.rejections)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert server.wait_for_rejection(before, timeout=5.0) is not None
            time.sleep(0.2)  # the reset of a closed connection travels the loopback in microseconds
            try:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                tls.recv(1024)
            except ssl.SSLError as error:
                return str(error.reason or type(error).__name__)
            except OSError as error:  # a reset or a broken pipe, outside TLS
                return type(error).__name__
    return "no error"


def test_a_late_request_gets_the_alert_from_the_careful_server_every_time(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    seen = [request_after_the_server_decided(mtls_server, lab_pki.ca_cert) for _ in range(5)]
    assert seen == ["TLSV13_ALERT_CERTIFICATE_REQUIRED"] * 5


def test_a_late_request_never_reads_the_alert_from_a_server_that_closed_at_once(
    at_once_server: MTLSServer, lab_pki: LabPaths
) -> None:
    """The negative twin: the alert was sent, but the client's write meets the reset first."""
    seen = [request_after_the_server_decided(at_once_server, lab_pki.ca_cert) for _ in range(5)]
    assert set(seen) <= {"SSLEOFError", "EOF", "ConnectionResetError", "BrokenPipeError"}, seen
    assert len(seen) == 5 and "TLSV13_ALERT_CERTIFICATE_REQUIRED" not in seen
    assert all(
        rejection.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" for rejection in at_once_server.rejections
    )


def test_raw_ssl_socket_with_client_certificate_gets_hello(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    context.load_cert_chain(lab_pki.client_cert, lab_pki.client_key)
    response = get_over_tls(context, mtls_server.port)
    assert response.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Type: text/plain; charset=utf-8\r\n" in response
    assert response.endswith("\r\n\r\nHello, alice\n")


def test_raw_ssl_socket_without_client_certificate_is_refused(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    try:
        response = get_over_tls(context, mtls_server.port)
    except OSError:  # ssl.SSLError or a reset, depending on timing (TLS 1.3)
        response = ""
    assert "Hello" not in response
    rejection = mtls_server.wait_for_rejection(0, timeout=5.0)
    assert rejection is not None and rejection.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def test_request_with_client_certificate_succeeds_over_tls_1_2(
    tls12_server: MTLSServer, lab_pki: LabPaths
) -> None:
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    context.load_cert_chain(lab_pki.client_cert, lab_pki.client_key)
    with socket.create_connection(("127.0.0.1", tls12_server.port), timeout=5.0) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"
    outcome = attempt(
        tls12_server.url,
        ca_file=lab_pki.ca_cert,
        cert_file=lab_pki.client_cert,
        key_file=lab_pki.client_key,
        server=tls12_server,
    )
    assert outcome.ok and outcome.body == "Hello, alice\n"


def test_request_without_client_certificate_fails_in_the_handshake_over_tls_1_2(
    tls12_server: MTLSServer, lab_pki: LabPaths
) -> None:
    outcome = attempt(tls12_server.url, ca_file=lab_pki.ca_cert, server=tls12_server)
    assert outcome.failed_with(requests.exceptions.SSLError)  # TLS 1.2: a stable alert during the handshake
    assert outcome.server_reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


# -- client certificates the server refuses ----------------------------------------------------


def test_a_client_certificate_from_another_ca_is_refused_the_same_way_every_time(
    mtls_server: MTLSServer, lab_pki: LabPaths, other_pki: LabPaths
) -> None:
    reasons = set()
    for _ in range(20):
        outcome = attempt(
            mtls_server.url,
            ca_file=lab_pki.ca_cert,
            cert_file=other_pki.client_cert,
            key_file=other_pki.client_key,
            server=mtls_server,
            timeout=5.0,
        )
        assert outcome.failed_with(requests.exceptions.ConnectionError)
        reasons.add(outcome.server_reason)
    assert reasons == {"unable to get local issuer certificate"}
    assert mtls_server.accepted == 0 and len(mtls_server.rejections) == 20


def test_an_expired_client_certificate_is_refused(
    tmp_path: Path, mtls_server: MTLSServer, lab_ca: CertificateAuthority, lab_pki: LabPaths
) -> None:
    two_days_ago = datetime.datetime.now(UTC) - datetime.timedelta(days=2)
    expired = lab_ca.issue_client_certificate("alice", valid_from=two_days_ago, valid_days=1)
    assert expired.certificate.not_valid_after_utc < datetime.datetime.now(UTC)
    outcome = attempt(
        mtls_server.url,
        ca_file=lab_pki.ca_cert,
        server=mtls_server,
        **save_pair(expired, tmp_path, "expired"),
    )
    assert outcome.failed_with(requests.exceptions.ConnectionError)
    assert outcome.server_reason == "certificate has expired"


def test_a_fresh_client_certificate_from_the_same_ca_is_accepted(
    tmp_path: Path, mtls_server: MTLSServer, lab_ca: CertificateAuthority, lab_pki: LabPaths
) -> None:
    """The twin of the expired case: the same CA and name, valid dates."""
    fresh = lab_ca.issue_client_certificate("alice", valid_days=1)
    outcome = attempt(
        mtls_server.url, ca_file=lab_pki.ca_cert, server=mtls_server, **save_pair(fresh, tmp_path, "fresh")
    )
    assert outcome.ok and outcome.body == "Hello, alice\n"


def test_the_server_certificate_is_refused_as_a_client_certificate(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    outcome = attempt(
        mtls_server.url,
        ca_file=lab_pki.ca_cert,
        cert_file=lab_pki.server_cert,
        key_file=lab_pki.server_key,
        server=mtls_server,
    )
    assert outcome.failed_with(requests.exceptions.ConnectionError)
    assert outcome.server_reason == "unsuitable certificate purpose"  # EKU serverAuth, not clientAuth


def test_the_server_greets_a_client_by_its_common_name(
    tmp_path: Path, mtls_server: MTLSServer, lab_ca: CertificateAuthority, lab_pki: LabPaths
) -> None:
    bob = lab_ca.issue_client_certificate("bob")
    outcome = attempt(mtls_server.url, ca_file=lab_pki.ca_cert, **save_pair(bob, tmp_path, "bob"))
    assert outcome.body == "Hello, bob\n"


# -- robustness: idle clients, junk, keep-alive ------------------------------------------------------


def test_an_idle_tcp_client_does_not_block_others(lab_pki: LabPaths, client_files: dict) -> None:
    with MTLSServer(context_for(lab_pki), name=None, handshake_timeout=1.0) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0):  # connects, sends nothing
            outcome = attempt(server.url, server=server, **client_files)
            assert outcome.ok and outcome.body == "Hello, alice\n"
            rejection = server.wait_for_rejection(0, timeout=5.0)  # the idle one, once its time is up
        assert rejection is not None
        assert rejection.reason == "handshake timed out"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (bytes(range(256)), "WRONG_VERSION_NUMBER"),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "HTTP_REQUEST"),
    ],
    ids=["junk-bytes", "plain-http"],
)
def test_junk_and_plain_http_are_recorded_and_the_server_keeps_serving(
    mtls_server: MTLSServer, client_files: dict, payload: bytes, reason: str
) -> None:
    with socket.create_connection(("127.0.0.1", mtls_server.port), timeout=5.0) as raw:
        raw.sendall(payload)
        rejection = mtls_server.wait_for_rejection(0, timeout=5.0)
    assert rejection is not None and rejection.reason == reason
    assert rejection.error_class == "SSLError"
    assert rejection.peer.startswith("127.0.0.1:")
    assert reason in str(rejection)
    outcome = attempt(mtls_server.url, server=mtls_server, **client_files)
    assert outcome.ok and outcome.body == "Hello, alice\n"


def test_keep_alive_reuses_one_connection(mtls_server: MTLSServer, client_files: dict) -> None:
    with lab_session(**client_files) as session:
        bodies = [session.get(mtls_server.url).text for _ in range(5)]
    assert bodies == ["Hello, alice\n"] * 5
    assert mtls_server.accepted == 1
    assert sum('"GET / HTTP/1.1" 200' in line for line in mtls_server.log) == 5


def test_separate_sessions_each_open_a_connection(mtls_server: MTLSServer, client_files: dict) -> None:
    for _ in range(3):
        with lab_session(**client_files) as session:
            assert session.get(mtls_server.url).text == "Hello, alice\n"
    assert mtls_server.accepted == 3


# -- life cycle: re-runs, stop, threads -------------------------------------------------------------


def test_starting_a_server_with_the_same_name_stops_the_first(lab_pki: LabPaths, client_files: dict) -> None:
    name = "test-rerun-same-name"
    first = MTLSServer(context_for(lab_pki), name=name).start()
    first_port = first.port
    second = MTLSServer(context_for(lab_pki), name=name)
    try:
        second.start()
        assert running_servers()[name] is second
        assert not first.running
        assert connection_refused(first_port)
        assert attempt(second.url, **client_files).ok
    finally:
        second.stop()
        first.stop()
    assert name not in running_servers()
    assert wait_until(lambda: not lab_threads(), timeout=5.0), lab_threads()


def test_servers_with_different_names_run_side_by_side(lab_pki: LabPaths, client_files: dict) -> None:
    with (
        MTLSServer(context_for(lab_pki), name="test-side-a") as a,
        MTLSServer(context_for(lab_pki), name="test-side-b") as b,
    ):
        assert a.running and b.running
        assert attempt(a.url, **client_files).ok and attempt(b.url, **client_files).ok
    assert "test-side-a" not in running_servers() and "test-side-b" not in running_servers()


def test_stop_ends_open_keep_alive_connections_and_their_threads(
    lab_pki: LabPaths, client_files: dict
) -> None:
    server = MTLSServer(context_for(lab_pki), name=None).start()
    with lab_session(**client_files) as session:
        assert session.get(server.url).text == "Hello, alice\n"  # the connection stays open
        assert any(name.startswith("mtls-lab-connection-") for name in lab_threads())
        server.stop()
        assert wait_until(lambda: not lab_threads(), timeout=5.0), lab_threads()


def test_stop_is_idempotent(lab_pki: LabPaths) -> None:
    server = MTLSServer(context_for(lab_pki), name="test-idempotent").start()
    server.stop()
    server.stop()
    assert not server.running and "test-idempotent" not in running_servers()
    assert "stopped" in repr(server)


def test_the_context_manager_stops_the_server(lab_pki: LabPaths, client_files: dict) -> None:
    with MTLSServer(context_for(lab_pki), name=None) as server:
        port = server.port
        assert attempt(server.url, **client_files).ok
        assert f"listening on https://localhost:{port}/" in repr(server)
    assert not server.running
    assert connection_refused(port)
    assert wait_until(lambda: not lab_threads(), timeout=5.0), lab_threads()


def test_a_fixed_free_port_is_used(lab_pki: LabPaths) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with MTLSServer(context_for(lab_pki), port=port, name=None) as server:
        assert server.port == port


def test_a_fixed_busy_port_says_to_use_port_0(lab_pki: LabPaths) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        server = MTLSServer(context_for(lab_pki), port=busy.getsockname()[1], name=None)
        with pytest.raises(LabError, match="port=0"):
            server.start()
    assert not server.running


# -- the server's context ---------------------------------------------------------------------


def test_build_server_context_requires_a_client_certificate(lab_pki: LabPaths) -> None:
    context = context_for(lab_pki)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.verify_flags & ssl.VERIFY_X509_STRICT
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    MTLSServer(context, name=None)  # accepted


@pytest.mark.parametrize("mode", [ssl.CERT_OPTIONAL], ids=["CERT_OPTIONAL"])
def test_mtls_server_refuses_a_context_without_cert_required(lab_pki: LabPaths, mode: ssl.VerifyMode) -> None:
    context = context_for(lab_pki)
    context.verify_mode = mode
    with pytest.raises(LabError, match="CERT_REQUIRED"):
        MTLSServer(context, name=None)


def test_build_server_context_reports_a_missing_file(lab_pki: LabPaths, tmp_path: Path) -> None:
    with pytest.raises(LabFileMissingError, match=r"server\.crt does not exist"):
        build_server_context(tmp_path / "server.crt", lab_pki.server_key, lab_pki.ca_cert)
    with pytest.raises(LabFileMissingError, match=r"ca\.crt does not exist"):
        build_server_context(lab_pki.server_cert, lab_pki.server_key, tmp_path / "ca.crt")


def test_build_server_context_refuses_a_key_from_another_certificate(lab_pki: LabPaths) -> None:
    with pytest.raises(KeyMismatchError, match="KEY_VALUES_MISMATCH"):
        build_server_context(lab_pki.server_cert, lab_pki.client_key, lab_pki.ca_cert)


@pytest.fixture
def encrypted_server_key(tmp_path: Path, lab_pki: LabPaths) -> Path:
    return save_private_key(
        load_private_key(lab_pki.server_key), tmp_path / "server-encrypted.key", password=b"s3cret"
    )


def test_build_server_context_loads_an_encrypted_key_with_its_password(
    lab_pki: LabPaths, encrypted_server_key: Path, client_files: dict
) -> None:
    context = build_server_context(
        lab_pki.server_cert, encrypted_server_key, lab_pki.ca_cert, key_password=b"s3cret"
    )
    with MTLSServer(context, name=None) as server:
        assert attempt(server.url, **client_files).body == "Hello, alice\n"


def test_build_server_context_refuses_an_encrypted_key_without_its_password(
    lab_pki: LabPaths, encrypted_server_key: Path
) -> None:
    with pytest.raises(KeyPasswordError, match="encrypted"):
        build_server_context(lab_pki.server_cert, encrypted_server_key, lab_pki.ca_cert)
    with pytest.raises(KeyPasswordError, match="wrong"):
        build_server_context(
            lab_pki.server_cert, encrypted_server_key, lab_pki.ca_cert, key_password=b"guess"
        )


def test_strict_clients_accept_the_server_context(mtls_server: MTLSServer, lab_pki: LabPaths) -> None:
    context = strict_client_context(lab_pki.ca_cert, lab_pki.client_cert, lab_pki.client_key)
    assert get_over_tls(context, mtls_server.port, server_hostname="127.0.0.1").endswith("Hello, alice\n")


def test_wait_for_rejection_returns_none_when_nothing_is_rejected(
    mtls_server: MTLSServer, client_files: dict
) -> None:
    assert attempt(mtls_server.url, **client_files).ok
    assert mtls_server.wait_for_rejection(0, timeout=0.1) is None


def test_an_exception_in_a_handler_is_recorded_not_lost(lab_pki: LabPaths) -> None:
    class Broken(LabRequestHandler):
        def do_GET(self) -> None:
            raise RuntimeError("a bug in the handler")

    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    with MTLSServer(context, name=None, handler=Broken) as server:
        outcome = attempt(
            server.url, ca_file=lab_pki.ca_cert, cert_file=lab_pki.client_cert, key_file=lab_pki.client_key
        )
        assert wait_until(lambda: len(server.handler_errors) == 1)
    assert not outcome.ok  # the client sees the connection end without an answer
    assert "handler failed: RuntimeError('a bug in the handler')" in "\n".join(server.log)


# -- how long a failed request waits for the server's record ------------------------------------------------

LONG_WAIT = 60.0  # far longer than any of these requests takes: a wait that ends early ends on an event


class BrokenHandler(LabRequestHandler):
    """The handshake succeeds, then the handler raises: the request fails and the server records no rejection."""

    def do_GET(self) -> None:
        raise RuntimeError("a bug in the handler")


def waited(wait: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = wait()
    return result, time.monotonic() - started


def record_after(server: MTLSServer, request: Callable[[], object]) -> tuple[object, float]:
    """Make the request, then wait for the rejection it caused, as attempt() does: (rejection or None, seconds)."""
    rejections, connections = len(server.rejections), server.connections
    request()
    return waited(
        lambda: server.wait_for_rejection(rejections, timeout=LONG_WAIT, connections_after=connections)
    )


def test_the_wait_for_a_record_ends_once_the_connection_ended_without_one(
    lab_pki: LabPaths, client_files: dict
) -> None:
    with MTLSServer(context_for(lab_pki), name=None, handler=BrokenHandler) as server:
        rejection, seconds = record_after(server, lambda: attempt(server.url, **client_files))
    assert rejection is None and seconds < LONG_WAIT / 2


def test_the_wait_for_a_record_without_connections_after_lasts_its_timeout(
    lab_pki: LabPaths, client_files: dict
) -> None:
    """The twin: asked only about rejections, the server cannot tell that none is coming."""
    with MTLSServer(context_for(lab_pki), name=None, handler=BrokenHandler) as server:
        assert not attempt(server.url, **client_files).ok
        rejection, seconds = waited(lambda: server.wait_for_rejection(0, timeout=0.5))
    assert rejection is None and seconds >= 0.5


def test_the_wait_for_a_record_does_not_end_before_a_connection_arrives(mtls_server: MTLSServer) -> None:
    """No connection since the mark: the client's may still be in the queue, so the whole timeout is waited."""
    rejection, seconds = waited(
        lambda: mtls_server.wait_for_rejection(0, timeout=0.5, connections_after=mtls_server.connections)
    )
    assert rejection is None and seconds >= 0.5


def test_a_connection_left_open_from_before_does_not_hold_the_wait(
    lab_pki: LabPaths, client_files: dict
) -> None:
    """Only connections that arrived after the mark count: an open keep-alive connection from earlier does not."""
    with MTLSServer(context_for(lab_pki), name=None) as server, lab_session(**client_files) as keeping:
        assert keeping.get(server.url).status_code == 200  # its connection stays open, its thread waiting
        refused, _ = record_after(server, lambda: attempt(server.url, ca_file=lab_pki.ca_cert))
        assert refused is not None and refused.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"  # type: ignore[attr-defined]
        server.handler = BrokenHandler  # from the next connection on, the handler raises
        rejection, seconds = record_after(server, lambda: attempt(server.url, **client_files))
        assert rejection is None and seconds < LONG_WAIT / 2
        assert wait_until(lambda: server._open_connections == {0})  # the kept one, open all along


def test_a_late_rejection_of_an_earlier_connection_is_not_taken_for_the_requests_own(
    mtls_server: MTLSServer, lab_pki: LabPaths
) -> None:
    """A connection from before the mark whose rejection is recorded after it: the request's own record is found."""
    earlier = socket.create_connection(
        ("127.0.0.1", mtls_server.port), timeout=5
    )  # connection 0: says nothing
    assert wait_until(lambda: mtls_server.connections == 1)
    rejections, connections = len(mtls_server.rejections), mtls_server.connections
    earlier.close()  # its handshake ends now, after the mark: a rejection for connection 0
    assert wait_until(lambda: len(mtls_server.rejections) == 1)
    assert not attempt(mtls_server.url, ca_file=lab_pki.ca_cert).ok  # connection 1: no client certificate
    own = mtls_server.wait_for_rejection(rejections, timeout=LONG_WAIT, connections_after=connections)
    assert own is not None and own.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE" and own.connection == 1
    # The twin: by position alone, the earlier connection's record is the first after the mark.
    by_position = mtls_server.wait_for_rejection(rejections, timeout=LONG_WAIT)
    assert by_position is not None and by_position.connection == 0 and by_position.reason != own.reason


@pytest.mark.parametrize("close_at_once", [False, True], ids=["lingering close", "closed at once"])
def test_a_rejection_recorded_after_the_client_saw_its_error_is_still_found(
    lab_pki: LabPaths, close_at_once: bool
) -> None:
    """The server records before it lets the connection count as ended: a slow record is waited for, not lost."""
    with MTLSServer(context_for(lab_pki), name=None, close_rejected_at_once=close_at_once) as server:
        record = server._record_rejection

        def slowly(*args: Any) -> None:
            time.sleep(0.3)  # the client has had its error for a while when the record comes
            record(*args)

        server._record_rejection = slowly  # type: ignore[method-assign]
        outcome = attempt(server.url, ca_file=lab_pki.ca_cert, server=server)
    assert outcome.server_reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE"


def test_attempt_returns_without_waiting_for_a_record_that_cannot_come(
    lab_pki: LabPaths, client_files: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "SERVER_RECORD_WAIT", LONG_WAIT)
    with MTLSServer(context_for(lab_pki), name=None, handler=BrokenHandler) as server:
        outcome, seconds = waited(lambda: attempt(server.url, server=server, **client_files))
    assert not outcome.ok and outcome.server_reason is None  # type: ignore[attr-defined]
    assert seconds < LONG_WAIT / 2
