"""temporary_environment: variables set and removed for one experiment, then restored exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from lab_helpers import temporary_environment

POSIX = os.name == "posix"  # Windows folds the case of environment names: the spelling tests need POSIX


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A known starting point: no proxy or CA-bundle variables, in any spelling (monkeypatch restores them)."""
    for name in list(os.environ):
        if "PROXY" in name.upper() or name.upper() in {
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "MTLS_TEST_ONLY",
        }:
            monkeypatch.delenv(name)
    return monkeypatch


def test_sets_inside_and_removes_again_what_was_not_set(environ: pytest.MonkeyPatch) -> None:
    with temporary_environment({"MTLS_TEST_ONLY": "inside"}):
        assert os.environ["MTLS_TEST_ONLY"] == "inside"
    assert "MTLS_TEST_ONLY" not in os.environ


def test_restores_a_previous_value(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MTLS_TEST_ONLY", "before")
    with temporary_environment({"MTLS_TEST_ONLY": "inside"}):
        assert os.environ["MTLS_TEST_ONLY"] == "inside"
    assert os.environ["MTLS_TEST_ONLY"] == "before"


def test_removes_inside_and_brings_the_value_back(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MTLS_TEST_ONLY", "before")
    with temporary_environment(remove=["MTLS_TEST_ONLY"]):
        assert "MTLS_TEST_ONLY" not in os.environ
    assert os.environ["MTLS_TEST_ONLY"] == "before"


def test_an_empty_value_is_not_an_absence(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MTLS_TEST_ONLY", "")
    with temporary_environment({"MTLS_TEST_ONLY": "inside"}):
        pass
    assert os.environ.get("MTLS_TEST_ONLY") == ""  # empty again, not removed
    environ.delenv("MTLS_TEST_ONLY")
    with temporary_environment({"MTLS_TEST_ONLY": ""}):
        assert os.environ.get("MTLS_TEST_ONLY") == ""  # set, and empty
    assert "MTLS_TEST_ONLY" not in os.environ  # removed again, not left empty


def test_restores_on_an_exception(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MTLS_TEST_ONLY", "before")
    experiment = temporary_environment({"MTLS_TEST_ONLY": "inside", "HTTPS_PROXY": "http://127.0.0.1:9"})
    with pytest.raises(RuntimeError, match="inside the block"), experiment:
        raise RuntimeError("inside the block")
    assert os.environ["MTLS_TEST_ONLY"] == "before"
    assert "HTTPS_PROXY" not in os.environ


def test_restores_what_the_block_itself_changed(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("MTLS_TEST_ONLY", "before")
    with temporary_environment(remove=["MTLS_TEST_ONLY"]):
        os.environ["MTLS_TEST_ONLY"] = "written by the block"
        os.environ["mtls_test_only"] = "and in lower case"
    assert os.environ["MTLS_TEST_ONLY"] == "before"
    if POSIX:
        assert "mtls_test_only" not in os.environ


@pytest.mark.skipif(not POSIX, reason="Windows folds the case of environment names")
def test_a_name_stands_for_every_spelling_of_it(environ: pytest.MonkeyPatch) -> None:
    environ.setenv("https_proxy", "http://company-proxy:3128")
    environ.setenv("No_Proxy", "localhost")
    with temporary_environment({"HTTPS_PROXY": "http://127.0.0.1:9"}, remove=["NO_PROXY"]):
        assert os.environ["HTTPS_PROXY"] == "http://127.0.0.1:9"
        assert "https_proxy" not in os.environ and "No_Proxy" not in os.environ
    assert os.environ["https_proxy"] == "http://company-proxy:3128"
    assert os.environ["No_Proxy"] == "localhost"
    assert "HTTPS_PROXY" not in os.environ


@pytest.mark.skipif(not POSIX, reason="Windows folds the case of environment names")
def test_without_the_spellings_rule_a_lower_case_proxy_would_win(environ: pytest.MonkeyPatch) -> None:
    """The negative twin: setting HTTPS_PROXY alone leaves https_proxy in charge, for requests."""
    url = "https://localhost:8443/"
    environ.setenv("https_proxy", "http://company-proxy:3128")
    environ.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # what a by-hand experiment would do
    assert requests.utils.get_environ_proxies(url)["https"] == "http://company-proxy:3128"
    with temporary_environment({"HTTPS_PROXY": "http://127.0.0.1:9"}):
        assert requests.utils.get_environ_proxies(url)["https"] == "http://127.0.0.1:9"


def test_child_processes_see_the_experiment(environ: pytest.MonkeyPatch) -> None:
    code = "import os; print(os.environ.get('MTLS_TEST_ONLY', 'unset'))"
    with temporary_environment({"MTLS_TEST_ONLY": "inside"}):
        inside = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    after = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert (inside.strip(), after.strip()) == ("inside", "unset")


def test_refuses_none_as_a_value_and_a_name_both_set_and_removed(environ: pytest.MonkeyPatch) -> None:
    with pytest.raises(TypeError, match="remove="), temporary_environment({"MTLS_TEST_ONLY": None}):  # type: ignore[dict-item]
        pass
    with (
        pytest.raises(ValueError, match="both set and removed"),
        temporary_environment({"HTTPS_PROXY": "x"}, remove=["https_proxy"]),
    ):
        pass
    assert "MTLS_TEST_ONLY" not in os.environ and "HTTPS_PROXY" not in os.environ
