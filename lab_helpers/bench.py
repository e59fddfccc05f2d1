"""``python -m lab_helpers bench``: what the lab server and lab PKI cost, measured.

Two comparisons, each made in one run so that the machine's noise touches
both sides alike, with medians over several rounds:

1. Requests per second from one ``requests.Session``, keep-alive and with a
   new TLS connection per request, against the lab server (``serve``, in its
   own process) and, when ``node`` is installed, the seed's Node.js server
   with the same certificates. Rounds alternate between the two servers.
2. ``python -m lab_helpers pki`` as a whole process (interpreter start
   included) against the seed's seven ``openssl`` commands that make the
   same eight files.

Figures are printed, never asserted: timing tests on a shared machine fail
for reasons that are not bugs.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .client import lab_session
from .errors import LabError
from .files import LabPaths, create_seed_pki

__all__ = ["run_bench", "seed_server_path", "SEED_OPENSSL_COMMANDS"]

#: The seed article's commands that create its files (its ``-text`` displays left out).
SEED_OPENSSL_COMMANDS = (
    "openssl req -new -x509 -nodes -days 365 -subj /CN=example-ca -keyout ca.key -out ca.crt",
    "openssl genrsa -out server.key",
    "openssl req -new -key server.key -subj /CN=localhost -out server.csr",
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out server.crt",
    "openssl genrsa -out client.key",
    "openssl req -new -key client.key -subj /CN=localhost -out client.csr",
    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out client.crt",
)

# Loaded with `node --require` before the seed's index.js: the seed listens on
# the fixed port 3000 of "localhost"; this moves it to a free port on
# 127.0.0.1 (so the benchmark cannot clash with anything) and reports the port.
_NODE_PRELOAD = """
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, host, callback) {
  const server = this;
  return listen.call(this, 0, '127.0.0.1', function () {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n');
    if (typeof callback === 'function') callback();
  });
};
"""


def seed_server_path() -> Path | None:
    """The seed's ``index.js`` when this checkout sits beside the course's ``shared/`` folder."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "seed" / "index.js"
    return candidate if candidate.exists() else None


def _read_line(process: subprocess.Popen[str], predicate: Callable[[str], bool], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if predicate(line):
            return line
    process.kill()
    raise LabError(f"The server did not start within {timeout} s: {' '.join(map(str, process.args))}")  # type: ignore[arg-type]


@contextmanager
def _lab_server(paths: LabPaths) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "lab_helpers", "serve", "--dir", str(paths.directory), "--quiet"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = _read_line(process, lambda text: "https://" in text, 15)
        yield line.split("https://", 1)[1].split()[0].rstrip("/").join(("https://", "/"))
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def _node_server(paths: LabPaths, index_js: Path) -> Iterator[str]:
    preload = paths.directory / "bench-preload.js"
    preload.write_text(_NODE_PRELOAD)
    process = subprocess.Popen(
        ["node", "--require", str(preload), str(index_js)], cwd=paths.directory, stdout=subprocess.PIPE, text=True
    )
    try:
        line = _read_line(process, lambda text: text.startswith("{"), 15)
        yield f"https://localhost:{json.loads(line)['port']}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _rate(url: str, paths: LabPaths, count: int, *, keep_alive: bool) -> float:
    """Requests per second for ``count`` GETs on one session (after one warm-up request)."""
    session = lab_session(ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key)
    headers = {} if keep_alive else {"Connection": "close"}  # close: a new TCP + TLS handshake each time
    with session:
        session.get(url, headers=headers).raise_for_status()
        start = time.perf_counter()
        for _ in range(count):
            response = session.get(url, headers=headers)
            response.raise_for_status()
        return count / (time.perf_counter() - start)


def _time_process(commands: list[list[str]], cwd: Path) -> float:
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _bench_pki(rounds: int, say: Callable[[str], None]) -> None:
    say("\nPKI: the seed's eight files")
    lab_times, openssl_times = [], []
    with tempfile.TemporaryDirectory(prefix="mtls-bench-pki-") as directory:
        folder = Path(directory)
        for _ in range(rounds):
            lab_times.append(_time_process(
                [[sys.executable, "-m", "lab_helpers", "pki", "--dir", str(folder / "lab"), "--force"]], folder
            ))
            if shutil.which("openssl"):
                (folder / "seed").mkdir(exist_ok=True)
                openssl_times.append(_time_process([c.split() for c in SEED_OPENSSL_COMMANDS], folder / "seed"))
    lab = statistics.median(lab_times)
    say(f"  python -m lab_helpers pki (ECDSA P-256, one process) {lab * 1000:8.0f} ms  (median of {rounds})")
    if openssl_times:
        seed = statistics.median(openssl_times)
        say(f"  the seed's 7 openssl commands (RSA-2048)             {seed * 1000:8.0f} ms  (median of {rounds})")
        say(f"  lab is {seed / lab:.1f}x faster")
    else:
        say("  openssl not found: the seed's commands were not timed")


def _bench_servers(rounds: int, keep_alive_count: int, new_count: int, say: Callable[[str], None]) -> None:
    say(f"\nServers: requests/s from one requests.Session (median of {rounds} rounds; "
        f"{keep_alive_count} keep-alive and {new_count} new-connection requests a round)")
    index_js = seed_server_path()
    with tempfile.TemporaryDirectory(prefix="mtls-bench-") as directory:
        paths = create_seed_pki(directory)
        with _lab_server(paths) as lab_url:
            targets = {"lab (python -m lab_helpers serve)": lab_url}
            with (_node_server(paths, index_js) if index_js and shutil.which("node") else _no_server()) as node_url:
                if node_url:
                    targets["seed (node index.js)"] = node_url
                else:
                    say("  node or the seed's index.js not found: only the lab server is measured")
                results: dict[str, dict[str, list[float]]] = {name: {"keep": [], "new": []} for name in targets}
                for round_number in range(rounds):
                    for name, url in targets.items():  # alternate, so drift hits both alike
                        results[name]["keep"].append(_rate(url, paths, keep_alive_count, keep_alive=True))
                        results[name]["new"].append(_rate(url, paths, new_count, keep_alive=False))
                    print(f"  round {round_number + 1}/{rounds} done", file=sys.stderr, flush=True)
    medians = {name: {kind: statistics.median(values) for kind, values in kinds.items()} for name, kinds in results.items()}
    say(f"  {'server':<36}{'keep-alive req/s':>18}{'new-connection req/s':>22}")
    for name, figures in medians.items():
        say(f"  {name:<36}{figures['keep']:>18.0f}{figures['new']:>22.0f}")
    if len(medians) == 2:
        lab, node = medians.values()
        say(f"  {'ratio lab/seed':<36}{lab['keep'] / node['keep']:>18.2f}{lab['new'] / node['new']:>22.2f}")


@contextmanager
def _no_server() -> Iterator[None]:
    yield None


def _say(line: str) -> None:
    print(line, flush=True)


def run_bench(*, rounds: int = 5, quick: bool = False, say: Callable[[str], None] = _say) -> int:
    if rounds < 1:
        raise LabError("--rounds must be at least 1.")
    if quick:
        rounds = min(rounds, 3)
    say(f"Benchmark on Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    _bench_servers(rounds, 100 if quick else 400, 20 if quick else 100, say)
    _bench_pki(rounds, say)
    return 0
