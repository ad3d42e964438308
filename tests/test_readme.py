"""The README stays true: its Python example runs, the configs it and the docs name exist, and every link
between them lands on a file and a heading that exist."""

import os
import re
import shutil
import subprocess
import time

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


def test_readme_is_one_page_with_a_short_results_table():
    """At most 110 lines; the results table at most six rows of short cells (the detail lives in docs/)."""
    assert len(README.splitlines()) <= 110
    section = re.search(r"\n## Results at a glance\n(.*?)(?=\n## |\Z)", README, re.S).group(1)
    rows = [line for line in section.splitlines() if line.startswith("|")]
    header, rule, *data = rows
    assert set(rule.replace("|", "").strip()) <= set("-: ")  # the line under the header
    assert 1 <= len(data) <= 6
    for row in data:
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        assert len(cells) == header.count("|") - 1, row
        assert all(len(cell) <= 200 for cell in cells), row


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
    for script in ("run_pretraining.py", "run_classification.py", "run_token_classification.py"):
        assert (REPO_ROOT / script).is_file()


def quick_start_commands() -> list[str]:
    block = re.search(r"## Quick start\n\n```bash\n(.*?)```", README, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_quick_start_is_two_commands_and_ci_runs_its_test_command():
    assert quick_start_commands() == ["make run", "make test"]
    ci = [line.strip() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in ci  # CI proves the README's own test command from a clean clone
    assert not any(line.startswith(("python -m pytest", "pip install")) for line in ci)  # no second way to set up


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("target, command", [("run", "run_pretraining.py"), ("test", "-m pytest")])
def test_make_targets_set_up_once_then_run_offline(tmp_path, target, command):
    """`make -n` in a copy of the project: a fresh one sets up (.venv, torch pinned first, the project), one whose
    stamp is newer than setup.cfg and pyproject.toml only runs the command, offline, with the venv's Python."""
    for name in ("Makefile", "setup.cfg", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)

    def dry_run():
        # As a top-level make: under `make test` (CI) the outer make's MAKELEVEL would add "Entering directory" lines.
        env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        done = subprocess.run(["make", "--no-print-directory", "-n", target], cwd=tmp_path, capture_output=True,
                              text=True, check=True, env=env)
        return done.stdout

    fresh = dry_run()
    steps = [fresh.index(s) for s in ("-m venv .venv", "import torch", "torch==2.13.0", '-e ".[dev]"', command)]
    assert steps == sorted(steps)  # venv, then torch unless one imports, then the project, then the command
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    (tmp_path / ".venv" / ".scratchbert-installed").touch()
    again = dry_run().strip().splitlines()
    assert len(again) == 1 and command in again[0] and ".venv/bin/python" in again[0]
    assert all(f"{v}=" in again[0] for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "WANDB_MODE"))
    os.utime(tmp_path / "setup.cfg", (time.time() + 5, time.time() + 5))  # changed requirements: install again
    assert '-e ".[dev]"' in dry_run() and "torch==2.13.0" in dry_run()


def test_the_layout_names_every_module_and_only_modules_that_exist():
    """Issue 44: the README's layout matches the tree, both ways."""
    layout = re.search(r"## Layout\n\n```\n(.*?)```", README, re.S).group(1)
    package = REPO_ROOT / "scratchbert"
    modules = {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {p.name for p in (package / "runs").glob("*.py") if p.name != "__init__.py"}
    named = set(re.findall(r"([a-z_]+\.py)\b", layout))
    assert modules - named == set(), "modules the layout does not name"
    assert named - modules == set(), "names in the layout that are no module"
    for folder in re.findall(r"(?m)^([\w/]+/)\s", layout):
        assert (REPO_ROOT / folder).is_dir(), folder

