"""A real JupyterHub on 127.0.0.1, in a folder of its own, and the REST calls a rehearsal makes to it.

The hub runs as it would for a room, with two test-only choices that make it
self-contained: the dummy authenticator (nobody logs in: a service token drives the
REST API) and ``SimpleLocalProcessSpawner``, which starts each user's Jupyter server as
a local process in a home folder of its own. That spawner runs every user as the same
operating-system user (the one running the rehearsal): the homes keep each learner's
files apart, but nothing stops one learner's code from reading another's. A real host
runs each user as their own OS user (TLJH, ``LocalProcessSpawner``) or in their own
container (Zero to JupyterHub).

Every port is chosen free on 127.0.0.1. The hub needs three numbers before it starts
(its proxy's public port, the proxy's API port, the hub's own API port), so they are
picked by binding port 0 and closing the socket; another program could take one in the
moment between, so a start that fails on an address in use is tried again with new ports.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from ..errors import LabError

__all__ = ["HubAPI", "HubProcess", "find_proxy", "jupyterhub_version"]

#: The proxy JupyterHub starts, installed by ``npm ci --prefix hub`` from the course's pinned hub/package.json.
PROXY_IN_CHECKOUT = Path("hub") / "node_modules" / ".bin" / "configurable-http-proxy"
_MARKER = "MTLS_REHEARSAL"
_PORT_TRIES = 3


def jupyterhub_version() -> str:
    """The installed JupyterHub's version; a LabError that says how to install it when it is missing."""
    try:
        return version("jupyterhub")
    except PackageNotFoundError:
        raise LabError(
            "JupyterHub is not installed in this environment. Install the instructor's requirements: "
            "`pip install -r requirements-instructor.txt`."
        ) from None


def find_proxy(course_root: Path, explicit: str | None = None) -> str:
    """The ``configurable-http-proxy`` command: ``explicit``, else the course's ``hub/node_modules``, else PATH."""
    candidates = [Path(explicit)] if explicit else [course_root / PROXY_IN_CHECKOUT]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate.resolve())
    if explicit:
        raise LabError(
            f"--proxy {explicit}: no executable file there. Give the path of configurable-http-proxy."
        )
    on_path = shutil.which("configurable-http-proxy")
    if on_path:
        return on_path
    raise LabError(
        "configurable-http-proxy (the proxy JupyterHub starts) was not found. Install it with Node.js 20 or newer: "
        f"`npm ci --prefix {course_root / 'hub'}`, or pass --proxy PATH."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class HubProcess:
    """A JupyterHub (and the proxy it starts) running from ``workdir``; learners' homes under ``homes``.

    ``marker`` goes into the environment of the hub, and through ``Spawner.environment``
    into every user's server, whose kernels and their children inherit it: after the stop,
    a process that still carries it was left behind by the rehearsal, whoever its parent is now.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        proxy_command: str,
        homes: Path,
        shared_tmp: Path,
        runtime_root: Path,
        marker: str,
        kernel_transport: str,
        spawn_timeout: float,
        max_users: int,
    ) -> None:
        self.workdir = workdir
        self.proxy_command = proxy_command
        self.homes = homes
        self.shared_tmp = shared_tmp
        self.runtime_root = runtime_root
        self.kernel_transport = kernel_transport
        self.marker = marker
        self.spawn_timeout = spawn_timeout
        self.max_users = max_users
        self.token = secrets.token_hex(32)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "jupyterhub.log"
        self.ports: dict[str, int] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.ports = {"proxy": _free_port(), "proxy API": _free_port(), "hub API": _free_port()}
        self.port = self.ports["proxy"]
        settings: dict[str, Any] = {
            "JupyterHub.ip": "127.0.0.1",
            "JupyterHub.port": self.port,
            "JupyterHub.hub_ip": "127.0.0.1",
            "JupyterHub.hub_port": self.ports["hub API"],
            "ConfigurableHTTPProxy.api_url": f"http://127.0.0.1:{self.ports['proxy API']}",
            "ConfigurableHTTPProxy.command": [self.proxy_command],
            "ConfigurableHTTPProxy.pid_file": str(self.workdir / "proxy.pid"),
            "JupyterHub.db_url": f"sqlite:///{self.workdir / 'jupyterhub.sqlite'}",
            "JupyterHub.cookie_secret_file": str(self.workdir / "cookie_secret"),
            "JupyterHub.authenticator_class": "dummy",
            "Authenticator.allow_all": True,
            "JupyterHub.spawner_class": "simple",
            "SimpleLocalProcessSpawner.home_dir_template": str(self.homes / "{username}"),
            # The same Python as this command, so the users' servers and kernels import this lab_helpers.
            "Spawner.cmd": [sys.executable, "-m", "jupyterhub.singleuser"],
            # Jupyter servers refuse to run as root unless told to (CI and containers run as root).
            "Spawner.args": ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [],
            # One temporary folder for all learners, as /tmp is on a real host, but kept inside
            # the rehearsal's folder so that what the notebooks leave in it can be counted.
            # A whole room starting at once on a busy host: JupyterHub's defaults (60 s, 30 s)
            # assume a quiet one. The rehearsal measures how long spawning really takes.
            "Spawner.start_timeout": int(self.spawn_timeout),
            "Spawner.http_timeout": int(self.spawn_timeout),
            "JupyterHub.concurrent_spawn_limit": max(100, self.max_users),
            "JupyterHub.cleanup_servers": True,
            "JupyterHub.cleanup_proxy": True,
            "JupyterHub.services": [{"name": "rehearsal", "api_token": self.token}],
            "JupyterHub.load_roles": [
                {
                    "name": "rehearsal",
                    "scopes": ["admin:users", "admin:servers", "access:servers"],
                    "services": ["rehearsal"],
                }
            ],
        }
        lines = [
            "# Written by `python -m lab_helpers rehearse` for one rehearsal.",
            "c = get_config()  # noqa",
        ]
        lines += [f"c.{name} = {value!r}" for name, value in settings.items()]
        # Each server's environment: the marker; one temporary folder for all learners, as /tmp is
        # on a real host, but inside the rehearsal's folder so that what the notebooks leave there
        # can be counted; and a short runtime folder per user, because with the ipc transport each
        # kernel's sockets are files there, and a Unix socket's path may not exceed 107 bytes.
        # The kernel transport is set the way docs/workshop.md tells a host's admin to set it: a
        # jupyter_server_config.json in a folder on the servers' Jupyter config path.
        lines.append(
            f"c.Spawner.environment = {{{_MARKER!r}: {self.marker!r}, 'TMPDIR': {str(self.shared_tmp)!r}, "
            f"'JUPYTER_CONFIG_PATH': {str(self._server_config_folder())!r}, "
            f"'JUPYTER_RUNTIME_DIR': lambda spawner: {str(self.runtime_root)!r} + '/' + spawner.user.name}}"
        )
        config = self.workdir / "jupyterhub_config.py"
        config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return config

    def _server_config_folder(self) -> Path:
        """A folder on the users' servers' Jupyter config path, holding ``jupyter_server_config.json``.

        The same file docs/workshop.md gives a host's admin for ``/etc/jupyter``. (A file in
        ``jupyter_server_config.d/`` would not do: jupyter_server reads those folders for its
        extensions only, checked with jupyter_server 2.21; the kernel kept the tcp transport.)
        """
        folder = self.workdir / "jupyter-config"
        folder.mkdir(exist_ok=True)
        settings = {
            "KernelManager": {"transport": self.kernel_transport},
            # Kernels idle for an hour are shut down (never reached in a rehearsal; it frees a room's forgotten tabs).
            "MappingKernelManager": {"cull_idle_timeout": 3600, "cull_interval": 60},
        }
        (folder / "jupyter_server_config.json").write_text(
            json.dumps(settings, indent=2) + "\n", encoding="utf-8"
        )
        return folder

    def start(self, timeout: float = 120.0) -> None:
        """Start the hub and wait until its REST API answers through the proxy."""
        for attempt in range(1, _PORT_TRIES + 1):
            config = self._write_config()
            environment = {**os.environ, _MARKER: self.marker}
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "jupyterhub", "-f", str(config)],
                    cwd=self.workdir,
                    env=environment,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches this command only; it stops the hub in order
                )
            if self._wait_until_answering(timeout):
                return
            in_use = "address already in use" in self.log_tail(40).lower()
            self.stop(timeout=15)
            if not in_use or attempt == _PORT_TRIES:
                raise RuntimeError(
                    f"JupyterHub did not start within {timeout:.0f} s. Its log ends:\n{self.log_tail()}"
                )

    def _wait_until_answering(self, timeout: float) -> bool:
        import urllib.request

        deadline = time.monotonic() + timeout
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never the environment's proxy
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                with opener.open(f"{self.url}/hub/api/", timeout=5) as answer:
                    if answer.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.25)
        return False

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM to the hub, which stops every user's server and the proxy; SIGKILL to its group if it hangs."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                pass  # the leftover check finds it and says so

    def log_about(self, name: str, lines: int = 4) -> list[str]:
        """The last warnings and errors the hub's log has about user ``name`` (why a server did not start)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        found = [
            line.strip() for line in text.splitlines() if name in line and line.startswith(("[W", "[E", "[C"))
        ]
        return found[-lines:]

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class HubAPI:
    """The hub's REST API and each user's Jupyter server API, through the proxy, with the service token.

    Requests go through tornado's own HTTP client, which never reads proxy variables
    (a learner's machine or CI may set ``HTTPS_PROXY``); every call has a timeout.
    """

    def __init__(self, base_url: str, token: str, *, max_clients: int) -> None:
        from tornado.httpclient import AsyncHTTPClient

        self.base_url = base_url
        self.token = token
        self._client = AsyncHTTPClient(force_instance=True, max_clients=max_clients)

    def close(self) -> None:
        self._client.close()

    async def call(
        self, method: str, path: str, body: Any = None, *, timeout: float = 60.0
    ) -> tuple[int, Any]:
        """One request; returns the status and the decoded JSON body (None when empty)."""
        from tornado.httpclient import HTTPRequest

        request = HTTPRequest(
            self.base_url + path,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None and method in ("GET", "DELETE") else json.dumps(body or {}),
            connect_timeout=timeout,
            request_timeout=timeout,
            allow_nonstandard_methods=True,
        )
        response = await self._client.fetch(request, raise_error=False)
        if response.code == 599:  # tornado's code for "no HTTP answer": a timeout or a refused connection
            raise ConnectionError(f"{method} {path}: {response.error}")
        text = response.body.decode("utf-8", errors="replace") if response.body else ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        if response.code >= 400:
            message = data.get("message") if isinstance(data, dict) else text[:200]
            raise RuntimeError(f"{method} {path}: HTTP {response.code}: {message}")
        return response.code, data

    async def create_user(self, name: str) -> None:
        await self.call("POST", f"/hub/api/users/{name}")

    async def start_server(self, name: str, *, timeout: float) -> None:
        """Ask the hub to start ``name``'s server and wait until the hub says it is ready."""
        import asyncio

        deadline = time.monotonic() + timeout
        await self.call("POST", f"/hub/api/users/{name}/server", timeout=timeout)
        while time.monotonic() < deadline:
            _, user = await self.call("GET", f"/hub/api/users/{name}")
            server = (user.get("servers") or {}).get("")
            if server and server.get("ready"):
                return
            if not server or not server.get("pending"):
                raise RuntimeError(f"the hub could not start {name}'s server (see jupyterhub.log)")
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{name}'s server was not ready within {timeout:.0f} s")

    async def stop_server(self, name: str, *, timeout: float) -> None:
        """Ask the hub to stop ``name``'s server and wait until it is gone."""
        import asyncio

        deadline = time.monotonic() + timeout
        await self.call("DELETE", f"/hub/api/users/{name}/server", timeout=timeout)
        while time.monotonic() < deadline:
            _, user = await self.call("GET", f"/hub/api/users/{name}")
            if not (user.get("servers") or {}).get(""):
                return
            await asyncio.sleep(0.25)
        raise TimeoutError(f"{name}'s server did not stop within {timeout:.0f} s")

    def kernel_socket_url(self, name: str, kernel_id: str) -> str:
        return f"{self.base_url.replace('http://', 'ws://', 1)}/user/{name}/api/kernels/{kernel_id}/channels"
