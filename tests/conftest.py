"""Fixtures for the lab_helpers tests, named by what they serve.

- ``lab_pki``: the article's eight files (CA, server, client) in a fresh folder;
- ``mtls_server``: the lab's mTLS server on 127.0.0.1, stopped at teardown;
- ``tls12_server``: the same server capped at TLS 1.2;
- ``client_files``: the keyword arguments that make a request succeed.

Every server binds 127.0.0.1 on a free port and is stopped at teardown, so a
failing test never leaves a thread or a socket behind for the next one.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_helpers import (
    CertificateAuthority,
    LabPaths,
    MTLSServer,
    build_server_context,
    create_seed_pki,
)

KEY_TYPES = ("ec", "rsa", "ed25519")

#: Variables that would change what requests, curl or openssl do. Tests that
#: need one set it themselves with monkeypatch.
_AMBIENT_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


@pytest.fixture(params=KEY_TYPES)
def key_type(request: pytest.FixtureRequest) -> str:
    """Each key type the course uses: ECDSA P-256, RSA-2048, Ed25519."""
    return request.param


@pytest.fixture
def lab_pki(tmp_path: Path) -> LabPaths:
    """The article's eight files (ECDSA keys) in a fresh folder."""
    return create_seed_pki(tmp_path / "lab-files")


@pytest.fixture
def lab_pki_of_key_type(tmp_path: Path, key_type: str) -> LabPaths:
    """The article's eight files for each key type in turn."""
    return create_seed_pki(tmp_path / f"lab-files-{key_type}", key_type=key_type)


@pytest.fixture
def other_pki(tmp_path: Path) -> LabPaths:
    """A second, unrelated lab PKI: its CA is not the lab's CA."""
    return create_seed_pki(tmp_path / "other-lab-files")


@pytest.fixture
def lab_ca(lab_pki: LabPaths) -> CertificateAuthority:
    """The lab CA of ``lab_pki``, loaded, to issue more certificates with."""
    from lab_helpers import load_certificate_authority

    return load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)


@pytest.fixture
def client_files(lab_pki: LabPaths) -> dict[str, Path]:
    """``ca_file``/``cert_file``/``key_file`` for a request that should succeed."""
    return {"ca_file": lab_pki.ca_cert, "cert_file": lab_pki.client_cert, "key_file": lab_pki.client_key}


def _started(paths: LabPaths, **context_options: object) -> MTLSServer:
    context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert, **context_options)
    # name=None: a test server never replaces (or is replaced by) another one.
    return MTLSServer(context, name=None, handshake_timeout=2.0).start()


@pytest.fixture
def mtls_server(lab_pki: LabPaths) -> Iterator[MTLSServer]:
    """The lab's mTLS server (TLS 1.2 and 1.3) for ``lab_pki``, stopped at teardown."""
    server = _started(lab_pki)
    yield server
    server.stop()


@pytest.fixture
def tls12_server(lab_pki: LabPaths) -> Iterator[MTLSServer]:
    """The lab's mTLS server with maximum_version TLS 1.2, stopped at teardown."""
    server = _started(lab_pki, maximum_version=ssl.TLSVersion.TLSv1_2)
    yield server
    server.stop()


@pytest.fixture
def mtls_server_of_key_type(lab_pki_of_key_type: LabPaths) -> Iterator[MTLSServer]:
    """The lab's mTLS server for each key type's PKI, stopped at teardown."""
    server = _started(lab_pki_of_key_type)
    yield server
    server.stop()


@pytest.fixture
def silent_server() -> Iterator[str]:
    """``https://localhost:PORT/`` of a socket that accepts TCP (in the kernel) and never answers.

    A safety timer closes the socket after 3 seconds, which resets any
    connection still waiting: a client whose timeout is missing (or is the
    5-second default instead of the one the test gave) then fails with a
    reset, not a timeout, instead of hanging the test run.
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=8)
    safety = threading.Timer(3.0, listener.close)
    safety.daemon = True
    safety.start()
    yield f"https://localhost:{listener.getsockname()[1]}/"
    safety.cancel()
    listener.close()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy or CA-bundle variables: each test sets what it is about."""
    for name in _AMBIENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def certifi_bundle() -> str:
    """certifi's public CA bundle: it does not contain the lab CA."""
    certifi = pytest.importorskip("certifi")
    return certifi.where()


@pytest.fixture
def lenient_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Exercise checks report instead of raising (strict mode off), whatever folder pytest runs in."""
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    monkeypatch.chdir(tmp_path)
