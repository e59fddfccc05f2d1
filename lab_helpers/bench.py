"""``python -m lab_helpers bench``: what the lab costs, measured, with medians over several rounds.

Everything compared is measured in the same run, so that the machine's
noise touches both sides alike; rounds alternate between the things
compared. Figures are printed (a table, or JSON with ``--json``), never
asserted: timing tests on a shared machine fail for reasons that are not bugs.

1. PKI creation (a CA, a server and a client certificate) per key type, in
   process; and ``python -m lab_helpers pki`` as a whole process against the
   article's seven ``openssl`` commands that make the same files.
2. From one client: keep-alive requests/s and new-connection requests/s
   (``requests``), full and resumed TLS handshakes/s (``ssl``), against the
   lab server (``serve``, in its own process) and, when ``node`` is
   installed, the article's Node.js server with the same certificates.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client import lab_session
from .errors import LabError
from .files import LabPaths, create_seed_pki
from .pki import KEY_TYPES, CertificateAuthority
from .wire import handshake

__all__ = ["SEED_OPENSSL_COMMANDS", "BenchSizes", "measure", "run_bench", "seed_server_path"]

#: The article's commands that create its files (its ``-text`` displays left out).
SEED_OPENSSL_COMMANDS = (
    "openssl req -new -x509 -nodes -days 365 -subj /CN=example-ca -keyout ca.key -out ca.crt",
    "openssl genrsa -out server.key",
    "openssl req -new -key server.key -subj /CN=localhost -out server.csr",
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out server.crt",
    "openssl genrsa -out client.key",
    "openssl req -new -key client.key -subj /CN=localhost -out client.csr",
    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 -out client.crt",
)

# Loaded with `node --require` before the article's index.js: the article listens
# on the fixed port 3000 of "localhost"; this moves it to a free port on
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


@dataclass(frozen=True)
class BenchSizes:
    """How much each round does."""

    rounds: int
    keep_alive: int
    new_connections: int
    handshakes: int

    @classmethod
    def for_run(cls, *, rounds: int, quick: bool) -> BenchSizes:
        if quick:
            return cls(rounds=min(rounds, 3), keep_alive=100, new_connections=20, handshakes=20)
        return cls(rounds=rounds, keep_alive=400, new_connections=100, handshakes=100)


def seed_server_path() -> Path | None:
    """The article's ``index.js`` when this checkout sits beside the course's ``shared/`` folder."""
    candidate = Path(__file__).resolve().parents[2] / "shared" / "seed" / "index.js"
    return candidate if candidate.exists() else None


def measure(action: Callable[[], object], *, count: int) -> float:
    """Operations per second for ``count`` calls of ``action``, after one warm-up call."""
    action()
    start = time.perf_counter()
    for _ in range(count):
        action()
    return count / (time.perf_counter() - start)


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
def _process(command: list[str], *, cwd: Path | None = None) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, text=True)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def _lab_server(paths: LabPaths) -> Iterator[int]:
    command = [sys.executable, "-m", "lab_helpers", "serve", "--dir", str(paths.directory), "--quiet"]
    with _process(command) as process:
        line = _read_line(process, lambda text: "https://" in text, 15)
        yield int(line.split("https://localhost:", 1)[1].split("/", 1)[0])


@contextmanager
def _node_server(paths: LabPaths, index_js: Path) -> Iterator[int]:
    preload = paths.directory / "bench-preload.js"
    preload.write_text(_NODE_PRELOAD)
    with _process(["node", "--require", str(preload), str(index_js)], cwd=paths.directory) as process:
        line = _read_line(process, lambda text: text.startswith("{"), 15)
        yield int(json.loads(line)["port"])


def _request_rate(port: int, paths: LabPaths, count: int, *, keep_alive: bool) -> float:
    session = lab_session(ca_file=paths.ca_cert, cert_file=paths.client_cert, key_file=paths.client_key)
    url = f"https://localhost:{port}/"
    headers = {} if keep_alive else {"Connection": "close"}  # close: a new TCP + TLS handshake each time
    with session:
        return measure(lambda: session.get(url, headers=headers).raise_for_status(), count=count)


def _handshake_rates(port: int, paths: LabPaths, count: int) -> tuple[float, float]:
    """(full, resumed) handshakes per second, one request each, from one ssl client context."""
    context = ssl.create_default_context(cafile=str(paths.ca_cert))
    context.load_cert_chain(str(paths.client_cert), str(paths.client_key))
    full = measure(lambda: handshake(port, context), count=count)
    session = handshake(port, context).session
    resumed_flags: list[bool] = []

    def resume() -> None:
        result = handshake(port, context, session=session)
        resumed_flags.append(result.resumed)

    resumed = measure(resume, count=count)
    if not all(resumed_flags):
        raise LabError("A resumed handshake was not resumed: the resumption figure would be wrong.")
    return full, resumed


def _pki_in_process(key_type: str) -> None:
    ca = CertificateAuthority.create_root(key_type=key_type)  # type: ignore[arg-type]
    ca.issue_server_certificate(key_type=key_type)  # type: ignore[arg-type]
    ca.issue_client_certificate("alice", key_type=key_type)  # type: ignore[arg-type]


def _time_commands(commands: list[list[str]], cwd: Path) -> float:
    start = time.perf_counter()
    for command in commands:
        subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_measurements(sizes: BenchSizes, progress: Callable[[str], None]) -> dict[str, Any]:
    """Measure everything; return the figures as plain data (medians, and every round's values)."""
    rounds = range(sizes.rounds)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "openssl": ssl.OPENSSL_VERSION,
            "cpus": os.cpu_count(),
        },
        "sizes": sizes.__dict__,
    }
    pki: dict[str, list[float]] = {key_type: [] for key_type in KEY_TYPES}
    for number in rounds:
        progress(f"PKI per key type, round {number + 1}/{sizes.rounds}")
        for key_type in KEY_TYPES:
            start = time.perf_counter()
            _pki_in_process(key_type)
            pki[key_type].append((time.perf_counter() - start) * 1000)
    results["pki_ms"] = {key_type: _median(values) for key_type, values in pki.items()}

    process_times: dict[str, list[float]] = {"lab": [], "openssl": []}
    with tempfile.TemporaryDirectory(prefix="mtls-bench-pki-") as directory:
        folder = Path(directory)
        (folder / "seed").mkdir()
        for number in rounds:
            progress(f"pki command against the article's openssl commands, round {number + 1}/{sizes.rounds}")
            lab_command = [
                sys.executable,
                "-m",
                "lab_helpers",
                "pki",
                "--dir",
                str(folder / "lab"),
                "--force",
            ]
            process_times["lab"].append(_time_commands([lab_command], folder) * 1000)
            if shutil.which("openssl"):
                seed = [command.split() for command in SEED_OPENSSL_COMMANDS]
                process_times["openssl"].append(_time_commands(seed, folder / "seed") * 1000)
    results["pki_process_ms"] = {name: _median(values) for name, values in process_times.items() if values}

    index_js = seed_server_path()
    with tempfile.TemporaryDirectory(prefix="mtls-bench-") as directory, ExitStack() as servers:
        paths = create_seed_pki(directory)
        ports = {"lab": servers.enter_context(_lab_server(paths))}
        if index_js is not None and shutil.which("node"):
            ports["node"] = servers.enter_context(_node_server(paths, index_js))
        figures: dict[str, dict[str, list[float]]] = {
            name: {
                "keep_alive_rps": [],
                "new_connection_rps": [],
                "full_handshakes_per_s": [],
                "resumed_handshakes_per_s": [],
            }
            for name in ports
        }
        for number in rounds:
            for name, port in ports.items():  # alternate, so drift hits both alike
                progress(f"{name} server, round {number + 1}/{sizes.rounds}")
                figures[name]["keep_alive_rps"].append(
                    _request_rate(port, paths, sizes.keep_alive, keep_alive=True)
                )
                figures[name]["new_connection_rps"].append(
                    _request_rate(port, paths, sizes.new_connections, keep_alive=False)
                )
                full, resumed = _handshake_rates(port, paths, sizes.handshakes)
                figures[name]["full_handshakes_per_s"].append(full)
                figures[name]["resumed_handshakes_per_s"].append(resumed)
    results["servers"] = {
        name: {kind: _median(values) for kind, values in kinds.items()} for name, kinds in figures.items()
    }
    results["rounds"] = {"servers": figures, "pki_ms": pki, "pki_process_ms": process_times}
    return results


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """The ratios the course's targets are about."""
    lab = results["servers"]["lab"]
    out = {"lab_resumed_over_full": lab["resumed_handshakes_per_s"] / lab["full_handshakes_per_s"]}
    node = results["servers"].get("node")
    if node:
        for kind in (
            "keep_alive_rps",
            "new_connection_rps",
            "full_handshakes_per_s",
            "resumed_handshakes_per_s",
        ):
            out[f"lab_over_node_{kind}"] = lab[kind] / node[kind]
    process = results["pki_process_ms"]
    if "openssl" in process:
        out["pki_openssl_over_lab"] = process["openssl"] / process["lab"]
    return out


def format_table(results: dict[str, Any]) -> str:
    machine, sizes = results["machine"], results["sizes"]
    lines = [
        f"Python {machine['python']}, {machine['openssl']}, {machine['cpus']} CPUs; medians of {sizes['rounds']} rounds",
        "",
        "PKI: a CA, a server and a client certificate, in process",
    ]
    for key_type, ms in results["pki_ms"].items():
        label = {"ec": "ECDSA P-256", "rsa": "RSA-2048", "ed25519": "Ed25519"}[key_type]
        lines.append(f"  {label:<14}{ms:>10.1f} ms")
    process = results["pki_process_ms"]
    lines += [
        "",
        "The article's files from a terminal (whole processes)",
        f"  python -m lab_helpers pki      {process['lab']:>8.0f} ms",
    ]
    if "openssl" in process:
        lines.append(f"  7 openssl commands (RSA-2048) {process['openssl']:>8.0f} ms")
    servers = results["servers"]
    lines += [
        "",
        f"Servers, from one client ({sizes['keep_alive']} keep-alive and {sizes['new_connections']} "
        f"new-connection requests, {sizes['handshakes']} handshakes a round)",
    ]
    header = f"  {'':<28}" + "".join(f"{name:>14}" for name in servers)
    lines.append(header)
    labels = {
        "keep_alive_rps": "keep-alive requests/s",
        "new_connection_rps": "new-connection requests/s",
        "full_handshakes_per_s": "full handshakes/s",
        "resumed_handshakes_per_s": "resumed handshakes/s",
    }
    for kind, label in labels.items():
        lines.append(f"  {label:<28}" + "".join(f"{figures[kind]:>14.0f}" for figures in servers.values()))
    lines += ["", "Ratios"]
    for name, value in ratios(results).items():
        lines.append(f"  {name:<42}{value:>8.2f}")
    if "node" not in servers:
        lines.append("  (node or the article's index.js not found: the Node.js server was not measured)")
    return "\n".join(lines)


def run_bench(*, rounds: int = 5, quick: bool = False, as_json: bool = False) -> int:
    if rounds < 1:
        raise LabError("--rounds must be at least 1.")
    sizes = BenchSizes.for_run(rounds=rounds, quick=quick)
    started = time.monotonic()

    def progress(step: str) -> None:  # stderr, so that --json output stays clean
        print(f"[{time.monotonic() - started:5.1f} s] {step}", file=sys.stderr, flush=True)

    results = run_measurements(sizes, progress)
    results["ratios"] = ratios(results)
    results["seconds"] = round(time.monotonic() - started, 1)
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print(format_table(results))
        print(f"\n({results['seconds']} s)")
    return 0
