"""The checks of notebook 00's exercises: quiet until attempted, pass the solution, name what is wrong."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests

from lab_helpers import check, lab_session

WATCHED = [
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "SSLKEYLOGFILE",
    "MTLS_LAB_DIR",
]


@pytest.fixture(autouse=True)
def not_strict(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Checks print their verdict here; only the solution notebooks (or MTLS_EXERCISES_STRICT=1) make them raise."""
    monkeypatch.delenv("MTLS_EXERCISES_STRICT", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def known_environment(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Exactly two watched variables set, one of them in lower case."""
    for name in list(os.environ):
        if name.upper() in WATCHED:
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("https_proxy", "http://127.0.0.1:9")
    return {"REQUESTS_CA_BUNDLE", "HTTPS_PROXY"}


@pytest.fixture
def lab_ca_file(tmp_path: Path) -> Path:
    return tmp_path / "ca.crt"  # notebook 00 runs before the CA exists: the check must not need the file


def careful_session(ca_file: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_file)
    return session


# -- 0.1 a session the environment cannot steer ----------------------------------


def test_0_1_not_attempted(lab_ca_file: Path) -> None:
    result = check.exercise_00_1(None, None, watched=WATCHED, lab_ca_file=lab_ca_file)
    assert result.status == "not attempted yet"


def test_0_1_passes_with_the_set_variables_and_a_careful_session(
    known_environment: set[str], lab_ca_file: Path
) -> None:
    result = check.exercise_00_1(
        {"requests_ca_bundle", "HTTPS_PROXY"},
        careful_session(lab_ca_file),
        watched=WATCHED,
        lab_ca_file=lab_ca_file,
    )
    assert result.passed, result


def test_0_1_the_lab_session_passes_too(known_environment: set[str], tmp_path: Path) -> None:
    from lab_helpers import CertificateAuthority, save_certificate

    ca_file = save_certificate(CertificateAuthority.create_root().certificate, tmp_path / "ca.crt")
    result = check.exercise_00_1(
        known_environment, lab_session(ca_file=ca_file), watched=WATCHED, lab_ca_file=ca_file
    )
    assert result.passed, result


def test_0_1_names_the_variables_missed_and_the_extra_ones(
    known_environment: set[str], lab_ca_file: Path
) -> None:
    result = check.exercise_00_1(
        ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"],
        careful_session(lab_ca_file),
        watched=WATCHED,
        lab_ca_file=lab_ca_file,
    )
    assert not result.passed
    assert "missing HTTPS_PROXY" in str(result) and "not set (or not watched): SSL_CERT_FILE" in str(result)


def test_0_1_mtls_lab_dir_changes_no_tls_client(
    known_environment: set[str], lab_ca_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The learner left out MTLS_LAB_DIR, the course's own variable, and was told it was missing."""
    monkeypatch.setenv("MTLS_LAB_DIR", str(lab_ca_file.parent))
    found = {name.upper() for name in os.environ if name.upper() in WATCHED}
    without = check.exercise_00_1(
        found - {"MTLS_LAB_DIR"}, careful_session(lab_ca_file), watched=WATCHED, lab_ca_file=lab_ca_file
    )
    assert without.passed, without
    assert "MTLS_LAB_DIR" not in str(without)
    with_it = check.exercise_00_1(
        found, careful_session(lab_ca_file), watched=WATCHED, lab_ca_file=lab_ca_file
    )
    assert with_it.passed, with_it  # listing it is no mistake either: it is simply not a TLS variable


def test_0_1_a_plain_session_is_steered_by_the_environment(
    known_environment: set[str], lab_ca_file: Path
) -> None:
    plain = requests.Session()
    plain.verify = str(lab_ca_file)
    result = check.exercise_00_1(known_environment, plain, watched=WATCHED, lab_ca_file=lab_ca_file)
    assert not result.passed
    text = str(result)
    assert "trust_env is still True" in text
    assert "would trust '/company/ca-bundle.pem' instead of the lab CA" in text
    assert "would go through the proxy" in text


def test_0_1_a_session_trusting_certifi_is_not_the_lab_session(
    known_environment: set[str], lab_ca_file: Path
) -> None:
    session = requests.Session()
    session.trust_env = False
    result = check.exercise_00_1(known_environment, session, watched=WATCHED, lab_ca_file=lab_ca_file)
    assert not result.passed and "verify is True" in str(result)


def test_0_1_strict_mode_raises(
    monkeypatch: pytest.MonkeyPatch, known_environment: set[str], lab_ca_file: Path
) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_00_1(set(), careful_session(lab_ca_file), watched=WATCHED, lab_ca_file=lab_ca_file)


# -- 0.2 pretend to be behind a proxy ---------------------------------------------


def proxied_request_error(monkeypatch: pytest.MonkeyPatch, *, no_proxy: str | None = None) -> BaseException:
    for name in list(os.environ):
        if "PROXY" in name.upper():
            monkeypatch.delenv(name)
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens on port 9
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    with pytest.raises(requests.exceptions.RequestException) as caught:
        requests.get("https://localhost:9/", timeout=2)
    return caught.value


def test_0_2_not_attempted() -> None:
    assert check.exercise_00_2(None).status == "not attempted yet"


def test_0_2_passes_with_the_real_proxy_error(monkeypatch: pytest.MonkeyPatch) -> None:
    result = check.exercise_00_2(proxied_request_error(monkeypatch))
    assert result.passed, result


def test_0_2_a_direct_connection_error_names_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    error = proxied_request_error(monkeypatch, no_proxy="localhost")
    result = check.exercise_00_2(error)
    assert not result.passed and "or NO_PROXY (or no_proxy) covers localhost" in str(result)


def test_0_2_http_proxy_instead_of_https_proxy_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner set HTTP_PROXY, which an https:// URL does not read, and no NO_PROXY at all."""
    for name in list(os.environ):
        if "PROXY" in name.upper():
            monkeypatch.delenv(name)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with pytest.raises(requests.exceptions.RequestException) as caught:
        requests.get("https://localhost:9/", timeout=2)
    result = check.exercise_00_2(caught.value)
    assert not result.passed
    assert "not the one an https:// URL reads (HTTPS_PROXY, not HTTP_PROXY)" in str(result)


def test_0_2_an_ssl_error_is_not_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    result = check.exercise_00_2(requests.exceptions.SSLError("certificate verify failed"))
    assert not result.passed and "it is an SSLError" in str(result)


def test_0_2_the_class_instead_of_the_exception_is_refused() -> None:
    result = check.exercise_00_2(requests.exceptions.ProxyError)
    assert not result.passed and "proxy_error is a class" in str(result)


def test_0_2_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_00_2(requests.exceptions.SSLError("x"))


# -- 0.3 the OpenSSL inside Python --------------------------------------------------

OPENSSL_3 = {"version_text": "OpenSSL 3.0.19 27 Jan 2026", "version_info": (3, 0, 0, 19, 0)}


def test_0_3_not_attempted() -> None:
    assert check.exercise_00_3(None).status == "not attempted yet"


def test_0_3_passes_with_this_kernels_version() -> None:
    import ssl

    version = tuple(int(part) for part in re.search(r"(\d+)\.(\d+)\.(\d+)", ssl.OPENSSL_VERSION).groups())
    assert check.exercise_00_3(version).passed


def test_0_3_passes_for_openssl_3_and_1_1_1() -> None:
    assert check.exercise_00_3((3, 0, 19), **OPENSSL_3).passed
    assert check.exercise_00_3(
        (1, 1, 1), version_text="OpenSSL 1.1.1w  11 Sep 2023", version_info=(1, 1, 1, 23, 15)
    ).passed


def test_0_3_explains_the_version_info_trap() -> None:
    result = check.exercise_00_3((3, 0, 0), **OPENSSL_3)
    assert not result.passed and "OPENSSL_VERSION_INFO[:3], which for OpenSSL 3 always ends in 0" in str(
        result
    )


def test_0_3_refuses_another_version_and_other_shapes() -> None:
    assert "is not the OpenSSL inside this Python" in str(check.exercise_00_3((3, 2, 1), **OPENSSL_3))
    text = str(check.exercise_00_3("3.0.19", **OPENSSL_3))
    assert "tuple of three ints such as (3, 1, 4)" in text
    assert "(3, 0, 19)" not in text  # the example is not the answer
    assert "a 5-tuple" in str(check.exercise_00_3((3, 0, 0, 19, 0), **OPENSSL_3))


def test_0_3_strict_mode_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    with pytest.raises(AssertionError, match="does not pass its own check"):
        check.exercise_00_3((3, 0, 0), **OPENSSL_3)


def test_0_hints_wait_for_an_attempt_and_hand_over_no_code(lab_ca_file: Path) -> None:
    waiting = check.exercise_00_1(None, None, watched=WATCHED, lab_ca_file=lab_ca_file)
    assert "Hint" not in str(waiting)
    failed = check.exercise_00_3((9, 9, 9), **OPENSSL_3)
    assert "Hint: Pick the three numbers" in str(failed)
    assert "re.search" not in str(failed)
