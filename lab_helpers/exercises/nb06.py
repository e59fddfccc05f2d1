"""Checks for notebook 06, "Make requests to the mTLS server".

The checks make real requests: with the learner's own function (under the
environment variables that break a careless client), or again against the
learner's server, and they read what the lab server recorded.
"""

from __future__ import annotations

import inspect
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests

from ..client import Outcome, attempt
from ..diagnosis import Explanation, explain
from ..environment import temporary_environment
from ..files import LabPaths
from ..server import MTLSServer, Rejection
from ..tls import exception_chain
from . import Checker, CheckResult, not_attempted

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

#: What the server records when a client certificate comes from a CA it does not trust.
UNKNOWN_CLIENT_CA = "unable to get local issuer certificate"
#: A proxy address where nothing listens: a client that uses it fails.
NO_PROXY_THERE = "http://127.0.0.1:9"
SERVER_RECORD_WAIT = 3.0
#: Seconds before the check's server that never answers closes the connection (:func:`_silent_url`).
SILENT_SERVER_GIVES_UP = 3.0
#: What a check says when the lab server of "On your own" is not running (after Run All, its last cell stopped it).
LAB_SERVER_STOPPED = (
    "the lab server is not running (the last cell of this section stopped it): run the first cell "
    'of "On your own" again, which starts it, then this check'
)


@contextmanager
def _hostile_environment() -> Iterator[None]:
    """REQUESTS_CA_BUNDLE set to the public CAs and HTTPS_PROXY to a missing proxy, restored exactly afterwards."""
    import certifi

    bundle = certifi.where()
    trap = {
        "REQUESTS_CA_BUNDLE": bundle,
        "CURL_CA_BUNDLE": bundle,
        "HTTPS_PROXY": NO_PROXY_THERE,
        "ALL_PROXY": NO_PROXY_THERE,
    }
    with temporary_environment(trap, remove=["NO_PROXY"]):  # no_proxy too: it could exempt localhost
        yield


@contextmanager
def _silent_url(*, give_up_after: float) -> Iterator[str]:
    """A URL whose server accepts TCP and never answers; the socket closes after ``give_up_after`` seconds.

    Closing the listening socket resets the connection still waiting, so a
    function that ignores its timeout fails with a reset instead of hanging.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    safety = threading.Timer(give_up_after, listener.close)
    safety.daemon = True
    safety.start()
    try:
        yield f"https://localhost:{listener.getsockname()[1]}/"
    finally:
        safety.cancel()
        listener.close()


def _call(function: Callable[..., Any], url: str, **kwargs: Any) -> tuple[Any, Exception | None]:
    try:
        return function(url, **kwargs), None
    except Exception as error:
        return None, error


def _went_to_the_proxy(error: BaseException) -> bool:
    return any(type(item).__name__ == "ProxyError" for item in exception_chain(error))


def _verify_failure(error: BaseException) -> ssl.SSLCertVerificationError | None:
    for item in exception_chain(error):
        if isinstance(item, ssl.SSLCertVerificationError):
            return item
    return None


def _what_went_wrong(error: BaseException) -> str:
    """A failure the request was not meant to have, in words, with what to change."""
    if isinstance(error, TypeError):
        return (
            f"plain_get could not be called as plain_get(url, ca_file=..., cert_file=..., key_file=..., "
            f"timeout=...): {error}"
        )
    if _went_to_the_proxy(error):
        return (
            "it went to the proxy in HTTPS_PROXY (the check sets one that is not there): make the request "
            "from a requests.Session() with trust_env = False"
        )
    verify = _verify_failure(error)
    if verify is not None:
        return (
            f"the client refused the lab server ({verify.verify_message}): REQUESTS_CA_BUNDLE won; "
            "pass the lab CA on the request, verify=ca_file"
        )
    if isinstance(error, OSError) and not isinstance(error, requests.exceptions.RequestException):
        return f"{type(error).__name__}: {error} (a file path is wrong; with ca_file=None, pass verify=True)"
    return f"{type(error).__name__}: {explain(error).who}"


def _where_records_stand(server: MTLSServer) -> tuple[int, int]:
    """The server's rejection and connection counts before a request, for :func:`_servers_record`."""
    return len(server.rejections), server.connections


def _servers_record(
    server: MTLSServer, before: tuple[int, int], error: BaseException | None
) -> Rejection | None:
    """What the server recorded about a failed request, if the request reached it through TLS at all."""
    if not isinstance(error, requests.exceptions.ConnectionError) or _went_to_the_proxy(error):
        return None  # it never reached the server: nothing to wait for
    rejections, connections = before
    return server.wait_for_rejection(rejections, timeout=SERVER_RECORD_WAIT, connections_after=connections)


def _uses_the_lab_client(function: Callable[..., Any]) -> bool | None:
    """True when the function's source calls lab_session or attempt; None when there is no source to read."""
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        return None
    return any(name in source for name in ("lab_session", "LabSession", "attempt("))


def exercise_1(
    plain_get: Callable[..., requests.Response] | None, *, server: MTLSServer, paths: LabPaths
) -> CheckResult:
    """6.1 The article's three requests with requests itself: CA, certificate and timeout on the request.

    The check calls the function while REQUESTS_CA_BUNDLE names the public
    CAs and HTTPS_PROXY a proxy that is not there, the two traps of step 2,
    and expects the three outcomes of steps 3 to 5, then a timeout from a
    server that never answers.
    """
    c = Checker(
        "6.1",
        "The three requests in plain requests",
        hint="Step 2 met both variables: a CA given on the request defeats one of them, but not the other. Which "
        "session attribute makes requests read neither? And what does requests wait for, without a timeout?",
    )
    if not_attempted(plain_get):
        return c.not_attempted()
    if not callable(plain_get):
        return c.fail(
            f"plain_get should be a function (def plain_get(url, *, ca_file=None, ...)), "
            f"not {type(plain_get).__name__}"
        )
    try:
        inspect.signature(plain_get).bind(
            "https://localhost/", ca_file=None, cert_file=None, key_file=None, timeout=5.0
        )
    except TypeError as error:
        return c.fail(
            f"plain_get cannot be called as plain_get(url, ca_file=..., cert_file=..., key_file=..., "
            f"timeout=...): {error}"
        )
    except ValueError:  # no signature to read (a builtin): let the calls below tell
        pass
    if not server.running:
        return c.fail(LAB_SERVER_STOPPED)
    uses_lab = _uses_the_lab_client(plain_get)
    if uses_lab is not None:
        c.require(
            not uses_lab,
            "it uses requests itself (no lab_session, no attempt)",
            "it calls lab_session or attempt: make the request with requests itself",
        )
    client = {"cert_file": paths.client_cert, "key_file": paths.client_key}
    with _hostile_environment():
        response, error = _call(plain_get, server.url, ca_file=paths.ca_cert, **client)
        if error is not None:
            c.require(False, "", f"request 1 (CA and client certificate) failed: {_what_went_wrong(error)}")
        elif not isinstance(response, requests.Response):
            c.require(False, "", f"request 1 returned {type(response).__name__}: return the response")
        else:
            c.require(
                response.status_code == 200 and response.text.startswith("Hello, "),
                f"request 1 (CA and client certificate): {response.status_code} {response.text!r}",
                f"request 1 (CA and client certificate) got {response.status_code} {response.text!r}",
            )

        before = _where_records_stand(server)
        response, error = _call(plain_get, server.url, ca_file=None, **client)
        rejection = _servers_record(server, before, error)
        if error is None:
            c.require(
                False,
                "",
                "request 2 (no CA) succeeded: with ca_file=None, trust the default CAs "
                "(verify=True), which do not include the lab CA",
            )
        else:
            refused = isinstance(error, requests.exceptions.SSLError) and _verify_failure(error) is not None
            c.require(
                refused and rejection is not None and rejection.reason == "TLSV1_ALERT_UNKNOWN_CA",
                "request 2 (no CA): the client refused the server's certificate, the server saw unknown_ca",
                f"request 2 (no CA) failed, but not as the client refusing the server: {_what_went_wrong(error)}",
            )

        before = _where_records_stand(server)
        response, error = _call(plain_get, server.url, ca_file=paths.ca_cert)
        rejection = _servers_record(server, before, error)
        if error is None:
            status = getattr(response, "status_code", None)
            c.require(
                False,
                "",
                f"request 3 (no client certificate) was answered ({status}): with cert_file=None, "
                "send no certificate (cert=None)",
            )
        else:
            c.require(
                isinstance(error, requests.exceptions.ConnectionError)
                and not _went_to_the_proxy(error)
                and rejection is not None
                and rejection.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE",
                "request 3 (no client certificate): a ConnectionError, the server saw no certificate",
                f"request 3 (no client certificate) failed, but not for the missing certificate: "
                f"{_what_went_wrong(error)}",
            )

        with _silent_url(give_up_after=SILENT_SERVER_GIVES_UP) as silent:
            started = time.perf_counter()
            response, error = _call(plain_get, silent, ca_file=paths.ca_cert, timeout=0.5, **client)
            elapsed = time.perf_counter() - started
        c.require(
            isinstance(error, requests.exceptions.Timeout),
            f"a server that never answers: Timeout after {elapsed:.1f} s (it was given timeout=0.5)",
            f"a server that never answers, called with timeout=0.5: {_not_a_timeout(error, elapsed)}",
        )
    return c.result()


def _not_a_timeout(error: Exception | None, elapsed: float) -> str:
    """What happened instead of a Timeout, and what to change: the hint depends on when and how it ended."""
    if error is None:
        return (
            f"it returned after {elapsed:.1f} s without an error: let requests' exceptions reach the caller"
        )
    if _went_to_the_proxy(error) or isinstance(error, TypeError):
        return _what_went_wrong(error)
    if elapsed >= SILENT_SERVER_GIVES_UP * 0.9:
        return (
            f"it waited {elapsed:.1f} s, until the check's server hung up ({type(error).__name__}); without a "
            "timeout requests waits as long as the server does, for ever if it never answers: pass "
            "timeout=timeout to requests"
        )
    return f"it failed after {elapsed:.1f} s, before any timeout could expire: {_what_went_wrong(error)}"


def exercise_2(
    outcome: Outcome | None, explanation: Explanation | None, *, server: MTLSServer
) -> CheckResult:
    """6.2 A client certificate from another CA, and explain() of the failure, from the side that is stable.

    Over TLS 1.3 what the client sees of a refusal can vary from run to run
    (an alert, an EOF or a reset: notebook 06, step 6); what the server
    recorded does not. So the
    explanation to keep is the one of the server's record.
    """
    c = Checker(
        "6.2",
        "A certificate from another CA, explained",
        hint="An outcome carries what the server recorded only when attempt was told which server to read "
        "(steps 3 to 5 did). explain() takes an exception or the server's reason: which of the two is the "
        "same on every run?",
    )
    if not_attempted(outcome, explanation):
        return c.not_attempted()
    if not isinstance(outcome, Outcome):
        return c.fail(f"other_ca_outcome should be what attempt(...) returned, not {type(outcome).__name__}")
    if not server.running:
        return c.fail(LAB_SERVER_STOPPED)
    c.require(
        outcome.url.startswith(server.url),
        "the request went to the lab server",
        f"the request went to {outcome.url}, not to the lab server ({server.url})",
    )
    c.require(
        not outcome.ok and outcome.failed_with(requests.exceptions.ConnectionError),
        f"it failed with {outcome.error_class}, a kind of ConnectionError",
        "it succeeded: present a certificate from another CA"
        if outcome.ok
        else f"it failed with {outcome.error_class}, not a ConnectionError from the handshake",
    )
    reason = outcome.server_reason
    wrong_reason = {
        None: "the outcome carries no server reason: pass server=server to attempt",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the server saw no client certificate: pass cert_file= and key_file=",
        "TLSV1_ALERT_UNKNOWN_CA": "the client refused the server: trust the lab CA (ca_file=paths.ca_cert), "
        "so that only the server refuses",
    }
    c.require(
        reason == UNKNOWN_CLIENT_CA,
        f"the server recorded '{UNKNOWN_CLIENT_CA}': it does not know that CA",
        wrong_reason.get(
            reason,
            f"the server recorded {reason!r}, not '{UNKNOWN_CLIENT_CA}': "
            "present a valid client certificate from a CA of your own",
        ),
    )
    if not isinstance(explanation, Explanation):
        c.require(
            False,
            "",
            f"other_ca_explanation should be what explain(...) returned, not {type(explanation).__name__}",
        )
    elif explanation.key == "client-ca-not-trusted":
        c.require(True, f"explain() says: {explanation.who} ({explanation.evidence})", "")
    elif explanation.key == "server-closed-connection":
        c.require(
            False,
            "",
            "your explanation is 'the server closed the connection': that is the client's view, which "
            "over TLS 1.3 can vary from run to run; explain what the server recorded instead",
        )
    else:
        c.require(
            False,
            "",
            f"your explanation is {explanation.key!r}: explain this outcome's failure (its server_reason)",
        )
    return c.result()


def exercise_3(outcome: Outcome | None, *, paths: LabPaths, server: MTLSServer | None = None) -> CheckResult:
    """6.3 The right server at the wrong address: an IP in the URL, and no IP in the certificate's SAN.

    A client matches the URL's host against the server certificate's SAN,
    and an IP address only matches an IP entry. The check then asks the same
    server (``server``, the learner's ``no_ip_server``) by the name
    ``localhost``, which must work: only the address was wrong.
    """
    c = Checker(
        "6.3",
        "The right server at the wrong address",
        hint="What does a client compare the host of the URL with, and which kind of SAN entry can match an "
        "address (notebook 03, step 3)?",
    )
    if not_attempted(outcome):
        return c.not_attempted()
    if not isinstance(outcome, Outcome):
        return c.fail(f"by_ip_outcome should be what attempt(...) returned, not {type(outcome).__name__}")
    if isinstance(server, MTLSServer) and not server.running:
        return c.fail(
            "no_ip_server is not running (the last cell of this section stopped it): run your exercise "
            "cell again, which starts it, then this check"
        )
    parts = urlsplit(outcome.url)
    try:
        ipaddress.ip_address(parts.hostname or "")
        by_address = True
    except ValueError:
        by_address = False
    c.require(
        by_address,
        f"the URL names the server by its address, {parts.hostname}",
        f"the URL names the server {parts.hostname!r}: use its address, https://127.0.0.1:PORT/",
    )
    verify = _verify_failure(outcome.error) if outcome.error is not None else None
    mismatch = verify is not None and str(verify.verify_message).startswith("IP address mismatch")
    if outcome.ok and not by_address:
        pass  # by name, success is right: the line above already says to ask by address
    elif outcome.ok:
        c.require(
            False,
            "",
            "the request succeeded: the server's certificate has an IP entry for that address "
            "(the lab's server.crt has 127.0.0.1); issue one for localhost only",
        )
    else:
        c.require(
            mismatch,
            "the client refused the server's certificate: IP address mismatch",
            f"it failed, but not for the address: {outcome.reason}",
        )
    if by_address and parts.port is not None:
        by_name = attempt(
            f"https://localhost:{parts.port}/",
            ca_file=paths.ca_cert,
            cert_file=paths.client_cert,
            key_file=paths.client_key,
        )
        c.require(
            by_name.ok,
            "by the name localhost, the same server answered: only the address was wrong",
            f"by the name localhost, the same server gave: {by_name}; keep the server running until the check "
            "has run, with a certificate from the lab CA",
        )
    return c.result()
