"""runs.trainer: NaN and inf losses stopped or skipped (on one rank or all), failed writes reported with what
survives, the final save never half-written, predictions in the rows' order."""

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments, default_data_collator

from scratchbert import ScratchBertForSequenceClassification
from scratchbert.pretraining import run
from scratchbert.runs.checkpoints import is_complete_checkpoint, latest_complete_checkpoint
from scratchbert.runs.options import ScratchBertTrainingArguments
from scratchbert.runs.trainer import GuardedTrainer, TrainingFailure, save_final_model
from conftest import run_on_ranks, tiny_config


TINY = [
    "--corpus", "synthetic", "--max_documents", "80", "--hidden_size", "32", "--num_hidden_layers", "1",
    "--num_attention_heads", "2", "--intermediate_size", "64", "--max_position_embeddings", "64",
    "--max_seq_length", "64", "--vocab_size", "400", "--per_device_train_batch_size", "4", "--report_to", "none",
    "--use_cpu", "true", "--warmup_steps", "0", "--logging_steps", "1", "--seed", "7",
]


def classification_trainer(tmp_path, nan_at_call=None, policy="stop", max_train_minutes=None, **args):
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
    args = {"max_steps": 6, "save_strategy": "no", **args}
    arguments = TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4,
                                  report_to="none", use_cpu=True, learning_rate=0.01, **args)
    return GuardedTrainer(model=model, args=arguments, train_dataset=Dataset.from_list(rows),
                          data_collator=default_data_collator, on_nonfinite_loss=policy,
                          max_train_minutes=max_train_minutes)


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


def test_a_deepspeed_config_optimizer_is_left_to_deepspeed(tmp_path):
    # A DeepSpeed config with an "optimizer" section: deepspeed_init sets accelerate's DummyOptim (no step; the engine
    # builds and steps the real one) and the Trainer then asks create_optimizer again. It must come back untouched.
    from accelerate.utils.deepspeed import DummyOptim

    from scratchbert.cli import ConfigError

    trainer = classification_trainer(tmp_path)
    placeholder = trainer.optimizer = DummyOptim(params=list(trainer.model.parameters()))
    assert trainer.create_optimizer() is placeholder
    trainer.lr_scales = {"classifier.weight": 1.0}
    with pytest.raises(ConfigError, match="remove the \"optimizer\" section of the DeepSpeed config"):
        trainer.create_optimizer()


def test_the_step_guard_is_installed_once(tmp_path):
    trainer = classification_trainer(tmp_path)
    optimizer = trainer.create_optimizer()
    guarded = optimizer.step
    assert trainer.create_optimizer() is optimizer and optimizer.step is guarded  # asked again: not wrapped twice


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


def test_predictions_come_back_in_the_rows_order_when_training_groups_by_length(tmp_path):
    # transformers 5 groups evaluation batches by length too: predict() returned rows in another order, so a
    # prediction file paired them with the wrong index.
    torch.manual_seed(0)
    model = ScratchBertForSequenceClassification(tiny_config())
    g = torch.Generator().manual_seed(0)
    rows = [{"input_ids": torch.randint(5, 99, (int(n),), generator=g).tolist(), "labels": 0}
            for n in torch.randint(2, 30, (40,), generator=g)]
    arguments = ScratchBertTrainingArguments(output_dir=str(tmp_path / "out"), per_device_eval_batch_size=4, report_to="none",
                                             use_cpu=True, train_sampling_strategy="group_by_length")
    trainer = GuardedTrainer(model=model, args=arguments, data_collator=pad_batch)
    data = Dataset.from_list(rows)
    predicted = trainer.predict(data).predictions
    model.eval()
    with torch.no_grad():
        one_by_one = [model(input_ids=torch.tensor([row["input_ids"]])).logits[0].numpy() for row in rows]
    assert np.allclose(predicted, np.stack(one_by_one), atol=1e-5)


def pad_batch(features):
    """input_ids padded with 0, the attention mask, the labels."""
    width = max(len(f["input_ids"]) for f in features)
    return {"input_ids": torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features]),
            "attention_mask": torch.tensor([[1] * len(f["input_ids"]) + [0] * (width - len(f["input_ids"])) for f in features]),
            "labels": torch.tensor([f["labels"] for f in features])}


class NanOnRankOne(GuardedTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        if self.args.process_index == 1 and self.state.global_step == 1:
            loss = loss * float("nan")
        return loss


def nonfinite_ranks(rank, world_size, out, policy):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = ScratchBertForSequenceClassification(tiny_config())
    g = torch.Generator().manual_seed(rank)
    rows = [{"input_ids": torch.randint(5, 99, (8,), generator=g).tolist(), "attention_mask": [1] * 8, "labels": i % 2} for i in range(40)]
    arguments = TrainingArguments(output_dir=str(Path(out) / "run"), per_device_train_batch_size=4, max_steps=4,
                                  save_strategy="no", report_to="none", use_cpu=True, learning_rate=0.01,
                                  ddp_backend="gloo", ddp_find_unused_parameters=False)
    trainer = NanOnRankOne(model=model, args=arguments, train_dataset=Dataset.from_list(rows),
                           data_collator=default_data_collator, on_nonfinite_loss=policy)
    try:
        trainer.train()
        error = None
    except TrainingFailure as failure:
        error = str(failure)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out) / f"rank{rank}.safetensors"))
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"skipped": trainer.skipped_steps, "error": error}))


def test_nonfinite_loss_on_one_rank_is_skipped_by_every_rank(tmp_path):
    run_on_ranks(nonfinite_ranks, str(tmp_path), "skip")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["skipped"] == ranks[1]["skipped"] == [2]
    weights = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert all(torch.isfinite(w).all() for w in weights[0].values()), "rank 0 stepped on NaN gradients"
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_nonfinite_loss_on_one_rank_stops_every_rank(tmp_path):
    run_on_ranks(nonfinite_ranks, str(tmp_path), "stop")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert "non-finite on another rank at step 2" in ranks[0]["error"]
    assert "the loss became nan at step 2" in ranks[1]["error"]


class FakeRankTrainer:
    """What save_final_model uses of a Trainer, as a rank other than 0 sees it."""

    def __init__(self, rank):
        self.rank, self.barriers = rank, 0
        self.accelerator = self
        self.args = type("Args", (), {"should_save": rank == 0})()

    def wait_for_everyone(self):
        self.barriers += 1

    def is_world_process_zero(self):
        return self.rank == 0

    def save_model(self, folder):  # transformers writes on rank 0 only
        assert self.barriers >= 1, "a rank saved before every rank was past the cleanup"


def test_final_save_leaves_rank_zeros_staging_folder_alone(tmp_path):
    staging = tmp_path / ".final-partial"
    staging.mkdir()
    (staging / "model.safetensors").write_text("rank 0 is writing this")
    trainer = FakeRankTrainer(rank=1)
    save_final_model(trainer, tmp_path)
    assert (staging / "model.safetensors").read_text() == "rank 0 is writing this"
    assert trainer.barriers == 3  # before writing, before moving in, before returning: the same on every rank


def test_a_failed_final_save_on_rank_zero_keeps_the_barriers_balanced(tmp_path):
    class FailingRankZero(FakeRankTrainer):
        def save_model(self, folder):
            raise OSError(errno.ENOSPC, "No space left on device")

    trainer = FailingRankZero(rank=0)
    with pytest.raises(TrainingFailure, match="No space left on device"):
        save_final_model(trainer, tmp_path)
    assert trainer.barriers == 3  # as many as the other ranks pass: none waits forever
