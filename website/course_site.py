"""The course's website as a Sphinx extension: the pages are the repository's own files, read as they are.

The site is built from the files a learner opens (``README.md``, ``docs/workshop.md``,
``notebooks/NN_*.ipynb``), not from copies, so it can never drift from them. What a
web page needs and GitHub's rendering does not is added here, in memory, when Sphinx
reads each file (the ``source-read`` event):

- a "Run it yourself" box on every page: the README's own set-up command and a Binder
  link for that notebook, both built from one setting (the repository's address);
- on the landing page (the README), a hidden table of contents listing every course
  notebook in course order (a glob, so a new notebook needs no list to be updated);
- relative links to files that are not pages of the site (``CONTRIBUTING.md``, a
  solution notebook) pointed at the repository, so that no link is broken;
- nbval's cell markers (``# NBVAL_SKIP``, ``# NBVAL_RAISES_EXCEPTION``) turned into the
  cell tags myst-nb reads, so a notebook executes on the site exactly as under pytest.

The functions that transform text are plain functions of strings, tested on their own
in ``tests/test_site_pages.py``.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

#: The course notebooks, in course order: the only notebooks the site shows (not solutions).
NOTEBOOK_PATTERN = "notebooks/[0-9][0-9]_*.ipynb"
#: The pages besides the notebooks.
LANDING_PAGE = "README.md"
EXTRA_PAGES = ("docs/workshop.md",)
#: The notebook a page that is not a notebook launches on Binder.
FIRST_NOTEBOOK = "notebooks/00_start_here.ipynb"

_SETUP_BLOCK = re.compile(
    r"```bash\n(?P<command>python3 -m venv [^\n]*jupyter lab (?P<path>\S+\.ipynb))\n```"
)
_INLINE_LINK = re.compile(r"(?<!!)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)\)")
_NBVAL_TAGS = {"NBVAL_SKIP": "skip-execution", "NBVAL_RAISES_EXCEPTION": "raises-exception"}


class SiteSourceError(ValueError):
    """A source file no longer has what the site builds on (e.g. the README's set-up command)."""


@dataclass(frozen=True)
class Repository:
    """The public repository the site links to, for Binder and for files that are not pages."""

    url: str
    branch: str = "main"

    def __post_init__(self) -> None:
        match = re.fullmatch(r"https://github\.com/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+?)/?", self.url)
        if not match:
            raise SiteSourceError(
                f"repository address {self.url!r} is not https://github.com/OWNER/NAME: "
                "set REPOSITORY_URL in website/conf.py to the repository's GitHub address"
            )

    @property
    def owner_and_name(self) -> str:
        return self.url.rstrip("/").removeprefix("https://github.com/")

    def binder_url(self, notebook: str) -> str:
        """mybinder.org builds the repository (requirements.txt) and opens *notebook* in JupyterLab."""
        return f"https://mybinder.org/v2/gh/{self.owner_and_name}/{self.branch}?urlpath={quote('lab/tree/' + notebook)}"

    def file_url(self, path: str) -> str:
        """The file (or folder) at *path* on the repository's web page."""
        return f"{self.url.rstrip('/')}/blob/{self.branch}/{path}"


def readme_setup_command(readme: str) -> tuple[str, str]:
    """The README's set-up command and the notebook it opens: the one command every page repeats."""
    match = _SETUP_BLOCK.search(readme)
    if not match:
        raise SiteSourceError(
            "README.md has no ```bash block with the set-up command "
            "(python3 -m venv ... jupyter lab notebooks/NN_....ipynb): the site repeats it on every page"
        )
    return match.group("command"), match.group("path")


def run_it_yourself(page: str, readme: str, repository: Repository) -> str:
    """The MyST box that tells how to run *page* (a source path) yourself: Binder, or the README's command."""
    command, opened = readme_setup_command(readme)
    notebook = page if page.endswith(".ipynb") else FIRST_NOTEBOOK
    command = command.removesuffix(opened) + notebook
    what = "this notebook" if page.endswith(".ipynb") else "the course"
    return (
        f":::{{admonition}} Run {what} yourself\n"
        ":class: tip run-it-yourself\n\n"
        f"[Launch it on Binder]({repository.binder_url(notebook)}) to run it in your browser with nothing "
        f"to install (a temporary session), or set it up on your own machine from a clone of "
        f"[the repository]({repository.url}) (Python 3.10 to 3.13; Windows: see the Quick start):\n\n"
        f"```bash\n{command}\n```\n"
        ":::\n"
    )


def point_links_at_repository(markdown: str, page: str, pages: set[str], repository: Repository) -> str:
    """Relative links to files that are not pages of the site go to the repository instead.

    Links to pages (other notebooks, the README, the workshop guide) stay as they are:
    MyST turns them into links between the site's pages. *page* and *pages* are source
    paths relative to the repository's root, with forward slashes.
    """

    def replace(match: re.Match[str]) -> str:
        target = match.group("target")
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith(("#", "/")):
            return match.group(0)  # a web address, an anchor in this page, or a site-absolute path
        path, _, anchor = target.partition("#")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(page), path))
        if resolved in pages or resolved.startswith("../"):
            return match.group(0)
        return f"[{match.group('text')}]({repository.file_url(resolved)}{'#' + anchor if anchor else ''})"

    # Code is shown as written: links are rewritten only outside fenced blocks and `code spans`.
    parts = re.split(r"(^```.*?^```[^\n]*$|`[^`\n]+`)", markdown, flags=re.MULTILINE | re.DOTALL)
    return "".join(part if index % 2 else _INLINE_LINK.sub(replace, part) for index, part in enumerate(parts))


def insert_after_title(markdown: str, block: str) -> str:
    """*block* after the page's first ``# `` heading (or at the top when there is none)."""
    match = re.search(r"^# .*\n", markdown, re.MULTILINE)
    at = match.end() if match else 0
    return f"{markdown[:at]}\n{block}\n{markdown[at:]}"


def table_of_contents(notebook_pattern: str, extra_pages: tuple[str, ...]) -> str:
    """A hidden MyST toctree: every course notebook by glob (in name order, that is course order), then the guides."""
    entries = [str(PurePosixPath(notebook_pattern).with_suffix(""))] + [
        str(PurePosixPath(p).with_suffix("")) for p in extra_pages
    ]
    return "\n```{toctree}\n:hidden:\n:glob:\n\n" + "\n".join(entries) + "\n```\n"


def nbval_markers_as_tags(cell: dict[str, Any]) -> None:
    """Tag a code cell as nbval treats it: ``# NBVAL_SKIP`` is not run, ``# NBVAL_RAISES_EXCEPTION`` may fail."""
    if cell.get("cell_type") != "code":
        return
    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
    first_lines = [line.strip() for line in source.splitlines()[:3]]
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    for marker, tag in _NBVAL_TAGS.items():
        if f"# {marker}" in first_lines and tag not in tags:
            tags.append(tag)


def notebook_page(source: str, page: str, pages: set[str], readme: str, repository: Repository) -> str:
    """The notebook *source* (JSON) as the site shows it: the box after the title, links and tags adjusted."""
    notebook = json.loads(source)
    cells = notebook["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            text = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            cell["source"] = point_links_at_repository(text, page, pages, repository)
        nbval_markers_as_tags(cell)
    box = {
        "cell_type": "markdown",
        "id": "run-it-yourself",
        "metadata": {},
        "source": run_it_yourself(page, readme, repository),
    }
    cells.insert(1 if cells and cells[0]["cell_type"] == "markdown" else 0, box)
    return json.dumps(notebook)


def markdown_page(source: str, page: str, pages: set[str], readme: str, repository: Repository) -> str:
    """A Markdown page (the README, a guide) as the site shows it; the landing page also carries the contents."""
    text = insert_after_title(
        point_links_at_repository(source, page, pages, repository), run_it_yourself(page, readme, repository)
    )
    if page == LANDING_PAGE:
        text += table_of_contents(NOTEBOOK_PATTERN, EXTRA_PAGES)
    return text


def setup(app: Any) -> dict[str, Any]:
    """Register the page transformations and the landing-page redirect with Sphinx."""
    from pathlib import Path

    def on_source_read(app: Any, docname: str, content: list[str]) -> None:
        page = Path(app.env.doc2path(docname)).relative_to(app.srcdir).as_posix()
        pages = {
            Path(app.env.doc2path(name)).relative_to(app.srcdir).as_posix() for name in app.env.found_docs
        }
        readme = (Path(app.srcdir) / LANDING_PAGE).read_text(encoding="utf-8")
        repository = Repository(app.config.course_repository_url, app.config.course_repository_branch)
        build = notebook_page if page.endswith(".ipynb") else markdown_page
        content[0] = build(content[0], page, pages, readme, repository)

    def on_build_finished(app: Any, exception: Exception | None) -> None:
        if exception is None and app.builder.format == "html":
            target = f"{Path(LANDING_PAGE).stem}.html"
            favicon = app.config.html_favicon
            icon = f'<link rel="icon" href="_static/{Path(favicon).name}">' if favicon else ""
            (Path(app.outdir) / "index.html").write_text(
                f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">{icon}'
                f'<meta http-equiv="refresh" content="0; url={target}"><title>{app.config.html_title}</title></head>'
                f'<body><p><a href="{target}">{app.config.html_title}</a></p></body></html>\n',
                encoding="utf-8",
            )

    def check_mermaid(app: Any) -> None:
        dist = Path(app.config.course_mermaid_dist)
        if not (dist / "mermaid.esm.min.mjs").is_file():
            raise SiteSourceError(f"Mermaid is not installed in {dist}: run `npm ci --prefix website` first")

    def copy_mermaid(app: Any, exception: Exception | None) -> None:
        """Mermaid's ES module and its chunks (not the source maps) into _static/mermaid: served by the site."""
        if exception is not None or app.builder.format != "html":
            return
        dist, target = Path(app.config.course_mermaid_dist), Path(app.outdir) / "_static" / "mermaid"
        for source in [
            dist / "mermaid.esm.min.mjs",
            *sorted((dist / "chunks" / "mermaid.esm.min").glob("*.mjs")),
        ]:
            destination = target / source.relative_to(dist)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(source.read_bytes())

    app.add_config_value("course_mermaid_dist", "", "env", types=frozenset({str}))
    app.connect("builder-inited", check_mermaid)
    app.connect("build-finished", copy_mermaid)
    app.add_config_value("course_repository_url", "", "env", types=frozenset({str}))
    app.add_config_value("course_repository_branch", "main", "env", types=frozenset({str}))
    app.connect("source-read", on_source_read)
    app.connect("build-finished", on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
