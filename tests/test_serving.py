"""lab_helpers.serving: a socketserver loop that stops when asked, without waiting for a poll interval."""

from __future__ import annotations

import gc
import http.client
import socketserver
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lab_helpers import serving
from lab_helpers.serving import PromptShutdownMixin

HOUR = 3600.0
WAIT = 10.0  # the bound on every join: a loop that needs its poll interval (an hour) misses it


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


class PromptServer(PromptShutdownMixin, HTTPServer):
    def __init__(self, *args: object) -> None:
        self.loop_turns = 0  # service_actions calls: one per turn of the loop that handled a connection
        super().__init__(*args)

    def service_actions(self) -> None:
        self.loop_turns += 1


def in_thread(target: object, **kwargs: object) -> threading.Thread:
    thread = threading.Thread(target=target, kwargs=kwargs, daemon=True)  # type: ignore[arg-type]
    thread.start()
    return thread


def ended(*threads: threading.Thread) -> bool:
    for thread in threads:
        thread.join(timeout=WAIT)
    return not any(thread.is_alive() for thread in threads)


def get(server: HTTPServer) -> bytes:
    """One GET, straight to the server: urllib would go through a proxy the environment sets."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=WAIT)
    try:
        connection.request("GET", "/")
        return connection.getresponse().read()
    finally:
        connection.close()


@pytest.fixture
def server() -> Iterator[PromptServer]:
    server = PromptServer(("127.0.0.1", 0), Hello)
    yield server
    server.server_close()


def test_it_serves_and_stops_although_its_poll_interval_is_an_hour(server: PromptServer) -> None:
    loop = in_thread(server.serve_forever, poll_interval=HOUR)
    assert get(server) == b"hello\n"
    assert ended(in_thread(server.shutdown), loop), "shutdown() waited: the loop was not woken"


def test_socketservers_own_loop_waits_for_its_poll_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    """The twin: socketserver's loop, asked to stop while in select(), goes on until select() times out."""
    selecting = threading.Event()

    class WatchedSelector(socketserver._ServerSelector):  # type: ignore[name-defined,misc]
        def select(self, timeout: float | None = None) -> list:  # type: ignore[type-arg]
            selecting.set()
            return super().select(timeout)

    monkeypatch.setattr(socketserver, "_ServerSelector", WatchedSelector)
    plain = HTTPServer(("127.0.0.1", 0), Hello)
    try:
        loop = in_thread(plain.serve_forever, poll_interval=1.0)
        assert selecting.wait(WAIT)
        stopper = in_thread(plain.shutdown)
        stopper.join(timeout=0.3)
        assert stopper.is_alive(), "socketserver now wakes its loop itself: PromptShutdownMixin may go"
        assert ended(stopper, loop)  # it does end, once the poll interval is over
    finally:
        plain.server_close()


def test_a_shutdown_before_the_loop_starts_ends_it_at_once_and_leaves_nothing_to_wake_the_next(
    server: PromptServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    selects = []

    class CountingSelector(serving._Selector):  # type: ignore[name-defined,misc]
        def select(self, timeout: float | None = None) -> list:  # type: ignore[type-arg]
            selects.append(1)
            return super().select(timeout)

    monkeypatch.setattr(serving, "_Selector", CountingSelector)
    stopper = in_thread(server.shutdown)  # blocks until a loop has run and ended, as socketserver's does
    while not server._stop_requested:  # the order this test is about: asked to stop, then started
        stopper.join(timeout=0.01)
    assert ended(in_thread(server.serve_forever, poll_interval=HOUR), stopper)

    loop = in_thread(server.serve_forever, poll_interval=HOUR)  # the same server, serving again
    assert get(server) == b"hello\n"
    turns = len(selects)
    loop.join(timeout=0.3)  # idle: a wake byte left from the first shutdown would spin the loop here
    assert len(selects) - turns <= 1, f"the idle loop turned {len(selects) - turns} times in 0.3 s"
    assert ended(in_thread(server.shutdown), loop)


def test_a_server_closed_before_it_is_shut_down_still_stops(server: PromptServer) -> None:
    loop = in_thread(server.serve_forever, poll_interval=HOUR)
    assert get(server) == b"hello\n"
    server.server_close()
    assert ended(loop), "the loop went on around a closed socket"
    assert ended(in_thread(server.shutdown))


def test_a_server_that_cannot_bind_closes_what_it_made() -> None:
    """Its __init__ calls server_close(): its socket and both ends of its pair are closed, none left to the
    garbage collector (which closes a forgotten socket too, with a ResourceWarning)."""
    gc.collect()  # earlier tests' garbage first: only this server's sockets are counted below
    with PromptServer(("127.0.0.1", 0), Hello) as taken, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(OSError):
            PromptServer(("127.0.0.1", taken.server_address[1]), Hello)
        gc.collect()
    unclosed = [str(w.message) for w in caught if str(w.message).startswith("unclosed <socket")]
    assert not unclosed
