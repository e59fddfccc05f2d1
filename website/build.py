"""Build the course's website: every course notebook executed, into build/site/html.

    python website/build.py [--output DIR]

(``scripts/build-site.sh`` installs what this needs, then runs it.) Sphinx runs with
warnings as errors. The notebooks execute as they do under pytest, with four
differences that keep the build clean and the outputs those of a learner's machine:

- lab files go to a fresh temporary ``MTLS_LAB_DIR``, deleted afterwards;
- the proxy and CA-bundle variables of the machine that builds are removed, so the
  outputs show a machine without them (notebook 00 reports them when they are set);
- exercise checks run in their learner mode ("not attempted yet"), never strict;
- notebook 12 measures for the times its cells give (the tests shorten them).

Every server a notebook starts binds 127.0.0.1 and lives in its kernel, which stops
with its notebook. The build checks that nothing it started is still running when it
ends: a process left behind is stopped, named, and fails the build.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEBSITE = ROOT / "website"
DEFAULT_OUTPUT = ROOT / "build" / "site"
#: Variables that change what TLS clients do; the notebooks would report this machine's values.
MACHINE_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "MTLS_EXERCISES_STRICT",
    "MTLS_MEASURE_TIME_SCALE",  # the tests shorten notebook 12's measurements; readers see full ones
)


def build_environment(lab_dir: Path) -> dict[str, str]:
    """The environment Sphinx and every notebook kernel run in."""
    environment = {name: value for name, value in os.environ.items() if name not in MACHINE_VARIABLES}
    environment["MTLS_LAB_DIR"] = str(lab_dir)
    environment["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # no debugger warning in kernels' stderr
    return environment


def processes_left_behind(session: int, lab_dir: Path) -> list[tuple[int, str]]:
    """Processes of the build still alive: in its session, or carrying its MTLS_LAB_DIR (Linux /proc only)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    marker = f"MTLS_LAB_DIR={lab_dir}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            in_session = int(fields[3]) == session
            in_environment = marker in (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
        if (in_session or in_environment) and fields[0] != "Z":
            found.append((int(entry.name), command))
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent to collect it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] != "Z"


def stop(processes: list[tuple[int, str]]) -> None:
    """SIGTERM, then SIGKILL after a bounded wait, each process by its id."""
    for pid, _ in processes:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    for pid, _ in processes:
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def build(output: Path) -> int:
    """Run Sphinx over the repository (warnings as errors) into *output*/html; the exit status."""
    html, doctrees = output / "html", output / "doctrees"
    shutil.rmtree(html, ignore_errors=True)
    shutil.rmtree(doctrees, ignore_errors=True)  # every build executes every notebook afresh
    lab_dir = Path(tempfile.mkdtemp(prefix="mtls-site-lab-"))
    command = [
        sys.executable,
        "-m",
        "sphinx",
        "--fail-on-warning",
        "--keep-going",
        "--builder",
        "html",
        "--conf-dir",
        str(WEBSITE),
        "--doctree-dir",
        str(doctrees),
        str(ROOT),
        str(html),
    ]
    started = time.monotonic()
    try:
        sphinx = subprocess.Popen(command, cwd=ROOT, env=build_environment(lab_dir), start_new_session=True)
        status = sphinx.wait()
        left = processes_left_behind(sphinx.pid, lab_dir)  # the session id is the leader's pid
        if left:
            stop(left)
            names = "; ".join(f"{pid} {command}" for pid, command in left)
            print(f"error: the build left processes running (now stopped): {names}", file=sys.stderr)
            status = status or 1
    finally:
        shutil.rmtree(lab_dir, ignore_errors=True)
    elapsed = time.monotonic() - started
    if status == 0:
        size = sum(f.stat().st_size for f in html.rglob("*") if f.is_file())
        print(f"Site built in {elapsed:.0f} s: {html / 'index.html'} ({size / 1e6:.1f} MB)")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"default: {DEFAULT_OUTPUT}")
    return build(parser.parse_args(argv).output.resolve())


if __name__ == "__main__":
    sys.exit(main())
