"""A script's start and end: the run preamble the training scripts share (start_run), and the exit codes (script_main)."""

import logging
import os
import sys
from typing import Any, Callable, NamedTuple

import transformers

from ..cli import parse_config
from .checkpoints import resolve_checkpoint
from .distributed import end_process_group
from .logs import setup_logging
from .options import RETIRED_RUN_OPTIONS, RunArguments, ScratchBertTrainingArguments, check_run_options
from .output_dir import check_output_dir
from .trainer import TrainingFailure

logger = logging.getLogger(__name__)


class RunStart(NamedTuple):
    """What start_run settled: the parsed arguments, the config file, the checkpoint to resume from, the Hub push."""

    model_args: Any
    data_args: Any
    run_args: RunArguments
    training_args: ScratchBertTrainingArguments
    config_path: str | None  # the YAML file used; None: flags only
    checkpoint: str | None  # the complete checkpoint to resume from; None: a fresh start
    push_to_hub: bool  # push the final folder once at the end (the Trainer's push of every checkpoint is off)


def start_run(
    model_arguments: type,
    data_arguments: type,
    argv: list[str] | None,
    default_config,
    check: Callable[[Any, Any, ScratchBertTrainingArguments], None] | None = None,
    layerwise_lr_decay: Callable[[Any], float] | None = None,
    retired: dict[str, str] | None = None,
) -> RunStart:
    """The start every training script shares, each step before any data work, in this order:

    1. the config file and flags parsed into the script's model and data arguments, RunArguments and
       ScratchBertTrainingArguments (`default_config` when no file is given); options that are gone refused by
       name (RETIRED_RUN_OPTIONS, and the script's own `retired`);
    2. logging set up, and the configuration named in the log;
    3. the option combinations refused (check_run_options; `layerwise_lr_decay(model_args)` gives a fine-tuning
       script's decay);
    4. `check(model_args, data_args, training_args)`: the script's own refusals, before the output folder is
       touched (an earlier run there is not set aside for a run that cannot start);
    5. the output folder checked (an earlier run set aside with overwrite_output_dir), and the checkpoint to
       resume from resolved;
    6. WANDB_PROJECT from --wandb_project (unless the environment sets it), the Trainer's push_to_hub taken over
       (it would push every checkpoint; the script pushes the final folder once), and the seed set.
    """
    model_args, data_args, run_args, training_args, config_path = parse_config(
        (model_arguments, data_arguments, RunArguments, ScratchBertTrainingArguments), argv, default_config,
        {**RETIRED_RUN_OPTIONS, **(retired or {})},
    )
    setup_logging(training_args)
    logger.info("Configuration: %s", config_path or "flags only")
    check_run_options(training_args, run_args, layerwise_lr_decay(model_args) if layerwise_lr_decay else 1.0)
    if check is not None:
        check(model_args, data_args, training_args)
    check_output_dir(training_args, run_args)
    checkpoint = resolve_checkpoint(training_args)
    if run_args.wandb_project and not os.environ.get("WANDB_PROJECT"):
        os.environ["WANDB_PROJECT"] = run_args.wandb_project
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    transformers.set_seed(training_args.seed)
    return RunStart(model_args, data_args, run_args, training_args, config_path, checkpoint, push_to_hub)


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
