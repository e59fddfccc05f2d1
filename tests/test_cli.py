"""The command line, run as a learner runs it: ``python -m lab_helpers pki|serve|demo``.

Every subprocess is bounded: a timeout on each run, and ``serve``'s output is
read by a thread with a deadline, so a server that never prints its URL fails
the test instead of hanging it.
"""

from __future__ import annotations

import os
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from lab_checks import environment_without
from platforms import POSIX, needs_posix_signals

from lab_helpers import LabPaths, attempt, load_certificate, load_certificate_authority

SEED_FILES = {
    "ca.crt",
    "ca.key",
    "server.csr",
    "server.crt",
    "server.key",
    "client.csr",
    "client.crt",
    "client.key",
}
URL = re.compile(r"https://localhost:\d+/")


def _default_sigint() -> None:  # pragma: no cover (runs in the child)
    # A child inherits an ignored SIGINT (a background job in a shell without job
    # control); Python then never raises KeyboardInterrupt. Give it the default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lab_helpers", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=cwd,
    )


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


# -- pki ------------------------------------------------------------------------------------------


def test_pki_writes_the_eight_files_with_private_keys_0600(tmp_path: Path) -> None:
    result = run_cli("pki", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert {path.name for path in tmp_path.iterdir()} == SEED_FILES
    for path in tmp_path.iterdir():
        expected = 0o600 if path.suffix == ".key" else 0o644
        assert not POSIX or stat.S_IMODE(path.stat().st_mode) == expected, path.name  # modes: POSIX only
        assert path.name in result.stdout
    ca = load_certificate_authority(tmp_path / "ca.crt", tmp_path / "ca.key")
    load_certificate(tmp_path / "client.crt").verify_directly_issued_by(ca.certificate)


def test_pki_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    assert run_cli("pki", "--dir", str(tmp_path)).returncode == 0
    before = snapshot(tmp_path)
    result = run_cli("pki", "--dir", str(tmp_path))
    assert result.returncode == 2
    assert "--force" in result.stderr and "Nothing was changed" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_pki_with_force_replaces_the_files(tmp_path: Path) -> None:
    assert run_cli("pki", "--dir", str(tmp_path)).returncode == 0
    before = snapshot(tmp_path)
    result = run_cli("pki", "--dir", str(tmp_path), "--force")
    assert result.returncode == 0, result.stderr
    after = snapshot(tmp_path)
    assert set(after) == SEED_FILES
    assert all(after[name] != before[name] for name in SEED_FILES)


@pytest.mark.parametrize(
    ("key_type", "public_type"),
    [("rsa", rsa.RSAPublicKey), ("ed25519", ed25519.Ed25519PublicKey), ("ec", ec.EllipticCurvePublicKey)],
)
def test_pki_key_type(tmp_path: Path, key_type: str, public_type: type) -> None:
    result = run_cli("pki", "--dir", str(tmp_path), "--key-type", key_type)
    assert result.returncode == 0, result.stderr
    for name in ("ca.crt", "server.crt", "client.crt"):
        assert isinstance(load_certificate(tmp_path / name).public_key(), public_type), name


def test_pki_refuses_an_unknown_key_type(tmp_path: Path) -> None:
    result = run_cli("pki", "--dir", str(tmp_path), "--key-type", "dsa")
    assert result.returncode == 2  # argparse: invalid choice
    assert "invalid choice" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_pki_without_dir_uses_mtls_lab_dir(tmp_path: Path) -> None:
    target = tmp_path / "from-env"
    result = run_cli("pki", env=environment_without(MTLS_LAB_DIR=str(target)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {path.name for path in target.iterdir()} == SEED_FILES
    assert not (tmp_path / "lab-files").exists()


# -- serve ----------------------------------------------------------------------------------------------


class ServeProcess:
    """``python -m lab_helpers serve`` in a child process, its stdout read line by line by a thread."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "lab_helpers", "serve", "--dir", str(directory), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_default_sigint if os.name == "posix" else None,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, name="serve-stdout-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            self.seen.append(line)
            match = pattern.search(line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern.pattern!r} in {timeout} s; got {self.seen!r}")

    def output_after_exit(self) -> str:
        self._reader.join(timeout=5.0)
        while not self.lines.empty():
            self.seen.append(self.lines.get_nowait())
        return "".join(self.seen)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def serve_process(lab_pki: LabPaths) -> Iterator[ServeProcess]:
    served = ServeProcess(lab_pki.directory)
    yield served
    served.kill()


@needs_posix_signals
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_answers_and_stops_cleanly_on_a_signal(
    serve_process: ServeProcess, client_files: dict, stop_signal: signal.Signals
) -> None:
    url = serve_process.wait_for_line(URL).group(0)
    outcome = attempt(url, **client_files)
    assert outcome.ok and outcome.body == "Hello, alice\n", outcome
    serve_process.wait_for_line(re.compile(r"GET / HTTP/1\.1"))  # the terminal shows the request
    serve_process.process.send_signal(stop_signal)
    assert serve_process.process.wait(timeout=3.0) == 0
    assert "Server stopped." in serve_process.output_after_exit()
    assert serve_process.process.stderr is not None
    assert "Traceback" not in serve_process.process.stderr.read()


def test_the_serve_banners_curl_command_works_behind_a_proxy_variable(
    serve_process: ServeProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command the banner suggests is copied into terminals where HTTPS_PROXY is often set."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    command = shlex.split(serve_process.wait_for_line(re.compile(r"^Try: (curl .*)$")).group(1))
    assert command[1:3] == ["--noproxy", "*"]
    environment = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    environment.pop("NO_PROXY", None)
    environment.pop("no_proxy", None)
    result = subprocess.run(
        [*command, "--silent", "--show-error", "--max-time", "10"],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (0, "Hello, alice\n"), result.stderr


def test_serve_shows_a_rejected_client(serve_process: ServeProcess, lab_pki: LabPaths) -> None:
    url = serve_process.wait_for_line(URL).group(0)
    assert not attempt(url, ca_file=lab_pki.ca_cert).ok
    serve_process.wait_for_line(re.compile(r"PEER_DID_NOT_RETURN_A_CERTIFICATE"))


def test_serve_on_a_missing_folder_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-lab"
    result = run_cli("serve", "--dir", str(missing))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "does not exist" in result.stderr and "python -m lab_helpers pki" in result.stderr
    assert "Traceback" not in result.stderr


# -- demo -----------------------------------------------------------------------------------------


def test_demo_runs_the_article_requests_as_expected() -> None:
    result = run_cli("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All three outcomes as expected." in result.stdout
    assert "NOT AS EXPECTED" not in result.stdout


def test_demo_is_immune_to_proxy_and_ca_bundle_variables(certifi_bundle: str) -> None:
    env = environment_without(
        "NO_PROXY",
        "no_proxy",
        HTTPS_PROXY="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        REQUESTS_CA_BUNDLE=certifi_bundle,
        CURL_CA_BUNDLE=certifi_bundle,
    )
    result = run_cli("demo", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All three outcomes as expected." in result.stdout


def test_demo_all_runs_the_whole_catalog_as_expected_behind_a_dead_proxy() -> None:
    env = environment_without(
        "NO_PROXY", "no_proxy", HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9"
    )
    result = run_cli("demo", "--all", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "17 of 17 cases as expected." in result.stdout
    assert "NOT AS EXPECTED" not in result.stdout
    assert "plain-http" in result.stdout  # the summary table lists the cases
