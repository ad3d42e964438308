"""A built wheel works anywhere: installed in a fresh venv outside the source tree, both scripts run."""

import json
import shutil
import site
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the wheel of this tree installed; dependencies come from the test's own environment."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(REPO_ROOT, source, symlinks=True,
                    ignore=shutil.ignore_patterns(".git", ".venv", "outputs", "build", "*.egg-info", "__pycache__"))
    # pip builds in an isolated environment from pyproject.toml's build requirements, as for any user.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(root / "dist"),
                    str(source)], check=True, cwd=root)
    wheel = next((root / "dist").glob("scratchbert-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    # The already installed dependencies (torch, transformers, ...), not this checkout's scratchbert: a .pth
    # line adds the folder to sys.path without running the editable install's own .pth hook.
    (root / "venv" / venv_site.split(str(venv) + "/", 1)[1] / "dependencies.pth").write_text("\n".join(site.getsitepackages()))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    work = root / "elsewhere"
    work.mkdir()
    return venv, work


def run_in(venv, work, *command):
    return subprocess.run([str(venv / "bin" / command[0]), *command[1:]], cwd=work, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_wheel_holds_the_package_configs_and_console_scripts(installed):
    venv, work = installed
    done = run_in(venv, work, "python", "-c", "import scratchbert, scratchbert.cli as c; print(scratchbert.__file__); "
                  "print(c.packaged_config('pretrain_offline.yaml')); print(c.packaged_config('accelerate/fsdp.yaml').is_file())")
    assert done.returncode == 0, done.stderr
    module_file, config, accelerate_config = done.stdout.split()
    assert module_file.startswith(str(venv)) and config.startswith(str(venv)) and accelerate_config == "True"
    for script in ("scratchbert-pretrain", "scratchbert-classify", "scratchbert-glue", "scratchbert-token-classify"):
        assert (venv / "bin" / script).is_file(), script
    done = run_in(venv, work, "scratchbert-glue", "--help")
    assert done.returncode == 0 and "--glue_dir" in done.stdout, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", [
    ("scratchbert-pretrain",), ("python", "-m", "scratchbert.pretraining"),
    ("scratchbert-classify",), ("python", "-m", "scratchbert.classification"),
])
def test_offline_defaults_run_from_the_wheel_in_another_folder(installed, command):
    venv, work = installed
    out = work / "-".join(command).replace(".", "-")
    done = run_in(venv, work, *command, "--max_steps", "3", "--output_dir", str(out), "--eval_strategy", "no")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "config.json").is_file() and (out / "results.json").is_file()
    assert json.loads((out / "results.json").read_text())["config"].startswith(str(venv))  # the packaged default
