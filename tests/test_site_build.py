"""The website's build (website/build.py) leaves nothing behind and runs notebooks in a learner's clean environment."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("site_build", ROOT / "website" / "build.py")
assert _spec and _spec.loader
site_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site_build)

linux_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")


def test_the_build_environment_is_a_learners(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/somewhere/bundle.pem")
    monkeypatch.setenv("MTLS_EXERCISES_STRICT", "1")
    monkeypatch.setenv("MTLS_MEASURE_TIME_SCALE", "0.2")
    environment = site_build.build_environment(tmp_path / "lab")
    assert environment["MTLS_LAB_DIR"] == str(tmp_path / "lab")
    removed = {"HTTPS_PROXY", "REQUESTS_CA_BUNDLE", "MTLS_EXERCISES_STRICT", "MTLS_MEASURE_TIME_SCALE"}
    assert not removed & environment.keys()
    assert environment["PATH"]  # everything else is kept


@linux_proc
def test_a_process_left_behind_is_found_and_stopped(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        env={"MTLS_LAB_DIR": str(lab_dir), "PATH": ""},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 10
        found: list[tuple[int, str]] = []
        while time.monotonic() < deadline and not found:  # until the child's /proc entry is readable
            found = site_build.processes_left_behind(session=-1, lab_dir=lab_dir)
            time.sleep(0.05)
        assert [pid for pid, _ in found] == [sleeper.pid]
        assert [pid for pid, _ in site_build.processes_left_behind(sleeper.pid, tmp_path / "other")] == [
            sleeper.pid
        ]
        site_build.stop(found)
        assert sleeper.wait(timeout=10) != 0
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait(timeout=10)


@linux_proc
def test_nothing_is_found_when_nothing_is_left(tmp_path: Path) -> None:
    assert site_build.processes_left_behind(session=-1, lab_dir=tmp_path / "never-used") == []
