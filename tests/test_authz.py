"""AccessPolicy: allow, deny, deny by default, unknown identity, and the CN-versus-URI lesson."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import pytest

from lab_helpers import (
    ANY_CLIENT,
    AccessPolicy,
    CatalogLab,
    LabError,
    MTLSServer,
    attempt,
    build_server_context,
    identity_from_certificate,
)

ALICE = "spiffe://lab.example/user/alice"


@pytest.fixture(scope="module")
def lab() -> Iterator[CatalogLab]:
    with CatalogLab() as lab:
        yield lab


@pytest.fixture(scope="module")
def people(lab: CatalogLab) -> dict:
    """alice and bob from the lab CA; an impostor "alice" from a second CA; a client with only an email."""
    return {
        "alice": lab.ca.issue_client_certificate("alice"),
        "bob": lab.ca.issue_client_certificate("bob"),
        "impostor": lab.other_ca.issue_client_certificate("alice"),
        "email-only": lab.ca.issue_client_certificate("carol", names=["carol@lab.example"]),
    }


def identity(people: dict, who: str):  # type: ignore[no-untyped-def]
    return identity_from_certificate(people[who].certificate)


def test_alice_may_read_admin_and_bob_may_not(people: dict) -> None:
    policy = AccessPolicy().allow("/", ANY_CLIENT).allow("/admin", ALICE)
    assert policy.decide(identity(people, "alice"), "/admin").allowed
    denied = policy.decide(identity(people, "bob"), "/admin")
    assert not denied.allowed and denied.rule == "/admin" and "may not access" in denied.reason
    assert policy.decide(identity(people, "bob"), "/").allowed


def test_paths_without_a_rule_are_denied_by_default(people: dict) -> None:
    policy = AccessPolicy().allow("/admin", ALICE)
    decision = policy.decide(identity(people, "alice"), "/reports")
    assert not decision.allowed and decision.rule is None


def test_a_prefix_covers_its_subpaths_but_not_longer_names(people: dict) -> None:
    policy = AccessPolicy().allow("/admin", ALICE)
    assert policy.decide(identity(people, "alice"), "/admin/users?page=2").allowed
    assert not policy.decide(identity(people, "alice"), "/administrator").allowed


def test_a_client_without_the_policys_kind_of_identity_is_denied(people: dict) -> None:
    policy = AccessPolicy(identify_by="uri").allow("/", "mailto:carol@lab.example", ALICE)
    decision = policy.decide(identity(people, "email-only"), "/")
    assert not decision.allowed and decision.identity is None
    assert "no SubjectAltName URI" in decision.reason


def test_matching_on_common_name_lets_another_trusted_ca_impersonate(people: dict) -> None:
    policy = AccessPolicy(identify_by="common_name").allow("/admin", "alice")
    assert policy.decide(identity(people, "impostor"), "/admin").allowed  # the danger, demonstrated


def test_a_uri_alone_does_not_stop_the_impostor_but_a_trust_domain_does(
    lab: CatalogLab, people: dict
) -> None:
    open_policy = AccessPolicy().allow("/admin", ALICE)
    assert open_policy.decide(identity(people, "impostor"), "/admin").allowed
    bound = AccessPolicy().allow("/admin", ALICE).trust_domain("lab.example", lab.ca.certificate)
    refused = bound.decide(identity(people, "impostor"), "/admin")
    assert not refused.allowed and "does not speak for" in refused.reason
    assert bound.decide(identity(people, "alice"), "/admin").allowed


def test_a_pinned_fingerprint_admits_one_certificate_and_not_its_renewal(
    lab: CatalogLab, people: dict
) -> None:
    alice = identity(people, "alice")
    policy = AccessPolicy(identify_by="fingerprint").allow("/", alice.fingerprint)
    assert policy.decide(alice, "/").allowed
    renewed = identity_from_certificate(lab.ca.issue_client_certificate("alice").certificate)
    assert not policy.decide(renewed, "/").allowed


@pytest.mark.parametrize(
    "bad",
    [
        lambda: AccessPolicy(identify_by="email"),
        lambda: AccessPolicy().allow("admin", ALICE),
        lambda: AccessPolicy().allow("/a/../b", ALICE),
        lambda: AccessPolicy().allow("/x"),
    ],
)
def test_bad_rules_are_refused_with_a_message(bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LabError):
        bad()


@pytest.fixture
def policy_server(lab: CatalogLab) -> Iterator[MTLSServer]:
    context = build_server_context(*lab.server, lab.ca_file)
    policy = AccessPolicy().allow("/", ANY_CLIENT).allow("/admin", ALICE)
    with MTLSServer(context, name=None, policy=policy) as server:
        yield server


def _get(server: MTLSServer, lab: CatalogLab, who: str, path: str, tmp_path, people: dict):  # type: ignore[no-untyped-def]
    from lab_helpers import save_certificate, save_private_key

    cert, key = tmp_path / f"{who}.crt", tmp_path / f"{who}.key"
    save_certificate(people[who].certificate, cert)
    save_private_key(people[who].private_key, key)
    return attempt(server.url + path.lstrip("/"), ca_file=lab.ca_file, cert_file=cert, key_file=key)


def test_the_server_enforces_the_policy_end_to_end(
    policy_server: MTLSServer, lab: CatalogLab, people: dict, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    allowed = _get(policy_server, lab, "alice", "/admin", tmp_path, people)
    assert allowed.status == 200 and allowed.body == "Hello, alice: welcome to /admin\n"
    denied = _get(policy_server, lab, "bob", "/admin", tmp_path, people)
    assert denied.status == 403 and "may not access /admin" in (denied.body or "")
    assert _get(policy_server, lab, "bob", "/", tmp_path, people).status == 200
    assert [d.allowed for d in policy_server.decisions] == [True, False, True]


def test_a_server_without_a_policy_lets_every_authenticated_client_read_everything(
    lab: CatalogLab, people: dict, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    context = build_server_context(*lab.server, lab.ca_file)
    with MTLSServer(context, name=None) as server:
        assert _get(server, lab, "bob", "/admin", tmp_path, people).status == 200


@pytest.mark.parametrize(
    "target", ["//admin/users", "/x/../admin", "/./admin", "/admin;x", "/%2e%2e/admin", "/a//b"]
)
def test_ambiguous_paths_are_refused_not_guessed(people: dict, target: str) -> None:
    policy = AccessPolicy().allow("/", ANY_CLIENT).allow("/admin", ALICE)
    decision = policy.decide(identity(people, "bob"), target)
    assert not decision.allowed and "ambiguous" in decision.reason


def test_percent_encoding_is_decoded_before_the_rules_apply(people: dict) -> None:
    policy = AccessPolicy().allow("/", ANY_CLIENT).allow("/admin", ALICE)
    assert not policy.decide(identity(people, "bob"), "/%61dmin").allowed  # %61 is "a": this is /admin
    assert policy.decide(identity(people, "alice"), "/%61dmin").allowed


def test_an_exact_rule_covers_one_path_only(people: dict) -> None:
    policy = AccessPolicy().allow("/", ANY_CLIENT, exact=True).allow("/admin", ALICE)
    assert policy.decide(identity(people, "bob"), "/").allowed
    assert not policy.decide(identity(people, "bob"), "/reports").allowed  # not under an exact "/"


def test_with_trust_domains_a_non_spiffe_uri_is_not_an_identity(lab: CatalogLab) -> None:
    other = identity_from_certificate(
        lab.ca.issue_client_certificate("dave", names=["https://dave.example"]).certificate
    )
    policy = AccessPolicy().allow("/", "https://dave.example").trust_domain("lab.example", lab.ca.certificate)
    decision = policy.decide(other, "/")
    assert not decision.allowed and "not a spiffe" in decision.reason


def test_a_certificate_with_two_uris_is_not_an_identity(lab: CatalogLab) -> None:
    two = identity_from_certificate(
        lab.ca.issue_client_certificate("eve", names=[ALICE, "spiffe://lab.example/user/eve"]).certificate
    )
    decision = AccessPolicy().allow("/", ALICE).decide(two, "/")
    assert not decision.allowed and "exactly one" in decision.reason


def test_the_server_answers_400_to_an_ambiguous_path(
    policy_server: MTLSServer, lab: CatalogLab, people: dict, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from lab_helpers import save_certificate, save_private_key

    cert = save_certificate(people["bob"].certificate, tmp_path / "bob.crt")
    key = save_private_key(people["bob"].private_key, tmp_path / "bob.key")
    # requests would tidy "/x/../admin" into "/admin" before sending it; a raw client sends it as written.
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    context.load_cert_chain(str(cert), str(key))
    with socket.create_connection(("127.0.0.1", policy_server.port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /x/../admin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and b"ambiguous" in answer


def test_the_policy_table_says_what_the_star_means() -> None:
    """The table shows ANY_CLIENT as its value, '*'; the caption says so, only where a rule uses it."""
    open_root = AccessPolicy().allow("/", ANY_CLIENT).allow("/admin", "spiffe://lab.example/user/alice")
    assert "* is ANY_CLIENT, any client whose certificate passed the handshake" in open_root._repr_html_()
    named_only = AccessPolicy().allow("/admin", "spiffe://lab.example/user/alice")
    assert "ANY_CLIENT" not in named_only._repr_html_()
