"""A real browser runs notebook 06 in JupyterLab: success shown, failures explained (not tracebacks), diagrams drawn.

JupyterLab starts headless on 127.0.0.1 with a token, serving a temporary
copy of the notebook (so autosave can never write outputs into the
repository). It starts as a learner's does: the venv's ``jupyter lab``, with
the settings the course installs into the venv (no news prompt) and nothing
about news on the command line; only the learner's own settings and
workspaces folders are fresh temporary ones. Playwright drives Debian's
Chromium (``/usr/bin/chromium``; no browser download). A screenshot is kept
in ``artifacts/browser/`` for people to look at. Skipped, with the reason,
where Chromium or Playwright is absent.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "06_make_requests.ipynb"
ARTIFACTS = ROOT / "artifacts" / "browser"
#: The question JupyterLab 4 asks while its fetchNews setting is "none" (packages/apputils-extension/src/announcements.ts).
NEWS_PROMPT = "Would you like to get notified about official Jupyter news?"
NOTIFICATION_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:notification"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--no-proxy-server",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = [
    pytest.mark.notebook,  # runs a notebook (in JupyterLab): not in the fast loop
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lab_api(notebook_url: str, path: str, body: dict | None = None) -> object:
    """A request to JupyterLab's REST API (PUT when *body* is given), straight to loopback, with the token."""
    base, token = notebook_url.split("/lab/")[0], notebook_url.split("token=")[1]
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "PUT",
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    return urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10)


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """JupyterLab on 127.0.0.1 serving a copy of the notebooks folder; yields the notebook's URL."""
    tmp_path = tmp_path_factory.mktemp("jupyterlab")
    workspace = tmp_path / "notebooks"
    workspace.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, workspace / NOTEBOOK)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Render every cell, not only those scrolled into view, so all diagrams exist in the page.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    token = secrets.token_hex(16)
    environment = dict(os.environ, MTLS_LAB_DIR=str(tmp_path / "lab-files"))
    direct = urllib.request.build_opener(
        urllib.request.ProxyHandler({})
    )  # a learner's proxy must not intercept loopback
    server, port = None, 0
    try:
        # free_port() releases the port before JupyterLab binds it, and another process may take it in
        # between (the race notebook kernels avoid with IPC). With port_retries=0 JupyterLab then exits
        # at once instead of moving silently to another port: start it again on a new one.
        for _attempt in range(3):
            port = free_port()
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter",
                    "lab",
                    "--no-browser",
                    f"--ServerApp.port={port}",
                    "--ServerApp.port_retries=0",
                    "--ServerApp.ip=127.0.0.1",
                    f"--IdentityProvider.token={token}",
                    f"--ServerApp.root_dir={workspace}",
                    # A new learner's own settings and workspaces: empty folders. What the course ships
                    # comes from the venv (share/jupyter/lab/settings/overrides.d), as on a learner's machine.
                    f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
                    f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
                    "--ServerApp.allow_root=True",  # CI runs as root in its sandbox
                ],
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and server.poll() is None:  # bounded wait for it to answer
                try:
                    direct.open(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            else:
                if server.poll() is None:
                    pytest.fail("JupyterLab did not start within 60 s")
                continue  # it exited: its port was taken in between
            break
        else:
            pytest.fail("JupyterLab exited three times at start: no free port it could keep")
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        if server is not None and server.poll() is None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def test_notebook_06_runs_in_a_real_browser(jupyterlab: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    mermaid_blocks = sum(
        cell["cell_type"] == "markdown" and "```mermaid" in "".join(cell["source"])
        for cell in json.loads((ROOT / "notebooks" / NOTEBOOK).read_text())["cells"]
    )
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(jupyterlab, timeout=60_000)
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            # The notebooks name their kernel (python3); should JupyterLab still ask, accept its choice.
            try:
                page.click(".jp-Dialog button.jp-mod-accept", timeout=5_000)
            except playwright_api.TimeoutError:
                pass
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
            page.click("text=Run", timeout=10_000)  # the menu
            page.click("text=Run All Cells", timeout=10_000)
            try:  # a kernel chooser may come up here instead, on first use
                page.click(".jp-Dialog button.jp-mod-accept", timeout=5_000)
            except playwright_api.TimeoutError:
                pass
            page.wait_for_function(
                """() => {
                    const prompts = [...document.querySelectorAll('.jp-InputPrompt')].map(p => p.textContent);
                    const busy = prompts.some(text => text.includes('*'));
                    const done = prompts.filter(text => /\\[\\d+\\]/.test(text)).length;
                    return !busy && done > 5;
                }""",
                timeout=120_000,
            )
            text = page.inner_text(".jp-Notebook")
            # Long after JupyterLab was restored (when it would ask): no news prompt, on screen or in the
            # notification center.
            news_prompts = page.get_by_text(NEWS_PROMPT).count()
            notification_settings = json.load(lab_api(jupyterlab, NOTIFICATION_SETTINGS))
            success = page.locator(".jp-OutputArea-output", has_text="Hello, alice").first
            success.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "notebook06.png"))
            # JupyterLab 4 draws each Mermaid block as an SVG image (data:image/svg+xml), loading Mermaid lazily.
            drawn = ".jp-RenderedMermaid img[src^='data:image/svg+xml'], .jp-RenderedMermaid svg"
            try:
                page.wait_for_function(
                    f"() => document.querySelectorAll({json.dumps(drawn)}).length >= {mermaid_blocks}",
                    timeout=60_000,
                )
            except playwright_api.TimeoutError:
                pass  # the assertion below reports how many were drawn
            svgs = page.locator(drawn).count()
            if svgs:
                page.locator(drawn).first.scroll_into_view_if_needed()
                page.screenshot(path=str(ARTIFACTS / "notebook06-diagram.png"))
        except Exception:
            page.screenshot(
                path=str(ARTIFACTS / "notebook06-failure.png")
            )  # what the page showed when it went wrong
            raise
        finally:
            browser.close()
    assert "Hello, alice" in text
    assert news_prompts == 0, (
        "JupyterLab asks about news: the course's setting (jupyterlab-settings/) is not in effect"
    )
    # The answer is the course's default (JupyterLab applies shipped overrides to the schema's defaults),
    # not the learner's: their own settings are empty. Other notifications stay on.
    defaults = {name: spec["default"] for name, spec in notification_settings["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false" and "fetchNews" not in notification_settings["settings"]
    assert defaults["doNotDisturbMode"] is False
    assert "Traceback (most recent call last)" not in text, (
        "a cell failed: an error shows instead of an explanation"
    )
    # The expected failures are shown explained: the client's view and what the server saw.
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in text
    assert re.search(r"server certificate rejected|self-signed certificate", text)
    assert mermaid_blocks >= 1 and svgs >= mermaid_blocks, (
        f"{svgs} diagrams drawn as SVG for {mermaid_blocks} Mermaid blocks"
    )
    assert (ARTIFACTS / "notebook06.png").stat().st_size > 10_000


def test_the_news_prompt_is_seen_when_the_setting_asks(jupyterlab: str) -> None:
    """Negative control: with fetchNews back at JupyterLab's own default ("none"), the same check sees the prompt."""
    base, token = jupyterlab.split("/lab/")[0], jupyterlab.split("token=")[1]
    # The learner's own choice wins over the course's default.
    lab_api(jupyterlab, NOTIFICATION_SETTINGS, {"raw": json.dumps({"fetchNews": "none"})})
    try:
        with playwright_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/lab?token={token}", timeout=60_000)
                page.get_by_text(NEWS_PROMPT).first.wait_for(timeout=60_000)
                assert page.get_by_text(NEWS_PROMPT).count() >= 1
            finally:
                browser.close()
    finally:
        lab_api(jupyterlab, NOTIFICATION_SETTINGS, {"raw": "{}"})
