"""What both training scripts share: run options, output-folder checks, logging, checkpoints, the Hub."""

import logging
import logging.handlers
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import transformers
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

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


def check_output_dir(training_args: TrainingArguments, run_args: RunArguments):
    output_dir = Path(training_args.output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".write-test"
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


def resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    """--resume_from_checkpoint latest|true -> the newest complete checkpoint in output_dir; a path -> itself."""
    value = training_args.resume_from_checkpoint
    if value in (None, "", "false", "False"):
        return None
    if value in ("latest", "true", "True"):
        last = get_last_checkpoint(training_args.output_dir)
        if last is None:
            raise ConfigError(f"--resume_from_checkpoint {value}: no checkpoint in {training_args.output_dir}")
        return last
    if not Path(value).is_dir():
        raise ConfigError(f"--resume_from_checkpoint {value}: no such checkpoint folder")
    return value


def setup_logging(training_args: TrainingArguments, run_args: RunArguments):
    handlers = [logging.StreamHandler(sys.stdout)]
    if run_args.log_file:
        Path(run_args.log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(run_args.log_file, maxBytes=10_000_000, backupCount=3))
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO, handlers=handlers, force=True
    )
    logging.getLogger("scratchbert").setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(max(level, logging.WARNING))
    transformers.utils.logging.set_verbosity(level)
    for handler in handlers[1:]:  # transformers' own log lines (Trainer progress) go to the file too
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
