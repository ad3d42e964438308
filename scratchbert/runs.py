"""What both training scripts share: run options, output-folder checks, logging, checkpoints, the Hub."""

import logging
import logging.handlers
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import json
import re

import datasets
import torch
import transformers
from transformers import Trainer, TrainingArguments

from .cli import ConfigError

logger = logging.getLogger("scratchbert")


@dataclass
class RunArguments:
    output: str | None = field(default=None, metadata={"help": "Write final train/eval figures to this JSON file"})
    log_file: str | None = field(default=None, metadata={"help": "Also log to this file (rotating, 10 MB x 3)"})
    wandb_project: str | None = field(default=None, metadata={"help": "W&B project when report_to includes wandb"})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow an output_dir that already holds a finished run or checkpoints"}
    )
    on_nonfinite_loss: str = field(
        default="stop",
        metadata={"help": "When the loss is NaN or inf: stop (naming the step) or skip (drop that optimizer step)",
                  "choices": ["stop", "skip"]},
    )


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
        for stale in output_dir.glob("checkpoint-*"):  # asked to start afresh: no resume may pick these up later
            shutil.rmtree(stale, ignore_errors=True)
    if run_args.output:
        parent = Path(run_args.output).resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"--output {run_args.output}: folder {parent} cannot be created or written")


def is_complete_checkpoint(folder: str | Path) -> bool:
    """The Trainer writes trainer_state.json last: a checkpoint is complete once that file parses.

    A run killed while saving leaves a folder without it (or with half of it), never taken for a checkpoint.
    """
    try:
        return "global_step" in json.loads((Path(folder) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False


def latest_complete_checkpoint(output_dir: str | Path) -> str | None:
    folders = [p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and re.fullmatch(r"checkpoint-\d+", p.name)]
    for folder in sorted(folders, key=lambda p: int(p.name.split("-")[1]), reverse=True):
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


class GuardedTrainer(Trainer):
    """transformers' Trainer that notices a NaN or infinite loss at the step it happens.

    on_nonfinite_loss="stop" raises TrainingFailure naming the step (checkpoints already written stay good);
    "skip" drops that optimizer step (gradients zeroed, weights untouched) and goes on.
    """

    def __init__(self, *args, on_nonfinite_loss: str = "stop", **kwargs):
        super().__init__(*args, **kwargs)
        self.on_nonfinite_loss = on_nonfinite_loss
        self.skipped_steps: list[int] = []
        self._skip_this_step = False

    def training_step(self, model, inputs, num_items_in_batch=None):
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not torch.isfinite(loss).all():
            step = self.state.global_step + 1
            if self.on_nonfinite_loss == "stop":
                last = latest_complete_checkpoint(self.args.output_dir) if Path(self.args.output_dir).is_dir() else None
                raise TrainingFailure(
                    f"the loss became {loss.item()} at step {step}; stopped instead of training on it. "
                    f"Newest complete checkpoint: {last or 'none'} (lower the learning rate, or set "
                    "on_nonfinite_loss: skip)"
                )
            logger.warning("Loss is %s at step %d: skipping this optimizer step", loss.item(), step)
            self._skip_this_step = True
            self.skipped_steps.append(step)
            return torch.zeros_like(loss)
        return loss

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        step = optimizer.step

        def step_unless_skipped(*args, **kwargs):
            if self._skip_this_step:  # a micro-batch of this step had a non-finite loss: drop the whole step
                self._skip_this_step = False
                optimizer.zero_grad(set_to_none=True)
                return None
            return step(*args, **kwargs)

        optimizer.step = step_unless_skipped
        return optimizer


def save_final_model(trainer: Trainer, output_dir: Path):
    """Save model + tokenizer (+ remote code) into output_dir without ever leaving a half-written model there.

    Files are written to a staging folder first and moved in with config.json last, so a folder that has a
    config.json has all of the model. A failed write raises TrainingFailure and leaves the checkpoints as they were.
    """
    staging = output_dir / ".final-partial"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        trainer.save_model(str(staging))
        if trainer.is_world_process_zero():
            names = sorted(p.name for p in staging.iterdir())
            for name in sorted(names, key=lambda n: n == "config.json"):  # config.json last
                os.replace(staging / name, output_dir / name)
    except OSError as error:
        raise TrainingFailure(
            f"saving the final model to {output_dir} failed: {error.strerror or error}. "
            f"Newest complete checkpoint: {latest_complete_checkpoint(output_dir) or 'none'}"
        ) from None
    finally:
        if trainer.is_world_process_zero():
            shutil.rmtree(staging, ignore_errors=True)


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
    from huggingface_hub import HfApi

    repo_id = training_args.hub_model_id or output_dir.name
    api = HfApi(token=training_args.hub_token)
    repo_id = api.create_repo(repo_id, private=training_args.hub_private_repo, exist_ok=True).repo_id
    api.upload_folder(
        repo_id=repo_id,
        folder_path=str(output_dir),
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", "*.log*", "wandb/**", ".*"],
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


def script_main(run, argv, input_errors: tuple) -> int:
    """Run a script: bad input -> exit 2, training stopped (NaN, failed write) -> exit 3, each with one `error:` line."""
    try:
        run(argv)
    except input_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingFailure as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    return 0
