"""The checks of notebook 09's exercises: quiet until attempted, pass a right answer, say what a wrong one misses."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from exercise_checks import NOT_ATTEMPTED, missing, strict

from lab_helpers import (
    CertificateAuthority,
    IssuedCertificate,
    MTLSServer,
    build_server_context,
    check,
    save_certificate,
    save_chain,
    save_private_key,
)

pytestmark = pytest.mark.usefixtures("lenient_checks")


@pytest.fixture
def root() -> CertificateAuthority:
    """The notebook's lab-root-ca (its key unlocked, as the exercises do)."""
    return CertificateAuthority.create_root("lab-root-ca")


@pytest.fixture
def issuing_ca(root: CertificateAuthority) -> CertificateAuthority:
    """The notebook's lab-issuing-ca: pathlen:0, issues the server's and alice's certificates."""
    return root.create_intermediate("lab-issuing-ca", path_length=0)


# -- 9.1 A second intermediate -------------------------------------------------------------


def deep_files(
    root: CertificateAuthority,
    folder: Path,
    *,
    upper: int | None = 1,
    lower: int | None = 0,
    order: str = "right",
    with_root: bool = False,
) -> tuple[Path, Path]:
    policy_ca = root.create_intermediate("lab-policy-ca", path_length=upper)
    issuing_ca_2 = policy_ca.create_intermediate("lab-issuing-ca-2", path_length=lower)
    leaf = issuing_ca_2.issue_server_certificate()
    chain = [leaf.certificate, *leaf.chain]  # leaf, lab-issuing-ca-2, lab-policy-ca
    if order == "swapped":
        chain = [chain[0], chain[2], chain[1]]
    elif order == "leaf only":
        chain = chain[:1]
    elif order == "one intermediate":
        chain = chain[:2]
    if with_root:
        chain.append(root.certificate)
    return save_chain(chain, folder / "deep-chain.crt"), save_private_key(
        leaf.private_key, folder / "deep.key"
    )


def test_9_1_not_attempted(root: CertificateAuthority) -> None:
    assert check.exercise_09_1(None, None, root_certificate=root.certificate).status == NOT_ATTEMPTED


def test_9_1_the_right_chain_passes_through_a_real_server(root: CertificateAuthority, tmp_path: Path) -> None:
    result = check.exercise_09_1(*deep_files(root, tmp_path), root_certificate=root.certificate)
    assert result.passed, result
    assert any("trusts only lab-root-ca accepted it" in text for ok, text in result.points if ok)


def test_9_1_pathlen_zero_above_is_refused_by_verify_chain(
    root: CertificateAuthority, tmp_path: Path
) -> None:
    result = check.exercise_09_1(*deep_files(root, tmp_path, upper=0), root_certificate=root.certificate)
    assert not result.passed
    assert (
        "lab-policy-ca has pathlen:0, so it may sign no CA at all: how many CAs must follow it in your chain?"
        in missing(result)
    )
    assert not any("path_length=1" in text for text in missing(result))  # a question, not the value
    assert any(text.startswith("verify_chain refuses it: ") for text in missing(result))
    assert any("not tried until verify_chain accepts it" in text for text in missing(result))


def test_9_1_no_limit_works_but_allows_too_much(root: CertificateAuthority, tmp_path: Path) -> None:
    result = check.exercise_09_1(*deep_files(root, tmp_path, upper=None), root_certificate=root.certificate)
    assert missing(result) == [
        "lab-policy-ca has no path length limit: that allows more CAs below it than this chain needs; "
        "how many CAs follow it in your chain?"
    ]


def test_9_1_an_issuing_ca_that_could_create_a_ca_is_asked_a_question(
    root: CertificateAuthority, tmp_path: Path
) -> None:
    result = check.exercise_09_1(*deep_files(root, tmp_path, lower=1), root_certificate=root.certificate)
    assert missing(result) == [
        "lab-issuing-ca-2 has pathlen:1: its key could still create a CA below it; how many CAs does a CA that signs "
        "leaves only need below it?"
    ]


def test_9_1_a_leaf_alone_and_a_root_in_the_file(root: CertificateAuthority, tmp_path: Path) -> None:
    leaf_only = check.exercise_09_1(
        *deep_files(root, tmp_path, order="leaf only"), root_certificate=root.certificate
    )
    assert (
        "localhost was signed by lab-issuing-ca-2, which is not in the file: a client that trusts only "
        "lab-root-ca needs every CA between your leaf and the root"
    ) in missing(leaf_only)
    assert not any("not in order" in text for text in missing(leaf_only))  # the old false lead
    with_root = check.exercise_09_1(
        *deep_files(root, tmp_path, with_root=True), root_certificate=root.certificate
    )
    assert (
        "the file holds lab-root-ca too: leave it out (a root received from the peer proves nothing)"
        in missing(with_root)
    )


def test_9_1_the_leaf_and_its_issuer_alone_name_the_missing_ca(
    root: CertificateAuthority, tmp_path: Path
) -> None:
    """The learner's file: leaf + lab-issuing-ca-2. The check names the CA that is missing, not an order problem."""
    files = deep_files(root, tmp_path, order="one intermediate")
    result = check.exercise_09_1(*files, root_certificate=root.certificate)
    assert missing(result)[0] == (
        "lab-issuing-ca-2 was signed by lab-policy-ca, which is not in the file: a client that trusts only "
        "lab-root-ca needs every CA between your leaf and the root"
    )


def test_9_1_certificates_out_of_order(root: CertificateAuthority, tmp_path: Path) -> None:
    result = check.exercise_09_1(
        *deep_files(root, tmp_path, order="swapped"), root_certificate=root.certificate
    )
    assert (
        "localhost is followed by lab-policy-ca, but was signed by lab-issuing-ca-2: each certificate must be "
        "followed by the CA that signed it"
    ) in missing(result)


def test_9_1_files_that_do_not_exist(root: CertificateAuthority, tmp_path: Path) -> None:
    result = check.exercise_09_1(
        tmp_path / "nowhere.crt", tmp_path / "nowhere.key", root_certificate=root.certificate
    )
    assert any("does not exist" in text for text in missing(result))


def test_9_1_strict_mode_raises(
    root: CertificateAuthority, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = deep_files(root, tmp_path, lower=None)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_09_1(*files, root_certificate=root.certificate)


# -- 9.2 Three CAs below the root -------------------------------------------------------------


def alice_under(root: CertificateAuthority, path_lengths: list[int | None]) -> IssuedCertificate:
    ca = root
    for level, path_length in zip(("region", "department", "team"), path_lengths):
        ca = ca.create_intermediate(f"lab-{level}-ca", path_length=path_length)
    return ca.issue_client_certificate("alice")


def test_9_2_not_attempted(root: CertificateAuthority) -> None:
    assert check.exercise_09_2(None, root_certificate=root.certificate).status == NOT_ATTEMPTED


def test_9_2_the_smallest_path_lengths_pass_and_alice_is_greeted(root: CertificateAuthority) -> None:
    result = check.exercise_09_2(alice_under(root, [2, 1, 0]), root_certificate=root.certificate)
    assert result.passed, result
    assert "lab-region-ca has pathlen:2, the smallest: with 1 verify_chain refuses the chain" in [
        text for ok, text in result.points if ok
    ]
    assert any("was greeted 'Hello, alice'" in text for ok, text in result.points if ok)


def test_9_2_a_path_length_larger_than_needed(root: CertificateAuthority) -> None:
    result = check.exercise_09_2(alice_under(root, [3, 1, 0]), root_certificate=root.certificate)
    assert missing(result) == [
        "lab-region-ca has pathlen:3, more than needed: verify_chain still accepts the chain with a smaller one. "
        "How many CAs follow lab-region-ca in this chain?"
    ]  # a question, not "with 2 the chain still verifies"


def test_9_2_no_limit_is_not_the_smallest(root: CertificateAuthority) -> None:
    result = check.exercise_09_2(alice_under(root, [2, 1, None]), root_certificate=root.certificate)
    assert any(text.startswith("lab-team-ca has no path length limit") for text in missing(result))


def test_9_2_path_lengths_too_small_name_the_ca_where_the_chain_breaks(root: CertificateAuthority) -> None:
    result = check.exercise_09_2(alice_under(root, [1, 0, 0]), root_certificate=root.certificate)
    assert any(text.startswith("verify_chain refuses the chain: ") for text in missing(result))
    assert (
        "lab-region-ca has pathlen:1, and the chain breaks there, so verify_chain refuses it: "
        "how many CAs follow lab-region-ca in this chain?" in missing(result)
    )
    assert (
        "lab-department-ca has pathlen:0, and the chain breaks there, so verify_chain refuses it: "
        "how many CAs follow lab-department-ca in this chain?" in missing(result)
    )
    assert not any("lab-department-ca has pathlen:0, the smallest" in text for _, text in result.points)
    assert not any("greeted" in text for _, text in result.points)  # no request with a broken chain


def test_9_2_counting_the_leaf_is_named(root: CertificateAuthority) -> None:
    """The plausible mistake: a path length that counts the leaf too, so every value is one too many."""
    result = check.exercise_09_2(alice_under(root, [3, 2, 1]), root_certificate=root.certificate)
    assert (
        "lab-team-ca has pathlen:1, more than needed: verify_chain still accepts the chain with a smaller "
        "one. How many CAs follow lab-team-ca in this chain? (a path length counts the CAs that may follow, "
        "never the leaf)" in missing(result)
    )
    assert len(missing(result)) == 3  # each of the three CAs, one too many


def test_9_2_two_cas_are_not_three(root: CertificateAuthority) -> None:
    result = check.exercise_09_2(alice_under(root, [1, 0]), root_certificate=root.certificate)
    assert any("build three" in text for text in missing(result))


def test_9_2_another_root(root: CertificateAuthority) -> None:
    other = alice_under(CertificateAuthority.create_root("lab-root-ca"), [2, 1, 0])  # same name, another key
    result = check.exercise_09_2(other, root_certificate=root.certificate)
    assert any(text.startswith("the chain does not lead to lab-root-ca") for text in missing(result))


def test_9_2_a_certificate_alone_is_not_enough(root: CertificateAuthority) -> None:
    result = check.exercise_09_2(alice_under(root, [2, 1, 0]).certificate, root_certificate=root.certificate)
    assert missing(result)[0].startswith("three_cas_alice should be what issue_client_certificate returns")


def test_9_2_strict_mode_raises(root: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    issued = alice_under(root, [5, 1, 0])
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_09_2(issued, root_certificate=root.certificate)


# -- 9.3 CAs for both, under one root -------------------------------------------------------


@pytest.fixture
def started() -> Iterator[list[MTLSServer]]:
    """Servers a test starts; each is stopped at teardown."""
    servers: list[MTLSServer] = []
    yield servers
    for server in servers:
        server.stop()


def split_server(
    started: list[MTLSServer],
    folder: Path,
    issuing_ca: CertificateAuthority,
    trusted: x509.Certificate,
    *,
    partial_chain: bool = True,
) -> MTLSServer:
    """A server with a certificate from lab-issuing-ca (sent with its chain) that trusts `trusted` for clients."""
    leaf = issuing_ca.issue_server_certificate()
    chain = save_chain([leaf.certificate, *leaf.chain], folder / "server-chain.crt")
    key = save_private_key(leaf.private_key, folder / "server.key")
    context = build_server_context(chain, key, save_certificate(trusted, folder / "trusted.crt"))
    if partial_chain:
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    server = MTLSServer(context, name=None, handshake_timeout=2.0).start()
    started.append(server)
    return server


def test_9_3_not_attempted(root: CertificateAuthority, issuing_ca: CertificateAuthority) -> None:
    result = check.exercise_09_3(None, None, root_certificate=root.certificate, server_issuing_ca=issuing_ca)
    assert result.status == NOT_ATTEMPTED


def test_9_3_a_server_that_trusts_only_the_client_ca_passes(
    root: CertificateAuthority, issuing_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    client_ca = root.create_intermediate("lab-client-issuing-ca", path_length=0)
    server = split_server(started, tmp_path, issuing_ca, client_ca.certificate)
    result = check.exercise_09_3(
        server, client_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
    )
    assert result.passed, result
    assert any(
        text.startswith("alice, issued by lab-issuing-ca, was refused") for ok, text in result.points if ok
    )


def test_9_3_a_server_that_trusts_the_root_lets_alice_in(
    root: CertificateAuthority, issuing_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    client_ca = root.create_intermediate("lab-client-issuing-ca", path_length=0)
    server = split_server(started, tmp_path, issuing_ca, root.certificate, partial_chain=False)
    result = check.exercise_09_3(
        server, client_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
    )
    assert missing(result) == [
        "alice, issued by lab-issuing-ca, got in: the server trusts more than the client CA (the root?); "
        "give it the client CA's certificate alone"
    ]


def test_9_3_without_partial_chain_nobody_gets_in(
    root: CertificateAuthority, issuing_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    client_ca = root.create_intermediate("lab-client-issuing-ca", path_length=0)
    server = split_server(started, tmp_path, issuing_ca, client_ca.certificate, partial_chain=False)
    result = check.exercise_09_3(
        server, client_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
    )
    [problem] = [text for text in missing(result) if text.startswith("your server refused dana")]
    assert "under which a path must end at a self-signed root, and your client CA is not one" in problem
    assert problem.endswith("set ssl.VERIFY_X509_PARTIAL_CHAIN in the context's verify_flags")


def test_9_3_a_leaf_only_server_does_not_tick_what_never_happened(
    root: CertificateAuthority, issuing_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    """The server sends its leaf alone: every client refuses it, so alice's certificate was never judged."""
    client_ca = root.create_intermediate("lab-client-issuing-ca", path_length=0)
    leaf = issuing_ca.issue_server_certificate()
    context = build_server_context(
        save_certificate(leaf.certificate, tmp_path / "server.crt"),
        save_private_key(leaf.private_key, tmp_path / "server.key"),
        save_certificate(client_ca.certificate, tmp_path / "client-ca.crt"),
    )
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    server = MTLSServer(context, name=None, handshake_timeout=2.0).start()
    started.append(server)
    result = check.exercise_09_3(
        server, client_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
    )
    assert not any(
        ok and text.startswith("alice, issued by lab-issuing-ca, was refused") for ok, text in result.points
    )
    assert (
        "not tested: alice refused your server first (TLSV1_ALERT_UNKNOWN_CA), so it never judged her certificate"
        in missing(result)
    )


def test_9_3_the_server_issuing_ca_is_not_a_client_ca(
    root: CertificateAuthority, issuing_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    server = split_server(started, tmp_path, issuing_ca, issuing_ca.certificate)
    result = check.exercise_09_3(
        server, issuing_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
    )
    assert "client_issuing_ca is lab-issuing-ca itself: create a new intermediate for the clients" in missing(
        result
    )
    assert not any(
        "it issues client certificates only" in text for _, text in result.points
    )  # no tick beside it


def test_9_3_a_stopped_server(
    root: CertificateAuthority, issuing_ca: CertificateAuthority, started: list[MTLSServer], tmp_path: Path
) -> None:
    client_ca = root.create_intermediate("lab-client-issuing-ca", path_length=0)
    server = split_server(started, tmp_path, issuing_ca, client_ca.certificate)
    server.stop()
    result = check.exercise_09_3(
        server, client_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
    )
    assert missing(result) == [
        "split_server is not running: start() it, and keep it running until the check has run"
    ]


def test_9_3_strict_mode_raises(
    root: CertificateAuthority,
    issuing_ca: CertificateAuthority,
    started: list[MTLSServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client_ca = root.create_intermediate("lab-client-issuing-ca", path_length=0)
    server = split_server(started, tmp_path, issuing_ca, root.certificate, partial_chain=False)
    strict(monkeypatch)
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_09_3(
            server, client_ca, root_certificate=root.certificate, server_issuing_ca=issuing_ca
        )
