"""Checks for notebook 00 (start here): the environment a TLS client lives in.

The exercises ask what this kernel's environment really holds and does: which
variables are set, a ``requests`` session that none of them can steer, what a
proxy variable does to a request for ``localhost``, and which OpenSSL decides.
Each check recomputes the answer from the live kernel, so it holds wherever
the notebook runs.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Collection, Mapping
from pathlib import Path
from unittest import mock

import requests

from . import Checker, CheckResult, not_attempted

__all__ = ["PRETEND_ENVIRONMENT", "exercise_1", "exercise_2", "exercise_3"]

#: What the check pretends the environment holds when it tries a session (as step 6 of the notebook does).
PRETEND_ENVIRONMENT = {"REQUESTS_CA_BUNDLE": "/company/ca-bundle.pem", "HTTPS_PROXY": "http://127.0.0.1:9"}
_PROBE_URL = "https://localhost:8443/"  # nothing is sent: requests is only asked how it would connect


#: Step 5 lists this variable too, but it is the course's own (where the lab files go): it changes no TLS client.
NOT_A_TLS_VARIABLE = "MTLS_LAB_DIR"


def _set_variables(watched: Collection[str], environ: Mapping[str, str]) -> set[str]:
    wanted = {name.upper() for name in watched} - {NOT_A_TLS_VARIABLE}
    return {name.upper() for name in environ if name.upper() in wanted}


def _same_file(a: object, b: object) -> bool:
    try:
        first, second = Path(os.fspath(a)), Path(os.fspath(b))  # type: ignore[arg-type]
    except TypeError:
        return False
    return first.expanduser().resolve() == second.expanduser().resolve()


def exercise_1(
    tls_variables: Collection[str] | None,
    session: requests.Session | None,
    *,
    watched: Collection[str],
    lab_ca_file: str | os.PathLike[str],
) -> CheckResult:
    """0.1 A session the environment cannot steer: name the variables that are set, then ignore them all.

    The check recomputes the set variables from ``os.environ`` (any case), then
    asks the session how it would connect while ``REQUESTS_CA_BUNDLE`` and
    ``HTTPS_PROXY`` are set, as on many company laptops.
    """
    c = Checker(
        "0.1",
        "A session the environment cannot steer",
        hint="Step 5 already found the set variables. Step 6 made a session the environment cannot steer: "
        "which attribute did it change, and what did it give `verify`?",
    )
    if not_attempted(tls_variables, session):
        return c.not_attempted()

    expected = _set_variables(watched, os.environ)
    if isinstance(tls_variables, str) or not isinstance(tls_variables, Collection):
        c.require(
            False, "", "tls_variables should be a set of names, e.g. {'REQUESTS_CA_BUNDLE', 'SSL_CERT_FILE'}"
        )
    else:
        given = {str(name).upper() for name in tls_variables} - {NOT_A_TLS_VARIABLE}  # harmless either way
        missing, extra = sorted(expected - given), sorted(given - expected)
        c.require(
            not missing and not extra,
            f"tls_variables names the {len(expected)} variable(s) that change TLS clients and are set in this kernel",
            "tls_variables is not what this kernel holds:"
            + (f" missing {', '.join(missing)};" if missing else "")
            + (f" not set (or not watched): {', '.join(extra)};" if extra else "")
            + " look at every name in os.environ, in any case (https_proxy counts as HTTPS_PROXY)",
        )

    if not isinstance(session, requests.Session):
        c.require(False, "", "my_session should be a requests.Session (requests.Session(), then set it up)")
        return c.result()
    c.require(
        session.trust_env is False,
        "trust_env is False: proxy and CA-bundle variables are ignored",
        "trust_env is still True: set my_session.trust_env = False, or REQUESTS_CA_BUNDLE and HTTPS_PROXY decide",
    )
    verify = session.verify
    if verify is False:
        c.require(
            False,
            "",
            "verify is False: that switches verification off. Never do that; trust the lab CA instead",
        )
    elif verify is True:
        c.require(
            False,
            "",
            "verify is True, so it trusts certifi's public CAs: give my_session.verify the lab CA file, lab_ca",
        )
    else:
        c.require(
            _same_file(verify, lab_ca_file),
            "verify names the lab CA file",
            f"verify is {verify!r}, not the lab CA file {os.fspath(lab_ca_file)}",
        )

    with mock.patch.dict(os.environ):  # the real environment comes back when the block ends
        for name in list(os.environ):
            if "PROXY" in name.upper() or name.upper() in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"}:
                del os.environ[name]
        os.environ.update(PRETEND_ENVIRONMENT)
        settings = session.merge_environment_settings(_PROBE_URL, {}, None, None, None)
    proxy = requests.utils.select_proxy(_PROBE_URL, settings["proxies"])
    c.require(
        verify not in (True, False) and _same_file(settings["verify"], lab_ca_file),
        "with REQUESTS_CA_BUNDLE set, a request would still trust the lab CA",
        f"with REQUESTS_CA_BUNDLE set, a request would trust {settings['verify']!r} instead of the lab CA",
    )
    c.require(
        proxy is None,
        "with HTTPS_PROXY set, a request would still connect directly",
        "with HTTPS_PROXY set, a request would go through the proxy: trust_env = False (and no session.proxies)",
    )
    return c.result()


def exercise_2(proxy_error: BaseException | None) -> CheckResult:
    """0.2 Pretend to be behind a proxy: the request fails before any TLS, at the proxy.

    A proxy that does not answer (port 9) makes ``requests`` raise
    ``ProxyError``, a ``ConnectionError``: no TLS handshake ever started, so it
    is not an ``SSLError``. When ``NO_PROXY`` covers ``localhost`` the request
    goes direct instead, and the lesson is lost.
    """
    c = Checker(
        "0.2",
        "Pretend to be behind a proxy",
        hint="Clear the proxy variables inside the `with`, set the one an https:// URL reads, and catch what "
        "requests raises (all its errors derive from requests.exceptions.RequestException).",
    )
    if not_attempted(proxy_error):
        return c.not_attempted()
    if isinstance(proxy_error, type):
        return c.fail(
            "proxy_error is a class: keep the exception object itself, the one `except ... as error` names"
        )
    if not isinstance(proxy_error, BaseException):
        return c.fail(
            f"proxy_error should be the exception the request raised, not a {type(proxy_error).__name__}"
        )
    is_proxy = isinstance(proxy_error, requests.exceptions.ProxyError)
    if not is_proxy and isinstance(proxy_error, requests.exceptions.ConnectionError):
        missing = (
            f"it is a {type(proxy_error).__name__} but not a ProxyError: the request went straight to localhost. "
            "Either the variable you set is not the one an https:// URL reads (HTTPS_PROXY, not HTTP_PROXY), "
            "or NO_PROXY (or no_proxy) covers localhost: remove it, inside the `with` block"
        )
    else:
        missing = (
            f"it is a {type(proxy_error).__name__}, not a requests.exceptions.ProxyError: "
            "set HTTPS_PROXY to http://127.0.0.1:9 just before requests.get, inside the with block"
        )
    c.require(is_proxy, "the request failed at the proxy (requests.exceptions.ProxyError)", missing)
    c.require(
        not isinstance(proxy_error, requests.exceptions.SSLError),
        "it is not an SSLError: no TLS handshake ever started",
        "it is an SSLError: the request reached a TLS server, so it did not go through the proxy",
    )
    return c.result()


_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def exercise_3(
    openssl_version: tuple[int, int, int] | None,
    *,
    version_text: str | None = None,
    version_info: tuple[int, ...] | None = None,
) -> CheckResult:
    """0.3 The OpenSSL inside Python: its (major, minor, patch), read from ``ssl.OPENSSL_VERSION``.

    ``ssl.OPENSSL_VERSION_INFO`` looks like the answer and is not: for OpenSSL
    3 it is ``(3, 0, 0, 19, 0)`` for 3.0.19 (the patch is the fourth number),
    because OpenSSL 3 changed how its version number is packed. ``version_text``
    and ``version_info`` default to this kernel's ``ssl`` module (tests pass others).
    """
    c = Checker(
        "0.3",
        "The OpenSSL inside Python",
        hint="Pick the three numbers out of the text of ssl.OPENSSL_VERSION, and turn each into an int.",
    )
    if not_attempted(openssl_version):
        return c.not_attempted()
    text = ssl.OPENSSL_VERSION if version_text is None else version_text
    info = tuple(ssl.OPENSSL_VERSION_INFO) if version_info is None else tuple(version_info)
    match = _VERSION.search(text)
    if match is None:  # pragma: no cover (every TLS library Python supports prints x.y.z)
        return c.fail(f"this check cannot read a version in {text!r}")
    expected = tuple(int(part) for part in match.groups())
    if not (
        isinstance(openssl_version, tuple)
        and len(openssl_version) == 3
        and all(isinstance(part, int) for part in openssl_version)
    ):
        shape = repr(openssl_version)
        if isinstance(openssl_version, tuple) and len(openssl_version) == 5:
            shape = "a 5-tuple (that is OPENSSL_VERSION_INFO)"
        return c.fail(f"openssl_version should be a tuple of three ints such as (3, 1, 4), not {shape}")
    if openssl_version == expected:
        c.require(True, f"{expected} is the OpenSSL compiled into this Python ({text})", "")
    elif openssl_version == info[:3]:
        c.require(
            False,
            "",
            f"{openssl_version} is OPENSSL_VERSION_INFO[:3], which for OpenSSL 3 always ends in 0 "
            f"(the patch is its fourth number, {info[3] if len(info) > 3 else '?'}): read the version from the text",
        )
    else:
        c.require(False, "", f"{openssl_version} is not the OpenSSL inside this Python ({text})")
    return c.result()
