"""Checks for notebook 01 (explore certificates): questions asked of a real trust store.

Each check is given the notebook's ``roots`` (the certificates of certifi's
bundle that loaded cleanly) and works the answer out itself, so it stays right
when a new certifi release adds or removes roots.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping, Sequence

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
    still accept. Security level 2 refuses RSA below 2048 bits: CPython's
    default cipher string sets it (``@SECLEVEL=2``), and so do many
    distributions' OpenSSL builds; OpenSSL's own default was level 1 until 3.2.
    """
    c = Checker(
        "1.1",
        "The smallest RSA key in the trust store",
        hint="Two questions for each root: is its public key RSA (step 5 tells key types apart), and how many "
        "bits does it have? min() can take a function that says what to compare.",
    )
    if not_attempted(rsa_root, rsa_bits):
        return c.not_attempted()
    if not isinstance(rsa_root, x509.Certificate):
        return c.fail("smallest_rsa_root should be an x509.Certificate taken from `roots`")
    rsa_sizes = [
        root.public_key().key_size for root in roots if isinstance(root.public_key(), rsa.RSAPublicKey)
    ]
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
        kind = (
            f"ECDSA ({key.curve.name})" if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        )
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
    if isinstance(rsa_bits, str) and rsa_bits.strip().isdigit():
        c.require(
            False, "", f"smallest_rsa_bits is the text {rsa_bits!r}: give the int, public_key().key_size"
        )
    else:
        c.require(
            isinstance(rsa_bits, int) and not isinstance(rsa_bits, bool) and rsa_bits == key.key_size,
            f"smallest_rsa_bits = {key.key_size} matches the key. 2048 bits is also the smallest RSA key "
            "Python's ssl module accepts by default: security level 2, which CPython asks for with the cipher "
            "string @SECLEVEL=2 (OpenSSL's own default was level 1, which accepts 1024 bits, until 3.2)",
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
        hint="Step 4 names the two instants of a validity period: which one is its end? The root with the "
        "smallest end expires first; its days left are the end minus an aware now.",
    )
    if not_attempted(soonest_root, days_left):
        return c.not_attempted()
    if not isinstance(soonest_root, x509.Certificate):
        return c.fail("soonest_root should be an x509.Certificate taken from `roots`")
    now = now or datetime.datetime.now(datetime.timezone.utc)
    first_end = min(root.not_valid_after_utc for root in roots)
    c.require(
        _is_root_of(soonest_root, roots),
        f"{display_name(soonest_root)} is one of the trusted roots",
        f"{display_name(soonest_root)} is not in `roots`: pick the certificate from that list",
    )
    mine = soonest_root.not_valid_after_utc
    earlier = sum(1 for root in roots if root.not_valid_after_utc < mine)
    starts = {root.not_valid_before_utc for root in roots}
    if mine == first_end:
        c.require(True, f"{display_name(soonest_root)} ends on {mine:%Y-%m-%d}: no root ends earlier", "")
    elif len(starts) > 1 and soonest_root.not_valid_before_utc == min(starts):  # min() over the start
        c.require(
            False,
            "",
            f"{display_name(soonest_root)} is the root whose validity *starts* first (not_valid_before_utc); "
            f"{earlier} root(s) *end* before it does: compare the end of validity",
        )
    else:
        c.require(
            False,
            "",
            f"{display_name(soonest_root)} ends on {mine:%Y-%m-%d}, but {earlier} root(s) end before it: "
            "compare every root's end of validity, and keep the smallest",
        )
    expected_days = (mine - now).days
    if not isinstance(days_left, int) or isinstance(days_left, bool):
        c.require(
            False, "", f"days_left should be an int, the .days of a timedelta, not {type(days_left).__name__}"
        )
    elif abs(days_left - expected_days) <= 1:
        c.require(
            True, f"days_left = {days_left}: the whole days until {display_name(soonest_root)} ends", ""
        )
    elif abs(days_left + expected_days) <= 1:
        c.require(
            False, "", f"days_left is {days_left}: you subtracted the other way round; the end minus now"
        )
    else:
        c.require(
            False,
            "",
            f"days_left is {days_left}, not the whole days from now until {display_name(soonest_root)} ends: "
            "subtract an aware now (datetime.timezone.utc) from its not_valid_after_utc and take .days",
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
        hint="Keep the roots whose key is an elliptic-curve key (step 5), and count how often each curve's "
        "name appears: a dict you fill in a loop, or collections.Counter, does the counting.",
    )
    if not_attempted(curve_counts):
        return c.not_attempted()
    if not isinstance(curve_counts, Mapping):
        return c.fail(
            "curve_counts should be a dict from a curve name to a number of roots, e.g. {'secp384r1': 12}"
        )
    if any(isinstance(name, ec.EllipticCurve) for name in curve_counts):
        return c.fail(
            "the keys of curve_counts are curve objects: use their names, public_key().curve.name "
            "(text such as 'secp384r1')"
        )
    expected = Counter(
        root.public_key().curve.name
        for root in roots
        if isinstance(root.public_key(), ec.EllipticCurvePublicKey)
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
    compared = sorted(set(expected) & set(given))
    if compared:  # with no curve in common there is no count to compare yet
        wrong = [name for name in compared if given[name] != expected[name]]
        c.require(  # the counts are the answer: say which are wrong, never what they should be
            not wrong,
            "each count you gave matches the bundle",
            f"wrong count for {', '.join(wrong)}: count again",
        )
    if all(ok for ok, _ in c.points):  # the share is part of the answer: shown once every count is right
        total = sum(expected.values())
        c.require(True, f"{total} of the {len(roots)} roots have ECDSA keys ({total / len(roots):.0%})", "")
    return c.result()
