"""The checks of notebook 08's exercises: quiet until attempted, pass on a real solution, name what is wrong, strict."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from exercise_checks import NOT_ATTEMPTED, missing

from lab_helpers import ANY_CLIENT, AccessPolicy, CertificateAuthority, ClientIdentity, Decision
from lab_helpers.exercises import nb08

ALICE = "spiffe://lab.example/user/alice"
BOB = "spiffe://lab.example/user/bob"
PARTNER_ALICE = "spiffe://partner.example/user/alice"
SERVICES = "spiffe://lab.example/service/"


@pytest.fixture(autouse=True)
def not_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)


@dataclass(frozen=True)
class World:
    lab_ca: CertificateAuthority
    partner_ca: CertificateAuthority
    alice: x509.Certificate
    bob: x509.Certificate
    impostor: x509.Certificate
    alice_renewed: x509.Certificate
    alice_same_key: x509.Certificate


@pytest.fixture(scope="module")
def world() -> World:
    lab_ca = CertificateAuthority.create_root("lab-ca")
    partner_ca = CertificateAuthority.create_root("partner-ca")
    alice = lab_ca.issue_client_certificate("alice", names=[ALICE, "alice@lab.example"])
    return World(
        lab_ca=lab_ca,
        partner_ca=partner_ca,
        alice=alice.certificate,
        bob=lab_ca.issue_client_certificate("bob").certificate,
        impostor=partner_ca.issue_client_certificate("alice", names=[ALICE]).certificate,
        alice_renewed=lab_ca.issue_client_certificate(
            "alice", names=[ALICE, "alice@lab.example"]
        ).certificate,
        alice_same_key=lab_ca.sign_csr(alice.csr, profile="client"),
    )


def bound(world: World, policy: AccessPolicy | None = None, *, trust_domains: bool = True) -> AccessPolicy:
    policy = (
        (policy or AccessPolicy())
        .allow("/public", ANY_CLIENT)
        .allow("/admin", ALICE)
        .allow("/partner", PARTNER_ALICE)
    )
    if trust_domains:
        policy.trust_domain("lab.example", world.lab_ca.certificate).trust_domain(
            "partner.example", world.partner_ca.certificate
        )
    return policy


# -- 8.1 reports for bob -------------------------------------------------------------


def check_1(world: World, policy: object):
    return nb08.exercise_1(policy, alice=world.alice, bob=world.bob, impostor=world.impostor)  # type: ignore[arg-type]


def test_8_1_not_attempted(world: World) -> None:
    assert check_1(world, None).status == NOT_ATTEMPTED


def test_8_1_passes_with_bound_plus_reports(world: World) -> None:
    result = check_1(world, bound(world).allow("/reports", BOB))
    assert result.passed, result


def test_8_1_bound_alone_misses_the_reports(world: World) -> None:
    result = check_1(world, bound(world))
    assert not result.passed
    assert missing(result) == [
        "bob cannot read /reports and everything under it: add a prefix rule for /reports that names BOB"
    ]


def test_8_1_an_exact_rule_misses_the_pages_under_reports(world: World) -> None:
    result = check_1(world, bound(world).allow("/reports", BOB, exact=True))
    assert not result.passed and "bob cannot read /reports" in missing(result)[0]


def test_8_1_dropping_the_trust_domains_lets_the_impostor_in(world: World) -> None:
    result = check_1(world, bound(world, trust_domains=False).allow("/reports", BOB))
    assert not result.passed
    assert missing(result) == [
        "the partner CA's impostor passes as alice: bind each trust domain to its CA again with .trust_domain(...)"
    ]


def test_8_1_reports_for_everyone_is_too_much(world: World) -> None:
    result = check_1(world, bound(world).allow("/reports", ANY_CLIENT))
    assert not result.passed and missing(result) == [
        "alice may read /reports: the /reports rule names bob only"
    ]


def test_8_1_allow_on_bound_changes_bound_and_says_so(world: World) -> None:
    """The learner's slip: reports_policy = bound.allow(...) passes every point and widens the running policy."""
    running = bound(world)
    reports_policy = running.allow("/reports", BOB)  # allow() returns the policy it changed: running itself
    result = nb08.exercise_1(
        reports_policy, alice=world.alice, bob=world.bob, impostor=world.impostor, bound=running
    )
    assert not result.passed
    assert missing(result) == [
        "reports_policy is bound itself: allow() changes the policy it is called on, so bound, the running server's "
        "policy, now lets bob into /reports too; run step 4's cell that builds bound again, and start "
        "reports_policy from AccessPolicy()"
    ]


def test_8_1_a_bound_changed_earlier_is_found_too(world: World) -> None:
    running = bound(world)
    running.allow("/reports", BOB)  # a first try that changed bound, then a correct new policy
    result = nb08.exercise_1(
        bound(world).allow("/reports", BOB),
        alice=world.alice,
        bob=world.bob,
        impostor=world.impostor,
        bound=running,
    )
    assert not result.passed and missing(result)[0].startswith("bound now lets bob into /reports")


def test_8_1_a_new_policy_leaves_bound_alone(world: World) -> None:
    running = bound(world)
    result = nb08.exercise_1(
        bound(world).allow("/reports", BOB),
        alice=world.alice,
        bob=world.bob,
        impostor=world.impostor,
        bound=running,
    )
    assert result.passed, result
    assert "bound is unchanged: reports_policy is a policy of its own" in [
        text for ok, text in result.points if ok
    ]
    assert "allow(" not in (result.hint or "")  # the idea, not the code


def test_8_1_wrong_type(world: World) -> None:
    result = check_1(world, {"/reports": BOB})
    assert not result.passed and "should be an AccessPolicy" in missing(result)[0]


def test_8_1_strict_mode_raises(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check_1(world, bound(world))


# -- 8.2 every service may read /metrics ------------------------------------------


class ServicesReadMetrics(AccessPolicy):
    def decide(self, client: ClientIdentity, target: str) -> Decision:
        decision = super().decide(client, target)
        is_service = decision.identity is not None and decision.identity.startswith(SERVICES)
        if not decision.allowed and decision.rule == "/metrics" and is_service:
            return replace(decision, allowed=True, reason="a service")
        return decision


class NaiveMetrics(AccessPolicy):
    """Three classic mistakes: a raw-target test, a prefix without its slash, a URI read without its trust domain."""

    def decide(self, client: ClientIdentity, target: str) -> Decision:
        uri = client.uris[0] if client.uris else ""
        if target.startswith("/metrics") and uri.startswith("spiffe://lab.example/service"):
            return Decision(True, target, uri, "/metrics", "a service")
        return super().decide(client, target)


def check_2(world: World, policy: object):
    return nb08.exercise_2(policy, lab_ca=world.lab_ca, partner_ca=world.partner_ca)  # type: ignore[arg-type]


def test_8_2_not_attempted(world: World) -> None:
    assert check_2(world, None).status == NOT_ATTEMPTED


def test_8_2_passes_with_a_subclass_on_top_of_the_policy(world: World) -> None:
    result = check_2(world, bound(world, ServicesReadMetrics()).allow("/metrics", ALICE))
    assert result.passed, result


def test_8_2_the_plain_policy_lets_no_service_in(world: World) -> None:
    result = check_2(world, bound(world).allow("/metrics", ALICE))
    assert not result.passed
    assert missing(result) == [
        "spiffe://lab.example/service/exporter cannot read /metrics and everything under it"
    ]


def test_8_2_the_naive_subclass_fails_three_ways(world: World) -> None:
    result = check_2(world, bound(world, NaiveMetrics()).allow("/metrics", ALICE))
    assert not result.passed
    found = missing(result)
    assert len(found) == 3
    assert found[0].startswith("a service reaches /metrics/../admin")
    assert found[1].startswith("spiffe://lab.example/service-evil reads /metrics")
    assert found[2].startswith("the partner CA minted a lab.example service")


def test_8_2_without_trust_domains_the_partner_mints_services(world: World) -> None:
    result = check_2(world, bound(world, ServicesReadMetrics(), trust_domains=False).allow("/metrics", ALICE))
    assert not result.passed and len(missing(result)) == 1
    assert missing(result)[0].startswith("the partner CA minted a lab.example service")


def test_8_2_without_a_metrics_rule_there_is_nothing_to_widen(world: World) -> None:
    result = check_2(world, bound(world, ServicesReadMetrics()))  # no .allow("/metrics", ...)
    assert not result.passed
    assert missing(result) == [
        "spiffe://lab.example/service/exporter cannot read /metrics and everything under it: does your policy have "
        "a /metrics rule? Without one, super().decide() finds no rule to widen"
    ]


def test_8_2_a_decide_that_returns_no_decision_is_named(world: World) -> None:
    class ReturnsBool(AccessPolicy):
        def decide(self, client: ClientIdentity, target: str) -> Decision:
            return super().decide(client, target).allowed  # type: ignore[return-value]

    result = check_2(world, bound(world, ReturnsBool()).allow("/metrics", ALICE))
    assert missing(result) == [
        "decide() must return a Decision (what super().decide() returns, or a replace() of it), not bool"
    ]


def test_8_2_strict_mode_raises(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check_2(world, bound(world))


# -- 8.3 pin the key, not the certificate -----------------------------------------


def key_pin(certificate: x509.Certificate) -> str:
    spki = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


class KeyPinnedPolicy(AccessPolicy):
    def identity_of(self, client: ClientIdentity) -> tuple[str | None, str]:
        assert client.certificate is not None
        return key_pin(client.certificate), ""


def check_3(world: World, policy: object, same_key: object):
    return nb08.exercise_3(
        policy,
        same_key,  # type: ignore[arg-type]
        alice=world.alice,
        alice_renewed=world.alice_renewed,
        bob=world.bob,
        ca_certificate=world.lab_ca.certificate,
    )


def key_pinned(world: World) -> AccessPolicy:
    return (
        KeyPinnedPolicy(identify_by="fingerprint")
        .allow("/public", ANY_CLIENT)
        .allow("/admin", key_pin(world.alice))
    )


def test_8_3_not_attempted(world: World) -> None:
    assert check_3(world, None, None).status == NOT_ATTEMPTED


def test_8_3_passes_with_a_key_pin_and_a_same_key_renewal(world: World) -> None:
    result = check_3(world, key_pinned(world), world.alice_same_key)
    assert result.passed, result


def test_8_3_a_certificate_pin_refuses_the_same_key_renewal(world: World) -> None:
    from lab_helpers import fingerprint

    pinned = (
        AccessPolicy(identify_by="fingerprint")
        .allow("/public", ANY_CLIENT)
        .allow("/admin", fingerprint(world.alice))
    )
    result = check_3(world, pinned, world.alice_same_key)
    assert not result.passed
    assert missing(result) == [
        "alice's same-key renewal cannot read /admin: your pin changes with the certificate; hash the "
        "SubjectPublicKeyInfo, not the certificate"
    ]


class CertificateHashPolicy(AccessPolicy):
    """The learner's try: the SHA-256 of the whole certificate, returned as a pair."""

    def identity_of(self, client: ClientIdentity) -> tuple[str | None, str]:
        assert client.certificate is not None
        return hashlib.sha256(client.certificate.public_bytes(Encoding.DER)).hexdigest(), ""


def test_8_3_hashing_the_whole_certificate_names_the_real_mistake(world: World) -> None:
    pin = hashlib.sha256(world.alice.public_bytes(Encoding.DER)).hexdigest()
    policy = (
        CertificateHashPolicy(identify_by="fingerprint").allow("/public", ANY_CLIENT).allow("/admin", pin)
    )
    result = check_3(world, policy, world.alice_same_key)
    assert missing(result) == [
        "alice's same-key renewal cannot read /admin: your pin changes with the certificate; hash the "
        "SubjectPublicKeyInfo, not the certificate"
    ]
    assert "sign_csr" not in (result.hint or "") and "public_bytes" not in (result.hint or "")


class PinAlonePolicy(AccessPolicy):
    """The learner's try: identity_of returns the pin alone, not (pin, reason)."""

    def identity_of(self, client: ClientIdentity):  # type: ignore[no-untyped-def, override]
        assert client.certificate is not None
        return key_pin(client.certificate)


def test_8_3_identity_of_returning_the_pin_alone_is_named_not_a_traceback(world: World) -> None:
    policy = (
        PinAlonePolicy(identify_by="fingerprint")
        .allow("/public", ANY_CLIENT)
        .allow("/admin", key_pin(world.alice))
    )
    result = check_3(
        world, policy, world.alice_same_key
    )  # used to raise ValueError: too many values to unpack
    assert not result.passed
    assert missing(result) == ['identity_of must return a pair (name, reason), not str: return pin, ""']


def test_8_3_a_uri_policy_lets_the_new_key_in(world: World) -> None:
    by_uri = AccessPolicy().allow("/public", ANY_CLIENT).allow("/admin", ALICE)
    result = check_3(world, by_uri, world.alice_same_key)
    assert not result.passed and len(missing(result)) == 1
    assert missing(result)[0].startswith("alice_renewed has a new key and still reads /admin")


def test_8_3_the_renewal_must_keep_the_key_and_be_new(world: World) -> None:
    result = check_3(world, key_pinned(world), world.alice_renewed)
    assert not result.passed
    assert "alice_same_key has another public key" in missing(result)[0]
    result = check_3(world, key_pinned(world), world.alice)
    assert not result.passed and missing(result) == [
        "alice_same_key is alice's certificate itself: have the CA sign her CSR again"
    ]


def test_8_3_strict_mode_raises(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check_3(world, key_pinned(world), world.alice)
