"""The time budget: a training clock that ends training (max_train_minutes), its progress bar, and the
learning-rate schedule laid over it."""

import logging
import math
import time
from contextlib import contextmanager

import torch
import torch.distributed as dist
from tqdm.auto import tqdm
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState, ProgressCallback

from ..cli import ConfigError
from .distributed import is_distributed

logger = logging.getLogger(__name__)


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
