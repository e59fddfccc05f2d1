"""lab_helpers.serving: a socketserver loop that stops when asked, without waiting for a poll interval."""

from __future__ import annotations

import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from lab_helpers.serving import PromptShutdownMixin

HOUR = 3600.0


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
    pass


def serving(server: HTTPServer, poll_interval: float) -> threading.Thread:
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    )
    thread.start()
    return thread


def shutdown_in_background(server: HTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.shutdown, daemon=True)
    thread.start()
    return thread


def test_it_serves_and_stops_although_its_poll_interval_is_an_hour() -> None:
    server = PromptServer(("127.0.0.1", 0), Hello)
    loop = serving(server, poll_interval=HOUR)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_address[1]}/", timeout=10) as answer:
            assert answer.read() == b"hello\n"
        stopper = shutdown_in_background(server)
        stopper.join(timeout=10)
        assert not stopper.is_alive(), "shutdown() waited: the loop was not woken"
        loop.join(timeout=10)
        assert not loop.is_alive()
    finally:
        server.server_close()


def test_socketservers_own_loop_waits_for_its_poll_interval() -> None:
    """The twin: socketserver's loop, asked to stop, keeps going until its select() times out."""
    server = HTTPServer(("127.0.0.1", 0), Hello)
    loop = serving(server, poll_interval=2.0)
    try:
        stopper = shutdown_in_background(server)
        stopper.join(timeout=0.3)
        assert stopper.is_alive(), "socketserver now wakes its loop itself: PromptShutdownMixin may go"
        stopper.join(timeout=10)  # it does end, once the poll interval is over
        loop.join(timeout=10)
        assert not stopper.is_alive() and not loop.is_alive()
    finally:
        server.server_close()


def test_a_shutdown_before_the_loop_starts_ends_the_loop_at_once() -> None:
    server = PromptServer(("127.0.0.1", 0), Hello)
    try:
        stopper = shutdown_in_background(server)  # waits for the loop, as socketserver's does
        loop = serving(server, poll_interval=HOUR)
        for thread in (loop, stopper):
            thread.join(timeout=10)
            assert not thread.is_alive()
    finally:
        server.server_close()


def test_a_server_that_cannot_bind_closes_what_it_made() -> None:
    with PromptServer(("127.0.0.1", 0), Hello) as taken:
        with pytest.raises(OSError):
            PromptServer(("127.0.0.1", taken.server_address[1]), Hello)  # its __init__ calls server_close()
