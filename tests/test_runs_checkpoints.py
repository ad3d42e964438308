"""runs.checkpoints: incomplete checkpoints never resumed; runs killed at any moment (even while saving) resume
exactly."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from scratchbert.pretraining import run
from scratchbert.runs.checkpoints import is_complete_checkpoint, latest_complete_checkpoint
from conftest import REPO_ROOT
from test_runs_trainer import TINY


def test_incomplete_checkpoints_are_never_resumed(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    (tmp_path / "checkpoint-6").mkdir()  # killed before the state was written
    assert latest_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


# --------------------------------------------------------------------------------------------------------------
# SIGKILL at random moments, then resume: the same weights as an uninterrupted run
# --------------------------------------------------------------------------------------------------------------


def script(out, *extra):
    return [sys.executable, str(REPO_ROOT / "run_pretraining.py"), "--output_dir", str(out), *TINY,
            "--max_steps", "8", "--save_steps", "2", "--dataloader_num_workers", "0", *extra]


def kill_when(out, condition, timeout=300):
    """Start a run and SIGKILL it the moment `condition(out)` holds (polled every few ms)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(script(out), cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition(out):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    return process.returncode


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run(script(reference), cwd=REPO_ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    expected = load_file(reference / "model.safetensors")

    scenarios = {
        # the moment checkpoint-4 appears: the kill lands while it is being written
        "while-saving": lambda out: (out / "checkpoint-4").exists(),
        # once checkpoint-2 is complete: somewhere in the steps that follow it
        "between-saves": lambda out: is_complete_checkpoint(out / "checkpoint-2"),
    }
    for name, condition in scenarios.items():
        out = tmp_path / name
        code = kill_when(out, condition)
        assert code == -signal.SIGKILL, f"{name}: the run finished before it could be killed"
        assert not (out / "model.safetensors").exists()
        resumed = subprocess.run(script(out, "--resume_from_checkpoint", "latest"), cwd=REPO_ROOT, env=env,
                                 capture_output=True, text=True)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        weights = load_file(out / "model.safetensors")
        assert weights.keys() == expected.keys()
        for key in expected:
            assert torch.equal(weights[key], expected[key]), f"{name}: {key} differs after resume"


@pytest.mark.slow
def test_resumed_run_masks_as_the_uninterrupted_one_with_workers_and_dupe_factor(tmp_path):
    # Masking randomness is the collator's own (seed, epoch, batch): neither the first batch after a resume nor
    # the first batch of a DataLoader worker may draw from anything else (transformers 5.24 reseeded both).
    args = [*TINY, "--max_steps", "8", "--save_steps", "4", "--dupe_factor", "2", "--dataloader_num_workers", "1",
            "--eval_strategy", "no"]
    reference = tmp_path / "reference"
    run(["--output_dir", str(reference), *args])
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(reference / "checkpoint-4", resumed / "checkpoint-4")
    run(["--output_dir", str(resumed), *args, "--resume_from_checkpoint", "latest"])
    expected, weights = load_file(reference / "model.safetensors"), load_file(resumed / "model.safetensors")
    for key in expected:
        assert torch.equal(weights[key], expected[key]), f"{key} differs after resuming from checkpoint-4"
    logged = lambda folder: [e["loss"] for e in json.loads((folder / "checkpoint-8" / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert logged(resumed) == logged(reference)
