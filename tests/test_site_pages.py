"""What the website adds to the course's files (website/course_site.py), checked on text: no Sphinx, no browser.

The site shows the repository's own files; these tests check the few things it
adds: the "Run it yourself" box (the README's command, a Binder link from the one
repository setting), links to files that are not pages, the contents that pick up
every notebook, and nbval's cell markers carried over.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("course_site", ROOT / "website" / "course_site.py")
assert _spec and _spec.loader
course_site = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("course_site", course_site)  # dataclasses look their module up there
_spec.loader.exec_module(course_site)

README = (ROOT / "README.md").read_text(encoding="utf-8")
REPOSITORY = course_site.Repository("https://github.com/someone/mtls-course")
PAGES = {"README.md", "docs/workshop.md", "notebooks/00_start_here.ipynb", "notebooks/06_make_requests.ipynb"}


def test_the_site_setting_is_one_line_in_the_site_config() -> None:
    settings = re.findall(
        r"^REPOSITORY_URL = \"(.+)\"$", (ROOT / "website" / "conf.py").read_text(), re.MULTILINE
    )
    assert len(settings) == 1
    course_site.Repository(settings[0])  # a GitHub address, or the build says what to set


def test_binder_opens_the_notebook_in_jupyterlab() -> None:
    assert REPOSITORY.binder_url("notebooks/06_make_requests.ipynb") == (
        "https://mybinder.org/v2/gh/someone/mtls-course/main?urlpath=lab/tree/notebooks/06_make_requests.ipynb"
    )


@pytest.mark.parametrize("address", ["https://gitlab.com/someone/mtls-course", "github.com/someone/x", ""])
def test_an_address_binder_cannot_build_from_is_refused(address: str) -> None:
    with pytest.raises(course_site.SiteSourceError, match="REPOSITORY_URL"):
        course_site.Repository(address)


def test_the_box_repeats_the_readme_command_for_this_notebook() -> None:
    box = course_site.run_it_yourself("notebooks/06_make_requests.ipynb", README, REPOSITORY)
    command, opened = course_site.readme_setup_command(README)
    assert opened == "notebooks/00_start_here.ipynb" and command in README
    assert command.removesuffix(opened) + "notebooks/06_make_requests.ipynb" in box
    assert REPOSITORY.binder_url("notebooks/06_make_requests.ipynb") in box
    assert box.startswith(":::{admonition} Run this notebook yourself") and box.rstrip().endswith(":::")


def test_a_page_that_is_not_a_notebook_launches_the_first_one() -> None:
    box = course_site.run_it_yourself("docs/workshop.md", README, REPOSITORY)
    assert "Run the course yourself" in box and box.count("notebooks/00_start_here.ipynb") == 2


def test_a_readme_without_the_setup_command_stops_the_build() -> None:
    with pytest.raises(course_site.SiteSourceError, match="set-up command"):
        course_site.readme_setup_command("# A README\n\nNo command here.\n")


def test_links_to_pages_stay_and_links_to_other_files_go_to_the_repository() -> None:
    markdown = (
        "[06](notebooks/06_make_requests.ipynb) [guide](docs/workshop.md) [perf](#performance) "
        "[web](https://example.org/) [contributing](CONTRIBUTING.md#tests) [solution](notebooks/solutions/06_make_requests.ipynb) "
        "![logo](logo.png)\n\n```bash\n[not a link](CONTRIBUTING.md)\n```\nand `[code](LICENSE)`\n"
    )
    rewritten = course_site.point_links_at_repository(markdown, "README.md", PAGES, REPOSITORY)
    for kept in (
        "(notebooks/06_make_requests.ipynb)",
        "(docs/workshop.md)",
        "(#performance)",
        "(https://example.org/)",
        "![logo](logo.png)",
        "[not a link](CONTRIBUTING.md)",
        "`[code](LICENSE)`",
    ):
        assert kept in rewritten, kept
    assert "(https://github.com/someone/mtls-course/blob/main/CONTRIBUTING.md#tests)" in rewritten
    assert (
        "(https://github.com/someone/mtls-course/blob/main/notebooks/solutions/06_make_requests.ipynb)"
        in rewritten
    )


def test_links_are_resolved_from_the_page_folder() -> None:
    markdown = (
        "[README](../README.md) [neighbour](00_start_here.ipynb) [solution](solutions/00_start_here.ipynb)"
    )
    rewritten = course_site.point_links_at_repository(
        markdown, "notebooks/06_make_requests.ipynb", PAGES, REPOSITORY
    )
    assert "(../README.md)" in rewritten and "(00_start_here.ipynb)" in rewritten
    assert (
        "(https://github.com/someone/mtls-course/blob/main/notebooks/solutions/00_start_here.ipynb)"
        in rewritten
    )


def test_the_contents_pick_up_every_course_notebook_and_no_solution() -> None:
    toctree = course_site.table_of_contents(course_site.NOTEBOOK_PATTERN, course_site.EXTRA_PAGES)
    assert ":glob:" in toctree and "notebooks/[0-9][0-9]_*" in toctree and "docs/workshop" in toctree
    matched = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(course_site.NOTEBOOK_PATTERN))
    assert matched == sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert not fnmatch.fnmatch("notebooks/solutions/06_make_requests.ipynb", course_site.NOTEBOOK_PATTERN)
    assert not fnmatch.fnmatch("notebooks/draft.ipynb", course_site.NOTEBOOK_PATTERN)


def test_nbval_markers_become_the_tags_myst_nb_reads() -> None:
    skipped = {"cell_type": "code", "metadata": {}, "source": "# NBVAL_SKIP\nprint('needs a tool')"}
    failing = {
        "cell_type": "code",
        "metadata": {"tags": ["x"]},
        "source": ["# NBVAL_RAISES_EXCEPTION\n", "1 / 0"],
    }
    plain = {"cell_type": "code", "metadata": {}, "source": "print('# NBVAL_SKIP is only text here')"}
    for cell in (skipped, failing, plain):
        course_site.nbval_markers_as_tags(cell)
    assert skipped["metadata"]["tags"] == ["skip-execution"]
    assert failing["metadata"]["tags"] == ["x", "raises-exception"]
    assert plain["metadata"]["tags"] == []


def test_a_notebook_page_gets_the_box_after_its_title_and_keeps_its_cells() -> None:
    source = (ROOT / "notebooks" / "06_make_requests.ipynb").read_text(encoding="utf-8")
    page = json.loads(
        course_site.notebook_page(source, "notebooks/06_make_requests.ipynb", PAGES, README, REPOSITORY)
    )
    original = json.loads(source)

    def text(cell: dict) -> str:
        return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])

    assert len(page["cells"]) == len(original["cells"]) + 1
    assert text(page["cells"][0]) == text(original["cells"][0])
    assert "Run this notebook yourself" in text(page["cells"][1])
    assert [text(c) for c in page["cells"][2:]] == [text(c) for c in original["cells"][1:]]


def test_the_landing_page_is_the_readme_with_the_box_and_the_contents() -> None:
    page = course_site.markdown_page(README, "README.md", PAGES, README, REPOSITORY)
    assert page.startswith("# Mutual TLS, by doing it\n\n:::{admonition} Run the course yourself")
    assert page.rstrip().endswith("```") and "{toctree}" in page
    guide = course_site.markdown_page("# Guide\n\nText.\n", "docs/workshop.md", PAGES, README, REPOSITORY)
    assert "{toctree}" not in guide and "Run the course yourself" in guide
