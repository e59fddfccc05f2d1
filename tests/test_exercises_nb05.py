"""The checks of notebook 05's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
from exercise_checks import NOT_ATTEMPTED, missing

from lab_helpers import LabPaths, LabRequestHandler, MTLSServer, build_server_context, check

pytestmark = pytest.mark.usefixtures("lenient_checks")


@pytest.fixture
def started() -> Iterator[list[MTLSServer]]:
    """Servers a test starts; each is stopped at teardown."""
    servers: list[MTLSServer] = []
    yield servers
    for server in servers:
        server.stop()


def start(
    started: list[MTLSServer],
    paths: LabPaths,
    *,
    name: str | None,
    handler: type = LabRequestHandler,
    **context_options: object,
) -> MTLSServer:
    context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert, **context_options)
    server = MTLSServer(context, name=name, handler=handler, handshake_timeout=2.0).start()
    started.append(server)
    return server


class URIHandler(LabRequestHandler):
    def do_GET(self) -> None:
        self.send_text(200, self.client_identity.uris[0] + "\n")


class AliceOnlyHandler(LabRequestHandler):
    """Answers with alice's URI whoever asks: the answer written into the code."""

    def do_GET(self) -> None:
        self.send_text(200, "spiffe://lab.example/user/alice\n")


# -- 5.1 A TLS 1.3-only server ----------------------------------------------------------


def test_5_1_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_05_1(None, paths=lab_pki).status == NOT_ATTEMPTED


def test_5_1_a_named_tls13_only_server_passes(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name="test-tls13", minimum_version=ssl.TLSVersion.TLSv1_3)
    result = check.exercise_05_1(server, paths=lab_pki)
    assert result.passed, result


def test_5_1_a_server_that_still_speaks_tls12(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name=None)
    result = check.exercise_05_1(server, paths=lab_pki)
    assert not result.passed
    assert missing(result) == [
        "it has no name, so each re-run of its cell starts one more server: give it a name, such as 'lab-tls13'",
        "its context's minimum_version is TLSv1_2: set it to ssl.TLSVersion.TLSv1_3",
        "a client limited to TLS 1.2 was served: the server still accepts TLS 1.2",
    ]


def test_5_1_a_stopped_server(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name="test-tls13", minimum_version=ssl.TLSVersion.TLSv1_3)
    server.stop()
    result = check.exercise_05_1(server, paths=lab_pki)
    assert missing(result) == [
        "tls13_server is not running (the last cell of this section stops the exercise servers): "
        "run your exercise cell again, which starts it, then this check"
    ]


def test_5_1_the_name_lab_is_the_courses_main_server(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name="lab", minimum_version=ssl.TLSVersion.TLSv1_3)
    result = check.exercise_05_1(server, paths=lab_pki)
    assert missing(result) == [
        "it runs under the name 'lab', the course's main server: a re-run of step 6 would replace it. "
        "Choose another name"
    ]
    assert "replaced the lab server" not in str(result)


def test_5_1_step_2s_context_changed_in_place_is_named(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    """The learner set context.minimum_version on step 2's context, which exercise 5.2 then reuses."""
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    server = MTLSServer(context, name="test-tls13", handshake_timeout=2.0).start()
    started.append(server)
    result = check.exercise_05_1(server, paths=lab_pki, context=context)
    (problem,) = missing(result)
    assert problem.startswith("it serves with step 2's `context`, changed in place: exercise 5.2 starts from")
    assert "<code>context</code>" in result._repr_html_()
    own = start(started, lab_pki, name="test-tls13-own", minimum_version=ssl.TLSVersion.TLSv1_3)
    assert check.exercise_05_1(own, paths=lab_pki, context=context).passed


def test_5_1_strict_mode_raises(
    lab_pki: LabPaths, started: list[MTLSServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start(started, lab_pki, name="test-tls13")
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_05_1(server, paths=lab_pki)


# -- 5.2 Answer with the client's URI ---------------------------------------------------


def test_5_2_not_attempted(lab_pki: LabPaths) -> None:
    assert check.exercise_05_2(None, paths=lab_pki).status == NOT_ATTEMPTED


def test_5_2_a_handler_that_reads_the_uri_passes(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name="test-uri", handler=URIHandler)
    result = check.exercise_05_2(server, paths=lab_pki)
    assert result.passed, result


def test_5_2_the_lab_handler_greets_by_name(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name="test-uri")
    result = check.exercise_05_2(server, paths=lab_pki)
    assert (
        "it serves with the lab's own handler, which greets by commonName: pass handler=YourHandler"
        in missing(result)
    )


def test_5_2_a_constant_answer_is_caught_by_the_second_client(
    lab_pki: LabPaths, started: list[MTLSServer]
) -> None:
    server = start(started, lab_pki, name="test-uri", handler=AliceOnlyHandler)
    result = check.exercise_05_2(server, paths=lab_pki)
    assert not result.passed
    assert len(missing(result)) == 1
    assert (
        "read the URI from self.client_identity, which holds the certificate of this connection"
        in missing(result)[0]
    )


def test_5_2_not_a_server(lab_pki: LabPaths) -> None:
    result = check.exercise_05_2(URIHandler, paths=lab_pki)  # the class, not a server started with it
    assert missing(result) == ["uri_server should be the MTLSServer you started, not type"]


def test_5_2_strict_mode_raises(
    lab_pki: LabPaths, started: list[MTLSServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start(started, lab_pki, name="test-uri", handler=AliceOnlyHandler)
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_05_2(server, paths=lab_pki)


class TupleHandler(LabRequestHandler):
    """Reads the identity of the connection, then sends the whole tuple: the mistake of formatting uris itself."""

    def do_GET(self) -> None:
        self.send_text(200, f"{self.client_identity.uris}\n")


class FailingHandler(LabRequestHandler):
    """Asks the identity for a field it does not have."""

    def do_GET(self) -> None:
        self.send_text(200, self.client_identity.uri + "\n")  # type: ignore[attr-defined]


def test_5_2_the_whole_tuple_is_named_as_such(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    """A handler that reads the right place but formats the tuple is told that, not to stop using a constant."""
    server = start(started, lab_pki, name="test-uri", handler=TupleHandler)
    result = check.exercise_05_2(server, paths=lab_pki)
    assert not result.passed
    problems = missing(result)
    assert len(problems) == 2
    assert all("the whole tuple self.client_identity.uris" in text and "uris[0]" in text for text in problems)
    assert not any("constant" in text for text in problems)


def test_5_2_a_constant_is_named_by_the_uri_it_sent(lab_pki: LabPaths, started: list[MTLSServer]) -> None:
    server = start(started, lab_pki, name="test-uri", handler=AliceOnlyHandler)
    (problem,) = missing(check.exercise_05_2(server, paths=lab_pki))
    assert "got 'spiffe://lab.example/user/alice', the URI of another client" in problem


def test_5_2_a_handler_that_raises_is_named_with_its_exception(
    lab_pki: LabPaths, started: list[MTLSServer]
) -> None:
    server = start(started, lab_pki, name="test-uri", handler=FailingHandler)
    problems = missing(check.exercise_05_2(server, paths=lab_pki))
    assert len(problems) == 2
    assert all("your do_GET raised AttributeError" in text and "'uri'" in text for text in problems)


def test_5_2_a_stopped_server_says_to_run_the_exercise_cell_again(
    lab_pki: LabPaths, started: list[MTLSServer]
) -> None:
    server = start(started, lab_pki, name="test-uri", handler=URIHandler)
    server.stop()
    assert missing(check.exercise_05_2(server, paths=lab_pki)) == [
        "uri_server is not running (the last cell of this section stops the exercise servers): "
        "run your exercise cell again, which starts it, then this check"
    ]
