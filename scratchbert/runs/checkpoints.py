"""Checkpoints: which are complete, their order, the one to resume from."""

import json
import logging
import re
from pathlib import Path

from transformers import TrainingArguments

from ..cli import ConfigError

logger = logging.getLogger(__name__)


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
