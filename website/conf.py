"""Sphinx settings for the course's website (built by ``scripts/build-site.sh``; see the README's "For maintainers").

Sphinx with myst-nb and sphinx-book-theme, not Jupyter Book 2 (mystmd): mystmd downloads its
site template from a web service at build time and fails without internet, where Sphinx
builds offline from packages installed from PyPI, and the built site loads nothing from
another host (Mermaid comes from npm's ``mermaid`` package, not from a CDN).

The source folder is the repository's root and only the course's own files are read
(``include_patterns``); ``course_site.py`` adds what a web page needs when each is read.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from course_site import EXTRA_PAGES, LANDING_PAGE, NOTEBOOK_PATTERN  # noqa: E402 (after the path is set)

# ---------------------------------------------------------------------------------------------
# THE ONE SETTING TO CHANGE IN A FORK: the repository's public address on GitHub. Every page's
# Binder link and every link to a file that is not a page (CONTRIBUTING.md, a solution) is built
# from it. The course has no public address yet: replace this placeholder when publishing.
REPOSITORY_URL = "https://github.com/example-org/mtls-course"
# ---------------------------------------------------------------------------------------------

project = "Mutual TLS, by doing it"
html_title = project
author = "The course's authors"
copyright = "the course's authors, MIT License"

extensions = ["myst_nb", "sphinxcontrib.mermaid", "course_site"]
course_repository_url = REPOSITORY_URL
course_repository_branch = "main"

root_doc = Path(LANDING_PAGE).stem
include_patterns = [LANDING_PAGE, *EXTRA_PAGES, NOTEBOOK_PATTERN]
exclude_patterns = [
    ".*",
    "**/.*",
    "build",
    "website",
    "node_modules",
    "**/lab-files",
    "notebooks/solutions",
    "tests",
]

# Markdown (MyST): ```mermaid fences become Mermaid diagrams, as on GitHub and in JupyterLab;
# :::{admonition} boxes; anchors for the README's [Performance](#performance)-style links.
myst_enable_extensions = ["colon_fence"]
myst_fence_as_directive = ["mermaid"]
myst_heading_anchors = 3

# Every notebook runs at build time, top to bottom, in its own folder, as under pytest:
# a cell that fails fails the build (the site never shows a stale or broken output).
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 120  # per cell, as --nbval-cell-timeout
nb_merge_streams = True
# Markdown that a cell displays (notebook 11's handshake diagrams and tables) is read as MyST,
# like the notebooks' own Markdown: its ```mermaid fences are drawn, its tables are tables.
nb_render_markdown_format = "myst"
nb_ipywidgets_js: dict[str, dict[str, str]] = {}  # no widgets: never load require.js from a CDN

# Mermaid from npm (website/package.json), copied into _static by the build: no CDN.
mermaid_use_local = "mermaid/mermaid.esm.min.mjs"
course_mermaid_dist = str(HERE / "node_modules" / "mermaid" / "dist")
mermaid_d3_zoom = False
html_static_path = ["_static"]
html_css_files = ["course.css"]
html_favicon = "_static/favicon.svg"  # without one, browsers ask for /favicon.ico and log a 404

html_theme = "sphinx_book_theme"
html_theme_options = {
    "repository_url": REPOSITORY_URL,
    "repository_branch": "main",
    "use_repository_button": True,
    "use_download_button": True,
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
html_context = {
    "default_mode": "auto"
}  # light or dark as the reader's system says (an empty mode logs an error)
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
