"""The guarded Trainer (a NaN or inf loss stops or skips its step; a time budget), layer-wise learning rates, and
the final save and training that turn failed writes into a TrainingFailure saying what survives."""

import logging
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import SequentialSampler
from transformers import Trainer
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import has_length

from ..blockwise_cross_entropy import use_blockwise_cross_entropy
from ..cli import ConfigError
from ..sentence_embeddings import write_sentence_transformers_files
from .checkpoints import latest_complete_checkpoint
from .distributed import is_distributed
from .options import LAYERWISE_UNDER_DEEPSPEED_OPTIMIZER, SKIP_UNDER_DEEPSPEED
from .time_budget import BudgetProgressCallback, TimeBudget, budget_lr_lambda, budget_schedule

logger = logging.getLogger(__name__)


class TrainingFailure(RuntimeError):
    """Training stopped for a reason the user can act on; the message says what and where to resume from."""



class GuardedTrainer(Trainer):
    """transformers' Trainer that notices a NaN or infinite loss at the step it happens, and keeps a time budget.

    on_nonfinite_loss="stop" raises TrainingFailure naming the step (checkpoints already written stay good);
    "skip" drops that optimizer step (gradients zeroed, weights untouched) and goes on.
    max_train_minutes ends training at that much training time, with the learning rate scheduled over it
    (as academic-budget-bert and Cramming do), rather than over a guessed number of steps.
    """

    def __init__(self, *args, on_nonfinite_loss: str = "stop", max_train_minutes: float | None = None,
                 lr_scales: dict[str, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        use_blockwise_cross_entropy(self.model)  # the heads' cross-entropy, faster for bf16 logits on CPU
        self.lr_scales = lr_scales  # parameter name -> factor on the learning rate (layer-wise decay); None: all 1
        if on_nonfinite_loss == "skip" and self.is_deepspeed_enabled:
            raise ConfigError(SKIP_UNDER_DEEPSPEED)
        self.on_nonfinite_loss = on_nonfinite_loss
        self.skipped_steps: list[int] = []
        self._skip_this_step = False
        self.time_budget = TimeBudget(max_train_minutes) if max_train_minutes else None
        if self.time_budget is not None:
            budget_schedule(self.args)  # an unsupported schedule fails now, before any work
            self.add_callback(self.time_budget)
            if any(isinstance(c, ProgressCallback) for c in self.callback_handler.callbacks):  # unless disable_tqdm
                self.remove_callback(ProgressCallback)
                self.add_callback(BudgetProgressCallback(self.time_budget))

    def _save(self, output_dir: str | None = None, state_dict=None):
        """Every folder the Trainer saves (checkpoints and final models alike) loads in sentence-transformers with
        mean pooling, as the model code wrote it before those files moved out of it (sentence_embeddings.py)."""
        super()._save(output_dir, state_dict)
        folder = Path(output_dir or self.args.output_dir)
        # The Trainer calls _save on every rank: only the writers hold a config.json (a PEFT adapter folder has none).
        if self.args.should_save and (folder / "config.json").is_file():
            write_sentence_transformers_files(folder)

    def _get_eval_sampler(self, eval_dataset):
        """Evaluation and prediction read the rows in the dataset's order, always.

        transformers 5 also groups evaluation batches by length when `train_sampling_strategy` is group_by_length
        (as the shipped fine-tuning configs set): predictions then come back in another order than the rows, and
        anything that pairs them with the rows (a prediction file's index, the words of a token-classification
        window) pairs them wrongly. Several processes: accelerate's sharding and gathering keep the order.
        """
        if eval_dataset is None or not has_length(eval_dataset) or self.args.world_size > 1:
            return None
        return SequentialSampler(eval_dataset)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.time_budget is None or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        self.lr_scheduler = LambdaLR(
            optimizer or self.optimizer, budget_lr_lambda(self.time_budget, self.args, num_training_steps)
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def log(self, logs: dict, *args, **kwargs):
        if self.time_budget is not None and "loss" in logs:  # training logs say where the budget stands
            used = self.time_budget.elapsed() / 60
            logs = {**logs, "budget_minutes_used": used, "budget_minutes_left": max(self.time_budget.minutes - used, 0.0)}
        return super().log(logs, *args, **kwargs)

    def evaluate(self, *args, **kwargs):
        if self.time_budget is None:
            return super().evaluate(*args, **kwargs)
        with self.time_budget.paused():  # evaluation does not spend the training budget
            return super().evaluate(*args, **kwargs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        nonfinite = here = not torch.isfinite(loss).all()
        if is_distributed():
            # The gradient all-reduce has already spread one rank's NaN to every rank: all ranks must agree to
            # skip (or stop), or the others would step on NaN gradients.
            flag = torch.tensor(float(nonfinite), device=loss.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            nonfinite = bool(flag.item())
        if nonfinite:
            step = self.state.global_step + 1
            where = "" if here else " on another rank"
            if self.on_nonfinite_loss == "stop":
                last = latest_complete_checkpoint(self.args.output_dir) if Path(self.args.output_dir).is_dir() else None
                raise TrainingFailure(
                    f"the loss became {loss.item() if not where else 'non-finite'}{where} at step {step}; "
                    "stopped instead of training on it. "
                    f"Newest complete checkpoint: {last or 'none'} (lower the learning rate, or set "
                    "on_nonfinite_loss: skip)"
                )
            logger.warning("Loss is %s%s at step %d: skipping this optimizer step",
                           loss.item() if here else "non-finite", where, step)
            self._skip_this_step = True
            self.skipped_steps.append(step)
            return torch.zeros_like(loss)
        return loss

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        if not hasattr(optimizer, "step"):
            # accelerate's DummyOptim: a DeepSpeed config with its own "optimizer" section, which DeepSpeed builds and
            # steps inside its engine (skip is refused under DeepSpeed, so there is no step to guard).
            if self.lr_scales is not None:  # the scripts refuse this before any work; here for other callers
                raise ConfigError(LAYERWISE_UNDER_DEEPSPEED_OPTIMIZER)
            return optimizer
        if getattr(optimizer, "_guarded_step", False):  # the Trainer asks again after deepspeed_init made it
            return optimizer
        if self.lr_scales is not None and not getattr(optimizer, "_lr_scaled", False):
            optimizer = self.optimizer = scaled_param_groups(optimizer, self.model, self.lr_scales)
        step = optimizer.step

        def step_unless_skipped(*args, **kwargs):
            if self._skip_this_step:  # a micro-batch of this step had a non-finite loss: drop the whole step
                self._skip_this_step = False
                optimizer.zero_grad(set_to_none=True)
                return None
            return step(*args, **kwargs)

        optimizer.step = step_unless_skipped
        optimizer._guarded_step = True
        return optimizer


def scaled_param_groups(optimizer: torch.optim.Optimizer, model: torch.nn.Module, lr_scales: dict[str, float]):
    """The Trainer's optimizer with its groups (weight decay or not) each split by learning-rate factor: a group
    per (Trainer group, factor), its lr the group's times the factor. The schedule then scales every group
    alike, so the factors hold throughout. Regrouped in place, before any step (no state yet)."""
    scale_of = {id(p): lr_scales.get(name, 1.0) for name, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        settings = {k: v for k, v in group.items() if k != "params"}
        by_scale: dict[float, list] = {}
        for parameter in group["params"]:
            by_scale.setdefault(scale_of.get(id(parameter), 1.0), []).append(parameter)
        for scale, parameters in sorted(by_scale.items(), reverse=True):
            groups.append({**settings, "params": parameters, "lr": settings["lr"] * scale})
    optimizer.param_groups.clear()
    for group in groups:
        optimizer.add_param_group(group)
    optimizer._lr_scaled = True
    return optimizer


def save_final_model(trainer: Trainer, output_dir: Path):
    """Save model + tokenizer (+ remote code) into output_dir without ever leaving a half-written model there.

    Files are written to a staging folder first and moved in with config.json last, so a folder that has a
    config.json has all of the model. A failed write raises TrainingFailure and leaves the checkpoints as they were.

    Every rank calls this (FSDP and DeepSpeed gather the full weights collectively). Only the writers (global
    rank 0; each node's first process with save_on_each_node) touch the staging folder, and every rank passes
    the same three barriers, failure or not: nobody writes before the old staging folder is gone, nobody moves
    before everything is written, nobody returns (to read output_dir, or exit) before the model is in place.
    """
    staging = output_dir / ".final-partial"
    writer = trainer.args.should_save
    failure = None
    if writer:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    try:
        trainer.save_model(str(staging))
    except OSError as error:
        failure = error
    trainer.accelerator.wait_for_everyone()
    if writer:
        try:
            if failure is None:
                names = sorted(p.name for p in staging.iterdir())
                for name in sorted(names, key=lambda n: n == "config.json"):  # config.json last
                    if (staging / name).is_dir() and (output_dir / name).is_dir():
                        shutil.rmtree(output_dir / name)  # a sub-folder (1_Pooling/) replaces its older copy whole
                    os.replace(staging / name, output_dir / name)
        except OSError as error:
            failure = error
        shutil.rmtree(staging, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    if failure is not None:
        raise TrainingFailure(
            f"saving the final model to {output_dir} failed: {failure.strerror or failure}. "
            f"Newest complete checkpoint: {latest_complete_checkpoint(output_dir) or 'none'}"
        )


def train_and_report_io_errors(trainer: Trainer, checkpoint: str | None):
    """trainer.train(), turning a failed write (disk full, folder gone) into a TrainingFailure that says what survives."""
    try:
        return trainer.train(resume_from_checkpoint=checkpoint)
    except OSError as error:
        last = latest_complete_checkpoint(trainer.args.output_dir) if Path(trainer.args.output_dir).is_dir() else None
        raise TrainingFailure(
            f"writing to {trainer.args.output_dir} failed: {error.strerror or error} ({getattr(error, 'filename', None) or ''}). "
            f"Newest complete checkpoint: {last or 'none'}; free space and resume with --resume_from_checkpoint latest"
        ) from None
