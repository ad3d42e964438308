"""The README stays true: its Python example runs, the configs it and the docs name exist, and every link
between them lands on a file and a heading that exist."""

import re

import pytest

from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = re.search(r"## In Python\n\n```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert type(namespace["classifier"]).__name__ == "ScratchBertForSequenceClassification"
    assert (tmp_path / "my-scratchbert" / "modeling_scratchbert.py").is_file()


def anchors_of(page) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"(?m)^#+ (.+)$", re.sub(r"(?s)```.*?```", "", page.read_text()))
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_land_on_files_and_headings(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: {target}"
        if anchor and destination.suffix == ".md":
            assert anchor in anchors_of(destination), f"{page.name}: {target}"


def test_named_configs_and_scripts_exist():
    for page in PAGES:
        for path in set(re.findall(r"(?<![\w/])configs/[\w./-]+\.yaml", page.read_text())):
            assert (REPO_ROOT / path).is_file(), f"{page.name}: {path}"
    for script in ("run_pretraining.py", "run_classification.py"):
        assert (REPO_ROOT / script).is_file()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and "python -m pytest" in ci and "python -m pytest" in README
