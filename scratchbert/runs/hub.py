"""The results and the Hub: results.json (and --output), then the final folder pushed once."""

import json
import logging
from pathlib import Path

from huggingface_hub import HfApi
from transformers import TrainingArguments

from .options import RunArguments

logger = logging.getLogger(__name__)


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
