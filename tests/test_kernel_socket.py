"""The rehearsal's kernel client against a real Jupyter server, without a hub.

One ``jupyter server`` on 127.0.0.1 (a free port, a token, a folder of its own), one
kernel started through its sessions API, then cells executed over the kernel's websocket
with the v1 protocol, as JupyterLab does. The server runs the tcp kernel transport here
(Jupyter's default): the hub test checks that the rehearsal's kernels report ipc, this one
that the same probe reports tcp when that is what the kernel uses.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("jupyter_server")
pytest.importorskip("tornado")

from lab_helpers.rehearsal.hub import HubAPI
from lab_helpers.rehearsal.kernel_socket import KernelSocket
from lab_helpers.rehearsal.learner import _TRANSPORT

pytestmark = pytest.mark.notebook  # starts a Jupyter server and a kernel: not in the fast loop


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def jupyter_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A Jupyter server (tcp kernels) serving ``tmp_path``: its base URL and token. Stopped at teardown."""
    token, port = secrets.token_hex(16), _free_port()
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={tmp_path}",
        "--KernelManager.transport=tcp",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])
    environment = {
        **os.environ,
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
    }
    server = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 120
        while True:
            try:
                with opener.open(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the Jupyter server did not start within 120 s")
                time.sleep(0.25)
        yield url, token
    finally:
        server.terminate()  # jupyter_server shuts its kernels down on SIGTERM
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


async def _drive(url: str, token: str) -> dict[str, object]:
    api = HubAPI(url, token, max_clients=4)
    try:
        _, session = await api.call(
            "POST",
            "/api/sessions",
            {"path": "probe.ipynb", "type": "notebook", "name": "probe.ipynb", "kernel": {"name": "python3"}},
        )
        kernel = await KernelSocket.open(
            f"{url.replace('http://', 'ws://')}/api/kernels/{session['kernel']['id']}/channels",
            token,
            timeout=120,
        )
        try:
            await kernel.wait_ready(120)
            return {
                "transport": await kernel.evaluate(_TRANSPORT, timeout=60),
                "ok": await kernel.execute("x = 6 * 7\nassert x == 42", timeout=60),
                "state kept": await kernel.execute("assert x == 42", timeout=60),
                "error": await kernel.execute("raise ValueError('made to fail')", timeout=60),
                "timeout": await kernel.execute("import time; time.sleep(30)", timeout=1),
            }
        finally:
            kernel.close()
            await api.call("DELETE", f"/api/sessions/{session['id']}")
    finally:
        api.close()


def test_cells_run_over_the_websocket_and_errors_and_timeouts_are_reported(
    jupyter_server: tuple[str, str],
) -> None:
    results = asyncio.run(_drive(*jupyter_server))
    assert results["transport"] == "'tcp'"
    assert results["ok"].ok and results["state kept"].ok
    error = results["error"]
    assert (error.ok, error.error_name, error.error_value) == (False, "ValueError", "made to fail")
    timeout = results["timeout"]
    assert (timeout.ok, timeout.error_name) == (False, "CellTimeout")
