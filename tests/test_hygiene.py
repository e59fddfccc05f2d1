"""The repository keeps the course's own rules: clean notebooks, a true course map, no verification turned off."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIRS = [ROOT / "notebooks"]
NAME = re.compile(r"^(\d\d)_[a-z0-9]+(_[a-z0-9]+)*\.ipynb$")
FRAME = (
    "What you'll do",
    "What you'll learn",
    "What you'll need",
    "On your own",
    "In practice",
    "Further reading",
)
VERIFICATION_OFF = re.compile(r"verify\s*=\s*False|CERT_NONE|check_hostname\s*=\s*False")


def course_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "notebooks").glob("*.ipynb"))


def all_notebooks() -> list[Path]:
    return sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def test_there_are_notebooks() -> None:
    assert len(course_notebooks()) >= 7, "the course has notebooks 00 to 06 at least"


@pytest.mark.parametrize("notebook", all_notebooks(), ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(notebook: Path) -> None:
    for index, cell in enumerate(cells(notebook)):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"cell {index} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"cell {index} has an execution count"


@pytest.mark.parametrize("notebook", course_notebooks(), ids=lambda p: p.name)
def test_notebook_has_the_course_frame(notebook: Path) -> None:
    markdown = "\n".join(source(c) for c in cells(notebook) if c["cell_type"] == "markdown")
    title = source(cells(notebook)[0])
    assert title.startswith("# "), "the first cell is the title"
    missing = [heading for heading in FRAME if heading.lower() not in markdown.lower()]
    assert not missing, f"missing sections: {missing}"


@pytest.mark.parametrize("notebook", course_notebooks(), ids=lambda p: p.name)
def test_notebook_imports_helpers_by_name(notebook: Path) -> None:
    code = "\n".join(source(c) for c in cells(notebook) if c["cell_type"] == "code")
    assert "import *" not in code
    assert not re.search(r"^\s*import lab_helpers\s*$", code, re.M), "use `from lab_helpers import name`"


def test_notebook_names_are_numbered_without_gaps() -> None:
    numbers = []
    for notebook in course_notebooks():
        match = NAME.match(notebook.name)
        assert match, f"{notebook.name}: name it NN_verb_topic.ipynb (lower case, underscores)"
        numbers.append(int(match.group(1)))
    assert numbers == list(range(len(numbers))), (
        f"notebook numbers must run 00, 01, ... without gaps: {numbers}"
    )


def test_name_check_rejects_bad_names() -> None:
    for bad in ("1_intro.ipynb", "01-intro.ipynb", "01_Intro.ipynb", "01.ipynb"):
        assert not NAME.match(bad), bad


def readme_map() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Course map", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"notebooks/(\d\d_[a-z0-9_]+\.ipynb)", section)
    return list(dict.fromkeys(names))  # each row names its notebook in the link text and the target


def test_readme_course_map_matches_the_notebooks() -> None:
    assert readme_map() == [p.name for p in course_notebooks()], "update the README's course map"


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "lab_helpers").rglob("*.py")) + all_notebooks(),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_verification_is_never_turned_off(path: Path) -> None:
    assert not VERIFICATION_OFF.search(path.read_text(encoding="utf-8"))


def test_verification_check_catches_each_form() -> None:
    for text in (
        "requests.get(u, verify=False)",
        "ctx.verify_mode = ssl.CERT_NONE",
        "ctx.check_hostname = False",
    ):
        assert VERIFICATION_OFF.search(text), text


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout"
)
def test_no_lab_files_or_keys_are_tracked() -> None:
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    forbidden = [
        name
        for name in tracked
        if name.endswith((".key", ".crt", ".csr", ".pem", ".p12", ".srl", ".crl")) or "lab-files/" in name
    ]
    assert not forbidden, f"lab files must not be committed: {forbidden}"


def test_no_module_is_named_like_a_name_the_package_exports() -> None:
    """``from lab_helpers import explain`` must give the function even after ``lab_helpers.explain`` was imported.

    The package imports lazily: a submodule with the same name as an exported
    function would shadow it once anything imported the submodule.
    """
    import lab_helpers

    modules = {path.stem for path in (ROOT / "lab_helpers").glob("*.py")}
    assert not modules & set(lab_helpers.__all__)


MERMAID_BLOCK = re.compile(r"```mermaid\n(.*?)```", re.DOTALL)
SEQUENCE_MESSAGE = re.compile(r"^\s*[\w ]+?(?:-{1,2}>{1,2}|-{1,2}[x)])[+-]?[\w ]+?:(?P<text>.*)$")


def mermaid_messages_with_a_semicolon(markdown: str) -> list[str]:
    """Message lines of sequence diagrams that hold a `;`.

    Mermaid ends a statement at a semicolon, so the rest of the message is read as
    a new statement and the whole diagram fails to draw ("Parse error"), in
    JupyterLab and on the website alike. Write a comma, or `#59;` for a real one.
    """
    found = []
    for block in MERMAID_BLOCK.findall(markdown):
        if not block.lstrip().startswith("sequenceDiagram"):
            continue
        for line in block.splitlines():
            match = SEQUENCE_MESSAGE.match(line)
            if match and ";" in match["text"]:
                found.append(line.strip())
    return found


@pytest.mark.parametrize("notebook", all_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sequence_diagram_messages_hold_no_semicolon(notebook: Path) -> None:
    markdown = "\n".join(source(cell) for cell in cells(notebook) if cell["cell_type"] == "markdown")
    assert mermaid_messages_with_a_semicolon(markdown) == []


def test_semicolon_check_finds_one_in_a_message() -> None:
    diagram = "```mermaid\nsequenceDiagram\n    C->>S: hello, world\n    S->>S: greets; decides\n```\n"
    assert mermaid_messages_with_a_semicolon(diagram) == ["S->>S: greets; decides"]
    assert mermaid_messages_with_a_semicolon(diagram.replace("greets;", "greets,")) == []
