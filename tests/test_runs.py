"""Faults: NaN losses, failed writes, runs killed at any moment (even while saving) and resumed exactly."""

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments, default_data_collator

from scratchbert import ScratchBertForSequenceClassification
from scratchbert import runs
from scratchbert.pretraining import DataArguments, ModelArguments, run
from scratchbert.cli import ConfigError, parse_config
from scratchbert.runs import (
    GuardedTrainer,
    RunArguments,
    ScratchBertTrainingArguments,
    TrainingFailure,
    budget_lr_lambda,
    check_output_dir,
    is_complete_checkpoint,
    latest_complete_checkpoint,
    save_final_model,
    script_main,
    tokenizer_for_run,
)
from conftest import REPO_ROOT, run_on_ranks, tiny_config

TINY = [
    "--corpus", "synthetic", "--synthetic_documents", "80", "--hidden_size", "32", "--num_hidden_layers", "1",
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


def test_incomplete_checkpoints_are_never_resumed(tmp_path):
    (tmp_path / "checkpoint-2").mkdir()
    (tmp_path / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    (tmp_path / "checkpoint-6").mkdir()  # killed before the state was written
    assert latest_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


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


def complete_checkpoint(folder, step):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def overwrite(out, **run_args):
    check_output_dir(ScratchBertTrainingArguments(output_dir=str(out), report_to="none"),
                     RunArguments(overwrite_output_dir=True, **run_args))


def test_overwrite_names_the_newest_checkpoint_by_step_not_by_text(tmp_path, caplog):
    out = tmp_path / "out"
    for step in (500, 9000, 10000):  # as text, checkpoint-10000 sorts before checkpoint-9000
        complete_checkpoint(out / f"checkpoint-{step}", step)
    assert latest_complete_checkpoint(out) == str(out / "checkpoint-10000")
    with caplog.at_level(logging.WARNING, logger="scratchbert.runs"):
        overwrite(out)
    kept = next(out.glob("superseded-*"))
    assert f"--resume_from_checkpoint {kept / 'checkpoint-10000'}" in caplog.text
    assert latest_complete_checkpoint(kept) == str(kept / "checkpoint-10000")


def test_overwrite_keeps_the_earlier_runs_final_model_and_results(tmp_path, caplog):
    out = tmp_path / "out"
    complete_checkpoint(out / "checkpoint-2", 2)
    earlier = {"config.json": "{}", "model.safetensors": "weights", "results.json": '{"eval_f1": 0.8}', "README.md": "card"}
    for name, text in earlier.items():
        (out / name).write_text(text)
    (out / "1_Pooling").mkdir()
    (out / "run.log").write_text("this run's own log, already open\n")
    with caplog.at_level(logging.WARNING, logger="scratchbert.runs"):
        overwrite(out, log_file=str(out / "run.log"))
    kept = next(out.glob("superseded-*"))
    assert {name: (kept / name).read_text() for name in earlier} == earlier
    assert (kept / "1_Pooling").is_dir() and (kept / "checkpoint-2").is_dir()
    assert sorted(p.name for p in out.iterdir()) == sorted([kept.name, "run.log"])  # the new run starts clean
    assert "5 final file(s)" in caplog.text and "1 checkpoint(s)" in caplog.text

    # A second overwrite in the same second sets the second run aside beside the first, never over it.
    (out / "config.json").write_text('{"second": true}')
    overwrite(out)
    assert sorted(p.name for p in out.glob("superseded-*"))[-1] != kept.name
    assert (kept / "config.json").read_text() == "{}"
    assert {(p / "config.json").read_text() for p in out.glob("superseded-*")} == {"{}", '{"second": true}'}


def test_delete_old_checkpoints_deletes_checkpoints_and_leaves_final_files_to_be_replaced(tmp_path):
    out = tmp_path / "out"
    complete_checkpoint(out / "checkpoint-2", 2)
    (out / "config.json").write_text("{}")
    overwrite(out, delete_old_checkpoints=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]


def test_pin_memory_only_where_there_is_an_accelerator(tmp_path, monkeypatch):
    # transformers' default (true) makes torch warn on every CPU run: "no accelerator is found".
    monkeypatch.setattr(runs, "has_accelerator", lambda: False)
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path)).dataloader_pin_memory is False
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path), dataloader_pin_memory=True).dataloader_pin_memory is True
    (_, _, _, flags, _) = parse_config((ModelArguments, DataArguments, RunArguments, ScratchBertTrainingArguments),
                                       ["--output_dir", str(tmp_path), "--dataloader_pin_memory", "true"])
    assert flags.dataloader_pin_memory is True  # the user's choice stands
    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: {tmp_path}\n")
    (_, _, _, resolved, _) = parse_config((ModelArguments, DataArguments, RunArguments, ScratchBertTrainingArguments), [str(config)])
    assert resolved.dataloader_pin_memory is False
    monkeypatch.setattr(runs, "has_accelerator", lambda: True)
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path)).dataloader_pin_memory is True
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path), use_cpu=True).dataloader_pin_memory is False


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


# --------------------------------------------------------------------------------------------------------------
# Time budget: training ends at max_train_minutes, the schedule is laid over it, a resume keeps the clock
# --------------------------------------------------------------------------------------------------------------


class SlowSteps(TrainerCallback):
    """Each step takes at least `seconds`, so a budget of a few steps' time is reached whatever the machine."""

    def __init__(self, seconds):
        self.seconds = seconds

    def on_step_end(self, args, state, control, **kwargs):
        time.sleep(self.seconds)


def test_time_budget_ends_training_with_the_learning_rate_decayed(tmp_path):
    trainer = classification_trainer(tmp_path, max_train_minutes=4 / 60, max_steps=10_000, logging_steps=1,
                                     lr_scheduler_type="linear", warmup_steps=0)
    trainer.add_callback(SlowSteps(0.25))
    trainer.train()
    steps = trainer.state.global_step
    assert 3 <= steps < 10_000, "stopped by the budget, not by max_steps"
    assert trainer.time_budget.fraction() == 1.0
    rates = [entry["learning_rate"] for entry in trainer.state.log_history if "learning_rate" in entry]
    assert rates[0] > rates[-1] and rates[-1] < 0.35 * 0.01, "the linear decay ran over the budget, not 10,000 steps"


class FakeBudget:
    def __init__(self):
        self.share = 0.0

    def progress(self):  # the share the schedule follows (TimeBudget.progress)
        return self.share


@pytest.mark.parametrize(
    "kind, warmup, kwargs, expected",
    [
        # (share of the budget used, step) -> factor of the peak learning rate
        ("linear", 0.0, {}, {(0.0, 1): 1.0, (0.5, 9): 0.5, (1.0, 20): 0.0}),
        ("linear", 0.5, {}, {(0.25, 1): 0.5, (0.5, 9): 1.0, (0.75, 20): 0.5}),  # one-cycle
        ("linear", 10, {}, {(0.0, 5): 0.5, (0.5, 12): 0.5}),  # warmup in steps
        ("cosine", 0.0, {}, {(0.5, 9): 0.5, (1.0, 20): 0.0}),
        ("warmup_stable_decay", 0.0, {"decay_fraction": 0.25}, {(0.5, 9): 1.0, (0.875, 15): 0.5, (1.0, 20): 0.0}),
        ("constant_with_warmup", 0.1, {}, {(0.05, 1): 0.5, (0.9, 15): 1.0}),
    ],
)
def test_budget_schedules(kind, warmup, kwargs, expected):
    arguments = TrainingArguments(output_dir="unused", lr_scheduler_type=kind, warmup_steps=warmup,
                                  lr_scheduler_kwargs=kwargs, report_to="none")
    budget = FakeBudget()
    factor = budget_lr_lambda(budget, arguments, num_training_steps=1_000_000)
    for (share, step), value in expected.items():
        budget.share = share
        assert factor(step) == pytest.approx(value, abs=1e-4), (share, step)


def test_budget_schedule_ends_at_max_steps_when_steps_run_out_first():
    arguments = TrainingArguments(output_dir="unused", lr_scheduler_type="linear", warmup_steps=0, report_to="none")
    factor = budget_lr_lambda(FakeBudget(), arguments, num_training_steps=100)
    assert factor(50) == pytest.approx(0.5) and factor(100) == 0.0


def test_budget_refuses_schedules_it_cannot_lay_over_time(tmp_path):
    with pytest.raises(ConfigError, match="lr_scheduler_type=polynomial cannot be laid over a time budget"):
        classification_trainer(tmp_path, max_train_minutes=1, lr_scheduler_type="polynomial")
    with pytest.raises(ValueError, match="max_train_minutes must be a positive number"):
        RunArguments(max_train_minutes=0)


def test_resumed_run_spends_only_what_is_left_of_the_budget(tmp_path):
    trainer = classification_trainer(tmp_path, max_train_minutes=10, max_steps=4, save_strategy="steps", save_steps=2)
    trainer.add_callback(SlowSteps(0.05))
    trainer.train()
    state = json.loads((tmp_path / "out" / "checkpoint-2" / "trainer_state.json").read_text())
    saved = state["stateful_callbacks"]["TimeBudget"]["attributes"]["elapsed_seconds"]
    assert saved >= 0.1
    resumed = classification_trainer(tmp_path, max_train_minutes=10, max_steps=4, save_strategy="steps", save_steps=2)
    resumed.train(resume_from_checkpoint=str(tmp_path / "out" / "checkpoint-2"))
    assert resumed.time_budget.elapsed_seconds == pytest.approx(saved)
    assert resumed.time_budget.elapsed() > saved


# --------------------------------------------------------------------------------------------------------------
# Several processes: one tokenizer, one skip decision, one final save (each rank a spawned process over gloo)
# --------------------------------------------------------------------------------------------------------------


def tokenizer_ranks(rank, world_size, out):
    import torch.distributed as dist

    from scratchbert import train_wordpiece_tokenizer

    dist.init_process_group("gloo")
    # Each rank would train a different vocabulary: the run must use rank 0's everywhere.
    texts = [f"rank{rank} words appear here often {rank}" * 3] * 20
    tokenizer = tokenizer_for_run(lambda: train_wordpiece_tokenizer(texts, vocab_size=60))
    try:
        tokenizer_for_run(lambda: (_ for _ in ()).throw(ConfigError("no tokenizer at /nowhere")))
        error = None
    except ConfigError as raised:
        error = str(raised)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"vocab": tokenizer.get_vocab(), "error": error}))
    dist.destroy_process_group()


def test_every_rank_uses_rank_zeros_tokenizer(tmp_path):
    run_on_ranks(tokenizer_ranks, str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert "rank0" in ranks[0]["vocab"] and ranks[1]["vocab"] == ranks[0]["vocab"]
    # Rank 0's failure reaches every rank as its own error, instead of leaving them waiting.
    assert ranks[0]["error"] == ranks[1]["error"] == "no tokenizer at /nowhere"


def ddp_script_ranks(rank, world_size, out):
    import torch.distributed as dist

    def run(argv):  # a script's run(): a DDP model whose last collective is an all_gather of Python tensors
        dist.init_process_group("gloo")
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
        model(torch.ones(1, 2)).sum().backward()
        gathered = [torch.zeros(1) for _ in range(world_size)]
        dist.all_gather(gathered, torch.ones(1) * rank)

    code = script_main(run, [], ())
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"code": code, "initialized": dist.is_initialized()}))


def test_a_script_ends_its_process_group_before_the_interpreter_exits(tmp_path):
    # Left to interpreter exit, a gloo worker can abort the rank (-6) after everything was saved: seen in CI.
    run_on_ranks(ddp_script_ranks, str(tmp_path))
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {"code": 0, "initialized": False}


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


def budget_ranks(rank, world_size, out):
    from safetensors.torch import save_file

    class StartLate(TrainerCallback):  # rank 0's training clock runs a second ahead of rank 1's
        def on_train_begin(self, args, state, control, **kwargs):
            if rank == 0:
                time.sleep(1.0)

    torch.manual_seed(0)
    model = ScratchBertForSequenceClassification(tiny_config())
    g = torch.Generator().manual_seed(rank)
    rows = [{"input_ids": torch.randint(5, 99, (8,), generator=g).tolist(), "attention_mask": [1] * 8, "labels": i % 2} for i in range(40)]
    arguments = TrainingArguments(output_dir=str(Path(out) / "run"), per_device_train_batch_size=4, max_steps=100_000,
                                  save_strategy="no", report_to="none", use_cpu=True, learning_rate=0.01, ddp_backend="gloo")
    trainer = GuardedTrainer(model=model, args=arguments, train_dataset=Dataset.from_list(rows),
                             data_collator=default_data_collator, max_train_minutes=0.05)
    trainer.add_callback(StartLate())
    trainer.train()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(Path(out) / f"rank{rank}.safetensors"))
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"steps": trainer.state.global_step}))


def test_ranks_share_one_training_clock(tmp_path):
    # Each rank's own clock would stop rank 0 steps before rank 1, which then waits for it forever, and the
    # learning rates would differ; the ranks agree on the budget used every step.
    run_on_ranks(budget_ranks, str(tmp_path), timeout=120)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] > 1
    weights = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


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


def test_bf16_without_a_gpu_trains_on_the_cpu(tmp_path):
    # transformers alone refuses bf16 here; several processes without a GPU are covered by the two-node test.
    with pytest.raises(ValueError, match="use_cpu"):
        TrainingArguments(output_dir=str(tmp_path), bf16=True)
    arguments = ScratchBertTrainingArguments(output_dir=str(tmp_path), bf16=True)
    assert arguments.use_cpu and arguments.bf16
    assert not ScratchBertTrainingArguments(output_dir=str(tmp_path)).use_cpu


@pytest.mark.slow
@pytest.mark.parametrize("schedule", [[], ["--mlm_probability_start", "0.3"]], ids=["constant-rate", "falling-rate"])
def test_resumed_run_masks_as_the_uninterrupted_one_with_workers_and_dupe_factor(tmp_path, schedule):
    # Masking randomness is the collator's own (seed, epoch, batch): neither the first batch after a resume nor
    # the first batch of a DataLoader worker may draw from anything else (transformers 5.24 reseeded both). A
    # falling masking rate is applied in the main process at the step a batch feeds, so it resumes exactly too.
    args = [*TINY, "--max_steps", "8", "--save_steps", "4", "--dupe_factor", "2", "--dataloader_num_workers", "1",
            "--eval_strategy", "no", *schedule]
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


def test_time_budgeted_progress_counts_minutes_of_the_budget_not_steps(tmp_path):
    from scratchbert.runs import BudgetProgressCallback
    from transformers.trainer_callback import ProgressCallback

    trainer = classification_trainer(tmp_path, max_train_minutes=10, max_steps=4, logging_steps=1)
    bars = [c for c in trainer.callback_handler.callbacks if isinstance(c, ProgressCallback)]
    assert len(bars) == 1 and isinstance(bars[0], BudgetProgressCallback)  # not the step bar towards max_steps
    seen = []

    class Watch(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append((bars[0].training_bar.total, bars[0].training_bar.n))

    trainer.add_callback(Watch())
    trainer.train()
    assert seen and all(total == 10 for total, _ in seen) and all(0 < n < 10 for _, n in seen)
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert logged and all(0 < e["budget_minutes_used"] < 10 and e["budget_minutes_left"] > 9 for e in logged)
    # Without a budget, transformers' step bar stays.
    assert any(type(c) is ProgressCallback for c in classification_trainer(tmp_path, max_steps=2).callback_handler.callbacks)
