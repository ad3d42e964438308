"""What the training scripts share, a module a job:

- options: the run options (RunArguments, ScratchBertTrainingArguments) and the combinations refused before any work
- output_dir: the output folder checked, an earlier run in it set aside
- checkpoints: complete checkpoints, their order, the one to resume from
- time_budget: the training clock of max_train_minutes, its progress bar, the schedule laid over it
- trainer: the guarded Trainer (NaN / inf losses, the budget), layer-wise learning rates, the final save
- logs: logging to stdout
- hub: results.json and the push of the final folder
- distributed: several processes (one tokenizer for all, the process group ended)
- script: the run preamble every script shares (start_run) and its exit codes (script_main)

The names below are re-exported, so `from scratchbert.runs import X` works; the library imports from the module.
"""

from .checkpoints import checkpoints_by_step, is_complete_checkpoint, latest_complete_checkpoint, resolve_checkpoint
from .distributed import end_process_group, is_distributed, tokenizer_for_run
from .hub import publish_results, push_folder_to_hub
from .logs import CurrentStdoutHandler, setup_logging
from .options import (
    LAYERWISE_UNDER_DEEPSPEED_OPTIMIZER,
    SKIP_UNDER_DEEPSPEED,
    RunArguments,
    ScratchBertTrainingArguments,
    check_run_options,
    check_sequence_length,
    deepspeed_config_has_optimizer,
    has_accelerator,
    uses_deepspeed,
)
from .output_dir import check_output_dir, set_aside_earlier_run, superseded_folder, unused_folder
from .script import RunStart, script_main, start_run
from .time_budget import (
    BUDGET_SCHEDULES,
    BudgetProgressCallback,
    TimeBudget,
    budget_lr_lambda,
    budget_schedule,
    training_progress,
)
from .trainer import (
    GuardedTrainer,
    TrainingFailure,
    save_final_model,
    scaled_param_groups,
    train_and_report_io_errors,
)

__all__ = [
    "BUDGET_SCHEDULES",
    "LAYERWISE_UNDER_DEEPSPEED_OPTIMIZER",
    "SKIP_UNDER_DEEPSPEED",
    "BudgetProgressCallback",
    "CurrentStdoutHandler",
    "GuardedTrainer",
    "RunArguments",
    "RunStart",
    "ScratchBertTrainingArguments",
    "TimeBudget",
    "TrainingFailure",
    "budget_lr_lambda",
    "budget_schedule",
    "check_output_dir",
    "check_run_options",
    "check_sequence_length",
    "checkpoints_by_step",
    "deepspeed_config_has_optimizer",
    "end_process_group",
    "has_accelerator",
    "is_complete_checkpoint",
    "is_distributed",
    "latest_complete_checkpoint",
    "publish_results",
    "push_folder_to_hub",
    "resolve_checkpoint",
    "save_final_model",
    "scaled_param_groups",
    "script_main",
    "set_aside_earlier_run",
    "setup_logging",
    "start_run",
    "superseded_folder",
    "tokenizer_for_run",
    "train_and_report_io_errors",
    "training_progress",
    "unused_folder",
    "uses_deepspeed",
]
