"""``python -m lab_helpers doctor``: is this machine ready for the course?

A workshop's room check: every learner runs it in the first five minutes,
and anything that says FAIL is fixed before the first notebook. It reports
versions, the environment variables that change TLS clients, the tools the
notebooks use when present, and whether a real mTLS exchange over loopback
works (a fresh CA, a server on a thread, a request: the whole course in
miniature).
"""

from __future__ import annotations

import os
import platform
import shutil
import ssl
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata

__all__ = ["TLS_VARIABLES", "environment_report", "run_doctor"]

#: Variables that silently change what a TLS client does, and how.
TLS_VARIABLES = {
    "HTTPS_PROXY": "requests and curl send https:// requests through this proxy",
    "HTTP_PROXY": "requests sends http:// requests through this proxy (curl reads only http_proxy, lower case)",
    "ALL_PROXY": "curl and requests use this proxy for every scheme that has no proxy of its own",
    "NO_PROXY": "hosts that bypass the proxy; the lab session ignores proxies anyway",
    "REQUESTS_CA_BUNDLE": "replaces the CA a requests.Session was told to trust (psf/requests#3829)",
    "CURL_CA_BUNDLE": "curl's CA file; requests also reads it, like REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE": "OpenSSL's default CA file (ssl.create_default_context, openssl, curl)",
    "SSL_CERT_DIR": "OpenSSL's default CA folder",
    "SSLKEYLOGFILE": "TLS secrets are written here (for Wireshark): keep it off outside the lab",
    "MTLS_LAB_DIR": "where the course writes its lab files",
}

MINIMUM_VERSIONS = {"cryptography": (43,), "requests": (2, 32)}
PACKAGES = (
    "cryptography",
    "requests",
    "urllib3",
    "certifi",
    "jupyterlab",
    "ipykernel",
    "nbval",
    "pytest",
    "matplotlib",
    "uvicorn",
    "starlette",
    "httpx",
    "aiohttp",
    "grpcio",  # notebook 13
)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def environment_report() -> dict[str, str | None]:
    """The TLS-relevant variables that are set (either case), with their values."""
    found: dict[str, str | None] = {}
    for name in TLS_VARIABLES:
        value = os.environ.get(name) or os.environ.get(name.lower())
        found[name] = value
    return found


def _loopback_exchange() -> str:
    """Run the article's successful request end to end; return the body or raise."""
    from .client import attempt
    from .files import create_seed_pki
    from .server import MTLSServer, build_server_context

    with tempfile.TemporaryDirectory(prefix="mtls-doctor-") as directory:
        paths = create_seed_pki(directory)
        context = build_server_context(paths.server_cert, paths.server_key, paths.ca_cert)
        with MTLSServer(context, name=None) as server:
            outcome = attempt(
                server.url,
                ca_file=paths.ca_cert,
                cert_file=paths.client_cert,
                key_file=paths.client_key,
                server=server,
            )
    if not outcome.ok:
        raise RuntimeError(f"{outcome.reason} (server saw: {outcome.server_reason})")
    return (outcome.body or "").strip()


def _report_nginx(report: Callable[..., None]) -> None:
    """nginx and its stream module, for notebook 14 (found where packages put it, not only on PATH)."""
    from .nginx import INSTALL_NGINX, NginxUnavailable, nginx_info

    try:
        info = nginx_info()
    except NginxUnavailable:
        report("warn", "nginx", f"not found: notebook 14 skips its nginx cells; {INSTALL_NGINX}")
        return
    report("ok", "nginx", f"{info.version_text} at {info.binary}")
    if info.can_passthrough:
        where = "built in" if info.stream == "built in" else str(info.stream_module)
        report("ok", "nginx stream module with ssl_preread", where)
    else:
        report(
            "warn",
            "nginx stream module",
            "missing: notebook 14 skips passthrough; install libnginx-mod-stream",
        )


def run_doctor(print_line: Callable[[str], None] = print) -> int:
    failures = 0

    def report(status: str, what: str, detail: str = "") -> None:
        nonlocal failures
        failures += status == "FAIL"
        print_line(f"[{status:^4}] {what}{': ' + detail if detail else ''}")

    print_line("Python and OpenSSL")
    version = sys.version_info
    report(
        "ok" if (3, 10) <= version[:2] <= (3, 13) else ("FAIL" if version[:2] < (3, 10) else "warn"),
        f"Python {platform.python_version()}",
        "" if version[:2] >= (3, 10) else "the course needs Python 3.10 to 3.13",
    )
    report("ok", ssl.OPENSSL_VERSION)
    report(
        "ok" if ssl.HAS_TLSv1_3 else "FAIL",
        "TLS 1.3 support",
        "" if ssl.HAS_TLSv1_3 else "OpenSSL is too old",
    )

    print_line("\nPackages")
    for package in PACKAGES:
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            needed = package in MINIMUM_VERSIONS
            report("FAIL" if needed else "warn", package, "not installed: pip install -r requirements.txt")
            continue
        minimum = MINIMUM_VERSIONS.get(package)
        if minimum and _version_tuple(installed) < minimum:
            report("FAIL", f"{package} {installed}", f"needs {'.'.join(map(str, minimum))} or newer")
        else:
            report("ok", f"{package} {installed}")

    print_line("\nEnvironment variables that change TLS clients")
    for name, value in environment_report().items():
        if value:
            report("note", f"{name}={value}", TLS_VARIABLES[name])
    print_line(
        "       (the course's lab session ignores the proxy and CA-bundle variables: trust_env = False)"
    )

    print_line(
        "\nTools the course uses when present (openssl and curl in notebooks, node in bench, nginx in 14)"
    )
    for tool in ("openssl", "curl", "node"):
        where = shutil.which(tool)
        report("ok" if where else "warn", tool, where or "not found: the notebooks skip its demos")
    _report_nginx(report)

    print_line("\nLab folder")
    try:
        from .files import lab_dir

        folder = lab_dir()
        probe = folder / ".doctor-write-test"
        probe.write_bytes(b"ok")
        probe.unlink()
        report("ok", f"lab files go to {folder}", "set MTLS_LAB_DIR to change it")
    except OSError as error:
        report("FAIL", "lab folder not writable", f"{error}; set MTLS_LAB_DIR to a folder you can write")

    print_line("\nA real mTLS exchange over loopback")
    try:
        body = _loopback_exchange()
        report("ok", "CA, server and client certificates, server thread, request", repr(body))
    except Exception as error:  # any failure here is the finding
        report("FAIL", "loopback mTLS exchange", f"{type(error).__name__}: {error}")

    print_line(
        "\n"
        + ("Ready for the course." if not failures else f"{failures} problem(s) to fix before the course.")
    )
    return 0 if not failures else 1
