"""runs.time_budget: training ends at max_train_minutes, the schedule is laid over it, a resume keeps the clock,
ranks share one clock, the bar counts minutes."""

import json
import time
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainingArguments, default_data_collator

from scratchbert import ScratchBertForSequenceClassification
from scratchbert.cli import ConfigError
from scratchbert.runs.options import RunArguments
from scratchbert.runs.time_budget import budget_lr_lambda
from scratchbert.runs.trainer import GuardedTrainer
from conftest import run_on_ranks, tiny_config
from test_runs_trainer import classification_trainer


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


def test_time_budgeted_progress_counts_minutes_of_the_budget_not_steps(tmp_path):
    from scratchbert.runs.time_budget import BudgetProgressCallback
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
