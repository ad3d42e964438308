"""The output folder: checked writable before any work, an earlier run in it set aside (never mixed with the new one)."""

import logging
import os
import shutil
import time
from pathlib import Path

import torch.distributed as dist
from transformers import TrainingArguments

from ..cli import ConfigError
from .checkpoints import checkpoints_by_step, latest_complete_checkpoint
from .distributed import is_distributed
from .options import RunArguments

logger = logging.getLogger(__name__)


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
        set_aside_earlier_run(output_dir, delete_checkpoints=run_args.delete_old_checkpoints)
    if run_args.output:
        parent = Path(run_args.output).resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(f"--output {run_args.output}: folder {parent} cannot be created or written")


def set_aside_earlier_run(output_dir: Path, delete_checkpoints: bool = False):
    """A new run starts in `output_dir`: the earlier run leaves the folder, so that neither
    `--resume_from_checkpoint latest` nor the new run's own checkpoints and final files mix with it.

    Its checkpoints and its final files (model, tokenizer, results.json, model card, curves, ...) are moved into
    `superseded-<UTC time>/`: nothing a user saved is lost, and the log names the newest complete checkpoint to
    resume from there. With `delete_checkpoints` (the user asked for exactly that) the checkpoints are deleted
    instead and the final files stay, for the new run's to replace. Hidden entries and earlier `superseded-*`
    folders stay. Only the main process of a node acts; the others wait for it.
    """
    output_dir = Path(output_dir)
    numbered = checkpoints_by_step(output_dir)
    checkpoints = [p for p in sorted(output_dir.glob("checkpoint-*")) if p.is_dir() and p not in numbered] + numbered
    final_files = [] if delete_checkpoints else sorted(
        p for p in output_dir.iterdir() if not p.name.startswith((".", "checkpoint-", "superseded-"))
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
