"""Revocation: CRLs that are really enforced, updated without a restart, from the lab or from elsewhere."""

from __future__ import annotations

import datetime
import re
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from lab_checks import wait_until
from test_cli import URL, ServeProcess, run_cli

from lab_helpers import (
    CertificateAuthority,
    LabError,
    LabPaths,
    MTLSServer,
    Outcome,
    attempt,
    build_server_context,
    explain,
    load_certificate_authority,
    load_crl,
    save_certificate,
    save_chain,
    save_crl,
    save_private_key,
)


@pytest.fixture
def people(lab_pki: LabPaths) -> dict[str, tuple[Path, Path]]:
    """alice and bob, issued by the lab CA, saved beside the lab files."""
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    files = {}
    for name in ("alice", "bob"):
        issued = ca.issue_client_certificate(name)
        files[name] = (
            save_certificate(issued.certificate, lab_pki.directory / f"{name}.crt"),
            save_private_key(issued.private_key, lab_pki.directory / f"{name}.key"),
        )
    return files


def serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def request(server_url: str, lab_pki: LabPaths, person: tuple[Path, Path], server: MTLSServer | None = None):  # type: ignore[no-untyped-def]
    return attempt(
        server_url, ca_file=lab_pki.ca_cert, cert_file=person[0], key_file=person[1], server=server
    )


def test_a_crl_lists_serials_with_a_number_and_grows_with_previous(lab_pki: LabPaths, people: dict) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    first = ca.create_crl([serial(people["alice"][0])])
    number = first.extensions.get_extension_for_class(x509.CRLNumber)
    assert not number.critical and number.value.crl_number == 1
    assert first.issuer == ca.certificate.subject and first.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert first.next_update_utc > datetime.datetime.now(datetime.timezone.utc)
    second = ca.create_crl([serial(people["bob"][0])], previous=first)
    assert second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert {entry.serial_number for entry in second} == {serial(people["alice"][0]), serial(people["bob"][0])}


def test_a_previous_crl_from_another_ca_is_refused(lab_pki: LabPaths) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    foreign = CertificateAuthority.create_root("other-ca").create_crl([1234])
    with pytest.raises(LabError, match="not issued by this CA"):
        ca.create_crl([5678], previous=foreign)


def test_the_server_rejects_a_revoked_client_and_admits_the_others(lab_pki: LabPaths, people: dict) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    crl = save_crl(ca.create_crl([serial(people["alice"][0])]), lab_pki.crl)
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, crl_file=crl)
    with MTLSServer(context, name=None) as server:
        alice = request(server.url, lab_pki, people["alice"], server)
        bob = request(server.url, lab_pki, people["bob"], server)
    assert alice.failed_with(requests.exceptions.ConnectionError)
    assert alice.server_reason == "certificate revoked"
    assert explain(alice.server_reason).key == "client-certificate-revoked"
    assert bob.ok and bob.body == "Hello, bob\n"


def test_a_loaded_crl_does_nothing_without_the_check_flag(lab_pki: LabPaths, people: dict) -> None:
    """The trap: the CRL is in the store, but OpenSSL only reads it when asked to."""
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    crl = save_crl(ca.create_crl([serial(people["alice"][0])]), lab_pki.crl)
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    context.load_verify_locations(cafile=str(crl))
    assert not context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    with MTLSServer(context, name=None) as server:
        assert request(server.url, lab_pki, people["alice"]).ok  # revoked, and still let in


def test_the_check_flag_without_a_crl_rejects_everyone(lab_pki: LabPaths, people: dict) -> None:
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    with MTLSServer(context, name=None) as server:
        bob = request(server.url, lab_pki, people["bob"], server)
    assert bob.failed_with(requests.exceptions.ConnectionError)
    assert bob.server_reason == "unable to get certificate CRL"


def test_an_updated_crl_takes_effect_without_a_restart(lab_pki: LabPaths, people: dict) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    first = ca.create_crl([serial(people["alice"][0])])
    save_crl(first, lab_pki.crl)
    build = lambda: build_server_context(  # noqa: E731
        lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, crl_file=lab_pki.crl
    )
    with MTLSServer(build(), name=None) as server:
        port = server.port
        assert request(server.url, lab_pki, people["bob"]).ok
        save_crl(ca.create_crl([serial(people["bob"][0])], previous=first), lab_pki.crl)
        server.replace_context(build())
        bob = request(server.url, lab_pki, people["bob"], server)
        assert server.port == port and server.running
    assert bob.server_reason == "certificate revoked"


def _independent_crl(ca: CertificateAuthority, serials: list[int]) -> x509.CertificateRevocationList:
    """A CRL written with cryptography's builder directly, not with the lab's create_crl."""
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(now - datetime.timedelta(minutes=1))
        .next_update(now + datetime.timedelta(days=1))
        .add_extension(x509.CRLNumber(42), critical=False)
    )
    for number in serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(number).revocation_date(now).build()
        )
    return builder.sign(ca.private_key, hashes.SHA256())


def _openssl_crl(lab_pki: LabPaths, revoked: Path, folder: Path) -> Path:
    """A CRL made by `openssl ca -revoke` and `openssl ca -gencrl`, as a real CA operator would."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    folder.mkdir()
    (folder / "index.txt").write_text("")
    (folder / "crlnumber").write_text("1000\n")
    config = folder / "ca.cnf"
    config.write_text(
        "[ca]\ndefault_ca = lab\n[lab]\n"
        f"database = {folder / 'index.txt'}\ncrlnumber = {folder / 'crlnumber'}\n"
        "default_md = sha256\ndefault_crl_days = 7\n"
    )
    common = [
        openssl,
        "ca",
        "-config",
        str(config),
        "-cert",
        str(lab_pki.ca_cert),
        "-keyfile",
        str(lab_pki.ca_key),
    ]
    for extra in (["-revoke", str(revoked)], ["-gencrl", "-out", str(folder / "crl.pem")]):
        result = subprocess.run([*common, *extra], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    return folder / "crl.pem"


@pytest.mark.parametrize("maker", ["cryptography", "openssl"])
def test_serve_enforces_an_independent_crl(
    lab_pki: LabPaths, people: dict, tmp_path: Path, maker: str
) -> None:
    if maker == "openssl":
        crl = _openssl_crl(lab_pki, people["alice"][0], tmp_path / "openssl-ca")
    else:
        ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
        crl = save_crl(_independent_crl(ca, [serial(people["alice"][0])]), tmp_path / "independent.crl")
    assert serial(people["alice"][0]) in {entry.serial_number for entry in load_crl(crl)}
    served = ServeProcess(lab_pki.directory, "--crl", str(crl))
    try:
        url = served.wait_for_line(URL).group(0)
        alice = request(url, lab_pki, people["alice"])
        bob = request(url, lab_pki, people["bob"])
        served.wait_for_line(re.compile("certificate revoked"))
    finally:
        served.kill()
    assert alice.failed_with(requests.exceptions.ConnectionError)
    assert bob.ok and bob.body == "Hello, bob\n"


def test_serve_picks_up_a_revocation_while_running_and_survives_a_bad_crl(
    lab_pki: LabPaths, people: dict
) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    save_crl(ca.create_crl([]), lab_pki.crl)  # an empty list: everyone valid is welcome
    served = ServeProcess(lab_pki.directory, "--crl", str(lab_pki.crl))
    try:
        url = served.wait_for_line(URL).group(0)
        assert request(url, lab_pki, people["bob"]).ok
        revoked = run_cli("revoke", "--dir", str(lab_pki.directory), "--cert", str(people["bob"][0]))
        assert revoked.returncode == 0, revoked.stderr
        assert "now lists 1 certificate" in revoked.stdout
        assert wait_until(lambda: not request(url, lab_pki, people["bob"]).ok, timeout=5.0)
        assert request(url, lab_pki, people["alice"]).ok
        lab_pki.crl.write_text("not a CRL")  # a broken update must not take the server down
        served.wait_for_line(re.compile("update was refused"), timeout=5.0)
        assert request(url, lab_pki, people["alice"]).ok
        assert not request(url, lab_pki, people["bob"]).ok  # the last good CRL is still in force
    finally:
        served.kill()


def test_revoke_keeps_earlier_entries(lab_pki: LabPaths, people: dict) -> None:
    for number, person in enumerate(("alice", "bob"), start=1):
        result = run_cli("revoke", "--dir", str(lab_pki.directory), "--cert", str(people[person][0]))
        assert result.returncode == 0, result.stderr
        assert f"CRL number {number}" in result.stdout
    listed = {entry.serial_number for entry in load_crl(lab_pki.crl)}
    assert listed == {serial(people["alice"][0]), serial(people["bob"][0])}


def test_revoke_refuses_a_certificate_from_another_ca(lab_pki: LabPaths, other_pki: LabPaths) -> None:
    """The other lab's CA is also named lab-ca: the message says it is the same name with another key."""
    result = run_cli("revoke", "--dir", str(lab_pki.directory), "--cert", str(other_pki.client_cert))
    assert result.returncode == 2
    assert "same name, different key" in result.stderr and "Traceback" not in result.stderr
    assert not lab_pki.crl.exists()


# -- a revoked intermediate: what a leaf check misses, what a chain check needs -------


@pytest.fixture
def revoked_intermediate(lab_pki: LabPaths, tmp_path: Path) -> dict[str, Path]:
    """The lab CA (the root) revokes its intermediate; dave's certificate comes from that intermediate.

    Returns the files: dave's chain and key, the root's CRL (which lists the
    intermediate), the intermediate's own CRL (empty: dave is not revoked),
    and the same root CRL before the revocation (empty), for the twin.
    """
    root = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    intermediate = root.create_intermediate("lab-issuing-ca", path_length=0)
    dave = intermediate.issue_client_certificate("dave")
    folder = tmp_path / "chain"
    folder.mkdir()
    save_crl(root.create_crl([]), folder / "root-before.crl")
    return {
        "chain": save_chain([dave.certificate, intermediate.certificate], folder / "dave-chain.crt"),
        "key": save_private_key(dave.private_key, folder / "dave.key"),
        "root_crl": save_crl(root.create_crl([intermediate.certificate]), folder / "root.crl"),
        "root_crl_before": folder / "root-before.crl",
        "intermediate_crl": save_crl(intermediate.create_crl([]), folder / "intermediate.crl"),
    }


def as_dave(lab_pki: LabPaths, files: dict[str, Path], **crl_options: Any) -> Outcome:
    """dave presents his chain to a lab server built with these CRL options: the outcome, both sides."""
    context = build_server_context(lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert, **crl_options)
    with MTLSServer(context, name=None) as server:
        return attempt(
            server.url,
            ca_file=lab_pki.ca_cert,
            cert_file=files["chain"],
            key_file=files["key"],
            server=server,
        )


def test_a_leaf_check_lets_in_a_client_of_a_revoked_intermediate(
    lab_pki: LabPaths, revoked_intermediate: dict
) -> None:
    files = revoked_intermediate
    dave = as_dave(
        lab_pki, files, crl_file=[files["root_crl"], files["intermediate_crl"]]
    )  # revocation="leaf"
    assert dave.ok and dave.body == "Hello, dave\n"  # the root's CRL lists his CA, and nobody looks


def test_a_chain_check_with_both_crls_refuses_it(lab_pki: LabPaths, revoked_intermediate: dict) -> None:
    files = revoked_intermediate
    dave = as_dave(
        lab_pki, files, crl_file=[files["root_crl"], files["intermediate_crl"]], revocation="chain"
    )
    assert dave.failed_with(requests.exceptions.ConnectionError)
    assert dave.server_reason == "certificate revoked"
    assert explain(dave.server_reason).key == "client-certificate-revoked"


def test_a_chain_check_lets_in_a_client_whose_cas_are_not_revoked(
    lab_pki: LabPaths, revoked_intermediate: dict
) -> None:
    """The negative twin: the same chain check, with the root's CRL from before the revocation."""
    files = revoked_intermediate
    dave = as_dave(
        lab_pki, files, crl_file=[files["root_crl_before"], files["intermediate_crl"]], revocation="chain"
    )
    assert dave.ok and dave.body == "Hello, dave\n"


@pytest.mark.parametrize("loaded", ["intermediate_crl", "root_crl"])
def test_a_chain_check_missing_one_crl_fails_closed(
    lab_pki: LabPaths, revoked_intermediate: dict, loaded: str
) -> None:
    """Without the root's CRL the intermediate cannot be checked, without the intermediate's dave cannot."""
    dave = as_dave(lab_pki, revoked_intermediate, crl_file=revoked_intermediate[loaded], revocation="chain")
    assert dave.failed_with(requests.exceptions.ConnectionError)
    assert dave.server_reason == "unable to get certificate CRL"
    assert explain(dave.server_reason).key == "crl-missing"


def test_the_chain_check_sets_the_chain_flag_and_the_default_stays_the_leaf(lab_pki: LabPaths) -> None:
    ca = load_certificate_authority(lab_pki.ca_cert, lab_pki.ca_key)
    crl = save_crl(ca.create_crl([]), lab_pki.crl)
    files = (lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    leaf = build_server_context(*files, crl_file=crl)
    chain = build_server_context(*files, crl_file=[crl], revocation="chain")
    assert leaf.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN == ssl.VERIFY_CRL_CHECK_LEAF
    assert chain.verify_flags & ssl.VERIFY_CRL_CHECK_CHAIN == ssl.VERIFY_CRL_CHECK_CHAIN
    assert not build_server_context(*files).verify_flags & ssl.VERIFY_CRL_CHECK_LEAF  # no CRL, no check


def test_a_chain_check_without_crls_or_an_unknown_check_is_refused_with_words(lab_pki: LabPaths) -> None:
    files = (lab_pki.server_cert, lab_pki.server_key, lab_pki.ca_cert)
    with pytest.raises(LabError, match=r"needs their CRLs: pass crl_file=\[the root's CRL"):
        build_server_context(*files, revocation="chain")
    with pytest.raises(LabError, match=r"use 'leaf' .* or 'chain'"):
        build_server_context(*files, crl_file=lab_pki.ca_cert, revocation="all")  # type: ignore[arg-type]
