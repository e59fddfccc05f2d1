"""What differs on macOS and Windows, found out once, so that a test that cannot hold there skips saying why.

The GitHub Actions workflow runs the suite on Linux, macOS and Windows; CI
here runs Linux only. The differences:

- file modes: POSIX only. On Windows ``chmod`` sets the read-only flag and no
  more, and a private key is protected by its folder's access list instead;
- signals to another process: ``Popen.send_signal`` on Windows turns SIGTERM
  into ``TerminateProcess`` (no clean stop) and refuses SIGINT (CPython's
  ``subprocess.py``); ``serve`` stops with Ctrl-C in its own console there;
- ``openssl`` and ``curl``: the interop tests check OpenSSL's words and curl's
  exit codes with OpenSSL. macOS ships LibreSSL's ``openssl`` and a curl built
  with LibreSSL; Windows ships a curl built with Schannel. Their messages and
  codes differ, so those tests need OpenSSL's tools (Homebrew's ``openssl@3``
  on macOS, put first on PATH by the workflow).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

POSIX = os.name == "posix"

needs_posix_file_modes = pytest.mark.skipif(
    not POSIX, reason="file modes are POSIX: on Windows a key is protected by its folder's access list"
)
needs_posix_signals = pytest.mark.skipif(
    not POSIX,
    reason="Windows cannot send SIGTERM or SIGINT to another process; Ctrl-C in serve's console stops it",
)


def _version_line(*command: str) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (result.stdout or result.stderr).splitlines()[0] if (result.stdout or result.stderr) else ""


@functools.cache
def openssl_tool() -> str | None:
    """``openssl`` on PATH when it is OpenSSL (LibreSSL's, on macOS, words its errors differently)."""
    path = shutil.which("openssl")
    return path if path and _version_line(path, "version").startswith("OpenSSL ") else None


@functools.cache
def curl_tool() -> str | None:
    """``curl`` on PATH when it is built with OpenSSL (not LibreSSL, Secure Transport or Schannel)."""
    path = shutil.which("curl")
    return path if path and "OpenSSL/" in _version_line(path, "--version") else None


OPENSSL_MISSING = (
    "openssl is not installed, or is not OpenSSL (LibreSSL on macOS): the tests check OpenSSL's words"
)
CURL_MISSING = (
    "curl is not installed, or is not built with OpenSSL (macOS, Windows): the tests check its exit codes"
)
