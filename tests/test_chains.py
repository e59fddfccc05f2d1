"""Chains: intermediates sent or not, path length, separate client and server CAs, offline verification."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from lab_helpers import (
    CertificateAuthority,
    IssuedCertificate,
    KeyPasswordError,
    MTLSServer,
    attempt,
    build_server_context,
    create_csr,
    create_seed_pki,
    explain,
    generate_private_key,
    load_certificate_authority,
    save_certificate,
    save_private_key,
    verify_chain,
    write_atomic,
)


class Chains:
    """A root, an intermediate (path length 0) and leaves it issued, saved in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = CertificateAuthority.create_root("lab-root")
        self.intermediate = self.root.create_intermediate("lab-intermediate")
        self.root_file = save_certificate(self.root.certificate, folder / "root.crt")

    def save(self, name: str, issued: IssuedCertificate, *, with_chain: bool) -> tuple[Path, Path]:
        cert = folder_file = self.folder / f"{name}.crt"
        write_atomic(folder_file, issued.chain_pem if with_chain else issued.cert_pem)
        key = save_private_key(issued.private_key, self.folder / f"{name}.key")
        return cert, key


@pytest.fixture
def chains(tmp_path: Path) -> Chains:
    return Chains(tmp_path)


def serve(cert: Path, key: Path, trusted: Path) -> MTLSServer:
    return MTLSServer(build_server_context(cert, key, trusted), name=None).start()


@pytest.fixture
def chain_server(chains: Chains) -> Iterator[MTLSServer]:
    """Sends leaf + intermediate; trusts the root for clients."""
    cert, key = chains.save("server", chains.intermediate.issue_server_certificate(), with_chain=True)
    with serve(cert, key, chains.root_file) as server:
        yield server


def test_the_intermediate_is_a_ca_limited_to_signing_leaves(chains: Chains) -> None:
    certificate = chains.intermediate.certificate
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert (
        usage.critical
        and usage.value.key_cert_sign
        and usage.value.crl_sign
        and not usage.value.digital_signature
    )
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    root_ski = chains.root.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == root_ski.digest
    certificate.verify_directly_issued_by(chains.root.certificate)
    assert chains.intermediate.chain == (certificate,) and chains.root.chain == ()


def test_a_server_sending_its_chain_is_trusted_by_a_client_that_knows_only_the_root(
    chains: Chains, chain_server: MTLSServer
) -> None:
    cert, key = chains.save("alice", chains.intermediate.issue_client_certificate("alice"), with_chain=True)
    outcome = attempt(chain_server.url, ca_file=chains.root_file, cert_file=cert, key_file=key)
    assert outcome.ok and outcome.body == "Hello, alice\n"


def test_a_server_that_does_not_send_its_intermediate_is_not_trusted(chains: Chains) -> None:
    cert, key = chains.save(
        "server-leaf-only", chains.intermediate.issue_server_certificate(), with_chain=False
    )
    alice = chains.save("alice", chains.intermediate.issue_client_certificate("alice"), with_chain=True)
    with serve(cert, key, chains.root_file) as server:
        outcome = attempt(
            server.url, ca_file=chains.root_file, cert_file=alice[0], key_file=alice[1], server=server
        )
    assert outcome.failed_with(requests.exceptions.SSLError)
    assert outcome.reason == "server certificate rejected: unable to get local issuer certificate"
    assert explain(outcome.error).key == "server-ca-not-trusted"  # type: ignore[arg-type]


def test_a_client_that_does_not_send_its_intermediate_is_rejected(
    chains: Chains, chain_server: MTLSServer
) -> None:
    cert, key = chains.save(
        "alice-leaf-only", chains.intermediate.issue_client_certificate("alice"), with_chain=False
    )
    outcome = attempt(
        chain_server.url, ca_file=chains.root_file, cert_file=cert, key_file=key, server=chain_server
    )
    assert outcome.failed_with(requests.exceptions.ConnectionError)
    assert outcome.server_reason == "unable to get local issuer certificate"


def test_an_intermediate_with_path_length_0_cannot_make_a_sub_ca(chains: Chains) -> None:
    sub_ca = chains.intermediate.create_intermediate("rogue-sub-ca")
    issued = sub_ca.issue_server_certificate()
    assert len(issued.chain) == 2  # sub-CA, intermediate
    verdict = verify_chain(
        issued.certificate, roots=[chains.root.certificate], intermediates=issued.chain, name="localhost"
    )
    assert not verdict.ok and "path length" in (verdict.error or "")
    cert, key = chains.save("server-under-sub-ca", issued, with_chain=True)
    alice = chains.save("alice", chains.intermediate.issue_client_certificate("alice"), with_chain=True)
    with serve(cert, key, chains.root_file) as server:
        outcome = attempt(
            server.url, ca_file=chains.root_file, cert_file=alice[0], key_file=alice[1], server=server
        )
    assert outcome.failed_with(requests.exceptions.SSLError)
    assert outcome.reason == "server certificate rejected: path length constraint exceeded"
    assert explain(outcome.error).key == "server-chain-invalid"  # type: ignore[arg-type]


def test_verify_chain_accepts_the_chain_and_refuses_it_without_the_intermediate(chains: Chains) -> None:
    issued = chains.intermediate.issue_server_certificate()
    roots = [chains.root.certificate]
    good = verify_chain(issued.certificate, roots=roots, intermediates=issued.chain, name="localhost")
    assert good.ok and good.chain == (
        issued.certificate,
        chains.intermediate.certificate,
        chains.root.certificate,
    )
    assert not verify_chain(issued.certificate, roots=roots, name="localhost").ok
    assert not verify_chain(
        issued.certificate, roots=roots, intermediates=issued.chain, name="example.com"
    ).ok
    assert not verify_chain(issued.certificate, roots=roots, intermediates=issued.chain, purpose="client").ok


def test_a_client_certificate_without_san_passes_openssl_but_not_the_web_pki_verifier(chains: Chains) -> None:
    """The difference notebook 09 shows: OpenSSL does not ask a client certificate for a SAN; cryptography does."""
    key = generate_private_key()
    no_san = chains.intermediate.sign_csr(create_csr(key, "alice"), profile="client", names=[])
    with pytest.raises(x509.ExtensionNotFound):
        no_san.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    verdict = verify_chain(
        no_san, roots=[chains.root.certificate], intermediates=chains.intermediate.chain, purpose="client"
    )
    assert not verdict.ok
    cert = chains.folder / "alice-no-san.crt"
    write_atomic(
        cert,
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (no_san, *chains.intermediate.chain)),
    )
    key_file = save_private_key(key, chains.folder / "alice-no-san.key")
    server_cert, server_key = chains.save(
        "server", chains.intermediate.issue_server_certificate(), with_chain=True
    )
    with serve(server_cert, server_key, chains.root_file) as server:
        outcome = attempt(server.url, ca_file=chains.root_file, cert_file=cert, key_file=key_file)
    assert outcome.ok and outcome.body == "Hello, alice\n"  # OpenSSL, during the handshake, lets it in


@pytest.fixture
def separate_cas(tmp_path: Path) -> dict[str, Path]:
    """One CA issues server certificates, another issues client certificates."""
    server_ca, client_ca = (
        CertificateAuthority.create_root("server-ca"),
        CertificateAuthority.create_root("client-ca"),
    )
    files = {
        "server_ca": save_certificate(server_ca.certificate, tmp_path / "server-ca.crt"),
        "client_ca": save_certificate(client_ca.certificate, tmp_path / "client-ca.crt"),
    }
    server, client = server_ca.issue_server_certificate(), client_ca.issue_client_certificate("alice")
    for name, issued in (("server", server), ("client", client)):
        files[f"{name}_cert"] = save_certificate(issued.certificate, tmp_path / f"{name}.crt")
        files[f"{name}_key"] = save_private_key(issued.private_key, tmp_path / f"{name}.key")
    return files


def test_separate_cas_each_side_trusting_only_the_ca_it_needs(separate_cas: dict[str, Path]) -> None:
    f = separate_cas
    with serve(f["server_cert"], f["server_key"], f["client_ca"]) as server:
        outcome = attempt(
            server.url, ca_file=f["server_ca"], cert_file=f["client_cert"], key_file=f["client_key"]
        )
    assert outcome.ok and outcome.body == "Hello, alice\n"


def test_separate_cas_crossed_by_mistake_fail_on_each_side(separate_cas: dict[str, Path]) -> None:
    f = separate_cas
    with serve(f["server_cert"], f["server_key"], f["client_ca"]) as server:
        client_trusts_wrong = attempt(
            server.url,
            ca_file=f["client_ca"],
            cert_file=f["client_cert"],
            key_file=f["client_key"],
            server=server,
        )
    assert explain(client_trusts_wrong.error).key == "server-ca-not-trusted"  # type: ignore[arg-type]
    with serve(f["server_cert"], f["server_key"], f["server_ca"]) as server:
        server_trusts_wrong = attempt(
            server.url,
            ca_file=f["server_ca"],
            cert_file=f["client_cert"],
            key_file=f["client_key"],
            server=server,
        )
    assert server_trusts_wrong.server_reason == "unable to get local issuer certificate"


def test_an_encrypted_root_key_needs_its_passphrase(chains: Chains) -> None:
    key_file = save_private_key(
        chains.root.private_key, chains.folder / "root.key", password=b"correct horse"
    )
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    loaded = load_certificate_authority(chains.root_file, key_file, password=b"correct horse")
    assert loaded.certificate == chains.root.certificate
    for wrong in (None, b"battery staple"):
        with pytest.raises(KeyPasswordError):
            load_certificate_authority(chains.root_file, key_file, password=wrong)


def test_pki_intermediate_files_verify_with_openssl_and_serve(tmp_path: Path) -> None:
    paths = create_seed_pki(tmp_path / "lab", intermediate=True)
    for path in paths.all() + paths.intermediate_files():
        assert path.exists(), path.name
    assert len(x509.load_pem_x509_certificates(paths.server_chain.read_bytes())) == 2
    with serve(paths.server_cert_to_send, paths.server_key, paths.ca_cert) as server:
        outcome = attempt(
            server.url, ca_file=paths.ca_cert, cert_file=paths.client_chain, key_file=paths.client_key
        )
    assert outcome.ok
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed: the openssl verify half of this test is skipped")
    for leaf, purpose in ((paths.server_cert, "sslserver"), (paths.client_cert, "sslclient")):
        base = [openssl, "verify", "-x509_strict", "-purpose", purpose, "-CAfile", str(paths.ca_cert)]
        ok = subprocess.run(
            [*base, "-untrusted", str(paths.intermediate_cert), str(leaf)], capture_output=True, timeout=30
        )
        assert ok.returncode == 0, ok.stderr
        missing = subprocess.run([*base, str(leaf)], capture_output=True, timeout=30)
        assert missing.returncode != 0  # without the intermediate there is no path
