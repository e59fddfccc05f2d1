"""verify_chain() against independent path-validation vectors: x509-limbo's hand-written cases.

The vectors live outside the repository (``../shared/data/x509-limbo/``,
Apache-2.0, see PROVENANCE.md there) and are read at test time; the tests
skip when the folder is absent. As limbo's rules require, a case whose
``features`` the verifier does not support is skipped, and every skip
group below says why. A case that is not skipped must agree with its
expected result.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections import Counter
from pathlib import Path

import pytest
from cryptography import x509

from lab_helpers import verify_chain

LIMBO = Path(__file__).resolve().parents[2] / "shared" / "data" / "x509-limbo" / "limbo-handwritten.json"

#: Features verify_chain does not support, with the reason (the groups pyca/cryptography's own harness skips).
UNSUPPORTED_FEATURES = {
    "pedantic-public-suffix-wildcard": "rejecting wildcards on public suffixes needs the public suffix list; "
    "practically no verifier does it",
    "name-constraint-dn": "cryptography's verifier does not implement distinguished-name constraints",
    "pedantic-webpki-eku": "CA/Browser Forum EKU rules beyond serverAuth/clientAuth are not checked",
    "pedantic-webpki-subscriber-key": "CA/Browser Forum key-size rules on leaf keys are not enforced",
    "pedantic-rfc5280": "strict readings of RFC 5280 that verifiers widely ignore",
    "rfc5280-incompatible-with-webpki": "the verifier follows the Web PKI where it departs from RFC 5280",
    "has-policy-constraints": "certificate policies are not processed",
}

#: Single cases where the verifier knowingly departs from limbo, with the reason (as cryptography documents).
KNOWN_DEPARTURES = {
    "pathlen::self-issued-certs-pathlen": "self-issued intermediates count toward the path length (as Go and webpki do)",
    "pathlen::max-chain-depth-1-self-issued": "self-issued intermediates count toward the chain depth (as Go and webpki do)",
    "rfc5280::serial::zero": "serial number zero is accepted: common in deployed trust stores",
    "rfc5280::ski::root-missing-ski": "CAs without SKI are accepted (as Go and webpki do)",
    "rfc5280::ski::intermediate-missing-ski": "CAs without SKI are accepted (as Go and webpki do)",
    "rfc5280::aki::intermediate-missing-aki": "intermediates without AKI are accepted (as Go and webpki do)",
    "webpki::aki::root-with-aki-ski-mismatch": "a root's AKI is not compared with its SKI (as Go and webpki do)",
    "webpki::aki::root-with-aki-all-fields": "extra AKI fields on roots are accepted",
    "webpki::forbidden-rsa-not-divisable-by-8-in-root": "RSA key sizes are not checked for divisibility by 8",
    "webpki::forbidden-rsa-not-divisible-by-8-in-root": "RSA key sizes are not checked for divisibility by 8",
    "crl::issuer-no-keyusage-extension": "the Web PKI profile requires KeyUsage on every CA, so the chain is "
    "refused before the CRL is read (RFC 5280 alone would accept it)",
    "rfc5280::ca-as-leaf": "a CA certificate in the leaf position is refused (as webpki and rustls do)",
    "pathlen::validation-ignores-pathlen-in-leaf": "a CA certificate in the leaf position is refused",
}


#: The rules the course states, and limbo cases that test each: none of them may be skipped.
COURSE_RULES = {
    "validity (expired leaf, intermediate or root)": ("rfc5280::validity::",),
    "path length": (
        "pathlen::ee-with-intermediate-pathlen",
        "pathlen::intermediate-violates-pathlen-0",
        "pathlen::intermediate-pathlen-too-long",
    ),
    "CA bit (BasicConstraints)": (
        "rfc5280::intermediate-ca-without-ca-bit",
        "rfc5280::no-basicconstraints",
        "webpki::ee-basicconstraints-ca",
    ),
    "EKU": ("webpki::eku::", "rfc5280::eku::"),
    "missing SAN": ("webpki::san::no-san",),
    "CRL revocation": ("crl::revoked-certificate-with-crl", "crl::certificate-not-on-crl"),
}


def _cases() -> list[dict]:
    if not LIMBO.exists():
        return []
    return json.loads(LIMBO.read_text(encoding="utf-8"))["testcases"]


CASES = _cases()


#: Groups of cases (by id prefix) where the verifier knowingly departs from limbo, with the reason.
KNOWN_DEPARTURE_GROUPS = {
    "webpki::cn::": "the subject commonName is ignored, as modern clients do (notebook 03): the CA/Browser "
    "Forum rule that a CN must repeat a SAN entry binds CAs when they issue, and is not checked here",
}


def skip_reason(case: dict) -> str | None:
    if case["id"] in KNOWN_DEPARTURES:
        return f"known departure: {KNOWN_DEPARTURES[case['id']]}"
    for prefix, reason in KNOWN_DEPARTURE_GROUPS.items():
        if case["id"].startswith(prefix):
            return f"known departure: {reason}"
    unsupported = sorted(set(case["features"] or ()) & set(UNSUPPORTED_FEATURES))
    if unsupported:
        return f"unsupported feature {unsupported[0]}: {UNSUPPORTED_FEATURES[unsupported[0]]}"
    return None


def _name(peer: dict) -> x509.GeneralName:
    if peer["kind"] == "DNS":
        return x509.DNSName(peer["value"])
    if peer["kind"] == "IP":
        return x509.IPAddress(ipaddress.ip_address(peer["value"]))
    return x509.RFC822Name(peer["value"])


def run(case: dict) -> tuple[bool, str]:
    """(agrees, what happened) for one limbo case."""
    load = x509.load_pem_x509_certificate
    roots = [load(pem.encode()) for pem in case["trusted_certs"]]
    intermediates = [load(pem.encode()) for pem in case["untrusted_intermediates"]]
    leaf = load(case["peer_certificate"].encode())
    crls = [x509.load_pem_x509_crl(pem.encode()) for pem in case.get("crls") or ()]
    at = datetime.datetime.fromisoformat(case["validation_time"]) if case["validation_time"] else None
    purpose = "server" if case["validation_kind"] == "SERVER" else "client"
    name = _name(case["expected_peer_name"]) if purpose == "server" and case["expected_peer_name"] else None
    verdict = verify_chain(
        leaf,
        roots=roots,
        intermediates=intermediates,
        purpose=purpose,
        name=name,
        at=at,
        crls=crls,
        max_chain_depth=case["max_chain_depth"],
    )
    expected = case["expected_result"] == "SUCCESS"
    if verdict.ok and purpose == "client":
        wanted = [_name(peer) for peer in case["expected_peer_names"] or ()]
        if wanted and not set(wanted) <= set(verdict.client_names):
            return (not expected, f"verified, but the client names differ: {verdict.client_names}")
    return (verdict.ok == expected, str(verdict))


requires_limbo = pytest.mark.skipif(not CASES, reason=f"x509-limbo vectors not found at {LIMBO}")
# Some vectors carry serial numbers that are zero or negative on purpose; cryptography warns when it parses them.
pytestmark = pytest.mark.filterwarnings("ignore::cryptography.utils.CryptographyDeprecationWarning")


@requires_limbo
@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_limbo_case(case: dict) -> None:
    reason = skip_reason(case)
    if reason:
        pytest.skip(reason)
    agrees, what = run(case)
    assert agrees, f"expected {case['expected_result']}, got {what}\n{case['description']}"


@requires_limbo
def test_limbo_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Counts agreed / disagreed / skipped (by reason group), printed with `pytest -s` or `-rA`."""
    outcome: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for case in CASES:
        reason = skip_reason(case)
        if reason:
            skipped[reason] += 1
            continue
        outcome["agreed" if run(case)[0] else "disagreed"] += 1
    lines = [
        f"x509-limbo: {len(CASES)} cases, {outcome['agreed']} agreed, {outcome['disagreed']} disagreed, "
        f"{sum(skipped.values())} skipped"
    ]
    lines += [f"  skipped {count:>3}: {group}" for group, count in skipped.most_common()]
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert outcome["disagreed"] == 0
    assert outcome["agreed"] >= 150, "most cases must be checked, not skipped"


@requires_limbo
@pytest.mark.parametrize("rule", COURSE_RULES)
def test_cases_for_the_rules_the_course_states_are_checked_and_agree(rule: str) -> None:
    matching = [case for case in CASES if case["id"].startswith(COURSE_RULES[rule])]
    assert matching, f"no limbo case found for {rule}: update COURSE_RULES"
    checked = [case for case in matching if skip_reason(case) is None]
    assert checked, f"every limbo case for {rule} is skipped"
    disagreeing = [case["id"] for case in checked if not run(case)[0]]
    assert not disagreeing, disagreeing


def test_skip_reasons_cover_every_unsupported_feature_named() -> None:
    """A skip needs a reason: every feature and case listed here has one."""
    assert (
        all(UNSUPPORTED_FEATURES.values())
        and all(KNOWN_DEPARTURES.values())
        and all(KNOWN_DEPARTURE_GROUPS.values())
    )


@requires_limbo
def test_every_known_departure_still_departs() -> None:
    """A departure listed here must really disagree: when the verifier improves, the list must shrink."""
    listed = [case for case in CASES if (skip_reason(case) or "").startswith("known departure")]
    assert listed
    now_agreeing = [case["id"] for case in listed if run(case)[0]]
    assert not now_agreeing, f"these agree now; remove them from the departures: {now_agreeing}"
