"""The course's website in a real browser: every notebook page executed, drawn, self-contained, with no broken link.

The site is built by ``scripts/build-site.sh`` into ``build/site/html`` (``.ci/run``
builds it before the tests); here a local HTTP server on 127.0.0.1 serves that
folder and Debian's Chromium, driven by Playwright, opens every page. A page
passes when it loads without a console error and without a single request to
another host, shows executed output (exercise checks in their "not attempted
yet" state), draws every Mermaid diagram as SVG and shows matplotlib charts as
images. Every internal link of every page is followed. Screenshots go to
``artifacts/site/``. Skipped, with the reason, when the site is not built or
Chromium or Playwright is absent.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "site" / "html"
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "site"
COURSE_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
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
#: What to bring into view for a screenshot, per notebook page (the landing page is shot too).
SCREENSHOTS = {
    "06_make_requests": ".cell_output:has-text('Hello, alice')",
    "11_watch_the_handshake_on_the_wire": ".mermaid svg",
    "12_measure_what_mtls_costs": ".cell_output img",
}
MAX_CRAWL = 500  # pages and files: a bound on the crawl, far above the site's size

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not found (apt-get install chromium)"
)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser that closes a connection early is not a failure of the site


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """*folder* over HTTP on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    server = _Server(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, name="site-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class PageRecord:
    """What a page did while it loaded: console errors, script errors, and every URL it requested."""

    def __init__(self, page: Any) -> None:
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        page.on(
            "console", lambda message: message.type == "error" and self.console_errors.append(message.text)
        )
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and self.console_errors.append(f"HTTP {response.status} for {response.url}")
            ),
        )

    def other_hosts(self, base_url: str) -> list[str]:
        """Requests that left the site's own origin (data: and blob: URLs stay in the page)."""
        origin = urlsplit(base_url).netloc
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != origin
        ]


def open_page(browser: Any, url: str) -> tuple[Any, PageRecord]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    record = PageRecord(page)
    page.goto(url, wait_until="networkidle", timeout=60_000)
    return page, record


def draw_every_diagram(page: Any) -> int:
    """Bring each Mermaid block into view (they render lazily) and wait until it is an SVG; how many are drawn."""
    diagrams = page.locator(".mermaid")
    for index in range(diagrams.count()):
        diagrams.nth(index).scroll_into_view_if_needed(timeout=10_000)
        try:
            diagrams.nth(index).locator("svg").first.wait_for(timeout=30_000)
        except playwright_api.TimeoutError:
            pass  # counted below
    return page.locator(".mermaid svg").count()


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"] or "")
        if tag in ("a", "link") and values.get("href"):
            self.targets.append(values["href"] or "")
        if tag in ("img", "script") and values.get("src"):
            self.targets.append(values["src"] or "")


def broken_links(start_url: str) -> list[str]:
    """Crawl every page reachable from *start_url* within its origin; each broken link as 'page -> target'."""
    direct = urllib.request.build_opener(
        urllib.request.ProxyHandler({})
    )  # loopback, whatever the proxy variables say
    origin = urlsplit(start_url).netloc
    pages: dict[str, _Links | None] = {}
    queue, broken, checked = [(start_url, start_url)], [], 0
    while queue and checked < MAX_CRAWL:
        referrer, url = queue.pop(0)
        address, fragment = urldefrag(url)
        if address not in pages:
            checked += 1
            try:
                with direct.open(address, timeout=10) as response:
                    body, kind = response.read(), response.headers.get_content_type()
            except (urllib.error.URLError, OSError) as error:
                pages[address] = None
                broken.append(f"{referrer} -> {url} ({error})")
                continue
            parsed = None
            if kind == "text/html":
                parsed = _Links()
                parsed.feed(body.decode("utf-8", errors="replace"))
                for target in parsed.targets:
                    absolute = urljoin(address, target)
                    if urlsplit(absolute).netloc == origin and urlsplit(absolute).scheme in ("http", "https"):
                        queue.append((address, absolute))
            pages[address] = parsed
        parsed = pages[address]
        if fragment and parsed is not None and fragment not in parsed.ids:
            broken.append(f"{referrer} -> {url} (no element with id {fragment!r})")
    assert checked < MAX_CRAWL, f"the crawl stopped at {MAX_CRAWL} files: raise MAX_CRAWL if the site grew"
    return broken


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    if not (SITE / "index.html").is_file():
        pytest.skip(f"the site is not built ({SITE}): run scripts/build-site.sh")
    with serve(SITE) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def markdown_mermaid_blocks(notebook: Path) -> int:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return sum(c["cell_type"] == "markdown" and "```mermaid" in "".join(c["source"]) for c in cells)


def code(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_the_landing_page_lists_every_notebook_in_course_order(site_url: str, browser: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page, record = open_page(browser, site_url)  # index.html leads to the README's page
    try:
        assert page.url.endswith("/README.html")
        navigation = [
            urlsplit(urljoin(page.url, href)).path
            for href in page.eval_on_selector_all(
                "nav.bd-docs-nav a.reference.internal", "links => links.map(a => a.getAttribute('href'))"
            )
        ]
        course_map = page.eval_on_selector_all(
            "article a[href^='notebooks/']", "links => links.map(a => a.getAttribute('href'))"
        )
        page.screenshot(path=str(ARTIFACTS / "landing-page.png"))
    finally:
        page.close()
    expected = [f"/notebooks/{notebook.stem}.html" for notebook in COURSE_NOTEBOOKS]
    in_navigation = [path for path in navigation if path.startswith("/notebooks/")]
    assert in_navigation == expected, (
        "the site is older than the notebooks, or out of order: run scripts/build-site.sh"
    )
    assert "/docs/workshop.html" in navigation
    # The README's links to notebooks/*.ipynb are links to the site's pages.
    assert sorted(set(course_map)) == [f"notebooks/{notebook.stem}.html" for notebook in COURSE_NOTEBOOKS]
    assert not record.console_errors and not record.other_hosts(site_url)


@pytest.mark.parametrize("notebook", COURSE_NOTEBOOKS, ids=lambda path: path.stem[:2])
def test_notebook_page_in_a_real_browser(notebook: Path, site_url: str, browser: Any) -> None:
    page_file = SITE / "notebooks" / f"{notebook.stem}.html"
    assert page_file.is_file(), f"no page for {notebook.name}: run scripts/build-site.sh"
    page, record = open_page(browser, urljoin(site_url, f"notebooks/{notebook.stem}.html"))
    try:
        drawn = draw_every_diagram(page)
        diagrams = page.locator(".mermaid").count()
        outputs = page.locator(".cell_output").count()
        output_text = "\n".join(page.locator(".cell_output").all_inner_texts())
        charts = page.eval_on_selector_all(
            ".cell_output img", "images => images.map(i => i.complete && i.naturalWidth > 0)"
        )
        launch = page.locator(".run-it-yourself a[href*='mybinder.org']").first.get_attribute("href")
        command = page.locator(".run-it-yourself pre").first.inner_text().strip()
        if notebook.stem in SCREENSHOTS:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.locator(SCREENSHOTS[notebook.stem]).first.scroll_into_view_if_needed(timeout=10_000)
            page.screenshot(path=str(ARTIFACTS / f"{notebook.stem}.png"))
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    assert not record.console_errors, f"console errors: {record.console_errors}"
    assert not record.other_hosts(site_url), f"requests to other hosts: {record.other_hosts(site_url)}"
    # Executed: every notebook prints something, checks speak as they do to a learner who has not tried yet.
    assert outputs >= 3 and output_text.strip()
    assert "Traceback (most recent call last)" not in output_text
    if "check.exercise_" in code(notebook):
        assert "not attempted yet" in output_text
    assert diagrams >= markdown_mermaid_blocks(notebook) and drawn == diagrams, (
        f"{drawn} of {diagrams} diagrams drawn"
    )
    if "matplotlib" in code(notebook):
        assert charts and all(charts), f"charts shown as images: {charts}"
    assert (
        launch
        and launch.endswith(f"notebooks/{notebook.name}")
        and command.endswith(f"notebooks/{notebook.name}")
    )
    if notebook.stem == "06_make_requests":
        assert "Hello, alice" in output_text


def test_no_internal_link_is_broken(site_url: str) -> None:
    assert broken_links(site_url) == []


def test_the_checks_see_a_request_to_another_host_an_error_and_a_broken_link(
    tmp_path: Path, browser: Any
) -> None:
    """Negative control: a page that breaks each rule is caught by the same checks."""
    (tmp_path / "index.html").write_text(
        '<!DOCTYPE html><html><head><script src="http://cdn.example.invalid/lib.js"></script></head><body>'
        '<script>console.error("broken on purpose")</script>'
        '<a href="missing.html">gone</a> <a href="#nowhere">anchor</a> <a href="page.html#here">fine</a>'
        "</body></html>",
        encoding="utf-8",
    )
    (tmp_path / "page.html").write_text(
        '<!DOCTYPE html><html><body><p id="here">here</p></body></html>', encoding="utf-8"
    )
    with serve(tmp_path) as url:
        page, record = open_page(browser, url)
        page.close()
        broken = broken_links(url)
    assert record.other_hosts(url) == ["http://cdn.example.invalid/lib.js"]
    assert any("broken on purpose" in error for error in record.console_errors)
    assert len(broken) == 2 and "missing.html" in broken[0] + broken[1] and "nowhere" in broken[0] + broken[1]
