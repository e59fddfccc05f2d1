"""Checks for notebook 08, authorize clients by identity.

Each check asks the learner's policy for decisions, ``policy.decide(identity,
path)``, exactly what the lab server calls on every request, about real
certificates: the notebook's own, or ones the check issues itself with the
notebook's CAs (a lab service, a look-alike, one minted by the partner CA).
"""

from __future__ import annotations

from cryptography import x509

from ..authz import AccessPolicy
from ..identity import fingerprint, identity_from_certificate
from ..pki import CertificateAuthority
from . import Checker, CheckResult, not_attempted
from .evidence import public_key_der, signed_by

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

ALICE = "spiffe://lab.example/user/alice"
SERVICE = "spiffe://lab.example/service/exporter"


def _allowed(policy: AccessPolicy, certificate: x509.Certificate, path: str) -> bool:
    return policy.decide(identity_from_certificate(certificate), path).allowed


def exercise_1(
    policy: AccessPolicy | None,
    *,
    alice: x509.Certificate,
    bob: x509.Certificate,
    impostor: x509.Certificate,
) -> CheckResult:
    """8.1 Reports for bob: one prefix rule more, and everything ``bound`` did still holds (trust domains included)."""
    c = Checker(
        "8.1", "Reports for bob",
        hint="Build bound's chain again (rules and trust_domain calls) with one more .allow('/reports', BOB).",
    )
    if not_attempted(policy):
        return c.not_attempted()
    if not isinstance(policy, AccessPolicy):
        return c.fail("reports_policy should be an AccessPolicy, e.g. AccessPolicy().allow(...).allow(...)")
    c.require(
        _allowed(policy, bob, "/reports") and _allowed(policy, bob, "/reports/2025"),
        "bob may read /reports and /reports/2025",
        "bob cannot read /reports and everything under it: add a prefix rule for /reports that names BOB",
    )
    c.require(
        not _allowed(policy, bob, "/admin") and not _allowed(policy, bob, "/internal"),
        "bob gets nothing else: /admin and /internal stay denied",
        "bob reaches /admin or /internal: no rule for '/', and /admin for alice only",
    )
    c.require(
        _allowed(policy, bob, "/public"),
        "/public stays open to bob, as in bound",
        "bob cannot read /public any more: keep bound's rule .allow('/public', ANY_CLIENT)",
    )
    c.require(
        not _allowed(policy, alice, "/reports"),
        "alice gets 403 on /reports",
        "alice may read /reports: the /reports rule names bob only",
    )
    c.require(
        _allowed(policy, alice, "/admin"),
        "alice keeps /admin",
        "alice lost /admin: keep bound's rule .allow('/admin', ALICE)",
    )
    c.require(
        not _allowed(policy, impostor, "/admin"),
        "the impostor from the partner CA stays out of /admin: the trust domains are kept",
        "the partner CA's impostor passes as alice: bind each trust domain to its CA again with .trust_domain(...)",
    )
    return c.result()


def exercise_2(policy: AccessPolicy | None, *, lab_ca: CertificateAuthority, partner_ca: CertificateAuthority) -> CheckResult:
    """8.2 Every lab.example service may read /metrics: an identity prefix, bound to its CA, on normalized paths."""
    c = Checker(
        "8.2", "Every service may read /metrics",
        hint="Override decide(): decision = super().decide(client, target); widen it only when decision.rule is "
        "'/metrics' and decision.identity starts with 'spiffe://lab.example/service/'.",
    )
    if not_attempted(policy):
        return c.not_attempted()
    if not isinstance(policy, AccessPolicy):
        return c.fail("metrics_policy should be an instance of your subclass of AccessPolicy")
    service = lab_ca.issue_client_certificate("exporter", names=[SERVICE]).certificate
    look_alike = lab_ca.issue_client_certificate("evil", names=["spiffe://lab.example/service-evil"]).certificate
    minted = partner_ca.issue_client_certificate("exporter", names=[SERVICE]).certificate
    user = lab_ca.issue_client_certificate("bob").certificate
    alice = lab_ca.issue_client_certificate("alice", names=[ALICE]).certificate
    c.require(
        _allowed(policy, service, "/metrics") and _allowed(policy, service, "/metrics/cpu"),
        "a lab.example service reads /metrics and /metrics/cpu",
        f"{SERVICE} cannot read /metrics and everything under it",
    )
    c.require(
        not _allowed(policy, service, "/admin"),
        "a service gets /metrics and nothing more: /admin stays denied",
        "a service reaches /admin: widen only the decisions about /metrics",
    )
    c.require(
        not _allowed(policy, service, "/metrics/../admin"),
        "an ambiguous path such as /metrics/../admin stays refused",
        "a service reaches /metrics/../admin: decide on the normalized path, as super().decide() does "
        "(it names no rule for an ambiguous path)",
    )
    c.require(
        not _allowed(policy, look_alike, "/metrics"),
        "spiffe://lab.example/service-evil is no service: the prefix ends with '/'",
        "spiffe://lab.example/service-evil reads /metrics: compare with the prefix 'spiffe://lab.example/service/', slash included",
    )
    c.require(
        not _allowed(policy, minted, "/metrics"),
        "a service URI minted by the partner CA is refused",
        "the partner CA minted a lab.example service that reads /metrics: keep .trust_domain('lab.example', lab_ca.certificate) "
        "and use the identity super().decide() checked",
    )
    c.require(
        not _allowed(policy, user, "/metrics"),
        "a user (bob) gets 403 on /metrics",
        "bob, a user, reads /metrics: only identities under spiffe://lab.example/service/ (and the rule's own) may",
    )
    c.require(
        _allowed(policy, alice, "/admin") and _allowed(policy, user, "/public"),
        "the other rules still hold: alice reads /admin, bob reads /public",
        "the other rules changed: keep bound's /public and /admin rules",
    )
    return c.result()


def exercise_3(
    policy: AccessPolicy | None,
    same_key: x509.Certificate | None,
    *,
    alice: x509.Certificate,
    alice_renewed: x509.Certificate,
    bob: x509.Certificate,
    ca_certificate: x509.Certificate,
) -> CheckResult:
    """8.3 Pin the key, not the certificate: a renewal that keeps the key keeps access; a new key does not."""
    c = Checker(
        "8.3", "Pin the key, not the certificate",
        hint="identity_of(client) can return (hashlib.sha256(spki).hexdigest(), '') with spki = "
        "client.certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo); "
        "lab_ca.sign_csr(alice.csr, profile='client') renews alice with her key.",
    )
    if not_attempted(policy, same_key):
        return c.not_attempted()
    if not isinstance(policy, AccessPolicy):
        return c.fail("key_pinned should be an instance of your subclass of AccessPolicy")
    if not isinstance(same_key, x509.Certificate):
        return c.fail("alice_same_key should be an x509.Certificate, e.g. lab_ca.sign_csr(alice.csr, profile='client')")
    c.require(
        public_key_der(same_key) == public_key_der(alice),
        "alice_same_key carries alice's public key",
        "alice_same_key has another public key: sign alice's own CSR (alice.csr), which carries her key",
    )
    c.require(
        fingerprint(same_key) != fingerprint(alice),
        "it is a new certificate: its fingerprint differs, so step 5's pin would refuse it",
        "alice_same_key is alice's certificate itself: have the CA sign her CSR again",
    )
    from_lab_ca = signed_by(same_key, ca_certificate)
    c.require(from_lab_ca, "it is issued by the lab CA", "alice_same_key is not issued by the lab CA: use lab_ca.sign_csr")
    c.require(
        _allowed(policy, alice, "/admin") and _allowed(policy, same_key, "/admin"),
        "alice reads /admin with her certificate and with the renewal that keeps her key",
        "alice (or her same-key renewal) cannot read /admin: allow the pin of her key, computed from her public key",
    )
    c.require(
        not _allowed(policy, alice_renewed, "/admin"),
        "alice_renewed, with a new key, is locked out: the pin names the key",
        "alice_renewed has a new key and still reads /admin: name clients by their public key, not by a name that "
        "every renewal keeps",
    )
    c.require(
        not _allowed(policy, bob, "/admin") and _allowed(policy, bob, "/public"),
        "bob stays out of /admin and reads /public",
        "bob's access changed: /admin for alice's key only, /public for ANY_CLIENT",
    )
    return c.result()
