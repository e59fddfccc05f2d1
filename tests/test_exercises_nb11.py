"""The checks of notebook 11's exercises: quiet until attempted, pass a right answer, say what a wrong one misses.

The answers are read from real captures and real traces of lab servers,
made here the way the notebook makes them.
"""

from __future__ import annotations

import ssl
from collections import Counter

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from exercise_checks import NOT_ATTEMPTED, missing, strict

from lab_helpers import (
    LabPaths,
    MTLSServer,
    RecordingProxy,
    build_server_context,
    check,
    handshake,
    lab_session,
    load_certificate,
    trace_handshake,
)
from lab_helpers.exercises import nb11
from lab_helpers.wire import HandshakeTrace

pytestmark = pytest.mark.usefixtures("lenient_checks")

TLS12 = ssl.TLSVersion.TLSv1_2


def client_context(paths: LabPaths) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    context.load_cert_chain(str(paths.client_cert), str(paths.client_key))
    return context


def server_context(paths: LabPaths, maximum_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    return build_server_context(
        paths.server_cert, paths.server_key, paths.ca_cert, maximum_version=maximum_version
    )


def capture(paths: LabPaths, maximum_version: ssl.TLSVersion | None = None) -> RecordingProxy:
    """One request relayed through a recording proxy, as step 6's eavesdrop() makes it."""
    with (
        MTLSServer(server_context(paths, maximum_version), name=None) as server,
        RecordingProxy(server.port) as proxy,
    ):
        handshake(proxy.port, client_context(paths))
    return proxy


def alice_der(paths: LabPaths) -> bytes:
    return load_certificate(paths.client_cert).public_bytes(Encoding.DER)


# -- 11.1 Read alice's certificate off the wire ---------------------------------------------


@pytest.fixture
def capture_12(lab_pki: LabPaths) -> RecordingProxy:
    return capture(lab_pki, TLS12)


def test_11_1_not_attempted(lab_pki: LabPaths, capture_12: RecordingProxy) -> None:
    alice = load_certificate(lab_pki.client_cert)
    result = check.exercise_11_1(None, None, capture=capture_12, client_certificate=alice)
    assert result.status == NOT_ATTEMPTED


def test_11_1_the_offset_and_the_certificate_read_there_pass(
    lab_pki: LabPaths, capture_12: RecordingProxy
) -> None:
    der = alice_der(lab_pki)
    offset = bytes(capture_12.client_to_server).find(der)
    on_the_wire = x509.load_der_x509_certificate(
        bytes(capture_12.client_to_server[offset : offset + len(der)])
    )
    alice = load_certificate(lab_pki.client_cert)
    result = check.exercise_11_1(offset, on_the_wire, capture=capture_12, client_certificate=alice)
    assert result.passed, result
    assert any("Certificate message (handshake type 11)" in text for ok, text in result.points if ok)


@pytest.mark.parametrize(
    ("before", "landmark"),
    [
        (3, "the certificate's own 3-byte length"),
        (10, "the Certificate message's header (type 11, then a 3-byte length)"),
        (15, "the header of the record that carries the Certificate message"),
    ],
)
def test_11_1_an_offset_on_a_header_names_the_header(
    lab_pki: LabPaths, capture_12: RecordingProxy, before: int, landmark: str
) -> None:
    alice = load_certificate(lab_pki.client_cert)
    offset = bytes(capture_12.client_to_server).find(alice_der(lab_pki)) - before
    result = check.exercise_11_1(offset, alice, capture=capture_12, client_certificate=alice)
    assert not result.passed
    assert missing(result) == [
        f"byte {offset} is {landmark}, not the certificate itself: which fields still come before alice's DER bytes?"
    ]  # the field it landed on, not how many bytes to add


def test_11_1_a_wrong_offset_and_the_server_certificate(
    lab_pki: LabPaths, capture_12: RecordingProxy
) -> None:
    alice = load_certificate(lab_pki.client_cert)
    result = check.exercise_11_1(
        7, load_certificate(lab_pki.server_cert), capture=capture_12, client_certificate=alice
    )
    texts = missing(result)
    assert any(
        text.startswith("at byte 7 the capture holds") and "not alice's certificate" in text for text in texts
    )
    assert any("is CN=localhost, not alice's client.crt" in text for text in texts)


def test_11_1_bytes_must_be_loaded_into_a_certificate(lab_pki: LabPaths, capture_12: RecordingProxy) -> None:
    der = alice_der(lab_pki)
    offset = bytes(capture_12.client_to_server).find(der)
    alice = load_certificate(lab_pki.client_cert)
    result = check.exercise_11_1(offset, der, capture=capture_12, client_certificate=alice)
    assert any("x509.load_der_x509_certificate" in text for text in missing(result))


def test_11_1_a_tls13_capture_holds_no_certificate_in_clear(lab_pki: LabPaths) -> None:
    alice = load_certificate(lab_pki.client_cert)
    result = check.exercise_11_1(532, alice, capture=capture(lab_pki), client_certificate=alice)
    assert not result.passed
    assert any("nowhere in this capture" in text for text in missing(result))


def test_11_1_strict_mode_raises(
    lab_pki: LabPaths, capture_12: RecordingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = load_certificate(lab_pki.client_cert)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_11_1(0, alice, capture=capture_12, client_certificate=alice)


# -- 11.2 Find the server name in the ClientHello -----------------------------------------------


@pytest.fixture
def capture_13(lab_pki: LabPaths) -> RecordingProxy:
    return capture(lab_pki)


def test_11_2_not_attempted(capture_13: RecordingProxy) -> None:
    assert check.exercise_11_2(None, None, capture=capture_13).status == NOT_ATTEMPTED


def test_11_2_the_extension_and_the_name_pass(capture_13: RecordingProxy) -> None:
    host = bytes(capture_13.client_to_server).find(b"localhost")
    result = check.exercise_11_2(host - 9, host, capture=capture_13)
    assert result.passed, result
    assert any("00 00 00 0e 00 0c 00 00 09" in text for ok, text in result.points if ok)


def test_11_2_the_extension_data_is_not_the_extension(capture_13: RecordingProxy) -> None:
    host = bytes(capture_13.client_to_server).find(b"localhost")
    result = check.exercise_11_2(host - 5, host, capture=capture_13)
    expected = (
        f"byte {host - 5} is where the extension's data starts: the extension itself begins "
        "4 bytes earlier, with its type (2 bytes) and its length (2 bytes)"
    )
    assert missing(result) == [expected]


def test_11_2_zero_bytes_elsewhere_are_no_extension(capture_13: RecordingProxy) -> None:
    data = bytes(capture_13.client_to_server)
    host = data.find(b"localhost")
    session_id = 5 + 4 + 2 + 32  # the session id's length byte: inside the ClientHello, but no extension
    result = check.exercise_11_2(session_id, host + 1, capture=capture_13)
    texts = missing(result)
    assert any(text.startswith(f"no extension starts at byte {session_id}") for text in texts)
    assert any(f"at byte {host + 1} the capture holds b'ocalhost" in text for text in texts)


def test_11_2_another_extension_is_not_server_name(capture_13: RecordingProxy) -> None:
    data = bytes(capture_13.client_to_server)
    host = data.find(b"localhost")
    following = host + len(b"localhost")  # the extension after server_name
    kind = int.from_bytes(data[following : following + 2], "big")
    result = check.exercise_11_2(following, host, capture=capture_13)
    assert missing(result) == [
        f"an extension starts at byte {following}, but its type is {kind}, not 0 (server_name): keep walking"
    ]


def test_11_2_not_a_capture(capture_13: RecordingProxy) -> None:
    result = check.exercise_11_2(1, 2, capture=b"not a proxy")  # type: ignore[arg-type]
    assert any("should be a RecordingProxy" in text for text in missing(result))


def test_11_2_strict_mode_raises(capture_13: RecordingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_11_2(0, 0, capture=capture_13)


# -- 11.3 A resumed TLS 1.2 handshake --------------------------------------------------------------


def full_and_resumed(
    paths: LabPaths, maximum_version: ssl.TLSVersion | None
) -> tuple[HandshakeTrace, HandshakeTrace]:
    context, client = server_context(paths, maximum_version), client_context(paths)
    with MTLSServer(context, name=None) as server:
        full = trace_handshake(server.port, server_context=context, client_context=client)
        first = handshake(server.port, client)
        resumed = trace_handshake(
            server.port, server_context=context, client_context=client, session=first.session
        )
    return full, resumed


def sent(trace: HandshakeTrace) -> set[tuple[str, str]]:
    return {(e.side, e.message) for e in trace.sent()}


@pytest.fixture(scope="module")
def traces_12(tmp_path_factory: pytest.TempPathFactory) -> tuple[LabPaths, HandshakeTrace, HandshakeTrace]:
    from lab_helpers import create_seed_pki

    paths = create_seed_pki(tmp_path_factory.mktemp("nb11") / "lab-files")
    return (paths, *full_and_resumed(paths, TLS12))


def test_11_3_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_11_3(None, None, None, paths=lab_pki).status == NOT_ATTEMPTED


def test_11_3_the_resumed_trace_what_went_and_the_server_first_pass(traces_12) -> None:  # type: ignore[no-untyped-def]
    paths, full, resumed = traces_12
    disappeared = sent(full) - sent(resumed)  # close_notify is in both: alerts need no filtering here
    result = check.exercise_11_3(resumed, disappeared, "server", paths=paths)
    assert result.passed, result
    assert ("client", "Certificate") in disappeared and ("server", "CertificateRequest") in disappeared


def test_11_3_alerts_in_the_answer_are_left_out_of_the_comparison(traces_12) -> None:  # type: ignore[no-untyped-def]
    paths, full, resumed = traces_12
    disappeared = sent(full) - sent(resumed) | {("server", "alert close_notify")}
    assert check.exercise_11_3(resumed, disappeared, "server", paths=paths).passed


def test_11_3_a_missing_message_an_extra_one_and_the_wrong_side(traces_12) -> None:  # type: ignore[no-untyped-def]
    paths, full, resumed = traces_12
    disappeared = (sent(full) - sent(resumed) - {("server", "ServerHelloDone")}) | {("client", "Finished")}
    result = check.exercise_11_3(resumed, disappeared, "client", paths=paths)
    assert not result.passed
    assert (
        "1 more message disappeared than your set says: compare every (side, message) pair of trace_12 with "
        "the resumed trace's; these are still in a resumed handshake: client Finished"
    ) in missing(result)
    assert not any(
        "ServerHelloDone" in text for text in missing(result)
    )  # the missing one is counted, not named
    assert (
        "'client' is not what the check's own resumed handshake shows: read the client's own lines of your "
        "trace, 'received Finished' and 'sent Finished': which one comes first?"
    ) in missing(result)


def test_11_3_an_answer_with_half_the_messages_gets_a_count(traces_12) -> None:  # type: ignore[no-untyped-def]
    """The learner's try: the certificates gone, the rest not seen. The message must not list the rest."""
    paths, full, resumed = traces_12
    gone = sent(full) - sent(resumed)
    certificates = {pair for pair in gone if "Certificate" in pair[1]}
    result = check.exercise_11_3(resumed, certificates, "server", paths=paths)
    [problem] = missing(result)
    assert problem.startswith(f"{len(gone - certificates)} more messages disappeared than your set says")
    assert not any(message in problem for _, message in gone - certificates)
    assert "trace_handshake" not in (result.hint or "")  # the idea, not the code


def test_11_3_a_full_handshake_or_tls13_is_not_it(traces_12) -> None:  # type: ignore[no-untyped-def]
    paths, full, resumed = traces_12
    disappeared = sent(full) - sent(resumed)
    texts = missing(check.exercise_11_3(full, disappeared, "server", paths=paths))
    assert any(text.startswith("the handshake did not resume") for text in texts)
    assert "the client and server sent a Certificate: this is a full handshake, not a resumed one" in texts
    _, resumed_13 = full_and_resumed(paths, None)
    texts = missing(check.exercise_11_3(resumed_13, disappeared, "server", paths=paths))
    assert texts == ["resumed_trace_12 is TLSv1.3: cap the server at TLS 1.2 (maximum_version=TLS12)"]


def test_11_3_the_answers_types(traces_12) -> None:  # type: ignore[no-untyped-def]
    paths, _, resumed = traces_12
    texts = missing(check.exercise_11_3(resumed, ["Certificate"], "alice", paths=paths))
    assert any(text.startswith("disappeared_12 should be a set of (side, message) pairs") for text in texts)
    assert "finishes_first_12 should be 'client' or 'server': whose Finished comes first" in texts


def test_11_3_strict_mode_raises(traces_12, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    paths, full, _ = traces_12
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_11_3(full, set(), "client", paths=paths)


# -- 11.4 Count the records of a keep-alive session ------------------------------------------------


def keepalive(
    paths: LabPaths, requests: int, *, one_session: bool = True
) -> tuple[RecordingProxy, dict[str, int]]:
    """``requests`` GETs through a recording proxy, over one session (kept alive) or one connection each.

    Returns the proxy and its records per direction, counted after the last answer.
    """
    with (
        MTLSServer(server_context(paths), name=None) as server,
        RecordingProxy(server.port) as proxy,
        lab_session(ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key) as session,
    ):
        for _ in range(requests):
            if one_session:
                session.get(f"https://localhost:{proxy.port}/").raise_for_status()
            else:
                handshake(proxy.port, client_context(paths))
        counted = dict(Counter(record.direction for record in proxy.records()))
    return proxy, counted


ONE_MORE = {"client->server": 1, "server->client": 1}


def test_11_4_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_11_4(None, None, None, paths=lab_pki).status == NOT_ATTEMPTED


def test_11_4_three_requests_counted_and_one_more_passes(lab_pki: LabPaths) -> None:
    proxy, counted = keepalive(lab_pki, 3)
    result = check.exercise_11_4(proxy, counted, ONE_MORE, paths=lab_pki)
    assert result.passed, result


@pytest.mark.parametrize("goodbye", [True, False], ids=["with the goodbye", "without it"])
def test_11_4_the_capture_passes_with_or_without_the_servers_goodbye(
    lab_pki: LabPaths, goodbye: bool
) -> None:
    """A proxy closed with the session may or may not record the server's close_notify: both captures pass."""
    proxy, counted = keepalive(lab_pki, 3)
    last = [r for r in proxy.records() if r.direction == "server->client"][-1]
    recorded = (
        len([r for r in proxy.records() if r.direction == "server->client"]) > counted["server->client"]
    )
    if recorded and not goodbye:
        del proxy.server_to_client[-(5 + last.length) :]
    elif goodbye and not recorded:
        proxy.server_to_client.extend(bytes([23, 3, 3, 0, 19]) + bytes(19))  # a record as long as the goodbye
    assert check.exercise_11_4(proxy, counted, ONE_MORE, paths=lab_pki).passed


def test_11_4_counting_after_the_goodbye_says_so(lab_pki: LabPaths) -> None:
    proxy, counted = keepalive(lab_pki, 3)
    late = {**counted, "server->client": counted["server->client"] + 1}
    result = check.exercise_11_4(proxy, late, ONE_MORE, paths=lab_pki)
    assert any(
        text.startswith(
            f"keepalive_counts says {late['client->server']} client->server, "
            f"{late['server->client']} server->client: that includes the server's goodbye"
        )
        for text in missing(result)
    )


def test_11_4_three_connections_are_not_keep_alive(lab_pki: LabPaths) -> None:
    proxy, counted = keepalive(lab_pki, 3, one_session=False)
    result = check.exercise_11_4(proxy, counted, ONE_MORE, paths=lab_pki)
    expected = (
        "it holds 3 ClientHellos, so 3 connections: make the requests from one lab_session, "
        "which keeps its connection open between them"
    )
    assert missing(result) == [expected]


def test_11_4_wrong_counts_and_two_requests(lab_pki: LabPaths) -> None:
    proxy, counted = keepalive(lab_pki, 2)
    texts = missing(
        check.exercise_11_4(proxy, counted, {"client->server": 1, "server->client": 2}, paths=lab_pki)
    )
    assert any(text.startswith("it holds") and "make exactly three requests" in text for text in texts)
    assert any(
        text.startswith("keepalive_counts says")
        and "not what three requests over one connection make" in text
        for text in texts
    )
    assert any(
        text.startswith(
            "added_by_a_fourth_request says 1 client->server, 2 server->client, which is not what"
        )
        for text in texts
    )
    assert not any("adds 1 client->server" in text for text in texts)  # the true figures are not handed over


def test_11_4_not_a_proxy_and_not_a_dict(lab_pki: LabPaths) -> None:
    assert missing(check.exercise_11_4("capture", None, None, paths=lab_pki)) == [
        "keepalive_capture should be a RecordingProxy, not str"
    ]
    proxy, _ = keepalive(lab_pki, 3)
    texts = missing(check.exercise_11_4(proxy, [8, 12], ONE_MORE, paths=lab_pki))
    assert any(text.startswith("keepalive_counts should be a dict with the keys") for text in texts)


def test_11_4_strict_mode_raises(lab_pki: LabPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy, counted = keepalive(lab_pki, 3, one_session=False)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_11_4(proxy, counted, ONE_MORE, paths=lab_pki)


def test_11_2_a_host_name_offset_at_the_extension_asks_for_the_fields_not_the_count(
    capture_13: RecordingProxy,
) -> None:
    """The learner's try: the name at the extension's first byte. The message names the fields between them."""
    extension_at = next(
        at for at, kind, _ in nb11._client_hello_extensions(bytes(capture_13.client_to_server)) if kind == 0
    )
    result = check.exercise_11_2(extension_at, extension_at, capture=capture_13)
    [problem] = missing(result)
    assert problem.endswith(
        "the name sits inside the ClientHello (the first record), after its extension's type "
        "and length, the list's length, the name type and the name's length"
    )
    assert "9 bytes" not in problem
