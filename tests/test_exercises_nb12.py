"""The checks of notebook 12's exercises: quiet until attempted, pass a right answer, say what a wrong one misses.

No test here (and no check) depends on how fast anything is: the rates passed
to the checks are made up where only their shape matters, and the servers and
handshakes they examine are real.
"""

from __future__ import annotations

import ssl
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
from exercise_checks import NOT_ATTEMPTED, missing, strict

from lab_helpers import (
    CertificateAuthority,
    LabPaths,
    MTLSServer,
    build_server_context,
    check,
    create_csr,
    generate_private_key,
    handshake,
    save_certificate,
    save_private_key,
)
from lab_helpers.pki import PrivateKey

pytestmark = pytest.mark.usefixtures("lenient_checks")


@pytest.fixture(scope="module")
def rsa4096_key() -> PrivateKey:
    """One RSA-4096 key for the whole module: making one takes a second or more."""
    return generate_private_key("rsa", rsa_bits=4096)


@pytest.fixture
def started() -> Iterator[list[MTLSServer]]:
    """Servers a test starts; each is stopped at teardown."""
    servers: list[MTLSServer] = []
    yield servers
    for server in servers:
        server.stop()


def start(started: list[MTLSServer], context: ssl.SSLContext) -> MTLSServer:
    server = MTLSServer(context, name=None, handshake_timeout=2.0).start()
    started.append(server)
    return server


def lab_server(
    started: list[MTLSServer],
    paths: LabPaths,
    *,
    num_tickets: int | None = None,
    no_ticket_option: bool = False,
) -> MTLSServer:
    context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert)
    if num_tickets is not None:
        context.num_tickets = num_tickets
    if no_ticket_option:
        context.options |= ssl.OP_NO_TICKET
    return start(started, context)


def server_with_key(
    started: list[MTLSServer], paths: LabPaths, ca: CertificateAuthority, key: PrivateKey, folder: Path
) -> MTLSServer:
    certificate = ca.sign_csr(
        create_csr(key, "localhost", names=["localhost", "127.0.0.1"]), profile="server"
    )
    context = build_server_context(
        save_certificate(certificate, folder / "server.crt"),
        save_private_key(key, folder / "server.key"),
        paths.ca_cert,
    )
    return start(started, context)


def alice(paths: LabPaths, **options: object) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=paths.ca_cert)
    context.load_cert_chain(paths.client_cert, paths.client_key)
    for name, value in options.items():
        setattr(context, name, value)
    return context


def resumptions(server: MTLSServer, context: ssl.SSLContext, count: int = 3) -> list:
    first = handshake(server.port, context)
    return [handshake(server.port, context, session=first.session) for _ in range(count)]


RATES = {"ECDSA P-256": [300.0, 310.0, 290.0], "RSA-4096": [120.0, 118.0, 125.0]}


# -- 12.1 What an RSA-4096 server certificate costs ----------------------------------------------


def test_12_1_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_12_1(None, None, paths=lab_pki).status == NOT_ATTEMPTED


def test_12_1_an_rsa_4096_server_that_was_measured_passes(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    rsa4096_key: PrivateKey,
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    server = server_with_key(started, lab_pki, lab_ca, rsa4096_key, tmp_path / "rsa4096")
    for _ in range(3):  # one handshake per round, at least
        handshake(server.port, alice(lab_pki))
    result = check.exercise_12_1(server, RATES, paths=lab_pki)
    assert result.passed, result
    assert any("completed 3 handshakes" in text for ok, text in result.points if ok)


def test_12_1_an_rsa_2048_server_that_was_never_measured(
    lab_pki: LabPaths, lab_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    server = server_with_key(started, lab_pki, lab_ca, generate_private_key("rsa"), tmp_path / "rsa2048")
    result = check.exercise_12_1(server, RATES, paths=lab_pki)
    assert not result.passed
    assert (
        "the certificate it sends has an RSA key of 2048 bits: make its key with "
        "generate_private_key('rsa', rsa_bits=4096)"
    ) in missing(result)
    assert any("completed only 0 handshakes, fewer than your 3 rounds" in text for text in missing(result))


def test_12_1_a_server_certificate_from_another_ca(
    lab_pki: LabPaths, rsa4096_key: PrivateKey, started: list[MTLSServer], tmp_path: Path
) -> None:
    other_ca = CertificateAuthority.create_root("other-ca")
    server = server_with_key(started, lab_pki, other_ca, rsa4096_key, tmp_path / "other")
    result = check.exercise_12_1(server, RATES, paths=lab_pki)
    assert any(
        text.startswith("a request as alice to server_rsa4096 failed")
        and "sign its certificate with the lab CA" in text
        for text in missing(result)
    )


def test_12_1_the_usual_ecdsa_server_is_not_rsa(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = lab_server(started, lab_pki)
    result = check.exercise_12_1(server, RATES, paths=lab_pki)
    assert any("an ECDSA key on secp256r1" in text for text in missing(result))


def test_12_1_rates_without_the_label_or_a_comparison(
    lab_pki: LabPaths,
    lab_ca: CertificateAuthority,
    rsa4096_key: PrivateKey,
    started: list[MTLSServer],
    tmp_path: Path,
) -> None:
    server = server_with_key(started, lab_pki, lab_ca, rsa4096_key, tmp_path / "rsa4096")
    unlabelled = check.exercise_12_1(server, {"rsa": [100.0]}, paths=lab_pki)
    assert any("has no 'RSA-4096' entry" in text for text in missing(unlabelled))
    alone = check.exercise_12_1(server, {"RSA-4096": [100.0]}, paths=lab_pki)
    assert any("it measures RSA-4096 alone" in text for text in missing(alone))
    broken = check.exercise_12_1(server, {"RSA-4096": [100.0, 0.0], "ECDSA P-256": [1.0, 2.0]}, paths=lab_pki)
    assert any("not a positive, finite rate" in text for text in missing(broken))


def test_12_1_the_hint_says_each_action_goes_to_its_own_server(lab_pki: LabPaths) -> None:
    hint = (
        check.exercise_12_1("not a server", RATES, paths=lab_pki).hint or ""
    )  # the hint is the same for any answer
    assert "its own server" in hint and "<its server>.port" in hint and "rsa_bits" not in hint


def test_12_1_a_stopped_server(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = lab_server(started, lab_pki)
    server.stop()
    result = check.exercise_12_1(server, RATES, paths=lab_pki)
    assert missing(result) == [
        "server_rsa4096 is not running: start() it, and keep it running until the check has run"
    ]


def test_12_1_strict_mode_raises(
    lab_pki: LabPaths, started: list[MTLSServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = lab_server(started, lab_pki)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_12_1(server, RATES, paths=lab_pki)


# -- 12.2 Turn session tickets off ----------------------------------------------------------------


def test_12_2_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_12_2(None, None, None, paths=lab_pki).status == NOT_ATTEMPTED


def test_12_2_no_tickets_no_resumption_passes(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    usual = lab_server(started, lab_pki)
    no_tickets = lab_server(started, lab_pki, num_tickets=0)
    tickets_off = resumptions(no_tickets, alice(lab_pki))
    tickets_on = resumptions(usual, alice(lab_pki))
    result = check.exercise_12_2(no_tickets, tickets_off, tickets_on, paths=lab_pki)
    assert result.passed, result


def test_12_2_op_no_ticket_still_resumes(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    usual = lab_server(started, lab_pki)
    stateful = lab_server(started, lab_pki, no_ticket_option=True)
    result = check.exercise_12_2(
        stateful, resumptions(stateful, alice(lab_pki)), resumptions(usual, alice(lab_pki)), paths=lab_pki
    )
    assert not result.passed
    texts = missing(result)
    assert any("OP_NO_TICKET" in text and "set num_tickets = 0" in text for text in texts)
    assert any("the check's own second connection resumed" in text for text in texts)
    assert "tickets_off: 3 of 3 handshakes resumed: measure against server_no_tickets" in texts


def test_12_2_a_session_from_the_other_server_proves_nothing(
    lab_pki: LabPaths, started: list[MTLSServer]
) -> None:
    """The old hint's experiment: step 3's session (from the usual server) offered to both. It never resumes on
    the ticketless server, but it would not on any other server either: the check refuses it as evidence."""
    usual = lab_server(started, lab_pki)
    no_tickets = lab_server(started, lab_pki, num_tickets=0)
    context = alice(lab_pki)
    first = handshake(usual.port, context)  # step 3's session, from the usual server
    tickets_off = [handshake(no_tickets.port, context, session=first.session) for _ in range(3)]
    tickets_on = [handshake(usual.port, context, session=first.session) for _ in range(3)]
    assert not any(r.resumed for r in tickets_off)  # "no tickets, no resumption": true, and proves nothing...
    twin = lab_server(started, lab_pki)  # ...since a server with tickets on does not resume it either
    assert not any(handshake(twin.port, context, session=first.session).resumed for _ in range(3))
    result = check.exercise_12_2(no_tickets, tickets_off, tickets_on, paths=lab_pki)
    assert not result.passed
    assert (
        "tickets_off: the session you offered carries a ticket, which server_no_tickets never issues: it came "
        "from another server, and a lab server never resumes a session another server made, tickets or not. "
        "Offer server_no_tickets the session of a first handshake to itself"
    ) in missing(result)
    assert "that same server" in (result.hint or "")


def test_12_2_handshakes_that_offered_no_session(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    usual = lab_server(started, lab_pki)
    no_tickets = lab_server(started, lab_pki, num_tickets=0)
    fresh = [handshake(no_tickets.port, alice(lab_pki)) for _ in range(3)]  # full handshakes, nothing offered
    result = check.exercise_12_2(no_tickets, fresh, resumptions(usual, alice(lab_pki)), paths=lab_pki)
    assert any(
        text.startswith("tickets_off: some handshakes offered no session at all") for text in missing(result)
    )


def test_12_2_tickets_on_must_resume(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    no_tickets = lab_server(started, lab_pki, num_tickets=0)
    tickets_off = resumptions(no_tickets, alice(lab_pki))
    result = check.exercise_12_2(no_tickets, tickets_off, tickets_off, paths=lab_pki)
    assert any(text.startswith("tickets_on: only 0 of 3 handshakes resumed") for text in missing(result))


def test_12_2_tls12_results_and_wrong_types(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    no_tickets = lab_server(started, lab_pki, num_tickets=0)
    capped = resumptions(lab_server(started, lab_pki), alice(lab_pki, maximum_version=ssl.TLSVersion.TLSv1_2))
    result = check.exercise_12_2(no_tickets, ["resumed=False"], capped, paths=lab_pki)
    texts = missing(result)
    assert "tickets_off should hold what handshake(...) returned (HandshakeResult), not str" in texts
    assert any(text.startswith("tickets_on: not every handshake was TLS 1.3") for text in texts)
    empty = check.exercise_12_2(no_tickets, [], capped, paths=lab_pki)
    assert "tickets_off is empty: append each handshake(...) result to it" in missing(empty)


def test_12_2_strict_mode_raises(
    lab_pki: LabPaths, started: list[MTLSServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    usual = lab_server(started, lab_pki)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_12_2(usual, resumptions(usual, alice(lab_pki)), [], paths=lab_pki)


# -- 12.3 Keep-alive against a new connection, in your own figures --------------------------------

STEADY = {
    "keep-alive": [
        1500.0,
        1540.0,
        1610.0,
        900.0,
        1580.0,
        1495.0,
        1600.0,
    ],  # one slow round: mean and median differ
    "new connection": [160.0, 170.0, 150.0, 165.0, 158.0, 171.0, 162.0],
}
RATIO = statistics.median(STEADY["keep-alive"]) / statistics.median(STEADY["new connection"])


def test_12_3_not_attempted() -> None:
    assert check.exercise_12_3(None, None).status == NOT_ATTEMPTED


def test_12_3_the_ratio_of_the_medians_passes_either_way_up() -> None:
    assert check.exercise_12_3(STEADY, RATIO).passed
    in_milliseconds = {name: [1000 / rate for rate in rates] for name, rates in STEADY.items()}
    by_times = statistics.median(in_milliseconds["new connection"]) / statistics.median(
        in_milliseconds["keep-alive"]
    )
    assert check.exercise_12_3(STEADY, by_times).passed


def test_12_3_whichever_side_won() -> None:
    """No check asserts speed: figures where a new connection came out faster still pass with their own ratio."""
    upside_down = {"keep-alive": STEADY["new connection"], "new connection": STEADY["keep-alive"]}
    ratio = statistics.median(upside_down["keep-alive"]) / statistics.median(upside_down["new connection"])
    assert ratio < 1 and check.exercise_12_3(upside_down, ratio).passed


def test_12_3_inverted_mean_and_foreign_ratios_say_so() -> None:
    inverted = check.exercise_12_3(STEADY, 1 / RATIO)
    assert any("is new connection over keep-alive" in text for text in missing(inverted))
    means = statistics.mean(STEADY["keep-alive"]) / statistics.mean(STEADY["new connection"])
    by_means = check.exercise_12_3(STEADY, means)
    assert any("is the ratio of the means" in text for text in missing(by_means))
    foreign = check.exercise_12_3(STEADY, 5.0)
    assert any("is not the ratio of your figures in steady" in text for text in missing(foreign))
    # The messages ask; they never hand over the ratio the learner should compute.
    for result in (inverted, by_means, foreign):
        assert not any(f"{RATIO:.3g}" in text for text in missing(result))
    not_a_number = check.exercise_12_3(STEADY, "9 times")
    assert "keep_alive_ratio should be a positive number, not '9 times'" in missing(not_a_number)


def test_12_3_three_rounds_or_a_missing_label() -> None:
    three = {name: rates[:3] for name, rates in STEADY.items()}
    ratio = statistics.median(three["keep-alive"]) / statistics.median(three["new connection"])
    result = check.exercise_12_3(three, ratio)
    assert "only 3 rounds: pass rounds=7 (at least 5) to measure_rounds" in missing(result)
    unlabelled = check.exercise_12_3({"keep-alive": STEADY["keep-alive"]}, RATIO)
    assert any("steady has no 'new connection' entry" in text for text in missing(unlabelled))
    shapeless = check.exercise_12_3([1.0, 2.0], RATIO)
    assert any("should be what measure_rounds returned" in text for text in missing(shapeless))


def test_12_3_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_12_3(STEADY, 1 / RATIO)
