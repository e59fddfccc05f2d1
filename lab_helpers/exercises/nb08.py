"""Checks for notebook 08, authorize clients by identity.

Each check asks the learner's policy for decisions, ``policy.decide(identity,
path)``, exactly what the lab server calls on every request, about real
certificates: the notebook's own, or ones the check issues itself with the
notebook's CAs (a lab service, a look-alike, one minted by the partner CA).
"""

from __future__ import annotations

from cryptography import x509

from ..authz import AccessPolicy, Decision
from ..identity import fingerprint, identity_from_certificate
from ..pki import CertificateAuthority
from . import Checker, CheckResult, not_attempted
from .evidence import public_key_der, signed_by

__all__ = ["exercise_1", "exercise_2", "exercise_3"]

ALICE = "spiffe://lab.example/user/alice"
SERVICE = "spiffe://lab.example/service/exporter"


def _allowed(policy: AccessPolicy, certificate: x509.Certificate, path: str) -> bool:
    return policy.decide(identity_from_certificate(certificate), path).allowed


def _decide_problem(policy: AccessPolicy, certificate: x509.Certificate, path: str) -> str | None:
    """What goes wrong when the server asks this policy about a request, in words (None when nothing does).

    The server calls decide(), which calls identity_of() and unpacks a pair:
    a subclass that returns something else breaks every request, and the
    learner should read why in one line, not in a traceback.
    """
    identity = identity_from_certificate(certificate)
    try:
        named = policy.identity_of(identity)
    except Exception as error:  # the learner's own code: any error is the answer to report
        return f"identity_of(client) raised {type(error).__name__}: {error}"
    if not (isinstance(named, tuple) and len(named) == 2):
        return f'identity_of must return a pair (name, reason), not {type(named).__name__}: return pin, ""'
    try:
        decision = policy.decide(identity, path)
    except Exception as error:  # the learner's own code again
        return f"decide(client, {path!r}) raised {type(error).__name__}: {error}"
    if not isinstance(decision, Decision):
        return (
            f"decide() must return a Decision (what super().decide() returns, or a replace() of it), "
            f"not {type(decision).__name__}"
        )
    return None


def exercise_1(
    policy: AccessPolicy | None,
    *,
    alice: x509.Certificate,
    bob: x509.Certificate,
    impostor: x509.Certificate,
    bound: AccessPolicy | None = None,
) -> CheckResult:
    """8.1 Reports for bob: one prefix rule more, and everything ``bound`` did still holds (trust domains included).

    ``allow()`` changes the policy it is called on, so ``bound.allow(...)``
    passes every point while it quietly widens ``bound``, the policy the
    running server uses. Given ``bound``, the check says so.
    """
    c = Checker(
        "8.1",
        "Reports for bob",
        hint="A policy is its rules plus its trust domains: a new one needs all of bound's, plus one rule for "
        "bob's URI.",
    )
    if not_attempted(policy):
        return c.not_attempted()
    if not isinstance(policy, AccessPolicy):
        return c.fail("reports_policy should be an AccessPolicy, e.g. AccessPolicy().allow(...).allow(...)")
    if bound is not None:
        if policy is bound:
            c.require(
                False,
                "",
                "reports_policy is bound itself: allow() changes the policy it is called on, so bound, "
                "the running server's policy, now lets bob into /reports too; run step 4's cell that "
                "builds bound again, and start reports_policy from AccessPolicy()",
            )
        elif _allowed(bound, bob, "/reports"):
            c.require(
                False,
                "",
                "bound now lets bob into /reports: an allow() call changed it in place; run step 4's "
                "cell that builds bound again, and build reports_policy from AccessPolicy()",
            )
        else:
            c.require(True, "bound is unchanged: reports_policy is a policy of its own", "")
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


def exercise_2(
    policy: AccessPolicy | None, *, lab_ca: CertificateAuthority, partner_ca: CertificateAuthority
) -> CheckResult:
    """8.2 Every lab.example service may read /metrics: an identity prefix, bound to its CA, on normalized paths."""
    c = Checker(
        "8.2",
        "Every service may read /metrics",
        hint="Let super().decide() do what it already does (the path, the trust domain, the rule), and widen "
        "only a denial it made under the /metrics rule, for an identity inside the services' namespace.",
    )
    if not_attempted(policy):
        return c.not_attempted()
    if not isinstance(policy, AccessPolicy):
        return c.fail("metrics_policy should be an instance of your subclass of AccessPolicy")
    service = lab_ca.issue_client_certificate("exporter", names=[SERVICE]).certificate
    look_alike = lab_ca.issue_client_certificate(
        "evil", names=["spiffe://lab.example/service-evil"]
    ).certificate
    minted = partner_ca.issue_client_certificate("exporter", names=[SERVICE]).certificate
    user = lab_ca.issue_client_certificate("bob").certificate
    alice = lab_ca.issue_client_certificate("alice", names=[ALICE]).certificate
    problem = _decide_problem(policy, service, "/metrics")
    if problem:
        return c.fail(problem)
    service_reads = _allowed(policy, service, "/metrics") and _allowed(policy, service, "/metrics/cpu")
    no_rule = policy.decide(identity_from_certificate(service), "/metrics").rule is None
    c.require(
        service_reads,
        "a lab.example service reads /metrics and /metrics/cpu",
        f"{SERVICE} cannot read /metrics and everything under it"
        + (
            ": does your policy have a /metrics rule? Without one, super().decide() finds no rule to widen"
            if no_rule
            else ""
        ),
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
        "8.3",
        "Pin the key, not the certificate",
        hint="What stays the same when the CA signs alice's CSR again? Hash that part, not the whole certificate.",
    )
    if not_attempted(policy, same_key):
        return c.not_attempted()
    if not isinstance(policy, AccessPolicy):
        return c.fail("key_pinned should be an instance of your subclass of AccessPolicy")
    if not isinstance(same_key, x509.Certificate):
        return c.fail(
            "alice_same_key should be an x509.Certificate, e.g. lab_ca.sign_csr(alice.csr, profile='client')"
        )
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
    c.require(
        from_lab_ca,
        "it is issued by the lab CA",
        "alice_same_key is not issued by the lab CA: use lab_ca.sign_csr",
    )
    problem = _decide_problem(policy, alice, "/admin")
    if problem:
        c.require(False, "", problem)
        return c.result()
    alice_in, renewal_in = _allowed(policy, alice, "/admin"), _allowed(policy, same_key, "/admin")
    if alice_in and not renewal_in:
        locked_out = (
            "alice's same-key renewal cannot read /admin: your pin changes with the certificate; hash the "
            "SubjectPublicKeyInfo, not the certificate"
        )
    else:
        locked_out = (
            "alice cannot read /admin: the /admin rule must name what your identity_of returns for her "
            "certificate, the pin of her key"
        )
    c.require(
        alice_in and renewal_in,
        "alice reads /admin with her certificate and with the renewal that keeps her key",
        locked_out,
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
