"""The GLUE suite: fine-tune and score one checkpoint on every GLUE task, in one command.

    python -m scratchbert.glue --model_name_or_path CKPT --glue_dir glue_data     # local folders
    python -m scratchbert.glue --model_name_or_path CKPT --tasks mrpc,rte         # from the Hub (nyu-mll/glue)
    scratchbert-glue --model_name_or_path CKPT --glue_dir glue_data --random_init --seeds 3 --do_predict

Each task is fine-tuned by `scratchbert.classification.run` (what run_classification.py runs: no second
training loop) from configs/glue_task.yaml plus the task's hyperparameters below, once per seed; with
--random_init once more per seed from random weights (the same architecture and tokenizer), so the table shows
what pretraining is worth. With --learning_rates (a grid), each task and starting point runs every rate with the
first seed and the other seeds at its best rate on dev. A run that diverged (its loss or a score NaN or inf, or a
regression that gives every dev pair one score: classification.diverged) is flagged, never chosen, never averaged
and never submitted; a side where every run diverged has no score, and the average says which task lacks one.
A transformers BERT folder is converted first (scratchbert.convert). Every task's data is checked before anything
trains. Written to OUT: glue_results.json (every run's metrics, baselines,
steps, runtime; means, spreads, the average), glue_results.md (the table, also printed), glue_results.png,
runs/<task>/<init>-seed<S>/ (each fine-tuned model), and with --do_predict submission/ (GLUE's test-set files).
"""

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import classification
from .cli import ConfigError, packaged_config, parse_config
from .convert import ConversionError, convert_bert_to_scratchbert
from .corpus import CorpusError
from .glue_tasks import TASKS, GlueDataError, GlueTask, check_task_files, task_named, tasks_in
from .runs.script import script_main
from .runs.trainer import TrainingFailure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hyperparameters:
    num_train_epochs: float
    learning_rate: float
    per_device_train_batch_size: int
    max_seq_length: int


# BERT's fine-tuning practice (Devlin et al. 2019, section 4.1 and appendix A.3): sequence length 128, batch
# 32, 3 epochs, a learning rate from {5e-5, 4e-5, 3e-5, 2e-5}. The small tasks (under 10k training pairs),
# where the paper found fine-tuning unstable, take the other end of its grid (batch 16, 4 epochs) so they get
# a few hundred optimizer steps. Flags (or glue.yaml) override a field for every task at once.
LARGE, SMALL = Hyperparameters(3, 2e-5, 32, 128), Hyperparameters(4, 3e-5, 16, 128)
TASK_HYPERPARAMETERS = {
    "cola": SMALL,  # 8.5k training sentences
    "sst2": LARGE,  # 67k
    "mrpc": SMALL,  # 3.7k
    "stsb": SMALL,  # 5.7k
    "qqp": LARGE,  # 364k
    "mnli": LARGE,  # 393k
    "qnli": LARGE,  # 105k
    "rte": SMALL,  # 2.5k
    "wnli": SMALL,  # 635
}
# As the BERT paper's GLUE average: WNLI is left out (its dev set is adversarial; models score below majority).
AVERAGE_EXCLUDES = ("wnli",)


@dataclass
class GlueArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A ScratchBert checkpoint, or a transformers BERT folder (converted first)"}
    )
    tasks: str | None = field(
        default=None, metadata={"help": f"Comma-separated ({','.join(TASKS)}); default: every task in glue_dir, or all from the Hub"}
    )
    glue_dir: str | None = field(
        default=None, metadata={"help": "GLUE folders in download_glue_data.py's layout; default: nyu-mll/glue from the Hub"}
    )
    output_dir: str = "outputs/glue"
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an output_dir that holds results"})
    random_init: bool = field(default=False, metadata={"help": "Also fine-tune from random weights: what pretraining is worth"})
    seeds: int = field(default=1, metadata={"help": "Runs per task (seeds seed, seed+1, ...): mean and spread"})
    seed: int = 42
    do_predict: bool = field(default=False, metadata={"help": "Write GLUE submission files for the test splits"})
    num_train_epochs: float | None = field(default=None, metadata={"help": "For every task (default: per task)"})
    learning_rate: float | None = field(default=None, metadata={"help": "For every task (default: per task)"})
    learning_rates: str | None = field(
        default=None,
        metadata={"help": "A grid, e.g. 3e-4,1e-4,3e-5: each task and starting point runs every rate with the first "
                          "seed, keeps the best on dev, and runs the other seeds at it"},
    )
    classifier_pooling: str | None = field(
        default=None, metadata={"help": "cls (BERT's pooler) or mean (of the last hidden states); default: the checkpoint's"}
    )
    layerwise_lr_decay: float | None = field(
        default=None, metadata={"help": "Each layer below the top learns at this factor of the one above (1: off)"}
    )
    warmup_steps: float | None = field(
        default=None, metadata={"help": "Warmup for every task: steps, or below 1 a share of training (default 0.1)"}
    )
    per_device_train_batch_size: int | None = field(default=None, metadata={"help": "For every task (default: per task)"})
    max_seq_length: int | None = field(default=None, metadata={"help": "For every task (default: per task)"})
    max_steps: int | None = field(default=None, metadata={"help": "Cap every run at this many steps (smoke tests)"})
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None
    bf16: bool = False
    use_cpu: bool = False
    trust_remote_code: bool = False
    cache_dir: str | None = None

    def __post_init__(self):
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {self.seeds}")
        if self.learning_rates is not None:
            if self.learning_rate is not None:
                raise ValueError("give learning_rate (one rate for every task) or learning_rates (a grid), not both")
            self.learning_rate_grid()  # a malformed grid fails now

    def learning_rate_grid(self) -> list[float] | None:
        """The rates of `learning_rates`, in the order given; None without a grid."""
        if self.learning_rates is None:
            return None
        try:
            rates = [float(r) for r in str(self.learning_rates).split(",") if r.strip()]
        except ValueError:
            raise ValueError(f"learning_rates must be comma-separated numbers such as 3e-4,1e-4,3e-5, got {self.learning_rates!r}") from None
        if not rates or any(not r > 0 for r in rates) or len(set(rates)) != len(rates):
            raise ValueError(f"learning_rates must be distinct positive numbers, got {self.learning_rates!r}")
        return rates


# ----------------------------------------------------------------------------------------------------------------
# Before any training: tasks, data, checkpoint, output folder
# ----------------------------------------------------------------------------------------------------------------


def resolve_tasks(args: GlueArguments) -> list[GlueTask]:
    """The tasks to run, each one's local files checked (present, headers the task's); errors name the folder."""
    try:
        if args.tasks:
            tasks = [task_named(name.strip()) for name in args.tasks.split(",") if name.strip()]
            if not tasks:
                raise GlueDataError(f"--tasks {args.tasks!r} names no task; the tasks are {', '.join(TASKS)}")
        elif args.glue_dir:
            tasks = tasks_in(args.glue_dir)
        else:
            tasks = list(TASKS.values())
        if args.glue_dir:
            if not Path(args.glue_dir).is_dir():
                raise GlueDataError(f"glue_dir {args.glue_dir} is not a folder")
            if not tasks:
                raise GlueDataError(
                    f"{args.glue_dir} holds no GLUE task folder ({', '.join(t.folder for t in TASKS.values())})"
                )
            for task in tasks:
                check_task_files(args.glue_dir, task)
    except GlueDataError as error:
        raise ConfigError(str(error)) from None
    chosen = {task.name for task in tasks}
    return [task for task in TASKS.values() if task.name in chosen]  # in GLUE's order, each once


def checkpoint_to_score(args: GlueArguments, output_dir: Path) -> str:
    """The ScratchBert checkpoint to fine-tune: as given, or a transformers BERT folder converted into output_dir."""
    if not args.model_name_or_path:
        raise ConfigError("give --model_name_or_path: the checkpoint to score")
    model_type = classification.checkpoint_model_type(args.model_name_or_path)
    if model_type in (None, "scratchbert"):  # None: a Hub id, which from_pretrained checks
        return args.model_name_or_path
    if model_type != "bert":
        raise ConfigError(f"{args.model_name_or_path} holds a {model_type!r} model, not a ScratchBert or a BERT")
    converted = output_dir / "converted-checkpoint"
    shutil.rmtree(converted, ignore_errors=True)
    try:
        convert_bert_to_scratchbert(args.model_name_or_path, converted)
    except ConversionError as error:
        raise ConfigError(f"cannot convert the BERT checkpoint {args.model_name_or_path}: {error}") from None
    logger.info("Converted the BERT checkpoint %s to ScratchBert in %s", args.model_name_or_path, converted)
    return str(converted)


def check_output_dir(args: GlueArguments) -> Path:
    output_dir = Path(args.output_dir)
    if (output_dir / "glue_results.json").exists() and not args.overwrite_output_dir:
        raise ConfigError(f"output_dir {output_dir} already holds GLUE results; pass --overwrite_output_dir or choose another")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"output_dir {output_dir} cannot be created: {error.strerror or error}") from None
    return output_dir


# ----------------------------------------------------------------------------------------------------------------
# One run per task, seed and starting point
# ----------------------------------------------------------------------------------------------------------------


def hyperparameters_for(task: GlueTask, args: GlueArguments) -> Hyperparameters:
    base = TASK_HYPERPARAMETERS[task.name]
    return Hyperparameters(
        *(getattr(args, name) if getattr(args, name) is not None else getattr(base, name)
          for name in ("num_train_epochs", "learning_rate", "per_device_train_batch_size", "max_seq_length"))
    )


def task_argv(task: GlueTask, args: GlueArguments, checkpoint: str, run_dir: Path, seed: int, random_init: bool,
              predict: bool, learning_rate: float | None = None) -> list[str]:
    """run_classification.py's command line for one run (at `learning_rate`, a grid point, when given)."""
    settings = hyperparameters_for(task, args)
    argv = [
        str(packaged_config("glue_task.yaml")), "--task_name", task.name, "--model_name_or_path", checkpoint,
        "--output_dir", str(run_dir), "--seed", str(seed), "--random_init", str(random_init).lower(),
        "--num_train_epochs", str(settings.num_train_epochs),
        "--learning_rate", str(learning_rate if learning_rate is not None else settings.learning_rate),
        "--per_device_train_batch_size", str(settings.per_device_train_batch_size),
        "--max_seq_length", str(settings.max_seq_length), "--do_predict", str(predict).lower(),
        "--bf16", str(args.bf16).lower(), "--use_cpu", str(args.use_cpu).lower(),
        "--trust_remote_code", str(args.trust_remote_code).lower(),
    ]
    for name in ("glue_dir", "max_steps", "max_train_samples", "max_eval_samples", "max_predict_samples", "cache_dir",
                 "classifier_pooling", "layerwise_lr_decay", "warmup_steps"):
        if getattr(args, name) is not None:
            argv += [f"--{name}", str(getattr(args, name))]
    return argv


def metric_keys(metric: str, task: GlueTask) -> tuple[str, str]:
    """results.json keys of a metric and of its baseline: accuracy -> eval_accuracy, eval_majority_baseline_accuracy."""
    prefix = "mismatched_" if metric.startswith("mismatched_") else ""
    name = metric.removeprefix(prefix)
    baseline = "constant_baseline" if task.regression else "majority_baseline"
    return f"eval_{prefix}{name}", f"eval_{prefix}{baseline}_{name}"


def finite_or_none(value) -> float | None:
    """A score as JSON can hold it: NaN and inf (never written as numbers) become None."""
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) else None


def run_record(task: GlueTask, results: dict, seed: int) -> dict:
    return {
        "seed": seed,
        "metrics": {m: finite_or_none(results[metric_keys(m, task)[0]]) for m in task.metrics},
        "baseline": {m: results.get(metric_keys(m, task)[1], 0.0) for m in task.metrics},
        "steps": results["steps"],
        "runtime_seconds": results["runtime_seconds"],
        "diverged": bool(results.get("diverged")),
        "diverged_reason": results.get("diverged_reason"),
    }


def fine_tune(task: GlueTask, argv: list[str], seed: int) -> dict:
    """One run (classification.run) as a record; a run whose loss turned NaN or inf is a diverged record, not an
    end of the suite (a grid's highest rate may blow up; the other rates still count)."""
    start = time.time()
    try:
        results = classification.run(argv)
    except TrainingFailure as error:
        if not classification.is_divergence(error):
            raise
        record = {"seed": seed, "metrics": {m: None for m in task.metrics}, "baseline": None, "steps": None,
                  "runtime_seconds": time.time() - start, "diverged": True, "diverged_reason": str(error).split(";")[0]}
    else:
        record = run_record(task, results, seed)
    if record["diverged"]:
        print(f"GLUE {task.name}, seed {seed}: diverged ({record['diverged_reason']}); not chosen, not averaged", flush=True)
    return record


def task_score(task: GlueTask, record: dict) -> float | None:
    """One run's task score: the mean of the task's metrics (as GLUE averages F1 and accuracy, say); None for a
    diverged run, which has no score to compare or average."""
    values = [record["metrics"][m] for m in task.metrics]
    if record["diverged"] or any(v is None for v in values):
        return None
    return float(np.mean(values))


def choose_rate(task: GlueTask, grid: list[float], grid_runs: dict) -> float | None:
    """The grid's best rate by the first seed's task score on dev (ties: the first given), among the runs that did
    not diverge; None when every rate diverged."""
    scored = [rate for rate in grid if task_score(task, grid_runs[rate][0]) is not None]
    return max(scored, key=lambda rate: task_score(task, grid_runs[rate][0])) if scored else None


def summarize(task: GlueTask, runs: list[dict]) -> dict:
    """Mean and standard deviation over the seeds that did not diverge of each metric, and the task score (the mean
    of its metrics); the seeds that diverged are named and left out. With none left, the scores are None and
    `diverged` is true."""
    kept = [run for run in runs if task_score(task, run) is not None]
    summary = {
        "diverged": not kept,
        "diverged_seeds": [run["seed"] for run in runs if task_score(task, run) is None],
        "steps": kept[0]["steps"] if kept else None,
        "runtime_seconds": float(np.mean([run["runtime_seconds"] for run in runs])) if runs else None,
        "runs": runs,
    }
    if not kept:
        return {"mean": None, "std": None, "score": None, "score_std": None, **summary}
    values = {m: np.array([run["metrics"][m] for run in kept], dtype=float) for m in task.metrics}
    scores = np.mean([values[m] for m in task.metrics], axis=0)  # [seeds]
    ddof = 1 if len(kept) > 1 else 0  # the sample standard deviation over seeds
    return {
        "mean": {m: float(v.mean()) for m, v in values.items()},
        "std": {m: float(v.std(ddof=ddof)) for m, v in values.items()},
        "score": float(scores.mean()),
        "score_std": float(scores.std(ddof=ddof)),
        **summary,
    }


# ----------------------------------------------------------------------------------------------------------------
# Outputs: JSON, Markdown table, bar chart, submission files
# ----------------------------------------------------------------------------------------------------------------

METRIC_LABELS = {"accuracy": "acc", "f1": "F1", "matthews_correlation": "MCC", "pearsonr": "Pearson",
                 "spearmanr": "Spearman", "mismatched_accuracy": "acc-mm"}
STARTS = (("pretrained", "pretrained"), ("random_init", "random init"))


def score_cell(task: GlueTask, summary: dict) -> str:
    """A side's metrics, mean ± spread over seeds; `diverged` when nothing is left, and how many seeds diverged."""
    if summary["score"] is None:
        return "diverged" + (" (every rate)" if summary.get("learning_rate") is None and "grid_scores" in summary else "")
    kept = len(summary["runs"]) - len(summary["diverged_seeds"])
    cell = " / ".join(
        f"{100 * summary['mean'][m]:.1f}" + (f" ± {100 * summary['std'][m]:.1f}" if kept > 1 else "") for m in task.metrics
    )
    if summary["diverged_seeds"]:
        cell += f" ({len(summary['diverged_seeds'])} of {len(summary['runs'])} seeds diverged)"
    return cell


def markdown_table(report: dict) -> str:
    starts = [(key, label) for key, label in STARTS if key in report["average"]]
    header = "| task | metric | " + " | ".join(label for _, label in starts) + " | baseline | steps | minutes | learning rate |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, entry in report["tasks"].items():
        task = TASKS[name]
        cells = [score_cell(task, entry[key]) for key, _ in starts]
        baseline = " / ".join(f"{100 * entry['baseline'][m]:.1f}" for m in task.metrics) if entry["baseline"] else "n/a"
        metrics = " / ".join(METRIC_LABELS[m] for m in task.metrics)
        runtime = entry["pretrained"]["runtime_seconds"]
        minutes = f"{runtime / 60:.1f}" if runtime is not None else ""
        steps = entry["pretrained"]["steps"] if entry["pretrained"]["steps"] is not None else ""
        rates = " / ".join(f"{entry[key]['learning_rate']:g}" if entry[key]["learning_rate"] is not None else "none"
                           for key, _ in starts)
        lines.append(f"| {task.folder} | {metrics} | " + " | ".join(cells)
                     + f" | {baseline} | {steps} | {minutes} | {rates} |")
    average = " | ".join(
        f"**{100 * report['average'][key]:.1f}**" if report["average"][key] is not None
        else f"n/a ({', '.join(TASKS[n].folder for n in report['average_missing'][key])} diverged)"
        for key, _ in starts
    )
    baseline = f"{100 * report['average']['baseline']:.1f}" if report["average"]["baseline"] is not None else "n/a"
    lines.append(f"| average{report['average_note']} | task scores | {average} | {baseline} | | | |")
    return "\n".join(lines) + "\n"


def write_chart(report: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["tasks"])
    starts = [(key, label) for key, label in STARTS if key in report["average"]] + [("baseline", "baseline")]
    width = 0.8 / len(starts)
    figure, axes = plt.subplots(figsize=(max(5, 1.3 * len(names) + 2), 3.5))
    for i, (key, label) in enumerate(starts):
        if key == "baseline":
            heights = [100 * np.mean([report["tasks"][n]["baseline"][m] for m in TASKS[n].metrics])
                       if report["tasks"][n]["baseline"] else np.nan for n in names]
            errors = None
        else:  # a side with no score (every run diverged) has no bar
            summaries = [report["tasks"][n][key] for n in names]
            heights = [100 * s["score"] if s["score"] is not None else np.nan for s in summaries]
            errors = [100 * s["score_std"] if s["score_std"] is not None else 0.0 for s in summaries]
        axes.bar(np.arange(len(names)) + (i - (len(starts) - 1) / 2) * width, heights, width, yerr=errors, label=label)
    axes.set_xticks(np.arange(len(names)), [TASKS[n].folder for n in names])
    axes.set_ylabel("task score (dev set, x100)")
    axes.set_title("GLUE dev: " + ", ".join(label for _, label in starts), fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_submission(task: GlueTask, run_dir: Path, submission_dir: Path) -> list[str]:
    """GLUE's test-set files for the task from run_classification.py's predictions (label names -> GLUE's values)."""
    written = []
    for suffix, file_name in zip(("", "_mismatched"), task.submission):
        predictions = run_dir / f"predictions{suffix}.tsv"
        if not predictions.is_file():
            continue
        lines = ["index\tprediction"]
        for line in predictions.read_text().splitlines()[1:]:
            index, value = line.split("\t")
            if not task.regression and not task.labels_are_names:
                value = str(task.label_names.index(value))  # 0 / 1, as GLUE's binary tasks are scored
            lines.append(f"{index}\t{value}")
        submission_dir.mkdir(parents=True, exist_ok=True)
        (submission_dir / file_name).write_text("\n".join(lines) + "\n")
        written.append(file_name)
    return written


# ----------------------------------------------------------------------------------------------------------------
# The suite
# ----------------------------------------------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> dict:
    (args, config_path) = parse_config((GlueArguments,), argv, packaged_config("glue.yaml"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "run the GLUE suite as one process (it runs its tasks one after another); for several GPUs per task, "
            "launch run_classification.py --task_name TASK [--glue_dir DIR] with torchrun or accelerate"
        )
    tasks = resolve_tasks(args)
    output_dir = check_output_dir(args)
    checkpoint = checkpoint_to_score(args, output_dir)
    starts = [False, True] if args.random_init else [False]
    print(f"GLUE: {', '.join(t.name for t in tasks)}; {args.seeds} seed(s); from {checkpoint}"
          f"{' and from random weights' if args.random_init else ''}", flush=True)

    report = {"model": args.model_name_or_path, "checkpoint": checkpoint, "glue_dir": args.glue_dir,
              "seeds": [args.seed + i for i in range(args.seeds)], "config": config_path, "tasks": {}}
    grid = args.learning_rate_grid()
    if grid:
        report["learning_rates"] = grid
    for task in tasks:
        entry = {"hyperparameters": hyperparameters_for(task, args).__dict__}
        records = []  # every run of the task, for the dev set's baseline
        for random_init in starts:
            key = "random_init" if random_init else "pretrained"
            runs, chosen, grid_runs = [], None, None
            if grid:  # the first seed at every rate, each side choosing its own best on dev
                first, grid_runs = report["seeds"][0], {}
                for rate in grid:
                    run_dir = output_dir / "runs" / task.name / f"{key}-lr{rate:g}-seed{first}"
                    predict = args.do_predict and not random_init
                    grid_runs[rate] = (fine_tune(task, task_argv(task, args, checkpoint, run_dir, first, random_init, predict, rate), first), run_dir)
                records += [record for record, _ in grid_runs.values()]
                chosen = choose_rate(task, grid, grid_runs)
                if chosen is None:
                    print(f"GLUE {task.name}, {key}: every learning rate diverged; no score, no other seeds", flush=True)
                else:
                    runs.append(grid_runs[chosen][0])
                    if args.do_predict and not random_init:
                        entry["prediction_run"] = str(grid_runs[chosen][1])
            remaining = report["seeds"][len(runs):] if not grid or chosen is not None else []  # none to run at no rate
            for seed in remaining:
                lr_part = f"-lr{chosen:g}" if chosen is not None else ""
                run_dir = output_dir / "runs" / task.name / f"{key}{lr_part}-seed{seed}"
                predict = args.do_predict and not random_init and seed == report["seeds"][0]
                runs.append(fine_tune(task, task_argv(task, args, checkpoint, run_dir, seed, random_init, predict, chosen), seed))
                if predict and not runs[-1]["diverged"]:
                    entry["prediction_run"] = str(run_dir)
            records += runs
            entry[key] = summarize(task, runs)
            entry[key]["learning_rate"] = chosen if grid else entry["hyperparameters"]["learning_rate"]
            if grid_runs is not None:  # the first seed's task score at each rate (None: diverged), and why it diverged
                entry[key]["grid_scores"] = {f"{rate:g}": task_score(task, record) for rate, (record, _) in grid_runs.items()}
                entry[key]["grid_diverged"] = {f"{rate:g}": record["diverged_reason"] if task_score(task, record) is None else None
                                               for rate, (record, _) in grid_runs.items()}
        # The dev set's majority-class (or constant) line, the same for every run that reached an evaluation.
        entry["baseline"] = next((record["baseline"] for record in records if record["baseline"] is not None), None)
        if args.do_predict:
            if "prediction_run" in entry:
                entry["submission_files"] = write_submission(task, Path(entry["prediction_run"]), output_dir / "submission")
            else:  # never a submission from a run that diverged
                entry["submission_files"] = []
                print(f"GLUE {task.name}: no submission files, the pretrained run diverged", flush=True)
        report["tasks"][task.name] = entry
        (output_dir / "glue_results.json").write_text(json.dumps(report, indent=2))  # finished tasks survive a failure

    averaged = [name for name in report["tasks"] if name not in AVERAGE_EXCLUDES] or list(report["tasks"])
    report["average_tasks"] = averaged
    report["average_note"] = "" if averaged == list(report["tasks"]) else " (no WNLI)"
    # A side with a task that has no score (every run diverged) has no average: None, and the tasks named.
    report["average"], report["average_missing"] = {}, {}
    for key, _ in STARTS:
        if key in report["tasks"][averaged[0]]:
            scores = [report["tasks"][n][key]["score"] for n in averaged]
            report["average_missing"][key] = [n for n, score in zip(averaged, scores) if score is None]
            report["average"][key] = None if report["average_missing"][key] else float(np.mean(scores))
    baselines = [report["tasks"][n]["baseline"] for n in averaged]
    report["average"]["baseline"] = None if None in baselines else float(np.mean(
        [np.mean([baseline[m] for m in TASKS[n].metrics]) for n, baseline in zip(averaged, baselines)]
    ))
    table = markdown_table(report)
    (output_dir / "glue_results.json").write_text(json.dumps(report, indent=2))
    (output_dir / "glue_results.md").write_text(table)
    write_chart(report, output_dir / "glue_results.png")
    print(table)
    return report


def main(argv: list[str] | None = None) -> int:
    return script_main(run, argv, (ConfigError, CorpusError, classification.DataError))


if __name__ == "__main__":  # python -m scratchbert.glue
    sys.exit(main())
