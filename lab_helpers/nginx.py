"""A real nginx, run by the notebook's user from the lab folder: written, started, reloaded and stopped.

:class:`Nginx` takes the part of a configuration that matters to the lesson
(the ``server`` blocks for ``http`` and ``stream``) and wraps it in the rest,
written so that nginx needs nothing from the system and no root:

- everything nginx writes (pid file, error and access logs, the five temporary
  folders of the http module) goes to one folder of its own,
  ``<lab folder>/nginx/<name>/``; nothing under ``/etc``, ``/var`` or ``/run``
  is read or written;
- ``daemon off``: nginx stays the child of this Python process, which knows
  its pid and stops it; a stale instance left by a killed kernel is found by
  its pid file and stopped at the next start;
- when the notebook runs as root (containers, CI), nginx's worker processes
  would switch to the user ``nobody``, which cannot enter a lab folder of mode
  0700; ``user`` then names the notebook's own user, so the workers can use
  the lab files and nginx never writes as anyone else;
- ports are free ones chosen at start and put into the text where it says
  ``{{ port }}``; if another program takes a port between the choice and
  nginx's ``bind()``, nginx fails and is started again on new ports;
- the stream module, which passthrough needs, is found whether it is built
  in (nginx.org builds, Homebrew) or a dynamic module (Debian and Ubuntu's
  ``libnginx-mod-stream``, Fedora's ``nginx-mod-stream``): ``nginx -V`` says
  which, and where modules live.

Without nginx, :func:`nginx_available` is False and :class:`NginxUnavailable`
says how to install it; the notebook's nginx cells skip with that message.
The variable ``MTLS_NGINX`` names another binary, or ``off`` to behave as if
nginx were absent (the tests run the notebook both ways).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .errors import LabError
from .files import lab_dir
from .rerun import NamedInstances

__all__ = [
    "INSTALL_NGINX",
    "Nginx",
    "NginxError",
    "NginxInfo",
    "NginxUnavailable",
    "find_nginx",
    "nginx_available",
    "nginx_info",
    "running_nginx",
]

#: The variable that chooses the nginx binary (a path), or hides it (``off``).
NGINX_VARIABLE = "MTLS_NGINX"

#: How to get nginx, in one line: what a skipped cell prints.
INSTALL_NGINX = (
    "install it with `sudo apt-get install nginx libnginx-mod-stream` (Debian, Ubuntu), "
    "`sudo dnf install nginx nginx-mod-stream` (Fedora) or `brew install nginx` (macOS), "
    "then restart the kernel"
)

# Debian and Ubuntu install nginx in /usr/sbin, which is not on an ordinary
# user's PATH there; Homebrew uses /opt/homebrew/bin or /usr/local/bin.
_USUAL_PLACES = (
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/bin/nginx",
    "/opt/homebrew/bin/nginx",
    "/usr/local/nginx/sbin/nginx",
)
_MODULE_DIRECTORIES = (
    "/usr/lib/nginx/modules",
    "/usr/lib64/nginx/modules",
    "/usr/local/lib/nginx/modules",
    "/usr/share/nginx/modules",
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class NginxUnavailable(LabError):
    """nginx (or a module a configuration needs) is not installed here; the message says how to get it."""


class NginxError(LabError):
    """nginx refused a configuration or did not start; the message carries its own words from the error log."""


# -- finding nginx ----------------------------------------------------------------------


def find_nginx() -> Path | None:
    """The nginx binary: ``$MTLS_NGINX``, else ``nginx`` on PATH, else the usual places; None when absent."""
    chosen = os.environ.get(NGINX_VARIABLE, "").strip()
    if chosen.lower() == "off":
        return None
    if chosen:
        path = Path(chosen).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    if sys.platform == "win32":  # nginx for Windows lacks what the lab needs (signals, -p layout): use WSL
        return None
    on_path = shutil.which("nginx")
    if on_path:
        return Path(on_path)
    for place in _USUAL_PLACES:
        if os.path.isfile(place) and os.access(place, os.X_OK):
            return Path(place)
    return None


@dataclass(frozen=True)
class NginxInfo:
    """What this nginx is and can do, from ``nginx -V``."""

    binary: Path
    version: tuple[int, ...]
    version_text: str  # "nginx/1.22.1"
    openssl: str  # "built with OpenSSL 3.0.22 ..." (the line nginx prints)
    stream: str | None  # "built in", "module", or None (not available)
    stream_module: Path | None  # the .so to load when stream is a dynamic module
    ssl_preread: bool

    @property
    def can_passthrough(self) -> bool:
        return self.stream is not None and self.ssl_preread

    def describe(self) -> str:
        stream = {"built in": "stream module built in", "module": f"stream module {self.stream_module}"}.get(
            self.stream or "", "no stream module (passthrough needs libnginx-mod-stream)"
        )
        return f"{self.version_text} at {self.binary}; {stream}"


@functools.lru_cache(maxsize=8)
def _info_for(binary: Path) -> NginxInfo:
    try:
        result = subprocess.run([str(binary), "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NginxUnavailable(f"{binary} does not run ({error}); {INSTALL_NGINX}.") from None
    text = result.stderr + result.stdout  # nginx -V writes to stderr
    match = re.search(r"nginx version: (\S+/(\d+(?:\.\d+)*))", text)
    if match is None:
        raise NginxUnavailable(f"{binary} did not say which nginx it is: {text.strip()[:200]!r}.")
    arguments = next((line for line in text.splitlines() if line.startswith("configure arguments:")), "")
    openssl = next(
        (line.strip() for line in text.splitlines() if "OpenSSL" in line or "LibreSSL" in line), ""
    )
    stream: str | None = None
    module: Path | None = None
    if re.search(r"--with-stream(\s|$)", arguments):
        stream = "built in"
    elif "--with-stream=dynamic" in arguments:
        module = _stream_module(arguments)
        stream = "module" if module is not None else None
    return NginxInfo(
        binary=binary,
        version=tuple(int(part) for part in match.group(2).split(".")),
        version_text=match.group(1),
        openssl=openssl,
        stream=stream,
        stream_module=module,
        ssl_preread="--with-stream_ssl_preread_module" in arguments,
    )


def _stream_module(arguments: str) -> Path | None:
    """Where ``ngx_stream_module.so`` is: the build's --modules-path, its prefix's modules/, or the usual places."""
    places = []
    for option in ("--modules-path", "--prefix"):
        found = re.search(rf"{option}=(\S+)", arguments)
        if found:
            places.append(
                Path(found.group(1)) if option == "--modules-path" else Path(found.group(1)) / "modules"
            )
    places += [Path(directory) for directory in _MODULE_DIRECTORIES]
    for directory in places:
        candidate = directory / "ngx_stream_module.so"
        if candidate.is_file():
            return candidate
    return None


def nginx_info() -> NginxInfo:
    """This machine's nginx, or :class:`NginxUnavailable` with how to install it."""
    binary = find_nginx()
    if binary is None:
        hidden = os.environ.get(NGINX_VARIABLE, "").strip().lower() == "off"
        why = (
            f"nginx is hidden here ({NGINX_VARIABLE}=off): unset {NGINX_VARIABLE} to use an installed nginx, or"
            if hidden
            else "nginx is not installed here:"
        )
        raise NginxUnavailable(f"{why} {INSTALL_NGINX}.")
    return _info_for(binary.resolve())


def nginx_available(*, passthrough: bool = False) -> bool:
    """True when nginx is installed (and, with ``passthrough``, has the stream module and ssl_preread)."""
    try:
        info = nginx_info()
    except NginxUnavailable:
        return False
    return info.can_passthrough if passthrough else True


# -- running it ---------------------------------------------------------------------------


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _indent(text: str) -> str:
    return "\n".join(("    " + line) if line.strip() else "" for line in text.strip("\n").splitlines())


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs. A zombie does not: it has exited and waits to be reaped.

    Signal 0 succeeds on a zombie, so an nginx that exited but whose parent
    never waits for it (a container whose first process reaps nothing, or a
    kernel that still holds it) would look alive until a timeout.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """State ``Z`` (or ``X``, dead) in ``/proc/PID/stat`` on Linux; False where there is no /proc to read.

    Read as bytes: a command name need not be UTF-8. The state follows the
    name, which is in parentheses and may itself contain ")" or spaces.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return Path("/proc/self/stat").exists()  # /proc is there and the process is not: it is gone
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[:1] in ([b"Z"], [b"X"])


def _command_line(pid: int) -> str:
    proc = Path(f"/proc/{pid}/cmdline")
    try:
        if proc.exists():
            return proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        return subprocess.run(
            ["ps", "-p", str(pid), "-o", "command="], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


class Nginx:
    """One nginx instance, configured from the notebook. ``with Nginx(http=...) as proxy:`` or ``start()``/``stop()``.

    ``http`` and ``stream`` are what goes inside nginx's ``http { }`` and
    ``stream { }`` blocks: the ``server`` blocks of the lesson. In them,
    ``{{ NAME }}`` is replaced by ``values[NAME]``, by a free port for each
    name in ``ports`` (default: one, ``{{ port }}``), by the lab folder for
    ``{{ lab }}`` and by the instance's own folder for ``{{ dir }}``.

    ``name`` identifies the instance across re-runs of a cell: starting an
    instance whose name is running stops the old one first (and an instance
    left running by a kernel that died is found by its pid file and stopped).
    """

    _running: ClassVar[NamedInstances[Nginx]] = NamedInstances()

    def __init__(
        self,
        *,
        http: str | None = None,
        stream: str | None = None,
        values: Mapping[str, object] | None = None,
        ports: Sequence[str] = ("port",),
        name: str | None = "nginx",
        directory: str | os.PathLike[str] | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 15.0,
        attempts: int = 5,
    ) -> None:
        if not http and not stream:
            raise LabError("Give nginx something to serve: http=... (server blocks) and/or stream=....")
        self.info = nginx_info()  # NginxUnavailable, with how to install it, when nginx is absent
        if stream and not self.info.can_passthrough:
            raise NginxUnavailable(
                f"{self.info.version_text} has no stream module with ssl_preread: install libnginx-mod-stream "
                "(Debian, Ubuntu) or nginx-mod-stream (Fedora); Homebrew's nginx has it built in."
            )
        self.http, self.stream = http, stream
        self.values = dict(values or {})
        self.port_names = tuple(ports)
        self.name = name
        self.host = host
        self.start_timeout = start_timeout
        self.attempts = attempts
        folder_name = name if name is not None else f"unnamed-{os.getpid()}-{id(self):x}"
        self.directory = Path(directory) if directory is not None else lab_dir() / "nginx" / folder_name
        self.ports: dict[str, int] = {}
        self.config_text = ""
        # Where each block's text sits in the written file: (block, its first line there, the
        # leading empty lines dropped from the text, how many lines it has), for error messages.
        self._blocks: list[tuple[str, int, int, int]] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._workers: set[int] = set()

    # -- files ------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.directory / "nginx.conf"

    @property
    def pid_file(self) -> Path:
        return self.directory / "nginx.pid"

    @property
    def error_log_file(self) -> Path:
        return self.directory / "error.log"

    @property
    def access_log_file(self) -> Path:
        return self.directory / "access.log"

    def error_log(self, last: int = 20) -> str:
        """The last lines of nginx's error log (where it says why it refused a client or a configuration)."""
        try:
            lines = self.error_log_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-last:])

    def log_lines(
        self, filename: str = "access.log", *, at_least: int = 1, timeout: float = 3.0
    ) -> list[str]:
        """The lines of a log in the instance's folder, waiting up to ``timeout`` s until there are ``at_least``.

        nginx writes a stream (TCP) log line when the connection ends, a moment
        after the client has its answer: hence the wait.
        """
        path = self.directory / filename
        deadline = time.monotonic() + timeout
        while True:
            try:
                lines = path.read_text(errors="replace").splitlines()
            except FileNotFoundError:
                lines = []
            if len(lines) >= at_least or time.monotonic() >= deadline:
                return lines
            time.sleep(0.02)

    def _render(self, template: str) -> str:
        known: dict[str, object] = {"lab": lab_dir(), "dir": self.directory, **self.ports, **self.values}

        def replace(match: re.Match[str]) -> str:
            key = match.group(1)
            if key not in known:
                raise LabError(
                    f"The nginx configuration uses {{{{ {key} }}}}, which has no value. "
                    f"Known: {', '.join(sorted(known))}; pass values={{'{key}': ...}}."
                )
            return str(known[key])

        return _PLACEHOLDER.sub(replace, template)

    def _block_lines(self, lines: list[str], name: str, text: str) -> str:
        """``text`` rendered and indented for a block, remembering where it lands in the file."""
        rendered = self._render(text)
        indented = _indent(rendered)
        first = "\n".join(lines).count("\n") + 2  # the line after the last one written so far
        skipped = len(rendered) - len(rendered.lstrip("\n"))
        self._blocks.append((name, first, skipped, len(indented.splitlines())))
        return indented

    def _full_config(self) -> str:
        d = self.directory
        self._blocks = []
        lines = [
            f"# nginx configuration for the lab instance {self.name!r}, written by lab_helpers.",
            "# Everything nginx writes stays in this folder; it runs in the foreground as the notebook's child.",
        ]
        if self.stream and self.info.stream == "module":
            lines.append(f'load_module "{self.info.stream_module}";')
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            import grp
            import pwd

            user = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            lines.append(f"user {user} {group};  # as root, workers would otherwise run as nobody")
        lines += [
            "daemon off;",
            "worker_processes 1;",
            f'pid "{d / "nginx.pid"}";',
            f'error_log "{d / "error.log"}" info;',
            "events { worker_connections 256; }",
        ]
        if self.http:
            temp = "\n".join(f'    {kind}_temp_path "{d / "temp" / kind}";' for kind in _TEMP_PATHS)
            lines += [
                "",
                "http {",
                f'    access_log "{d / "access.log"}";',
                temp,
                "",
            ]
            lines += [self._block_lines(lines, "http", self.http), "}"]
        if self.stream:
            lines += ["", "stream {"]
            lines += [self._block_lines(lines, "stream", self.stream), "}"]
        return "\n".join(lines) + "\n"

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "temp").mkdir(exist_ok=True)
        self.config_text = self._full_config()
        temporary = self.config_file.with_suffix(".conf.tmp")
        temporary.write_text(self.config_text)
        os.replace(temporary, self.config_file)

    def _command(self, *extra: str) -> list[str]:
        command = [str(self.info.binary), "-p", str(self.directory), "-c", str(self.config_file)]
        if self.info.version >= (1, 19, 5):  # -e: the error log used before the configuration is read
            command += ["-e", str(self.error_log_file)]
        return command + list(extra)

    def test_config(self) -> None:
        """``nginx -t`` on the written configuration: :class:`NginxError` with nginx's own words if it is refused.

        nginx names a line of the whole file (``nginx.conf:35``), which the
        caller never wrote as such: the message adds which line of the
        ``http=`` or ``stream=`` text that is, and what it says.
        """
        result = subprocess.run(self._command("-t", "-q"), capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            words = " | ".join(w for w in (result.stderr.strip() or self.error_log(5)).splitlines() if w)
            where = re.search(re.escape(str(self.config_file)) + r":(\d+)", words)
            located = f" ({self._source_of_line(int(where.group(1)))})" if where else ""
            raise NginxError("nginx refused the configuration: " + words[:600] + located)

    def _source_of_line(self, number: int) -> str:
        """Where line ``number`` of the written file comes from, in the caller's terms, with its text."""
        lines = self.config_text.splitlines()
        text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        for name, first, skipped, count in self._blocks:
            if first <= number < first + count:
                return f"line {number - first + 1 + skipped} of the {name}= text: {text!r}"
        ended = [name for name, first, _, count in self._blocks if number >= first + count]
        if ended:  # the wrapper's closing brace, or the end of the file: the text's braces do not match
            return f"just after the end of the {ended[-1]}= text: check that its braces {{ }} match"
        return f"a line lab_helpers writes around your text: {text!r}"

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> Nginx:
        """Write the configuration, start nginx and return once it accepts connections on every port."""
        if self.running:
            return self
        self._running.replace(self.name)
        self._stop_stale_instance()
        last_error = ""
        for _ in range(max(1, self.attempts)):
            self.ports = {name: _free_port(self.host) for name in self.port_names}
            self._write_config()
            self.test_config()
            self.pid_file.unlink(missing_ok=True)
            started = self._launch()
            if started is None:
                break
            last_error = started
            if "Address already in use" not in started:
                raise NginxError(f"nginx did not start: {started}")
            # Another program took a port between our choice and nginx's bind(): choose again.
        else:
            raise NginxError(f"nginx could not bind free ports after {self.attempts} attempts: {last_error}")
        self._running.remember(self.name, self)
        return self

    def _launch(self) -> str | None:
        """Start the process and wait until it serves; None when it does, else why it stopped."""
        stderr = open(self.directory / "stderr.log", "wb")  # noqa: SIM115 (nginx keeps writing to it)
        try:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        finally:
            stderr.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return self.error_log(5).replace("\n", " | ") or (self.directory / "stderr.log").read_text()
            # The kernel accepts connections on a bound port before nginx has a worker to serve them:
            # ready means the pid file is ours, every port accepts, and a worker has been started.
            if self._pid_file_is_ours() and all(self._accepts(port) for port in self.ports.values()):
                self._workers = self._worker_pids()
                if self._workers:
                    return None
            time.sleep(0.02)
        self.stop()
        raise NginxError(
            f"nginx did not accept connections within {self.start_timeout} s: {self.error_log(5)}"
        )

    def _pid_file_is_ours(self) -> bool:
        """nginx writes its pid file after binding every port: a file with our child's pid means it bound them."""
        try:
            return self._process is not None and int(self.pid_file.read_text().strip()) == self._process.pid
        except (OSError, ValueError):
            return False

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1.0):
                return True
        except OSError:
            return False

    def _worker_pids(self) -> set[int]:
        """The workers' pids, from the lines nginx logs when it starts them."""
        return {int(pid) for pid in re.findall(r"start worker process (\d+)", self.error_log(last=10_000))}

    def reload(
        self,
        *,
        http: str | None = None,
        stream: str | None = None,
        values: Mapping[str, object] | None = None,
    ) -> None:
        """Apply a new configuration, as ``nginx -s reload`` does: same ports, no connection refused in between.

        The new text is tested first (``nginx -t``): if nginx refuses it, the
        running configuration stays and :class:`NginxError` says why. nginx
        then starts new workers and tells the old ones to finish; this returns
        once the old workers are gone, so every new connection gets the new
        configuration.
        """
        if not self.running or self._process is None:
            raise LabError("This nginx is not running: call start() first.")
        previous = (self.http, self.stream, dict(self.values), self.config_text)
        if http is not None:
            self.http = http
        if stream is not None:
            self.stream = stream
        if values is not None:
            self.values.update(values)
        old_workers = self._worker_pids()
        self._write_config()
        try:
            self.test_config()
        except NginxError:
            self.http, self.stream, self.values, text = previous
            self.config_file.write_text(text)
            self.config_text = text
            raise
        self._process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            new_workers = self._worker_pids() - old_workers
            if new_workers and not any(_alive(pid) for pid in old_workers):
                self._workers = new_workers
                return
            time.sleep(0.02)
        raise NginxError(f"nginx did not finish reloading within {self.start_timeout} s: {self.error_log(5)}")

    def stop(self) -> None:
        """Stop nginx (fast shutdown), wait for it and its workers; no process, port or pid file is left (idempotent)."""
        process, self._process = self._process, None
        self._running.forget(self.name, self)
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # TERM: fast shutdown (QUIT would wait for open connections)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own process group: the master and its workers
                process.wait(timeout=5)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in self._workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        self._workers = set()
        self.pid_file.unlink(missing_ok=True)  # nginx removes it itself, except after SIGKILL

    def _stop_stale_instance(self) -> None:
        """Stop an nginx that a previous kernel started from this folder and could not stop (it died first)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        if _alive(pid) and str(self.config_file) in _command_line(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.pid_file.unlink(missing_ok=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what it serves -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def port(self) -> int:
        """The port of ``{{ port }}`` (the first of ``ports``)."""
        if not self.ports:
            raise LabError("nginx is not running: call start() first.")
        return self.ports.get("port", next(iter(self.ports.values())))

    @property
    def url(self) -> str:
        """``https://localhost:PORT/``: the name the lab's server certificate carries."""
        return f"https://localhost:{self.port}/"

    def __repr__(self) -> str:
        state = f"running (pid {self.pid}) on ports {self.ports}" if self.running else "stopped"
        return f"<Nginx {self.name!r} {state}>"


def running_nginx() -> dict[str, Nginx]:
    """The named nginx instances this process runs (what a re-run cell would replace)."""
    return Nginx._running.running()


def _stop_all_at_exit() -> None:
    for instance in Nginx._running.running().values():
        instance.stop()


atexit.register(_stop_all_at_exit)
