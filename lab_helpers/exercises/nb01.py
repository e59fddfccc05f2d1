"""Checks for notebook 01 (explore certificates): questions asked of a real trust store.

Each check is given the notebook's ``roots`` (the certificates of certifi's
bundle that loaded cleanly) and works the answer out itself, so it stays right
when a new certifi release adds or removes roots.
"""

from __future__ import annotations

import datetime
from collections import Counter
from typing import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import Checker, CheckResult, not_attempted
from .evidence import display_name

__all__ = ["exercise_1", "exercise_2", "exercise_3"]


def _is_root_of(certificate: x509.Certificate, roots: Sequence[x509.Certificate]) -> bool:
    return any(certificate == root for root in roots)  # x509.Certificate compares its DER bytes


def exercise_1(
    rsa_root: x509.Certificate | None, rsa_bits: int | None, *, roots: Sequence[x509.Certificate]
) -> CheckResult:
    """1.1 The smallest RSA key in the trust store: a root with an RSA key of the smallest size, and that size.

    Why: the key size is read from the public key (``public_key().key_size``),
    and the smallest size in the store is the floor that every client must
    still accept (OpenSSL's security level 2 refuses RSA below 2048 bits).
    """
    c = Checker(
        "1.1",
        "The smallest RSA key in the trust store",
        hint="Keep the roots whose public_key() is an rsa.RSAPublicKey, "
        "then min(..., key=lambda r: r.public_key().key_size).",
    )
    if not_attempted(rsa_root, rsa_bits):
        return c.not_attempted()
    if not isinstance(rsa_root, x509.Certificate):
        return c.fail("smallest_rsa_root should be an x509.Certificate taken from `roots`")
    rsa_sizes = [root.public_key().key_size for root in roots if isinstance(root.public_key(), rsa.RSAPublicKey)]
    if not rsa_sizes:  # pragma: no cover (certifi has always held RSA roots)
        return c.fail("this bundle holds no RSA root at all, so the exercise has no answer here")
    smallest = min(rsa_sizes)
    c.require(
        _is_root_of(rsa_root, roots),
        f"{display_name(rsa_root)} is one of the trusted roots",
        f"{display_name(rsa_root)} is not in `roots`: pick the certificate from that list",
    )
    key = rsa_root.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        kind = f"ECDSA ({key.curve.name})" if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        c.require(
            False,
            "",
            f"{display_name(rsa_root)} has an {kind} key, not RSA: test isinstance(root.public_key(), rsa.RSAPublicKey)",
        )
        return c.result()
    c.require(
        key.key_size == smallest,
        f"its key has {key.key_size} bits, the smallest RSA size among the {len(rsa_sizes)} RSA roots",
        f"its key has {key.key_size} bits, but {rsa_sizes.count(smallest)} RSA root(s) have only {smallest}: "
        "take the minimum over all RSA roots",
    )
    c.require(
        isinstance(rsa_bits, int) and rsa_bits == key.key_size,
        f"smallest_rsa_bits = {key.key_size} matches the key",
        f"smallest_rsa_bits is {rsa_bits!r}, but the key of {display_name(rsa_root)} has {key.key_size} bits "
        "(public_key().key_size, an int)",
    )
    return c.result()


def exercise_2(
    soonest_root: x509.Certificate | None,
    days_left: int | None,
    *,
    roots: Sequence[x509.Certificate],
    now: datetime.datetime | None = None,
) -> CheckResult:
    """1.2 The root that expires first, and how many whole days it has left.

    Why: a root that expires breaks every chain that ends in it, which is why
    trust stores replace roots years ahead. The check finds the earliest
    ``not_valid_after_utc`` itself; ties count, and the day count may be one
    off if midnight passed between your cell and the check.
    """
    c = Checker(
        "1.2",
        "The root that expires first",
        hint="min(roots, key=lambda r: r.not_valid_after_utc), then "
        "(its not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).days.",
    )
    if not_attempted(soonest_root, days_left):
        return c.not_attempted()
    if not isinstance(soonest_root, x509.Certificate):
        return c.fail("soonest_root should be an x509.Certificate taken from `roots`")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    first_end = min(root.not_valid_after_utc for root in roots)
    firsts = [root for root in roots if root.not_valid_after_utc == first_end]
    c.require(
        _is_root_of(soonest_root, roots),
        f"{display_name(soonest_root)} is one of the trusted roots",
        f"{display_name(soonest_root)} is not in `roots`: pick the certificate from that list",
    )
    mine = soonest_root.not_valid_after_utc
    c.require(
        mine == first_end,
        f"{display_name(soonest_root)} ends on {mine:%Y-%m-%d}: no root ends earlier",
        f"{display_name(soonest_root)} ends on {mine:%Y-%m-%d}, but {display_name(firsts[0])} ends earlier, on {first_end:%Y-%m-%d}: "
        "compare not_valid_after_utc (the end), not not_valid_before_utc (the start)",
    )
    expected_days = (first_end - now).days
    c.require(
        isinstance(days_left, int) and abs(days_left - expected_days) <= 1,
        f"days_left = {days_left}: about {expected_days} whole days left",
        f"days_left is {days_left!r}, but the earliest end is {expected_days} whole days away: "
        "subtract an aware now (datetime.timezone.utc) and take .days",
    )
    return c.result()


def exercise_3(curve_counts: Mapping[str, int] | None, *, roots: Sequence[x509.Certificate]) -> CheckResult:
    """1.3 ECDSA roots by curve: a dict such as ``{"secp384r1": 12, "secp256r1": 3}``.

    Why: the curve is part of the key type; the public CA world moved to
    ECDSA P-384 for its newest roots, and P-256 for the certificates below.
    """
    c = Checker(
        "1.3",
        "ECDSA roots by curve",
        hint="For each root whose public_key() is an ec.EllipticCurvePublicKey, count public_key().curve.name "
        "(collections.Counter does it).",
    )
    if not_attempted(curve_counts):
        return c.not_attempted()
    if not isinstance(curve_counts, Mapping):
        return c.fail("curve_counts should be a dict from a curve name to a number of roots, e.g. {'secp384r1': 12}")
    expected = Counter(
        root.public_key().curve.name for root in roots if isinstance(root.public_key(), ec.EllipticCurvePublicKey)
    )
    given = {str(name): count for name, count in curve_counts.items()}
    missing = sorted(set(expected) - set(given))
    extra = sorted(set(given) - set(expected))
    c.require(
        not missing and not extra,
        f"the curves are right: {', '.join(sorted(expected))}",
        "the curves differ:"
        + (f" missing {', '.join(missing)};" if missing else "")
        + (f" no root uses {', '.join(extra)};" if extra else "")
        + " use the names of public_key().curve.name (e.g. 'secp384r1')",
    )
    wrong = [name for name in sorted(set(expected) & set(given)) if given[name] != expected[name]]
    c.require(
        not wrong,
        "each count you gave matches the bundle",
        "wrong count for "
        + ", ".join(f"{name} (you said {given[name]}, the bundle has {expected[name]})" for name in wrong),
    )
    total = sum(expected.values())
    c.require(
        sum(v for v in given.values() if isinstance(v, int)) == total,
        f"{total} of the {len(roots)} roots have ECDSA keys ({total / len(roots):.0%})",
        f"the counts add up to {sum(v for v in given.values() if isinstance(v, int))}, "
        f"not to the {total} ECDSA roots: count every root whose key is an EllipticCurvePublicKey",
    )
    return c.result()
