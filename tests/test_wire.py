"""On the wire: the handshake trace, the recording proxy, key logging, and session resumption."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lab_helpers import (
    LabPaths,
    MTLSServer,
    build_server_context,
    load_certificate,
    wire,  # the module, to switch its private hook off
)
from lab_helpers.wire import RecordingProxy, TraceUnavailable, handshake, parse_records, trace_handshake

TLS12 = ssl.TLSVersion.TLSv1_2


def client_context(lab_pki: LabPaths, *, with_certificate: bool = True, maximum=None) -> ssl.SSLContext:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    if with_certificate:
        context.load_cert_chain(str(lab_pki.client_cert), str(lab_pki.client_key))
    if maximum is not None:
        context.maximum_version = maximum
    return context


def traced(lab_pki: LabPaths, *, with_certificate: bool, maximum=None):  # type: ignore[no-untyped-def]
    server_context = build_server_context(
        lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, maximum_version=maximum
    )
    with MTLSServer(server_context, name=None) as server:
        return trace_handshake(
            server.port,
            server_context=server_context,
            client_context=client_context(lab_pki, with_certificate=with_certificate),
        )


def test_tls13_mtls_handshake_messages_in_order(lab_pki: LabPaths) -> None:
    trace = traced(lab_pki, with_certificate=True)
    assert trace.version == "TLSv1.3" and trace.error is None
    assert trace.messages("server")[:7] == [
        "ServerHello",
        "ChangeCipherSpec",
        "EncryptedExtensions",
        "CertificateRequest",
        "Certificate",
        "CertificateVerify",
        "Finished",
    ]
    assert trace.messages("client") == [
        "ClientHello",
        "ChangeCipherSpec",
        "Certificate",
        "CertificateVerify",
        "Finished",
    ]
    assert trace.client_certificate_size() > 300  # it carries alice's certificate
    client_certificate = next(e for e in trace.sent("client") if e.message == "Certificate")
    assert client_certificate.encrypted  # TLS 1.3 encrypts everything after ServerHello


def test_tls13_without_a_client_certificate_sends_an_empty_one_and_gets_an_alert_late(
    lab_pki: LabPaths,
) -> None:
    trace = traced(lab_pki, with_certificate=False)
    assert trace.messages("client") == [
        "ClientHello",
        "ChangeCipherSpec",
        "Certificate",
        "Finished",
    ]  # no CertificateVerify
    assert trace.client_certificate_size() is not None and trace.client_certificate_size() < 16  # empty
    assert trace.messages("server")[-1] == "alert certificate_required"
    notes = [e.message for e in trace.events if e.direction == "note"]
    assert notes[0].startswith("handshake complete")  # the client finished first...
    assert "learns of the failure" in notes[-1]  # ...and learned later
    assert "sequenceDiagram" in trace.mermaid() and "-x" in trace.mermaid()


def test_tls12_mtls_handshake_messages_in_order(lab_pki: LabPaths) -> None:
    trace = traced(lab_pki, with_certificate=True, maximum=TLS12)
    assert trace.version == "TLSv1.2" and trace.error is None
    assert trace.messages("client") == [
        "ClientHello",
        "Certificate",
        "ClientKeyExchange",
        "CertificateVerify",
        "ChangeCipherSpec",
        "Finished",
    ]
    assert trace.messages("server")[:5] == [
        "ServerHello",
        "Certificate",
        "ServerKeyExchange",
        "CertificateRequest",
        "ServerHelloDone",
    ]
    client_certificate = next(e for e in trace.sent("client") if e.message == "Certificate")
    assert not client_certificate.encrypted  # TLS 1.2 sends it before ChangeCipherSpec: in clear


def test_tls12_without_a_client_certificate_fails_during_the_handshake(lab_pki: LabPaths) -> None:
    trace = traced(lab_pki, with_certificate=False, maximum=TLS12)
    assert "CertificateVerify" not in trace.messages("client")
    assert trace.messages("server")[-1] == "alert handshake_failure"
    notes = [e.message for e in trace.events if e.direction == "note"]
    assert not any(note.startswith("handshake complete") for note in notes)  # it never completed
    assert trace.error and "SSLV3_ALERT_HANDSHAKE_FAILURE" in trace.error


def test_without_the_private_hook_the_trace_says_what_to_use_instead(
    lab_pki: LabPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wire, "_HOOK", "_no_such_hook_in_this_python")
    assert not wire.msg_callback_available()
    server_context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    with pytest.raises(TraceUnavailable, match="keylog_filename"):
        trace_handshake(1, server_context=server_context, client_context=client_context(lab_pki))


def test_the_proxy_relays_bytes_faithfully_both_ways() -> None:
    """An echo server behind the proxy: what goes in comes back, and both copies are recorded."""
    listener = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        connection, _ = listener.accept()
        with connection:
            while data := connection.recv(65536):
                connection.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    payload = bytes(range(256)) * 64
    with RecordingProxy(listener.getsockname()[1]) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := client.recv(65536):
                received += chunk
    thread.join(5)
    listener.close()
    assert received == payload
    assert bytes(proxy.client_to_server) == payload and bytes(proxy.server_to_client) == payload


def closed_after(proxy: RecordingProxy, listener_timeout: float) -> tuple[float, bool]:
    """(seconds ``close()`` took, whether the accept loop had ended) when that loop polls every ``listener_timeout``."""
    proxy._listener.settimeout(listener_timeout)
    with proxy:
        time.sleep(0.05)  # the accept loop is inside accept()
        started = time.monotonic()
    return time.monotonic() - started, not proxy._accepting.is_alive()


def test_a_proxy_closes_without_waiting_for_its_accept_loop_to_poll() -> None:
    seconds, loop_ended = closed_after(RecordingProxy(9), listener_timeout=30.0)
    assert loop_ended and seconds < 15.0  # close() gives up on the loop after 2 s: it had ended by then


def test_without_the_wake_up_a_proxy_closes_only_when_its_accept_loop_polls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The twin: no wake-up connection, and close() waits for accept() to time out."""
    monkeypatch.setattr(RecordingProxy, "_wake_accept_loop", lambda self: None)
    seconds, loop_ended = closed_after(RecordingProxy(9), listener_timeout=1.0)
    assert loop_ended and seconds >= 0.9


@pytest.mark.parametrize(("maximum", "visible"), [(TLS12, True), (None, False)], ids=["TLS 1.2", "TLS 1.3"])
def test_an_eavesdropper_sees_the_client_certificate_only_over_tls12(
    lab_pki: LabPaths, maximum, visible: bool
) -> None:  # type: ignore[no-untyped-def]
    der = load_certificate(lab_pki.client_cert).public_bytes(serialization.Encoding.DER)
    context = build_server_context(
        lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, maximum_version=maximum
    )
    with MTLSServer(context, name=None) as server, RecordingProxy(server.port) as proxy:
        result = handshake(proxy.port, client_context(lab_pki))
    assert result.answer.endswith(b"Hello, alice\n")
    assert proxy.saw(der) is visible
    records = proxy.records()
    assert records[0].direction == "client->server" and records[0].content_type == "handshake"
    assert any(record.content_type == "application_data" for record in records)


def test_parse_records_reads_headers() -> None:
    data = bytes([22, 3, 1, 0, 2, 0xAA, 0xBB, 23, 3, 3, 0, 1, 0xCC])
    records = parse_records(data, "client->server")
    assert [(r.content_type, r.version, r.length) for r in records] == [
        ("handshake", "TLS 1.0", 2),
        ("application_data", "TLS 1.2", 1),
    ]


@pytest.mark.parametrize("maximum", [None, TLS12], ids=["TLS 1.3", "TLS 1.2"])
def test_session_resumption_happens_and_skips_the_client_certificate(lab_pki: LabPaths, maximum) -> None:  # type: ignore[no-untyped-def]
    server_context = build_server_context(
        lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, maximum_version=maximum
    )
    context = client_context(lab_pki)
    with MTLSServer(server_context, name=None) as server:
        first = handshake(server.port, context)
        assert not first.resumed and first.session is not None
        second = handshake(server.port, context, session=first.session)
        assert second.resumed and second.answer.endswith(b"Hello, alice\n")  # the server still knows alice
        trace = trace_handshake(server.port, server_context=server_context, client_context=context)
    # A fresh connection without the session is a full handshake again (the negative twin).
    assert "Certificate" in trace.messages("client")


def test_a_resumed_handshake_sends_no_certificates(lab_pki: LabPaths) -> None:
    server_context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    context = client_context(lab_pki)
    with MTLSServer(server_context, name=None) as server:
        first = handshake(server.port, context)
        events: list[str] = []

        def hook(conn, direction, version, content, kind, data):
            events.append(getattr(kind, "name", str(kind)))

        context._msg_callback = hook  # type: ignore[attr-defined]
        try:
            second = handshake(server.port, context, session=first.session)
        finally:
            context._msg_callback = None  # type: ignore[attr-defined]
    assert second.resumed
    assert "CERTIFICATE" not in events and "CERTIFICATE_VERIFY" not in events


def test_keylog_file_records_the_session_secrets(lab_pki: LabPaths, tmp_path: Path) -> None:
    keylog = tmp_path / "keys.log"
    context = client_context(lab_pki)
    context.keylog_filename = str(keylog)
    server_context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    with MTLSServer(server_context, name=None) as server:
        handshake(server.port, context)
    lines = keylog.read_text().splitlines()
    assert any(line.startswith("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") for line in lines)
    assert any(line.startswith("CLIENT_TRAFFIC_SECRET_0 ") for line in lines)


def test_traces_are_complete_and_separate_when_repeated_on_one_server(lab_pki: LabPaths) -> None:
    """The server's alert is recorded every time, and nothing of one trace leaks into the next."""
    server_context = build_server_context(
        lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, maximum_version=TLS12
    )
    with MTLSServer(server_context, name=None) as server:
        traces = [
            trace_handshake(
                server.port,
                server_context=server_context,
                client_context=client_context(lab_pki, with_certificate=False),
            )
            for _ in range(20)
        ]
    assert all(trace.messages("server")[-1] == "alert handshake_failure" for trace in traces)
    assert all(
        trace.messages("client")[0] == "ClientHello" and trace.messages("server")[0] == "ServerHello"
        for trace in traces
    )


def test_a_resumed_handshake_can_be_traced(lab_pki: LabPaths) -> None:
    server_context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    context = client_context(lab_pki)
    with MTLSServer(server_context, name=None) as server:
        first = handshake(server.port, context)
        trace = trace_handshake(
            server.port, server_context=server_context, client_context=context, session=first.session
        )
    assert trace.resumed
    assert "Certificate" not in trace.messages("client") and "Certificate" not in trace.messages("server")
    assert "alert close_notify" not in trace.mermaid() or "-x" not in trace.mermaid()


def test_key_shares_reads_both_hellos_of_a_real_handshake(lab_pki: LabPaths) -> None:
    """The client offers one share per group, the server answers with one of them (TLS 1.3)."""
    from lab_helpers import key_shares

    server_context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    with MTLSServer(server_context, name=None) as server, RecordingProxy(server.port) as proxy:
        result = handshake(proxy.port, client_context(lab_pki))
    assert result.version == "TLSv1.3"
    offered = key_shares(bytes(proxy.client_to_server))
    [chosen] = key_shares(bytes(proxy.server_to_client))
    assert offered and chosen in offered  # the server's share is for a group the client offered, of that size
    assert all(size > 0 for _, size in offered)


def test_key_shares_of_a_tls12_hello_is_empty_and_other_bytes_are_refused(lab_pki: LabPaths) -> None:
    from lab_helpers import LabError, key_shares

    server_context = build_server_context(
        lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, maximum_version=TLS12
    )
    with MTLSServer(server_context, name=None) as server, RecordingProxy(server.port) as proxy:
        handshake(proxy.port, client_context(lab_pki))
    assert key_shares(bytes(proxy.server_to_client)) == []  # a TLS 1.2 ServerHello has no key_share
    with pytest.raises(LabError, match="do not start with a ClientHello or ServerHello"):
        key_shares(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(LabError, match="cut short"):
        key_shares(bytes(proxy.client_to_server)[:60])


def test_key_shares_names_the_groups_of_a_hand_built_client_hello() -> None:
    """A ClientHello laid out by hand (RFC 8446, 4.1.2): two shares, one of a group the table does not name."""
    from lab_helpers import key_shares

    shares = (
        b"\x00\x1d\x00\x20" + bytes(32) + b"\x12\x34\x00\x02" + b"\xab\xcd"
    )  # X25519 (32 bytes), 0x1234 (2)
    key_share = b"\x00\x33" + (len(shares) + 2).to_bytes(2, "big") + len(shares).to_bytes(2, "big") + shares
    other = b"\x00\x00\x00\x00"  # an empty extension (type 0) before it, to be skipped
    extensions = other + key_share
    body = (
        b"\x03\x03"
        + bytes(32)
        + b"\x00"
        + b"\x00\x02\x13\x01"
        + b"\x01\x00"
        + len(extensions).to_bytes(2, "big")
        + extensions
    )
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    record = b"\x16\x03\x01" + len(message).to_bytes(2, "big") + message
    assert key_shares(record) == [("X25519", 32), ("group 0x1234", 2)]
