"""Transfer probe: N minutes of pretraining, then STS-B, an SST-2 sample and CoLA, pretrained against random weights.

    python benchmarks/transfer_probe.py --name base                                  # today's 30-minute recipe, 6 minutes
    python benchmarks/transfer_probe.py --name rtd-w25 -- --objective rtd --generator_width 0.25
    python benchmarks/transfer_probe.py --name vocab8k --minutes 6 -- --vocab_size 8000

Everything after `--` is a flag for run_pretraining.py on top of `--config` (default: the 30-minute recipe). The
pretraining runs in its own process with its time budget (`--max_train_minutes`) and no evaluation during training;
its final held-out figures come from its results.json. Then each task is fine-tuned once (seed 42, one learning rate,
bf16, each task's GLUE hyperparameters from scratchbert.glue) from the checkpoint and from random weights of the
same architecture and tokenizer: the same tuning budget on both sides. The random side depends only on the
checkpoint's config and vocabulary and the fine-tuning settings, so it is run once per architecture and settings and
reused (outputs/probes/random-<key>-<settings>); a probe's own fine-tuning sits in <name>/probe-<settings>. A rerun
of a name reuses its pretraining, and refuses other pretraining flags than it ran with (probe_pretraining.json).

SST-2 is a sample of its training set (`--max_train_samples`, 10,000 by default: STS-B's 5,749 and CoLA's 8,551
are whole); every dev set is whole. Prints one row of figures per side and appends both to `--jsonl`
(docs/results/transfer-probes.jsonl). One seed ranks ideas cheaply; confirm a winner with the GLUE suite's seeds.
Run it alone on the machine: the pretraining budget is wall-clock time.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from scratchbert import classification  # noqa: E402
from scratchbert.glue import GlueArguments, task_argv  # noqa: E402
from scratchbert.glue_tasks import task_named  # noqa: E402

TASKS = ("stsb", "sst2", "cola")
# The task score each task reports (GLUE's): STS-B Pearson, SST-2 accuracy, CoLA Matthews correlation.
SCORE_KEYS = {"stsb": "eval_pearsonr", "sst2": "eval_accuracy", "cola": "eval_matthews_correlation"}
# Architecture fields that make two random models the same function of the same seed.
ARCHITECTURE_FIELDS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "max_position_embeddings", "type_vocab_size", "layer_norm_position", "attention_position_bias",
    "position_embedding_init", "feed_forward_type", "linear_bias", "deepnorm", "embedding_size",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
)
PRETRAINING_FIGURES = (
    "steps", "train_tokens", "train_tokens_per_second", "eval_mlm_masked_accuracy", "eval_mlm_unigram_accuracy",
    "eval_mlm_accuracy", "eval_mlm_loss", "eval_nsp_accuracy", "eval_rtd_accuracy", "eval_rtd_all_original_accuracy",
    "eval_rtd_auc", "eval_generator_masked_accuracy",
)


def random_side_key(checkpoint: Path) -> str:
    """Hash of what a random-weights model depends on: its architecture and its tokenizer's vocabulary."""
    config = json.loads((checkpoint / "config.json").read_text())
    parts = [json.dumps({k: config.get(k) for k in ARCHITECTURE_FIELDS}, sort_keys=True)]
    for name in ("vocab.txt", "tokenizer.json"):
        if (checkpoint / name).is_file():
            parts.append((checkpoint / name).read_text(encoding="utf-8"))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def fine_tuning_key(args) -> str:
    """The fine-tuning settings in a folder name: a finished task is reused only under the settings it ran with."""
    return f"lr{args.learning_rate:g}-seed{args.seed}-n{args.max_train_samples}"


def check_reused_checkpoint(checkpoint: Path, recipe: dict):
    """A probe's pretraining is reused by name: refuse, naming both, a rerun whose pretraining differs."""
    saved = checkpoint / "probe_pretraining.json"
    if saved.is_file() and json.loads(saved.read_text()) != recipe:
        raise SystemExit(f"{checkpoint} was pretrained with {saved.read_text().strip()}, not {json.dumps(recipe)}: "
                         "give this probe another --name")
    saved.write_text(json.dumps(recipe) + "\n")


def fine_tune(checkpoint: Path, out: Path, random_init: bool, args) -> dict:
    """Each task once from `checkpoint` (or random weights of its architecture); {task: results}."""
    glue_args = GlueArguments(
        model_name_or_path=str(checkpoint), glue_dir=args.glue_dir, bf16=True, learning_rate=args.learning_rate,
        max_train_samples=args.max_train_samples, seed=args.seed,
    )
    scores = {}
    for name in TASKS:
        task = task_named(name)
        run_dir = out / name
        if (run_dir / "results.json").is_file():  # a finished task survives a rerun
            scores[name] = json.loads((run_dir / "results.json").read_text())
            continue
        argv = task_argv(task, glue_args, str(checkpoint), run_dir, args.seed, random_init, False)
        scores[name] = classification.run(argv + ["--overwrite_output_dir", "true"])
    return scores


def row(label: str, pretraining: dict | None, scores: dict) -> dict:
    """One side's figures. A task that diverged (a NaN, a constant regression) or collapsed onto one class is listed
    under "diverged" and leaves the average out (None): its score is the trivial line's, not the model's."""
    task_scores = {name: 100 * float(scores[name][SCORE_KEYS[name]]) for name in TASKS}
    diverged = sorted(name for name in TASKS if scores[name].get("diverged") or scores[name].get("eval_constant_predictions"))
    return {
        "side": label,
        **({k: pretraining[k] for k in PRETRAINING_FIGURES if k in pretraining} if pretraining else {}),
        **{f"{name}": round(v, 2) for name, v in task_scores.items()},
        "average": None if diverged else round(sum(task_scores.values()) / len(TASKS), 2),
        "diverged": diverged,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="The probe's name: outputs/probes/<name>")
    parser.add_argument("--config", default=str(REPO_ROOT / "configs" / "pretrain_wikipedia_30min.yaml"))
    parser.add_argument("--minutes", type=float, default=6.0, help="Pretraining time budget")
    parser.add_argument("--glue_dir", default=str(REPO_ROOT.parent / "shared" / "data" / "glue"))
    parser.add_argument("--learning_rate", type=float, default=1e-4, help="Fine-tuning rate, both sides")
    parser.add_argument("--max_train_samples", type=int, default=10_000, help="Cap on each task's training set (SST-2's sample)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--outputs", default=str(REPO_ROOT / "outputs" / "probes"))
    parser.add_argument("--pretrain_only", action="store_true", help="Stop after pretraining (a rerun fine-tunes it)")
    parser.add_argument("--jsonl", default=str(REPO_ROOT / "docs" / "results" / "transfer-probes.jsonl"))
    args, pretraining_flags = parser.parse_known_args(argv)
    pretraining_flags = [f for f in pretraining_flags if f != "--"]
    for name in TASKS:
        folder = task_named(name).folder
        if not (Path(args.glue_dir) / folder / "dev.tsv").is_file():
            parser.error(f"{args.glue_dir}/{folder}/dev.tsv not found: pass --glue_dir (GLUE's download layout)")

    outputs = Path(args.outputs)
    checkpoint = outputs / args.name
    command = [
        sys.executable, str(REPO_ROOT / "run_pretraining.py"), args.config, "--max_train_minutes", str(args.minutes),
        "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", str(checkpoint), "--overwrite_output_dir", "true",
        *pretraining_flags,
    ]
    start = time.time()
    recipe = {"config": args.config, "minutes": args.minutes, "flags": pretraining_flags}
    if not (checkpoint / "results.json").is_file():
        print("pretraining:", " ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=REPO_ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    check_reused_checkpoint(checkpoint, recipe)
    pretraining = json.loads((checkpoint / "results.json").read_text())
    if args.pretrain_only:
        return 0

    settings = fine_tuning_key(args)
    pretrained_scores = fine_tune(checkpoint, checkpoint / f"probe-{settings}", False, args)
    random_dir = outputs / f"random-{random_side_key(checkpoint)}-{settings}"
    random_scores = fine_tune(checkpoint, random_dir, True, args)

    rows = [row("pretrained", pretraining, pretrained_scores), row("random weights", None, random_scores)]
    record = {
        "name": args.name, "date": time.strftime("%Y-%m-%d %H:%M"), "minutes": args.minutes,
        "command": " ".join(["python benchmarks/transfer_probe.py", "--name", args.name, "--minutes", str(args.minutes),
                             *(["--config", args.config] if args.config != parser.get_default("config") else []),
                             *[f"--{k} {getattr(args, k)}" for k in ("learning_rate", "seed", "max_train_samples")
                               if getattr(args, k) != parser.get_default(k)],
                             *(["--"] + pretraining_flags if pretraining_flags else [])]),
        "fine_tuning": {"learning_rate": args.learning_rate, "seed": args.seed, "max_train_samples": args.max_train_samples},
        "random_side": random_dir.name, "rows": rows, "wall_minutes": round((time.time() - start) / 60, 1),
    }
    Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
    with open(args.jsonl, "a") as f:
        f.write(json.dumps(record) + "\n")
    for r in rows:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
