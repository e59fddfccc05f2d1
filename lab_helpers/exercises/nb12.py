"""Checks for notebook 12, "Measure what mTLS costs".

The machine a learner measures on is noisy, so no check here says anything
about speed: a check proves that the learner measured the right thing. It
connects to the learner's server and reads the certificate it really sends,
counts the handshakes that server really completed, makes its own
connections to see whether a session resumes, and recomputes a ratio from
the learner's own figures.
"""

from __future__ import annotations

import math
import os
import socket
import ssl
import statistics
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..files import LabPaths
from ..server import MTLSServer
from ..wire import HandshakeResult, handshake
from . import Checker, CheckResult, not_attempted
from .evidence import server_problem

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

RSA_LABEL = "RSA-4096"
KEEP_ALIVE, NEW_CONNECTION = "keep-alive", "new connection"
STEADY_ROUNDS = 5  # more than step 3's three


# -- what the checks look at ----------------------------------------------------


def _alice_context(paths: LabPaths) -> ssl.SSLContext:
    """The lab client of step 3: trusts the lab CA, presents alice's certificate."""
    context = ssl.create_default_context(cafile=os.fspath(paths.ca_cert))
    context.load_cert_chain(os.fspath(paths.client_cert), os.fspath(paths.client_key))
    return context


def _certificate_and_answer(port: int, paths: LabPaths) -> tuple[x509.Certificate, bytes]:
    """One request as alice: the certificate the server sent, and its whole answer."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5.0) as raw,
        _alice_context(paths).wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := tls.recv(4096):
            chunks.append(chunk)
    if der is None:
        raise ssl.SSLError("the server sent no certificate")
    return x509.load_der_x509_certificate(der), b"".join(chunks)


def _key_words(certificate: x509.Certificate) -> str:
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        return f"an RSA key of {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"an ECDSA key on {key.curve.name}"
    return f"a {type(key).__name__.lstrip('_')}"


def _is_rate(value: object) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and math.isfinite(value)
    )


def _rates_problem(rates: object, variable: str) -> str | None:
    """What is wrong with the shape of a ``measure_rounds`` result, in words (None when it is right)."""
    if not isinstance(rates, Mapping):
        return (
            f"{variable} should be what measure_rounds returned, a dict {{label: [rate of round 1, ...]}}, "
            f"not {type(rates).__name__}"
        )
    for label, values in rates.items():
        if not isinstance(values, Sequence) or isinstance(values, (str, bytes)) or not values:
            return f"{variable}[{label!r}] should be a non-empty list of rates, one per round"
        if not all(_is_rate(value) for value in values):
            return f"{variable}[{label!r}] holds a figure that is not a positive, finite rate: {list(values)}"
    return None


def _results_problem(results: object, variable: str) -> str | None:
    """What is wrong with a list of handshake() results, in words (None when it is right)."""
    if not isinstance(results, Sequence) or isinstance(results, (str, bytes)):
        return f"{variable} should be a list of what handshake(...) returned, not {type(results).__name__}"
    if not results:
        return f"{variable} is empty: append each handshake(...) result to it"
    strangers = {type(result).__name__ for result in results if not isinstance(result, HandshakeResult)}
    if strangers:
        return f"{variable} should hold what handshake(...) returned (HandshakeResult), not {', '.join(sorted(strangers))}"
    return None


def _offered_its_own_sessions(results: Sequence[HandshakeResult], variable: str, c: Checker) -> bool:
    """Did each handshake to the ticketless server offer a session that server made? Say so when not.

    A server with num_tickets = 0 never hands out a ticket, so a session
    that carries one came from another server: it could never resume there,
    tickets or not, and proves nothing about turning tickets off.
    """
    if any(r.offered is None for r in results):
        c.require(
            False,
            "",
            f"{variable}: some handshakes offered no session at all: offer the session of a first "
            "handshake to server_no_tickets (handshake(..., session=...))",
        )
        return False
    if any(r.offered.has_ticket for r in results if r.offered is not None):
        c.require(
            False,
            "",
            f"{variable}: the session you offered carries a ticket, which server_no_tickets never "
            "issues: it came from another server, and a lab server never resumes a session another "
            "server made, tickets or not. Offer server_no_tickets the session of a first handshake "
            "to itself",
        )
        return False
    return True


def _answered(result: HandshakeResult) -> bool:
    return b" 200 " in result.answer.split(b"\r\n", 1)[0] and b"Hello, " in result.answer


# -- the exercises ----------------------------------------------------------------


def exercise_1(
    server: MTLSServer | None, rates: Mapping[str, list[float]] | None, *, paths: LabPaths
) -> CheckResult:
    """12.1 What an RSA-4096 server certificate costs: a lab server with one, measured against another.

    The check connects as alice and reads the certificate the server really
    sends (an RSA key of 4096 bits, from the lab CA since alice's client
    trusts nothing else), then compares the server's count of completed
    handshakes with the rounds the learner measured. It says nothing about
    the rates but that they are positive: speed depends on the machine.
    """
    c = Checker(
        "12.1",
        "What an RSA-4096 server certificate costs",
        hint="Change only the server's key: the same lab CA, the same client, the same settings. Then each action "
        "makes a full handshake to its own server: handshake(<its server>.port, context).",
    )
    if not_attempted(server, rates):
        return c.not_attempted()
    problem = server_problem(server, "server_rsa4096")
    if problem:
        return c.fail(problem)
    assert isinstance(server, MTLSServer)
    completed = server.accepted  # before the check's own handshake
    try:
        certificate, answer = _certificate_and_answer(server.port, paths)
    except (ssl.SSLError, OSError) as error:
        c.require(
            False,
            "",
            f"a request as alice to server_rsa4096 failed ({type(error).__name__}: {error}): "
            "sign its certificate with the lab CA, for localhost and 127.0.0.1, and trust the lab CA "
            "for clients (paths.ca_cert)",
        )
    else:
        key = certificate.public_key()
        c.require(
            isinstance(key, rsa.RSAPublicKey) and key.key_size == 4096,
            "the certificate it sends has an RSA key of 4096 bits",
            f"the certificate it sends has {_key_words(certificate)}: "
            "make its key with generate_private_key('rsa', rsa_bits=4096)",
        )
        c.require(
            answer.endswith(b"Hello, alice\n"),
            "it completed a handshake with alice's client and answered Hello, alice",
            f"it answered alice with {answer[:60]!r}, not Hello, alice",
        )
    problem = _rates_problem(rates, "rsa4096_rates")
    if problem:
        c.require(False, "", problem)
        return c.result()
    assert isinstance(rates, Mapping)
    if not c.require(
        RSA_LABEL in rates,
        f"rsa4096_rates has the rounds of '{RSA_LABEL}'",
        f"rsa4096_rates has no '{RSA_LABEL}' entry (it has {', '.join(map(repr, rates)) or 'none'}): "
        f"label the RSA-4096 server's action '{RSA_LABEL}'",
    ):
        return c.result()
    c.require(
        len(rates) >= 2,
        f"it compares {RSA_LABEL} with {', '.join(repr(label) for label in rates if label != RSA_LABEL)}, "
        "every round a positive, finite rate",
        f"it measures {RSA_LABEL} alone: add the usual lab server's handshakes (label 'ECDSA P-256') to compare",
    )
    rounds = len(rates[RSA_LABEL])
    c.require(
        completed >= rounds,
        f"server_rsa4096 had completed {completed} handshakes before the check's: "
        f"at least one in each of your {rounds} rounds",
        f"server_rsa4096 had completed only {completed} handshakes, fewer than your {rounds} rounds of "
        f"'{RSA_LABEL}': measure handshake(server_rsa4096.port, context), not another server",
    )
    return c.result()


def exercise_2(
    server: MTLSServer | None,
    tickets_off: Sequence[HandshakeResult] | None,
    tickets_on: Sequence[HandshakeResult] | None,
    *,
    paths: LabPaths,
) -> CheckResult:
    """12.2 Session tickets off: a server with ``num_tickets = 0``, and resumption gone with them.

    The check reads the server's setting, then makes its own two connections
    as alice (the second offers the first one's session) to see that it does
    not resume. The learner's results must show the same client resuming
    every time while tickets are on, and never once they are off.
    """
    c = Checker(
        "12.2",
        "Turn session tickets off",
        hint="A lab server resumes only the sessions it made itself (each has its own ticket key), tickets or not: "
        "offer each server the session of a first handshake to that same server.",
    )
    if not_attempted(server, tickets_off, tickets_on):
        return c.not_attempted()
    problem = server_problem(server, "server_no_tickets")
    if problem:
        return c.fail(problem)
    assert isinstance(server, MTLSServer)
    tickets = server.context.num_tickets
    if tickets == 0:
        c.require(True, "server_no_tickets issues no TLS 1.3 tickets (num_tickets = 0)", "")
    elif server.context.options & ssl.OP_NO_TICKET:
        c.require(
            False,
            "",
            f"server_no_tickets has OP_NO_TICKET but num_tickets = {tickets}: with OP_NO_TICKET, "
            "OpenSSL 3 sends stateful tickets instead, which resume just as well; set num_tickets = 0",
        )
    else:
        c.require(
            False,
            "",
            f"server_no_tickets issues {tickets} tickets per connection: set context.num_tickets = 0",
        )
    try:
        context = _alice_context(paths)
        first = handshake(server.port, context)
        second = handshake(server.port, context, session=first.session)
    except (ssl.SSLError, OSError) as error:
        c.require(
            False,
            "",
            f"a request as alice to server_no_tickets failed ({type(error).__name__}: {error}): "
            "build its context from the lab files",
        )
    else:
        c.require(
            not second.resumed,
            "the check's own second connection offered the first one's session, and did not resume",
            "the check's own second connection resumed the first one's session: the server still issues tickets",
        )
    for results, variable, resumed in ((tickets_off, "tickets_off", False), (tickets_on, "tickets_on", True)):
        problem = _results_problem(results, variable)
        if problem:
            c.require(False, "", problem)
            continue
        assert results is not None
        count = len(results)
        if not resumed and tickets == 0 and not _offered_its_own_sessions(results, variable, c):
            continue
        c.require(
            all(r.version == "TLSv1.3" for r in results) and all(_answered(r) for r in results),
            f"{variable}: {count} TLS 1.3 handshakes, each answered",
            f"{variable}: not every handshake was TLS 1.3 and answered (versions: "
            f"{sorted({r.version for r in results})}): num_tickets is a TLS 1.3 setting, so use the default "
            "client context of step 3",
        )
        kept = sum(r.resumed for r in results)
        if resumed:
            c.require(
                kept == count,
                f"tickets_on: the same client resumed all {count} times while tickets were on",
                f"tickets_on: only {kept} of {count} handshakes resumed: offer session=... from a first "
                "handshake to the same server, whose tickets are on",
            )
        else:
            c.require(
                kept == 0,
                f"tickets_off: none of your {count} handshakes resumed",
                f"tickets_off: {kept} of {count} handshakes resumed: measure against server_no_tickets",
            )
    return c.result()


def exercise_3(steady: Mapping[str, list[float]] | None, ratio: float | None) -> CheckResult:
    """12.3 Keep-alive against a new connection, from your own figures: more rounds, and their ratio.

    The check recomputes the ratio of the medians from the learner's own
    rates (or, the same thing, of the medians of milliseconds per request,
    the other way up). Whichever way the figures came out, the ratio must be
    theirs: no check here says that keep-alive must win.
    """
    c = Checker(
        "12.3",
        "Keep-alive against a new connection, in your own figures",
        hint="More rounds make a steadier median; the ratio compares the two medians, keep-alive on top.",
    )
    if not_attempted(steady, ratio):
        return c.not_attempted()
    problem = _rates_problem(steady, "steady")
    if problem:
        return c.fail(problem)
    assert isinstance(steady, Mapping)
    absent = [label for label in (KEEP_ALIVE, NEW_CONNECTION) if label not in steady]
    if absent:
        return c.fail(
            f"steady has no {' and no '.join(map(repr, absent))} entry: label the two actions "
            f"'{KEEP_ALIVE}' and '{NEW_CONNECTION}'"
        )
    keep_alive, new_connection = steady[KEEP_ALIVE], steady[NEW_CONNECTION]
    fewest = min(len(keep_alive), len(new_connection))
    c.require(
        fewest >= STEADY_ROUNDS,
        f"both were measured in {fewest} or more rounds, every one a positive, finite rate",
        f"only {fewest} rounds: pass rounds=7 (at least {STEADY_ROUNDS}) to measure_rounds",
    )
    if not _is_rate(ratio):
        c.require(False, "", f"keep_alive_ratio should be a positive number, not {ratio!r}")
        return c.result()
    assert isinstance(ratio, (int, float))
    by_rates = statistics.median(keep_alive) / statistics.median(new_connection)
    by_times = statistics.median(1 / rate for rate in new_connection) / statistics.median(
        1 / rate for rate in keep_alive
    )
    by_means = statistics.mean(keep_alive) / statistics.mean(new_connection)

    def close(value: float) -> bool:
        return math.isclose(ratio, value, rel_tol=1e-6)

    if close(by_rates) or close(by_times):
        c.require(
            True,
            f"keep_alive_ratio = {ratio:.3g}: the median keep-alive rate over the median new-connection "
            "rate, from your own figures",
            "",
        )
    elif close(1 / by_rates) or close(1 / by_times):
        c.require(
            False,
            "",
            f"keep_alive_ratio = {ratio:.3g} is new connection over keep-alive: which of the two "
            "rates goes on top?",
        )
    elif close(by_means):
        c.require(
            False,
            "",
            f"keep_alive_ratio = {ratio:.3g} is the ratio of the means: take the medians "
            "(statistics.median), which one slow round cannot move",
        )
    else:
        c.require(
            False,
            "",
            f"keep_alive_ratio = {ratio:.3g} is not the ratio of your figures in steady: divide "
            "the median keep-alive rate by the median new-connection rate",
        )
    return c.result()
