"""Run options: the arguments both training scripts share, and the option combinations refused before any work."""

import json
import logging
import os
from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

from ..cli import ConfigError
from ..configuration_scratchbert import retired_option
from .time_budget import budget_schedule

logger = logging.getLogger(__name__)


# RunArguments retired (issue 44), refused by name by every script (start_run; run_pretraining.py's own table).
RETIRED_RUN_OPTIONS = {name: retired_option(name) for name in ("log_file",)}


@dataclass
class RunArguments:
    output: str | None = field(default=None, metadata={"help": "Write final train/eval figures to this JSON file"})
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



def check_sequence_length(max_seq_length: int, max_position_embeddings: int):
    """The one place that checks max_seq_length against the model's positions (both scripts, fresh or loaded)."""
    if max_seq_length > max_position_embeddings:
        raise ConfigError(f"max_seq_length={max_seq_length} exceeds max_position_embeddings={max_position_embeddings}")
