"""The README stays true: its Python example runs, and the commands it names exist."""

import re

from conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def test_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = re.search(r"## In Python\n\n```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert type(namespace["classifier"]).__name__ == "ScratchBertForSequenceClassification"
    assert (tmp_path / "my-scratchbert" / "modeling_scratchbert.py").is_file()


def test_named_configs_and_scripts_exist():
    for path in set(re.findall(r"configs/[\w./-]+\.yaml", README)):
        assert (REPO_ROOT / path).is_file(), path
    for script in ("run_pretraining.py", "run_classification.py"):
        assert (REPO_ROOT / script).is_file()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and "python -m pytest" in ci and "python -m pytest" in README
