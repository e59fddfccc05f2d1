"""Rotation under load: a client keeps calling while the server's certificate changes, and nothing fails."""

from __future__ import annotations

import threading
import time

import requests

from lab_helpers import (
    LabPaths,
    MTLSServer,
    build_server_context,
    lab_session,
    load_certificate_authority,
    save_certificate,
    save_private_key,
    server_certificate,
)

KEEP_ALIVE_REQUESTS = 300
NEW_CONNECTION_REQUESTS = 200
TIME_LIMIT = 60.0  # seconds: a bound, not a target


def test_rotation_under_load_fails_no_request(lab_pki: LabPaths) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    client = {"ca_file": lab_pki.ca_cert, "cert_file": lab_pki.client_cert, "key_file": lab_pki.client_key}
    failures: list[str] = []
    done = {"keep-alive": 0, "new connection": 0}
    halfway = threading.Event()

    def call(kind: str, count: int, headers: dict[str, str]) -> None:
        deadline = time.monotonic() + TIME_LIMIT
        with lab_session(**client) as session:
            for number in range(count):
                if time.monotonic() > deadline:
                    failures.append(f"{kind}: time limit reached after {number} requests")
                    return
                try:
                    response = session.get(server.url, headers=headers)
                    if response.status_code != 200 or response.text != "Hello, alice\n":
                        failures.append(f"{kind} #{number}: {response.status_code} {response.text!r}")
                except requests.RequestException as error:
                    failures.append(f"{kind} #{number}: {error!r}")
                done[kind] += 1
                if number == count // 2:
                    halfway.set()

    with MTLSServer(context, name=None) as server:
        old_serial = server_certificate(server.url, **client).serial_number
        threads = [
            threading.Thread(target=call, args=("keep-alive", KEEP_ALIVE_REQUESTS, {})),
            threading.Thread(
                target=call, args=("new connection", NEW_CONNECTION_REQUESTS, {"Connection": "close"})
            ),
        ]
        for thread in threads:
            thread.start()
        assert halfway.wait(TIME_LIMIT)
        renewed = ca.issue_server_certificate()
        cert = save_certificate(renewed.certificate, lab_pki.directory / "server-renewed.crt")
        key = save_private_key(renewed.private_key, lab_pki.directory / "server-renewed.key")
        server.replace_context(build_server_context(cert, key, lab_pki.ca_cert))
        for thread in threads:
            thread.join(TIME_LIMIT)
        new_serial = server_certificate(server.url, **client).serial_number

    assert failures == []
    assert done == {"keep-alive": KEEP_ALIVE_REQUESTS, "new connection": NEW_CONNECTION_REQUESTS}
    assert old_serial == x509_serial(lab_pki.server_cert)
    assert new_serial == renewed.certificate.serial_number != old_serial


def test_load_cert_chain_on_the_live_context_also_rotates(lab_pki: LabPaths) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    client = {"ca_file": lab_pki.ca_cert, "cert_file": lab_pki.client_cert, "key_file": lab_pki.client_key}
    with MTLSServer(context, name=None) as server:
        before = server_certificate(server.url, **client).serial_number
        renewed = ca.issue_server_certificate()
        cert = save_certificate(renewed.certificate, lab_pki.directory / "server-renewed.crt")
        key = save_private_key(renewed.private_key, lab_pki.directory / "server-renewed.key")
        context.load_cert_chain(str(cert), str(key))
        after = server_certificate(server.url, **client).serial_number
    assert before == x509_serial(lab_pki.server_cert) and after == renewed.certificate.serial_number


def x509_serial(path) -> int:  # type: ignore[no-untyped-def]
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number
