"""The failure catalog: every case fails the same way every time, and the working set-up works."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab_helpers import CatalogLab, MTLSServer, attempt, build_server_context
from lab_helpers.catalog import CASES, run_case
from lab_helpers.diagnosis import CASES as EXPLANATIONS

REPEATS = 20


@pytest.fixture(scope="module")
def lab() -> Iterator[CatalogLab]:
    with CatalogLab() as lab:
        yield lab


def test_a_temporary_catalog_folder_is_removed_with_its_keys() -> None:
    with CatalogLab() as temporary:
        key = temporary.client[1]  # made on first use
        assert key.exists()
    assert not temporary.directory.exists()
    temporary.close()  # a second close is harmless


def test_a_catalog_folder_you_name_is_kept(tmp_path: Path) -> None:
    with CatalogLab(tmp_path / "catalog") as named:
        key = named.client[1]
    assert key.exists()


def test_the_working_set_up_succeeds(lab: CatalogLab) -> None:
    """The negative twin of every case: change nothing, and the request succeeds."""
    context = build_server_context(*lab.server, lab.ca_file)
    with MTLSServer(context, name=None) as server:
        outcome = attempt(server.url, ca_file=lab.ca_file, cert_file=lab.client[0], key_file=lab.client[1])
    assert outcome.ok and outcome.body == "Hello, alice\n"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.key)
def test_case_classifies_the_same_way_every_run(case, lab: CatalogLab) -> None:  # type: ignore[no-untyped-def]
    seen = Counter(run_case(case, lab).classification for _ in range(REPEATS))
    assert len(seen) == 1, f"{case.key} varied: {dict(seen)}"
    result = run_case(case, lab)
    assert result.as_expected, str(result)


def test_a_wrong_expectation_is_reported_as_not_expected(lab: CatalogLab) -> None:
    """The check can fail: the same case with a wrong expected server reason is not as expected."""
    wrong = dataclasses.replace(CASES[0], expected_server_reason="PEER_DID_NOT_RETURN_A_CERTIFICATE")
    result = run_case(wrong, lab)
    assert not result.as_expected
    assert "NOT AS EXPECTED" in str(result)


def test_every_case_expects_an_explanation_that_exists() -> None:
    keys = {explanation.key for explanation in EXPLANATIONS}
    for case in CASES:
        assert case.expected_explanation in keys, case.key


def test_the_catalog_covers_the_failures_the_course_promises() -> None:
    assert len(CASES) >= 17
    assert len({case.key for case in CASES}) == len(CASES)
