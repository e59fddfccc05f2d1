"""Checks for notebook 11, "Watch the handshake on the wire".

The checks read the same bytes the learner read: the captures of the
notebook's recording proxies, parsed here from the TLS record headers and
the handshake messages' own length fields, so that an answer is compared
with the real capture and the real certificate, never with a number written
down in advance. Where an answer is about behaviour (what a resumed
handshake leaves out, what one more request adds on the wire), the check
makes the same connections itself, on lab servers of its own (under no
name, so they replace nothing the notebook runs), and compares.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..client import lab_session
from ..files import LabPaths
from ..server import MTLSServer, build_server_context
from ..wire import HandshakeTrace, RecordingProxy, handshake, msg_callback_available, trace_handshake
from . import Checker, CheckResult, not_attempted

__all__ = ["exercise_1", "exercise_2", "exercise_3", "exercise_4"]

HANDSHAKE = 22  # the content type of a handshake record
CLIENT_HELLO, CERTIFICATE = 1, 11  # handshake message types (RFC 8446, section 4)
SERVER_NAME = 0  # the server_name extension (RFC 6066, section 3)
DIRECTIONS = ("client->server", "server->client")
TLS12 = ssl.TLSVersion.TLSv1_2


# -- reading the bytes ----------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    offset: int  # where its 5-byte header starts
    content_type: int
    length: int

    @property
    def body(self) -> int:
        return self.offset + 5

    @property
    def end(self) -> int:
        return self.body + self.length


def _records(data: bytes) -> list[_Record]:
    """The records of one direction, from their headers (type, version, 2-byte length)."""
    records, offset = [], 0
    while offset + 5 <= len(data):
        length = int.from_bytes(data[offset + 3 : offset + 5], "big")
        records.append(_Record(offset, data[offset], length))
        offset += 5 + length
    return records


def _handshake_messages(data: bytes, record: _Record) -> list[tuple[int, int, int]]:
    """(offset, type, length) of each handshake message in a record in clear (4-byte header: type, 3-byte length)."""
    messages, offset = [], record.body
    while offset + 4 <= record.end:
        length = int.from_bytes(data[offset + 1 : offset + 4], "big")
        messages.append((offset, data[offset], length))
        offset += 4 + length
    return messages


def _is_client_hello(data: bytes, record: _Record) -> bool:
    """A handshake record that holds a whole ClientHello (type 1, its length filling the record, version 03 03)."""
    body = data[record.body : record.end]
    return (
        record.content_type == HANDSHAKE
        and len(body) >= 6
        and body[0] == CLIENT_HELLO
        and int.from_bytes(body[1:4], "big") + 4 == len(body)
        and body[4:6] == b"\x03\x03"
    )


def _client_hello_extensions(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of each extension of the ClientHello, walked as RFC 8446 (section 4.1.2) lays it out."""
    at = 5 + 4 + 2 + 32  # record header, handshake header, legacy_version, random
    at += 1 + data[at]  # legacy_session_id: a 1-byte length, then the id
    at += 2 + int.from_bytes(data[at : at + 2], "big")  # cipher_suites: a 2-byte length
    at += 1 + data[at]  # legacy_compression_methods: a 1-byte length
    end = at + 2 + int.from_bytes(data[at : at + 2], "big")  # extensions: a 2-byte total length
    at += 2
    extensions = []
    while at + 4 <= end:
        kind, length = int.from_bytes(data[at : at + 2], "big"), int.from_bytes(data[at + 2 : at + 4], "big")
        extensions.append((at, kind, length))
        at += 4 + length
    return extensions


def _capture_bytes(capture: object, attribute: str) -> bytes | None:
    value = getattr(capture, attribute, None)
    return bytes(value) if isinstance(value, (bytes, bytearray)) else None


def _is_offset(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "an empty subject"


# -- what the checks make themselves ------------------------------------------------------


def _client_context(paths: LabPaths) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    context.load_cert_chain(str(paths.client_cert), str(paths.client_key))
    return context


def _server_context(paths: LabPaths, maximum_version: ssl.TLSVersion | None) -> ssl.SSLContext:
    return build_server_context(
        paths.server_cert, paths.server_key, paths.ca_cert, maximum_version=maximum_version
    )


def _full_and_resumed_traces(
    paths: LabPaths, maximum_version: ssl.TLSVersion | None
) -> tuple[HandshakeTrace, HandshakeTrace]:
    """A traced full handshake, then a traced one that resumes the session of an untraced first connection."""
    server_context = _server_context(paths, maximum_version)
    client = _client_context(paths)
    with MTLSServer(server_context, name=None, handshake_timeout=2.0) as server:
        full = trace_handshake(server.port, server_context=server_context, client_context=client)
        first = handshake(server.port, client)
        resumed = trace_handshake(
            server.port, server_context=server_context, client_context=client, session=first.session
        )
    return full, resumed


def _handshake_messages_sent(trace: HandshakeTrace) -> set[tuple[str, str]]:
    """(side, message) of each handshake message sent; alerts left out (the closing close_notify is no handshake)."""
    return {(event.side, event.message) for event in trace.sent() if not event.message.startswith("alert")}


def _is_pair(item: object) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, str) for part in item)


def _listed(pairs: AbstractSet[tuple[str, str]]) -> str:
    return ", ".join(f"{side} {message}" for side, message in sorted(pairs))


def _first_to_finish(trace: HandshakeTrace) -> str | None:
    """Who sent Finished first, read on the client's side alone (one thread, so its order is exact)."""
    sent = received = None
    for index, event in enumerate(trace.events):
        if event.side == "client" and event.message == "Finished":
            if event.direction == "sent" and sent is None:
                sent = index
            elif event.direction == "received" and received is None:
                received = index
    if sent is None or received is None:
        return None
    return "server" if received < sent else "client"


def _session_records(paths: LabPaths, requests: int, maximum_version: ssl.TLSVersion | None) -> Counter[str]:
    """Records per direction of ``requests`` GETs over one kept-alive connection, counted after the last answer.

    Counted before the session closes: the proxy has stored every record of
    a request before the server reads it, and of an answer before the client
    does, so the count is exact. The server's goodbye (close_notify) comes
    only when the session closes, and a RecordingProxy being closed at that
    moment may or may not record it, so it is left out.
    """
    server_context = _server_context(paths, maximum_version)
    with (
        MTLSServer(server_context, name=None, handshake_timeout=2.0) as server,
        RecordingProxy(server.port) as proxy,
        lab_session(ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key) as session,
    ):
        for _ in range(requests):
            session.get(f"https://localhost:{proxy.port}/").raise_for_status()
        return Counter(record.direction for record in proxy.records())


def _said(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{counts[d]} {d}" for d in DIRECTIONS)


# -- the exercises ----------------------------------------------------------------------------


def exercise_1(
    offset: int | None,
    certificate: x509.Certificate | None,
    *,
    capture: RecordingProxy,
    client_certificate: x509.Certificate,
) -> CheckResult:
    """11.1 Read alice's certificate off the wire: where it starts in a TLS 1.2 capture, and the certificate there.

    An eavesdropper has no copy of the certificate to search for; the
    record and message headers say where it is. The check compares the
    learner's offset with the real capture and the real certificate, and
    names the header the learner landed on when the offset is a few bytes off.
    """
    c = Checker(
        "11.1",
        "Read alice's certificate off the wire",
        hint="Walk the records by their length fields; inside the Certificate message, each certificate is "
        "preceded by its own length.",
    )
    if not_attempted(offset, certificate):
        return c.not_attempted()
    data = _capture_bytes(capture, "client_to_server")
    if data is None:
        return c.fail(
            "capture should be a RecordingProxy (capture_12 of step 6), with the bytes in client_to_server"
        )
    der = client_certificate.public_bytes(Encoding.DER)
    start = data.find(der)
    if start < 0:
        return c.fail(
            "alice's certificate is nowhere in this capture's client bytes: pass capture=capture_12, "
            "the TLS 1.2 capture of step 6 (over TLS 1.3 it travels encrypted)"
        )
    if offset is None:
        c.require(
            False,
            "",
            "alice_offset is still None: the byte of client_to_server where alice's certificate starts",
        )
    elif not _is_offset(offset):
        c.require(
            False, "", f"alice_offset should be an int (a position in the bytes), not {type(offset).__name__}"
        )
    elif offset == start:
        record = next((r for r in _records(data) if r.body <= start < r.end), None)
        messages = _handshake_messages(data, record) if record is not None else []
        message = next((m for m in messages if m[0] < start <= m[0] + 4 + m[2]), None)
        c.require(
            True,
            f"alice's certificate ({len(der)} bytes of DER) starts at byte {start} of client_to_server",
            "",
        )
        c.require(
            record is not None
            and record.content_type == HANDSHAKE
            and message is not None
            and message[1] == CERTIFICATE,
            "it sits in the client's Certificate message (handshake type 11), in a handshake record at "
            f"byte {record.offset if record else '?'} that anyone on the path can read",
            "the certificate is not inside a Certificate message in clear: is this a TLS 1.2 capture?",
        )
    else:
        landmarks = {
            3: "the certificate's own 3-byte length",
            6: "the certificate list's 3-byte length",
            10: "the Certificate message's header (type 11, then a 3-byte length)",
            15: "the header of the record that carries the Certificate message",
        }
        where = landmarks.get(start - offset) if offset >= 0 else None
        found = data[offset : offset + 4].hex(" ") if 0 <= offset < len(data) else "nothing (past the end)"
        c.require(
            False,
            "",
            f"byte {offset} is {where}, not the certificate itself: which fields still come "
            "before alice's DER bytes?"
            if where
            else f"at byte {offset} the capture holds {found}…, not alice's certificate (a DER certificate "
            "starts 30 82: a SEQUENCE with a 2-byte length); byte 0 is the first record's header",
        )
    if certificate is None:
        c.require(
            False,
            "",
            "alice_on_the_wire is still None: load the certificate's bytes (as many as its own "
            "3-byte length says) with x509.load_der_x509_certificate",
        )
    elif isinstance(certificate, (bytes, bytearray)):
        c.require(
            False,
            "",
            "alice_on_the_wire holds bytes: turn them into a certificate with "
            "x509.load_der_x509_certificate(...)",
        )
    elif not isinstance(certificate, x509.Certificate):
        c.require(
            False, "", f"alice_on_the_wire should be an x509.Certificate, not {type(certificate).__name__}"
        )
    else:
        c.require(
            certificate == client_certificate,
            f"the certificate read off the wire is alice's ({_subject(certificate)}, the same bytes as "
            "client.crt)",
            f"the certificate read off the wire is {_subject(certificate)}, not alice's client.crt: read the "
            "client's bytes (client_to_server), the first certificate of its Certificate message",
        )
    return c.result()


def exercise_2(
    server_name_offset: int | None, host_name_offset: int | None, *, capture: RecordingProxy
) -> CheckResult:
    """11.2 Find the server name in a TLS 1.3 ClientHello: the server_name extension, and the host name inside it.

    TLS 1.3 encrypts the certificates but not the ClientHello, and the name
    the client asks for travels in it. The check walks the ClientHello of the
    real capture (session id, cipher suites, compression, then each
    extension by its length), so an offset must land on the extension
    itself, not on two zero bytes that happen to be elsewhere.
    """
    c = Checker(
        "11.2",
        "Find the server name in the ClientHello",
        hint="Each variable-length field of the ClientHello starts with its own length: read it, skip that many "
        "bytes, and go on to the extensions, where each one gives its type and its length.",
    )
    if not_attempted(server_name_offset, host_name_offset):
        return c.not_attempted()
    data = _capture_bytes(capture, "client_to_server")
    records = _records(data) if data is not None else []
    if data is None or not records or not _is_client_hello(data, records[0]):
        return c.fail(
            "capture should be a RecordingProxy whose client_to_server begins with a ClientHello "
            "(capture_13 of step 6)"
        )
    extensions = _client_hello_extensions(data)
    named = [(at, length) for at, kind, length in extensions if kind == SERVER_NAME]
    if not named:
        return c.fail(
            "this ClientHello has no server_name extension: connect with server_hostname='localhost'"
        )
    extension_at = named[0][0]
    host_at = extension_at + 9  # type (2), length (2), list length (2), name type (1), name length (2)
    host = data[host_at : host_at + int.from_bytes(data[host_at - 2 : host_at], "big")]

    if host_name_offset is None:
        c.require(False, "", "host_name_offset is still None: the byte where the name itself starts")
    elif not _is_offset(host_name_offset):
        c.require(False, "", f"host_name_offset should be an int, not {type(host_name_offset).__name__}")
    else:
        at_offset = data[host_name_offset : host_name_offset + len(host)] if host_name_offset >= 0 else b""
        in_hello = records[0].body <= host_name_offset < records[0].end
        c.require(
            at_offset == host and in_hello,
            f"at byte {host_name_offset} the ClientHello holds {host!r}, in clear",
            f"at byte {host_name_offset} the capture holds {at_offset!r}, not {host!r}: the name sits "
            "inside the ClientHello (the first record), after its extension's type and length, the list's "
            "length, the name type and the name's length",
        )
    if server_name_offset is None:
        c.require(
            False,
            "",
            "server_name_offset is still None: the byte where the server_name extension starts "
            "(its type, 00 00)",
        )
    elif not _is_offset(server_name_offset):
        c.require(False, "", f"server_name_offset should be an int, not {type(server_name_offset).__name__}")
    elif server_name_offset == extension_at:
        layout = data[extension_at:host_at].hex(" ")
        c.require(
            True,
            f"the server_name extension starts at byte {extension_at}: {layout} (type 0, its length, "
            "the list's length, name type 0 = host_name, the name's length), then the name",
            "",
        )
    elif server_name_offset == extension_at + 4:
        c.require(
            False,
            "",
            f"byte {server_name_offset} is where the extension's data starts: the extension itself "
            "begins 4 bytes earlier, with its type (2 bytes) and its length (2 bytes)",
        )
    elif any(server_name_offset == at for at, _, _ in extensions):
        kind = next(kind for at, kind, _ in extensions if at == server_name_offset)
        c.require(
            False,
            "",
            f"an extension starts at byte {server_name_offset}, but its type is {kind}, not 0 "
            "(server_name): keep walking",
        )
    else:
        c.require(
            False,
            "",
            f"no extension starts at byte {server_name_offset}: walk the ClientHello's fields "
            "to where the extensions begin; each extension is 2 bytes of type, 2 of length, then "
            "its data",
        )
    return c.result()


def exercise_3(
    resumed_trace: HandshakeTrace | None,
    disappeared: AbstractSet[tuple[str, str]] | None,
    finishes_first: str | None,
    *,
    paths: LabPaths,
) -> CheckResult:
    """11.3 A resumed TLS 1.2 handshake: the learner's trace, what it left out, and who finishes first.

    The check traces a full and a resumed TLS 1.2 handshake of its own with
    the lab files and compares: the handshake messages (alerts aside) that
    the resumption left out, and the side whose Finished came first, read on
    the client's thread alone, where the order is exact.
    """
    c = Checker(
        "11.3",
        "A resumed TLS 1.2 handshake",
        hint="Compare the two sets of (side, message) pairs; then look at the client's own 'received Finished' "
        "and 'sent Finished'.",
    )
    if not_attempted(resumed_trace, disappeared, finishes_first):
        return c.not_attempted()
    if not msg_callback_available():
        return c.fail(
            "this Python cannot trace handshakes (no SSLContext._msg_callback, see step 9), "
            "so the check has nothing to compare with"
        )
    full, own = _full_and_resumed_traces(paths, TLS12)
    expected = _handshake_messages_sent(full) - _handshake_messages_sent(own)

    if resumed_trace is None:
        c.require(False, "", "resumed_trace_12 is still None: the HandshakeTrace of the resumed connection")
    elif not isinstance(resumed_trace, HandshakeTrace):
        c.require(
            False,
            "",
            f"resumed_trace_12 should be what trace_handshake returns, not {type(resumed_trace).__name__}",
        )
    else:
        c.require(
            resumed_trace.version == "TLSv1.2",
            "resumed_trace_12 is a TLS 1.2 handshake",
            f"resumed_trace_12 is {resumed_trace.version}: cap the server at TLS 1.2 (maximum_version=TLS12)",
        )
        c.require(
            resumed_trace.resumed and resumed_trace.error is None,
            "the server resumed the session, and the request was answered",
            "the handshake did not resume: pass session= the session of an earlier connection to the same "
            "server (the same server context holds the ticket key)"
            if not resumed_trace.resumed
            else f"the connection failed: {resumed_trace.error}",
        )
        certificates = [
            side for side in ("client", "server") if "Certificate" in resumed_trace.messages(side)
        ]
        c.require(
            not certificates,
            "no certificate crossed in it, from either side",
            f"the {' and '.join(certificates)} sent a Certificate: this is a full handshake, not a resumed one",
        )
    if disappeared is None:
        c.require(False, "", "disappeared_12 is still None: the set of (side, message) pairs that are gone")
    elif not isinstance(disappeared, (set, frozenset)) or not all(_is_pair(item) for item in disappeared):
        c.require(
            False,
            "",
            "disappeared_12 should be a set of (side, message) pairs, such as "
            "{('client', 'Certificate'), ...}",
        )
    else:
        answered = {item for item in disappeared if not item[1].startswith("alert")}
        left_out, extra = expected - answered, answered - expected
        # Name the learner's wrong pairs (their own answer), but only count the missing ones: listing
        # them would hand over the answer.
        missed = (
            "1 more message disappeared"
            if len(left_out) == 1
            else f"{len(left_out)} more messages disappeared"
        )
        c.require(
            not left_out and not extra,
            f"{len(expected)} handshake messages disappeared, as in the check's own pair of traces: "
            f"{_listed(expected)}",
            "; ".join(
                part
                for part in (
                    f"{missed} than your set says: compare every (side, message) pair of trace_12 with the "
                    "resumed trace's"
                    if left_out
                    else "",
                    f"these are still in a resumed handshake: {_listed(extra)}" if extra else "",
                )
                if part
            ),
        )
    first = _first_to_finish(own)
    if first is None:
        c.require(
            False,
            "",
            f"the check's own resumed handshake has no Finished on the client's side "
            f"({own!r}): run the check again",
        )
    elif finishes_first not in ("client", "server"):
        c.require(False, "", "finishes_first_12 should be 'client' or 'server': whose Finished comes first")
    else:
        c.require(
            finishes_first == first,
            f"the {first} finishes first in a resumed TLS 1.2 handshake (in a full one, the client does)",
            f"{finishes_first!r} is not what the check's own resumed handshake shows: read the client's own "
            "lines of your trace, 'received Finished' and 'sent Finished': which one comes first?",
        )
    return c.result()


def exercise_4(
    capture: RecordingProxy | None,
    counts: Mapping[str, int] | None,
    added: Mapping[str, int] | None,
    *,
    paths: LabPaths,
) -> CheckResult:
    """11.4 Count the records of a keep-alive session: three requests over one connection, and what a fourth adds.

    The check reads the learner's capture (one ClientHello means one
    connection; the client's records tell the number of requests), then
    counts sessions of three and four requests of its own, against a server
    of the same TLS version, after the last answer and before the session
    closes. The server's goodbye, sent when the session closes, is not
    counted: a proxy may or may not record it, so a capture may hold it or not.
    """
    c = Checker(
        "11.4",
        "Count the records of a keep-alive session",
        hint="One lab_session keeps one connection: count the proxy's records while that session is still open, "
        "then do the same with one request more.",
    )
    if not_attempted(capture, counts, added):
        return c.not_attempted()
    if capture is None:
        return c.fail("keepalive_capture is still None: the RecordingProxy your three requests went through")
    client_bytes = _capture_bytes(capture, "client_to_server")
    server_bytes = _capture_bytes(capture, "server_to_client")
    if client_bytes is None or server_bytes is None:
        return c.fail(f"keepalive_capture should be a RecordingProxy, not {type(capture).__name__}")
    hellos = sum(_is_client_hello(client_bytes, record) for record in _records(client_bytes))
    if not c.require(
        hellos == 1,
        "it holds one ClientHello: one connection, one handshake, kept alive",
        f"it holds {hellos} ClientHellos, so {hellos} connections: make the requests from one "
        "lab_session, which keeps its connection open between them"
        if hellos
        else "it holds no ClientHello: send the requests to the proxy's port, https://localhost:{proxy.port}/",
    ):
        return c.result()
    mine = Counter({DIRECTIONS[0]: len(_records(client_bytes)), DIRECTIONS[1]: len(_records(server_bytes))})
    tls12 = (
        sum(record.content_type == HANDSHAKE for record in _records(server_bytes)) > 1
    )  # TLS 1.3: ServerHello only
    version = TLS12 if tls12 else None
    three, four = _session_records(paths, 3, version), _session_records(paths, 4, version)
    c.require(
        mine[DIRECTIONS[0]] == three[DIRECTIONS[0]] and mine[DIRECTIONS[1]] - three[DIRECTIONS[1]] in (0, 1),
        f"it holds the records of one handshake, three requests and their answers ({_said(three)})",
        f"it holds {_said(mine)}, not what one handshake and three requests make in the check's own session "
        "(allowing one more from the server, its goodbye): make exactly three requests, from one lab_session",
    )
    with_goodbye = {DIRECTIONS[0]: three[DIRECTIONS[0]], DIRECTIONS[1]: three[DIRECTIONS[1]] + 1}
    for name, answer, truth in (
        ("keepalive_counts", counts, three),
        ("added_by_a_fourth_request", added, {d: four[d] - three[d] for d in DIRECTIONS}),
    ):
        if answer is None:
            c.require(
                False, "", f"{name} is still None: a dict with the keys 'client->server' and 'server->client'"
            )
        elif not isinstance(answer, Mapping) or set(answer) != set(DIRECTIONS):
            c.require(
                False,
                "",
                f"{name} should be a dict with the keys 'client->server' and 'server->client' "
                "(the directions of proxy.records())",
            )
        elif name == "keepalive_counts":
            c.require(
                all(answer[d] == truth[d] for d in DIRECTIONS),
                f"keepalive_counts: {_said(truth)} after the third answer, as the check counted in a session "
                "of its own",
                f"keepalive_counts says {_said(answer)}: that includes the server's goodbye (its close_notify), "
                "sent when the session closed; count right after the third answer, inside the session's block"
                if all(answer[d] == with_goodbye[d] for d in DIRECTIONS)
                else f"keepalive_counts says {_said(answer)}, which is not what three requests over one connection "
                "make by the third answer: count keepalive_capture.records() right after it",
            )
        else:
            c.require(
                all(answer[d] == truth[d] for d in DIRECTIONS),
                f"added_by_a_fourth_request: {_said(truth)} (one request, one answer: the handshake is "
                "not repeated)",
                f"added_by_a_fourth_request says {_said(answer)}, which is not what one more request adds in "
                "the check's own sessions: count a session of four the same way, and subtract",
            )
    return c.result()
