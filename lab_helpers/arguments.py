"""Argument types for the command line: a bad value is refused where it is parsed, in one line.

``argparse`` calls these with the text the learner typed; each returns the
value or raises :class:`argparse.ArgumentTypeError` with a sentence that says
what would work. :class:`OneLineParser` prints any parsing error as one line
(``error: ...``, exit status 2), the same shape as every other error of the
command line, instead of a usage block followed by the error.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

__all__ = ["OneLineParser", "client_name", "port_number", "round_count"]

#: Most rounds ``bench`` takes: a full run of 5 rounds takes minutes, so more than this is a typo.
MAX_ROUNDS = 1000

#: A SPIFFE ID path segment's characters (the client name becomes spiffe://lab.example/user/NAME).
_CLIENT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line that points to ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}. See `{self.prog} --help`.\n")


def _integer(text: str, what: str) -> int:
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: {what}") from None


def port_number(text: str) -> int:
    """0 (a free port, chosen by the system) or 1 to 65535."""
    what = "use 0 for a free port, or a port from 1 to 65535"
    port = _integer(text, what)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: {what}")
    return port


def round_count(text: str) -> int:
    """1 to :data:`MAX_ROUNDS`."""
    what = f"use at least 1 round and at most {MAX_ROUNDS} (the default is 5)"
    rounds = _integer(text, what)
    if not 1 <= rounds <= MAX_ROUNDS:
        raise argparse.ArgumentTypeError(f"{rounds} rounds is out of range: {what}")
    return rounds


def client_name(text: str) -> str:
    """1 to 64 letters, digits, ``.``, ``-`` or ``_``: a commonName and a URI path segment both."""
    if not _CLIENT_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} cannot name a client: use 1 to 64 letters, digits, '.', '-' or '_' "
            "(it becomes the commonName and the URI spiffe://lab.example/user/NAME)"
        )
    return text
