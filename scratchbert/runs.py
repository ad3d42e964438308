"""What both training scripts share: run options, output-folder checks, logging, checkpoints, the Hub."""

import gc
import json
import logging
import logging.handlers
import math
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
import torch.distributed as dist
import transformers
from huggingface_hub import HfApi
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import SequentialSampler
from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments
from tqdm.auto import tqdm
from transformers.trainer_callback import ExportableState, ProgressCallback
from transformers.trainer_utils import has_length

from .cli import ConfigError

logger = logging.getLogger(__name__)


@dataclass
class RunArguments:
    output: str | None = field(default=None, metadata={"help": "Write final train/eval figures to this JSON file"})
    log_file: str | None = field(default=None, metadata={"help": "Also log to this file (rotating, 10 MB x 3)"})
    wandb_project: str | None = field(default=None, metadata={"help": "W&B project when report_to includes wandb"})
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start a new run in an output_dir that holds one: the earlier run (final model, results, "
                          "checkpoints) is kept, moved into superseded-<time>/ so no resume picks it up"},
    )
    delete_old_checkpoints: bool = field(
        default=False,
        metadata={"help": "With overwrite_output_dir: delete the earlier run's checkpoints instead of keeping them "
                          "(its final files are then not kept either: the new run's replace them)"},
    )
    on_nonfinite_loss: str = field(
        default="stop",
        metadata={"help": "When the loss is NaN or inf: stop (naming the step) or skip (drop that optimizer step)",
                  "choices": ["stop", "skip"]},
    )
    max_train_minutes: float | None = field(
        default=None,
        metadata={"help": "End training after this many minutes of training (evaluation not counted), with the "
                          "learning-rate schedule laid over the budget; max_steps / epochs still cap the run"},
    )

    def __post_init__(self):
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError(f"max_train_minutes must be a positive number of minutes, got {self.max_train_minutes}")


def has_accelerator() -> bool:
    """A GPU (or other torch accelerator) is present: cuda, mps, xpu, ..."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    return torch.cuda.is_available() or torch.backends.mps.is_available()


@dataclass
class ScratchBertTrainingArguments(TrainingArguments):
    """transformers' TrainingArguments, with use_cpu set for the user where a machine has no GPU and needs it.

    - `bf16: true`: transformers refuses bf16 without a GPU unless use_cpu is set ("Your setup doesn't support
      bf16/gpu"). Setting it lets one config use a GPU where there is one, and CPU bf16 autocast (which pays on
      AVX-512 BF16 / AMX CPUs) elsewhere.
    - several processes (torchrun, accelerate launch): without use_cpu, accelerate starts each process on a
      machine with no GPU as a run of its own, world size 1, each training alone and writing the same folder.
      With it they form one gloo process group.
    - `dataloader_pin_memory`: unset, it is true only where there is a GPU (or other accelerator) to copy batches
      to; transformers' default (always true) makes torch warn on every CPU run that no accelerator is found.
    """

    dataloader_pin_memory: bool | None = field(
        default=None,
        metadata={"help": "Pin the data loader's memory (faster copies to a GPU); unset: true where there is an "
                          "accelerator, false on the CPU"},
    )

    def __post_init__(self):
        several_processes = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if not self.use_cpu and not has_accelerator() and (self.bf16 or self.bf16_full_eval or several_processes):
            why = "bf16 autocast on the CPU" if not several_processes else "the processes form one group over gloo"
            logger.warning("No GPU: use_cpu set (%s)", why)
            self.use_cpu = True
        if self.use_cpu and several_processes and os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
            logger.warning("accelerate runs FSDP on GPUs only: on the CPU these processes train as plain DDP")
        if self.dataloader_pin_memory is None:  # not set by the user: pinned memory only speeds copies to a GPU
            self.dataloader_pin_memory = has_accelerator() and not self.use_cpu
        super().__post_init__()


class TrainingFailure(RuntimeError):
    """Training stopped for a reason the user can act on; the message says what and where to resume from."""


def check_output_dir(training_args: TrainingArguments, run_args: RunArguments):
    output_dir = Path(training_args.output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write-test-{os.getpid()}"  # per process: ranks check at the same time
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"output_dir {output_dir} cannot be written: {error.strerror or error}") from None
    resuming = training_args.resume_from_checkpoint not in (None, "", "false", "False")
    has_run = (output_dir / "config.json").exists() or any(output_dir.glob("checkpoint-*"))
    if has_run and not resuming:
        if not run_args.overwrite_output_dir:
            raise ConfigError(
                f"output_dir {output_dir} already holds a run; pass --resume_from_checkpoint latest to continue it, "
                "--overwrite_output_dir to replace it, or choose another output_dir"
            )
        log_file = Path(run_args.log_file).resolve() if run_args.log_file else None
        set_aside_earlier_run(output_dir, delete_checkpoints=run_args.delete_old_checkpoints, in_use=log_file)
    if run_args.output:
        parent = Path(run_args.output).resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"--output {run_args.output}: folder {parent} cannot be created or written")


def set_aside_earlier_run(output_dir: Path, delete_checkpoints: bool = False, in_use: Path | None = None):
    """A new run starts in `output_dir`: the earlier run leaves the folder, so that neither
    `--resume_from_checkpoint latest` nor the new run's own checkpoints and final files mix with it.

    Its checkpoints and its final files (model, tokenizer, results.json, model card, curves, ...) are moved into
    `superseded-<UTC time>/`: nothing a user saved is lost, and the log names the newest complete checkpoint to
    resume from there. With `delete_checkpoints` (the user asked for exactly that) the checkpoints are deleted
    instead and the final files stay, for the new run's to replace. Hidden entries, earlier `superseded-*`
    folders and `in_use` (the run's own log file, already open) stay. Only the main process of a node acts; the
    others wait for it.
    """
    output_dir = Path(output_dir)
    numbered = checkpoints_by_step(output_dir)
    checkpoints = [p for p in sorted(output_dir.glob("checkpoint-*")) if p.is_dir() and p not in numbered] + numbered
    final_files = [] if delete_checkpoints else sorted(
        p for p in output_dir.iterdir()
        if not p.name.startswith((".", "checkpoint-", "superseded-")) and p.resolve() != in_use
    )
    if (checkpoints or final_files) and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        if delete_checkpoints:
            for folder in checkpoints:
                shutil.rmtree(folder)
            logger.warning("delete_old_checkpoints: deleted %d checkpoint(s) of the earlier run in %s",
                           len(checkpoints), output_dir)
        else:
            newest = latest_complete_checkpoint(output_dir)
            keep = superseded_folder(output_dir)
            for entry in checkpoints + final_files:
                os.replace(entry, keep / entry.name)
            what = " and ".join(part for part in (
                f"{len(final_files)} final file(s) ({', '.join(p.name for p in final_files[:4])}"
                f"{', ...' if len(final_files) > 4 else ''})" if final_files else "",
                f"{len(checkpoints)} checkpoint(s)" if checkpoints else "",
            ) if part)
            resume = (f" (to continue that run instead, stop and pass --resume_from_checkpoint {keep / Path(newest).name})"
                      if newest else "")
            logger.warning("overwrite_output_dir: the earlier run's %s are kept in %s%s", what, keep, resume)
    if is_distributed():
        dist.barrier()


def superseded_folder(output_dir: Path) -> Path:
    """A new, empty `superseded-<UTC time>/` in `output_dir`: where an earlier run's files are kept when a new run
    takes the folder."""
    return unused_folder(output_dir / time.strftime("superseded-%Y%m%d-%H%M%S", time.gmtime()))


def unused_folder(folder: Path) -> Path:
    """`folder`, created; `folder-2`, `-3`, ... if it already exists (two runs set aside in the same second)."""
    candidate, n = folder, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = folder.with_name(f"{folder.name}-{n}")


def check_sequence_length(max_seq_length: int, max_position_embeddings: int):
    """The one place that checks max_seq_length against the model's positions (both scripts, fresh or loaded)."""
    if max_seq_length > max_position_embeddings:
        raise ConfigError(f"max_seq_length={max_seq_length} exceeds max_position_embeddings={max_position_embeddings}")


def is_complete_checkpoint(folder: str | Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint is complete once that file parses.

    A run killed while saving leaves a folder without it (or with half of it), never taken for a checkpoint.
    """
    try:
        return "global_step" in json.loads((Path(folder) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False


def checkpoints_by_step(output_dir: str | Path) -> list[Path]:
    """The `checkpoint-<step>` folders of output_dir, oldest first: the one order of checkpoints everywhere.

    By step number, not by name: as text, checkpoint-10000 sorts before checkpoint-9000.
    """
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(folders, key=lambda p: int(p.name.split("-")[1]))


def latest_complete_checkpoint(output_dir: str | Path) -> str | None:
    for folder in reversed(checkpoints_by_step(output_dir)):
        if is_complete_checkpoint(folder):
            return str(folder)
        logger.warning("Skipping %s: it was not completely written (the run stopped while saving it)", folder)
    return None


def resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    """--resume_from_checkpoint latest|true -> the newest complete checkpoint in output_dir; a path -> itself."""
    value = training_args.resume_from_checkpoint
    if value in (None, "", "false", "False"):
        return None
    if value in ("latest", "true", "True"):
        last = latest_complete_checkpoint(training_args.output_dir)
        if last is None:
            raise ConfigError(f"--resume_from_checkpoint {value}: no complete checkpoint in {training_args.output_dir}")
        return last
    if not Path(value).is_dir():
        raise ConfigError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    if not is_complete_checkpoint(value):
        raise ConfigError(f"--resume_from_checkpoint {value}: the checkpoint is incomplete (no valid trainer_state.json)")
    return value


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def tokenizer_for_run(load_or_train):
    """One tokenizer for every process of a run, on every node: global rank 0 loads or trains it.

    `main_process_first` is per node, and WordPiece training is not deterministic (two trainings on one corpus
    give some tokens other ids), so no other rank may train its own. Rank 0's saved files travel to every rank
    through torch.distributed (no shared disk needed) and every rank, rank 0 included, loads those same files.
    If rank 0 fails (a tokenizer that does not load), every rank raises its error instead of waiting forever.
    """
    if not is_distributed():
        return load_or_train()
    payload = [None]
    if dist.get_rank() == 0:
        try:
            with tempfile.TemporaryDirectory() as folder:
                load_or_train().save_pretrained(folder)
                payload[0] = {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}
        except Exception as error:
            try:
                pickle.dumps(error)
                payload[0] = error
            except Exception:  # an error that cannot travel: its message does
                payload[0] = RuntimeError(f"{type(error).__name__}: {error}")
    dist.broadcast_object_list(payload, src=0)
    if isinstance(payload[0], Exception):
        raise payload[0]
    with tempfile.TemporaryDirectory() as folder:
        for name, data in payload[0].items():
            (Path(folder) / name).write_bytes(data)
        return AutoTokenizer.from_pretrained(folder)


class TimeBudget(TrainerCallback, ExportableState):
    """A training clock: stops training once `minutes` of it have passed, and tells the schedule how far it is.

    Evaluation is not counted (`paused`). The time already used is saved in every checkpoint's
    trainer_state.json (as a stateful callback), so a resumed run spends only what is left of the budget.
    """

    def __init__(self, minutes: float):
        self.minutes = minutes
        self.elapsed_seconds = 0.0  # training time used before this session's clock started (earlier sessions)
        self._started: float | None = None
        self._paused_seconds = 0.0
        self._agreed: float | None = None  # the share agreed across ranks (several processes only)

    def elapsed(self) -> float:
        if self._started is None:
            return self.elapsed_seconds
        return self.elapsed_seconds + time.monotonic() - self._started - self._paused_seconds

    def fraction(self) -> float:
        """Share of the budget used, in [0, 1]."""
        return min(self.elapsed() / (60 * self.minutes), 1.0)

    @contextmanager
    def paused(self):
        start = time.monotonic()
        try:
            yield
        finally:
            self._paused_seconds += time.monotonic() - start

    def on_train_begin(self, args, state, control, **kwargs):
        saved = state.stateful_callbacks.get(type(self).__name__)  # a resumed run's checkpoint holds the clock
        if isinstance(saved, dict):
            self.elapsed_seconds = float(saved.get("attributes", {}).get("elapsed_seconds", 0.0))
        self._started, self._paused_seconds = time.monotonic(), 0.0
        if is_distributed():  # until the first agreement: the share restored from the checkpoint, equal on all ranks
            self._agreed = min(self.elapsed_seconds / (60 * self.minutes), 1.0)

    def progress(self) -> float:
        """The share of the budget the schedule follows: every rank's own clock differs a little, so several
        processes use the largest share any of them measured at the last step's end (one value for all)."""
        return self.fraction() if self._agreed is None else self._agreed

    def on_step_end(self, args, state, control, **kwargs):
        fraction = self.fraction()
        if is_distributed():  # ranks must stop at the same step and step with the same learning rate
            shared = torch.tensor(fraction, dtype=torch.float64, device=args.device)
            dist.all_reduce(shared, op=dist.ReduceOp.MAX)
            fraction = self._agreed = float(shared.item())
        if fraction >= 1.0:
            control.should_training_stop = True
            logger.info("Time budget of %g minutes reached at step %d", self.minutes, state.global_step)

    def state(self) -> dict:
        return {"args": {"minutes": self.minutes}, "attributes": {"elapsed_seconds": self.elapsed()}}


class BudgetProgressCallback(ProgressCallback):
    """The training bar of a time-budgeted run counts minutes of the budget, not steps.

    With `max_train_minutes`, `max_steps` is only a cap (the shipped configs set 1,000,000), so transformers'
    bar would count steps towards it and predict a finish days away. This bar shows minutes of training spent
    of the budget (evaluation not counted), the time left at the current pace, and the step reached.
    """

    def __init__(self, budget: TimeBudget):
        super().__init__()
        self.budget = budget

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.training_bar = tqdm(
                total=self.budget.minutes, initial=min(self.budget.elapsed_seconds / 60, self.budget.minutes),
                dynamic_ncols=True, bar_format="{l_bar}{bar}| {n:.1f}/{total:g} min of training [{elapsed}<{remaining}{postfix}]",
            )
        self.current_step = state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None:
            self.training_bar.n = min(self.budget.elapsed() / 60, self.budget.minutes)
            self.training_bar.set_postfix_str(f"step {state.global_step}", refresh=False)
            self.training_bar.refresh()
            self.current_step = state.global_step


BUDGET_SCHEDULES = ("linear", "cosine", "constant", "constant_with_warmup", "warmup_stable_decay")


def budget_schedule(args: TrainingArguments) -> str:
    """`lr_scheduler_type` if it can be laid over a time budget; a ConfigError naming the choices otherwise."""
    kind = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    if kind not in BUDGET_SCHEDULES:
        raise ConfigError(
            f"lr_scheduler_type={kind} cannot be laid over a time budget; use one of {', '.join(BUDGET_SCHEDULES)}"
        )
    return kind


def training_progress(budget: "TimeBudget | None", step: int, num_training_steps: int) -> float:
    """The share of training done: of the steps, or of the time budget if that is further along."""
    steps_share = step / max(num_training_steps, 1)
    return steps_share if budget is None else max(budget.progress(), steps_share)


def budget_lr_lambda(budget: TimeBudget, args: TrainingArguments, num_training_steps: int):
    """The learning-rate factor of a time-budgeted run, laid over the budget instead of a step count.

    Progress p is the share of the budget used (or of the steps, if max_steps / epochs end the run first).
    Warmup: `warmup_steps` >= 1 counts optimizer steps; below 1 it is a share of the budget, so
    `linear` with warmup_steps 0.5 is a one-cycle (triangular) schedule. After warmup: `linear` decays to 0
    at p = 1, `cosine` along a half cosine, `warmup_stable_decay` holds the peak and decays linearly over the
    last `decay_fraction` of the budget (lr_scheduler_kwargs, default 0.2), `constant*` holds it.
    """
    kind = budget_schedule(args)
    kwargs = args.lr_scheduler_kwargs if isinstance(args.lr_scheduler_kwargs, dict) else {}
    decay_fraction = float(kwargs.get("decay_fraction", 0.2))
    warmup_share = args.warmup_steps if 0 < args.warmup_steps < 1 else 0.0
    warmup_steps = int(args.warmup_steps) if args.warmup_steps >= 1 else 0

    def lr_factor(step: int) -> float:
        p = training_progress(budget, step, num_training_steps)
        warm = 1.0
        if warmup_steps:
            warm = min(1.0, step / warmup_steps)
        elif warmup_share:
            warm = min(1.0, p / warmup_share)
        after = min(max((p - warmup_share) / (1 - warmup_share), 0.0), 1.0)  # progress after warmup, in [0, 1]
        if kind == "linear":
            decay = 1.0 - after
        elif kind == "cosine":
            decay = 0.5 * (1.0 + math.cos(math.pi * after))
        elif kind == "warmup_stable_decay":
            decay = min(1.0, (1.0 - p) / decay_fraction) if decay_fraction > 0 else 1.0
        else:
            decay = 1.0
        return max(0.0, min(warm, decay))

    return lr_factor


SKIP_UNDER_DEEPSPEED = (
    "on_nonfinite_loss: skip cannot work under DeepSpeed: its engine applies the optimizer step inside backward, "
    "before the loss can be checked, so the bad update would be applied (and the next good one dropped); "
    "use on_nonfinite_loss: stop and resume from the newest checkpoint"
)


def uses_deepspeed(training_args: TrainingArguments) -> bool:
    """DeepSpeed is asked for: a `deepspeed` config in the arguments, or `accelerate launch` with a DeepSpeed config."""
    return bool(training_args.deepspeed) or os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


LAYERWISE_UNDER_DEEPSPEED_OPTIMIZER = (
    "layer-wise learning rates regroup the Trainer's optimizer: remove the \"optimizer\" section of the DeepSpeed "
    "config to use them (DeepSpeed then wraps the Trainer's optimizer)"
)


def deepspeed_config_has_optimizer(training_args: TrainingArguments) -> bool:
    """The `deepspeed` argument (a JSON file or a dict) names its own optimizer, which DeepSpeed builds itself."""
    config = training_args.deepspeed
    if isinstance(config, str) and os.path.isfile(config):
        with open(config) as file:
            config = json.load(file)
    return isinstance(config, dict) and "optimizer" in config


def check_run_options(training_args: TrainingArguments, run_args: RunArguments, layerwise_lr_decay: float = 1.0):
    """Option combinations refused before any data work (both scripts; fine-tuning passes its layer-wise decay)."""
    if run_args.on_nonfinite_loss == "skip" and uses_deepspeed(training_args):
        raise ConfigError(SKIP_UNDER_DEEPSPEED)
    if layerwise_lr_decay != 1 and deepspeed_config_has_optimizer(training_args):
        raise ConfigError(LAYERWISE_UNDER_DEEPSPEED_OPTIMIZER)
    if run_args.max_train_minutes is not None:
        budget_schedule(training_args)  # an unsupported schedule fails now, before data and model are built


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


class CurrentStdoutHandler(logging.StreamHandler):
    """Logs to whatever sys.stdout is when a record is written (test runners and notebooks swap it)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler assigns it; the current sys.stdout always wins
        pass


_run_handlers: list[logging.Handler] = []  # installed by the last setup_logging, replaced by the next


def setup_logging(training_args: TrainingArguments, run_args: RunArguments):
    """Log to stdout (and a rotating file), replacing only the handlers an earlier run installed."""
    root = logging.getLogger()
    for handler in _run_handlers:
        root.removeHandler(handler)
        logging.getLogger("transformers").removeHandler(handler)
        handler.close()
    _run_handlers[:] = [CurrentStdoutHandler()]
    if run_args.log_file:
        Path(run_args.log_file).parent.mkdir(parents=True, exist_ok=True)
        _run_handlers.append(logging.handlers.RotatingFileHandler(run_args.log_file, maxBytes=10_000_000, backupCount=3))
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in _run_handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("scratchbert").setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(max(level, logging.WARNING))
    transformers.utils.logging.set_verbosity(level)
    for handler in _run_handlers[1:]:  # transformers' own log lines (Trainer progress) go to the file too
        transformers.utils.logging.add_handler(handler)


def push_folder_to_hub(output_dir: Path, training_args: TrainingArguments):
    """Upload the exported folder (not the intermediate checkpoints) to `hub_model_id`."""
    repo_id = training_args.hub_model_id or output_dir.name
    api = HfApi(token=training_args.hub_token)
    repo_id = api.create_repo(repo_id, private=training_args.hub_private_repo, exist_ok=True).repo_id
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "superseded-*/**", "runs/**", "*.log*", "wandb/**", ".*"],
        commit_message="Upload ScratchBert trained with ScratchBert's scripts",
    )
    logger.info("Pushed %s to the Hub as %s", output_dir, repo_id)
    return repo_id


def publish_results(output_dir: Path, results: dict, run_args: RunArguments, training_args: TrainingArguments, push_to_hub: bool):
    """results.json in the output folder (and at --output), then the folder to the Hub when asked. Main process only."""
    text = json.dumps(results, indent=2)
    (output_dir / "results.json").write_text(text)
    if run_args.output:
        Path(run_args.output).write_text(text)
    if push_to_hub:
        push_folder_to_hub(output_dir, training_args)
    logger.info("Results: %s", text)


def end_process_group():
    """Destroy the process group, and free its worker threads, while the interpreter is still whole.

    Left to interpreter exit, a gloo worker thread can still be dropping the tensors of the last all_gather when
    Python finalizes; it cannot take the GIL and aborts the rank ("terminate called without an active exception",
    exit -6; pytorch/pytorch#190489), failing a run that had saved everything. destroy_process_group alone is not
    enough: the Trainer's DDP wrapper holds the group too, so the collection here frees it (its destructor joins
    the worker threads without the GIL). transformers' Trainer.end() (5.24+) destroys the group but not the wrapper.
    """
    gc.collect()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    gc.collect()


def script_main(run, argv, input_errors: tuple) -> int:
    """Run a script: bad input -> exit 2, training stopped (NaN, failed write) -> exit 3, each with one `error:` line."""
    code = 0
    try:
        run(argv)
    except input_errors as error:
        print(f"error: {error}", file=sys.stderr)
        code = 2
    except TrainingFailure as error:
        print(f"error: {error}", file=sys.stderr)
        code = 3
    # Out of the except blocks, the traceback and its frames are gone: run()'s Trainer and DDP wrapper are garbage
    # now, so a rank stopped by a NaN exits 3 instead of aborting with -6 on the way out.
    end_process_group()
    return code
