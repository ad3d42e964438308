"""Faults: NaN losses, failed writes, runs killed at any moment (even while saving) and resumed exactly."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments, default_data_collator

from scratchbert import ScratchBertForSequenceClassification
from scratchbert.pretraining import run
from scratchbert.runs import GuardedTrainer, TrainingFailure, is_complete_checkpoint, latest_complete_checkpoint
from conftest import REPO_ROOT, tiny_config

TINY = [
    "--corpus", "synthetic", "--synthetic_documents", "80", "--hidden_size", "32", "--num_hidden_layers", "1",
    "--num_attention_heads", "2", "--intermediate_size", "64", "--max_position_embeddings", "64",
    "--max_seq_length", "64", "--vocab_size", "400", "--per_device_train_batch_size", "4", "--report_to", "none",
    "--use_cpu", "true", "--warmup_steps", "0", "--logging_steps", "1", "--seed", "7",
]


def classification_trainer(tmp_path, nan_at_call=None, policy="stop", **args):
    torch.manual_seed(0)
    model = ScratchBertForSequenceClassification(tiny_config())
    calls = {"n": 0}

    def poison(module, inputs, output):
        calls["n"] += 1
        if calls["n"] == nan_at_call:
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(poison)
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(5, 99, (8,), generator=g).tolist(), "attention_mask": [1] * 8, "labels": i % 2} for i in range(40)]
    arguments = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=6,
                                  report_to="none", use_cpu=True, save_strategy="no", learning_rate=0.01, **args)
    return GuardedTrainer(model=model, args=arguments, train_dataset=Dataset.from_list(rows),
                          data_collator=default_data_collator, on_nonfinite_loss=policy)


def test_nan_loss_stops_naming_the_step(tmp_path):
    trainer = classification_trainer(tmp_path, nan_at_call=3)
    with pytest.raises(TrainingFailure, match="the loss became nan at step 3"):
        trainer.train()


def test_nan_loss_skip_drops_that_step_only(tmp_path):
    trainer = classification_trainer(tmp_path, nan_at_call=3, policy="skip")
    snapshots = {}

    class Snapshot(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            snapshots[state.global_step] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    trainer.add_callback(Snapshot())
    trainer.train()
    assert trainer.skipped_steps == [3] and trainer.state.global_step == 6
    # Step 3 (global_step 2 -> 3) left every weight as it was; the steps around it trained.
    assert all(torch.equal(snapshots[2][k], snapshots[3][k]) for k in snapshots[2])
    assert any(not torch.equal(snapshots[3][k], snapshots[4][k]) for k in snapshots[3])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_failed_write_is_reported_and_previous_checkpoint_survives(tmp_path, monkeypatch):
    """The disk fills up while the second checkpoint is being written."""
    from transformers import Trainer

    original = Trainer._save_optimizer_and_scheduler
    saves = {"n": 0}

    def disk_full(self, output_dir):
        saves["n"] += 1
        if saves["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", os.path.join(output_dir, "optimizer.pt"))
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", disk_full)
    out = tmp_path / "run"
    with pytest.raises(TrainingFailure) as failure:
        run(["--output_dir", str(out), *TINY, "--max_steps", "6", "--save_steps", "2"])
    message = str(failure.value)
    assert "No space left on device" in message and "checkpoint-2" in message
    assert is_complete_checkpoint(out / "checkpoint-2") and not is_complete_checkpoint(out / "checkpoint-4")
    assert latest_complete_checkpoint(out) == str(out / "checkpoint-2")
    assert not (out / "config.json").exists(), "no final model was written"
    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", original)
    results = run(["--output_dir", str(out), *TINY, "--max_steps", "6", "--save_steps", "2", "--resume_from_checkpoint", "latest"])
    assert results["steps"] == 6


def test_unwritable_final_save_leaves_no_half_model(tmp_path, monkeypatch):
    from transformers import Trainer

    original = Trainer.save_model

    def fail(self, output_dir=None, _internal_call=False):
        if not str(output_dir).endswith(".final-partial"):  # checkpoints save as usual
            return original(self, output_dir, _internal_call)
        os.makedirs(output_dir, exist_ok=True)
        open(os.path.join(output_dir, "model.safetensors"), "w").write("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "run"
    run(["--output_dir", str(out), *TINY, "--max_steps", "2", "--save_steps", "2"])
    (out / "config.json").unlink()
    (out / "model.safetensors").unlink()
    monkeypatch.setattr(Trainer, "save_model", fail)
    with pytest.raises(TrainingFailure, match="saving the final model"):
        run(["--output_dir", str(out), *TINY, "--max_steps", "4", "--save_steps", "10", "--resume_from_checkpoint", "latest"])
    assert not (out / "config.json").exists() and not (out / "model.safetensors").exists()
    assert not (out / ".final-partial").exists()


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
