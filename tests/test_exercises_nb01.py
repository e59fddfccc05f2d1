"""The checks of notebook 01's exercises, on a small trust store whose answers are known."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lab_helpers import check

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC)


def make_root(name: str, key: object, *, years_left: float, years_old: float = 10) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=365 * years_old))
        .not_valid_after(NOW + datetime.timedelta(days=365 * years_left))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def store() -> dict[str, x509.Certificate]:
    """Five roots: RSA 2048 and 3072, ECDSA P-384 (twice) and P-256; 'Old RSA' ends first."""
    return {
        "big rsa": make_root("Big RSA", rsa.generate_private_key(65537, 3072), years_left=12),
        "old rsa": make_root("Old RSA", rsa.generate_private_key(65537, 2048), years_left=1.5),
        "p384 a": make_root("P-384 A", ec.generate_private_key(ec.SECP384R1()), years_left=20),
        "p384 b": make_root("P-384 B", ec.generate_private_key(ec.SECP384R1()), years_left=8),
        "p256": make_root("P-256", ec.generate_private_key(ec.SECP256R1()), years_left=15),
    }


@pytest.fixture
def roots(store: dict[str, x509.Certificate]) -> list[x509.Certificate]:
    return list(store.values())


@pytest.fixture(autouse=True)
def not_strict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    monkeypatch.chdir(tmp_path)


def days_left(certificate: x509.Certificate) -> int:
    return (certificate.not_valid_after_utc - datetime.datetime.now(UTC)).days


# -- 1.1 the smallest RSA key ------------------------------------------------------


def test_1_1_not_attempted(roots: list) -> None:
    assert check.exercise_01_1(None, None, roots=roots).status == "not attempted yet"


def test_1_1_passes_with_the_smallest_rsa_root(store: dict, roots: list) -> None:
    result = check.exercise_01_1(store["old rsa"], 2048, roots=roots)
    assert result.passed, result


def test_1_1_a_bigger_rsa_key_is_not_the_smallest(store: dict, roots: list) -> None:
    result = check.exercise_01_1(store["big rsa"], 3072, roots=roots)
    assert not result.passed and "have only 2048: take the minimum" in str(result)


def test_1_1_an_ecdsa_root_is_not_rsa(store: dict, roots: list) -> None:
    result = check.exercise_01_1(store["p256"], 256, roots=roots)
    assert not result.passed and "has an ECDSA (secp256r1) key, not RSA" in str(result)


def test_1_1_a_wrong_size_and_a_foreign_root(store: dict, roots: list) -> None:
    assert "smallest_rsa_bits is 4096" in str(check.exercise_01_1(store["old rsa"], 4096, roots=roots))
    as_text = str(check.exercise_01_1(store["old rsa"], "2048", roots=roots))
    assert "smallest_rsa_bits is the text '2048': give the int, public_key().key_size" in as_text
    assert "but the key" not in as_text  # not "'2048', but the key has 2048 bits"
    stranger = make_root("Stranger", rsa.generate_private_key(65537, 2048), years_left=3)
    assert "is not in `roots`" in str(check.exercise_01_1(stranger, 2048, roots=roots))


def test_1_1_strict_mode_raises(monkeypatch: pytest.MonkeyPatch, store: dict, roots: list) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_01_1(store["big rsa"], 3072, roots=roots)


def test_1_1_and_1_2_pass_on_the_real_bundle() -> None:
    """The notebook's own answer, on certifi's roots."""
    certifi = pytest.importorskip("certifi")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few roots have serial number 0
        real = x509.load_pem_x509_certificates(Path(certifi.where()).read_bytes())
    rsa_roots = [root for root in real if isinstance(root.public_key(), rsa.RSAPublicKey)]
    smallest = min(rsa_roots, key=lambda root: root.public_key().key_size)
    assert check.exercise_01_1(smallest, smallest.public_key().key_size, roots=real).passed
    soonest = min(real, key=lambda root: root.not_valid_after_utc)
    assert check.exercise_01_2(soonest, days_left(soonest), roots=real).passed


# -- 1.2 the root that expires first -----------------------------------------------


def test_1_2_not_attempted(roots: list) -> None:
    assert check.exercise_01_2(None, None, roots=roots).status == "not attempted yet"


def test_1_2_passes_with_the_first_to_end(store: dict, roots: list) -> None:
    result = check.exercise_01_2(store["old rsa"], days_left(store["old rsa"]), roots=roots)
    assert result.passed, result


def test_1_2_a_later_root_is_told_without_naming_the_answer(store: dict, roots: list) -> None:
    result = check.exercise_01_2(store["p384 b"], days_left(store["p384 b"]), roots=roots)
    assert not result.passed
    assert "P-384 B ends on" in str(result) and "1 root(s) end before it" in str(result)
    assert "Old RSA" not in str(result)  # the message points at the idea, not at the root to pick


def test_1_2_the_root_that_starts_first_is_named_as_such(roots: list) -> None:
    """The plausible mistake: min() over not_valid_before_utc, the start of validity."""
    ancient = make_root("Ancient", ec.generate_private_key(ec.SECP256R1()), years_left=30, years_old=40)
    result = check.exercise_01_2(ancient, days_left(ancient), roots=[*roots, ancient])
    (problem,) = [text for ok, text in result.points if not ok]
    assert (
        "validity *starts* first (not_valid_before_utc)" in problem
        and "compare the end of validity" in problem
    )


def test_1_2_a_wrong_day_count(store: dict, roots: list) -> None:
    result = check.exercise_01_2(store["old rsa"], days_left(store["old rsa"]) + 30, roots=roots)
    assert not result.passed and "not the whole days from now until Old RSA ends" in str(result)


def test_1_2_days_counted_backwards(store: dict, roots: list) -> None:
    result = check.exercise_01_2(store["old rsa"], -days_left(store["old rsa"]), roots=roots)
    assert not result.passed and "you subtracted the other way round" in str(result)


def test_1_hints_point_at_the_idea_not_the_code(roots: list) -> None:
    for exercise in (check.exercise_01_1, check.exercise_01_2):
        result = exercise(None, None, roots=roots)
        assert "lambda" not in (result.hint or "") and "min(roots" not in (result.hint or "")


def test_1_2_strict_mode_raises(monkeypatch: pytest.MonkeyPatch, store: dict, roots: list) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_01_2(store["p256"], 0, roots=roots)


# -- 1.3 ECDSA roots by curve --------------------------------------------------------


def test_1_3_not_attempted(roots: list) -> None:
    assert check.exercise_01_3(None, roots=roots).status == "not attempted yet"


def test_1_3_passes_with_the_right_counts(roots: list) -> None:
    result = check.exercise_01_3({"secp384r1": 2, "secp256r1": 1}, roots=roots)
    assert result.passed, result


def test_1_3_names_a_missing_curve_and_a_wrong_count(roots: list) -> None:
    result = check.exercise_01_3({"secp384r1": 1}, roots=roots)
    assert not result.passed
    assert "missing secp256r1" in str(result)
    assert "wrong count for secp384r1: count again" in str(result)
    assert "the bundle has" not in str(result) and "ECDSA keys" not in str(
        result
    )  # nothing gives the answer away


def test_1_3_the_stubs_example_gets_which_counts_are_wrong_and_no_numbers(roots: list) -> None:
    """The learner copied the stub's example; the check used to print the right counts and the ECDSA share."""
    result = check.exercise_01_3({"secp384r1": 10, "secp256r1": 2}, roots=roots)
    assert not result.passed
    assert [text for ok, text in result.points if not ok] == [
        "wrong count for secp256r1, secp384r1: count again"
    ]
    assert "of the 5 roots" not in str(result) and "%" not in str(result)


def test_1_3_curve_objects_as_keys_match_nothing_and_are_named(roots: list) -> None:
    result = check.exercise_01_3({ec.SECP384R1(): 2, ec.SECP256R1(): 1}, roots=roots)
    assert not result.passed
    assert "the keys of curve_counts are curve objects: use their names" in str(result)
    assert not any(ok for ok, _ in result.points)  # no "each count matches" when no key matched


def test_1_3_the_share_comes_with_the_right_answer(roots: list) -> None:
    result = check.exercise_01_3({"secp384r1": 2, "secp256r1": 1}, roots=roots)
    assert "3 of the 5 roots have ECDSA keys (60%)" in str(result)


def test_1_3_refuses_curve_labels_of_its_own(roots: list) -> None:
    result = check.exercise_01_3({"P-384": 2, "P-256": 1}, roots=roots)
    assert not result.passed and "no root uses P-256, P-384" in str(result)


def test_1_3_strict_mode_raises(monkeypatch: pytest.MonkeyPatch, roots: list) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_01_3({"secp384r1": 3}, roots=roots)
