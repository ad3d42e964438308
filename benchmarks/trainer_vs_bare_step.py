"""Does the Trainer loop keep a bare step's speed? (issue 20: within 10 %)

    python benchmarks/trainer_vs_bare_step.py                                  # the 30-minute recipe
    python benchmarks/trainer_vs_bare_step.py configs/pretrain_offline.yaml --steps 30 --rounds 3
    python benchmarks/trainer_vs_bare_step.py --bf16 false          # other flags: overrides of the config

In one process, on one model, alternately for `--rounds` rounds:
- **Trainer**: `PretrainingTrainer.train()` as `run_pretraining.py` builds it from the config (its data loader and
  collator, the label count, gradient clipping, the learning-rate schedule, the time budget, callbacks, the
  progress bar), for `--warmup` + `--steps` optimizer steps, timed by a callback from the end of the warm-up
  steps to the last step;
- **bare step**: forward, backward and a fused AdamW step under the same autocast, on `--steps` batches that the
  same collator made beforehand (so data loading and every Trainer feature are what the two differ by).
Each round and side starts from the same weights, and the sides take turns going first. Both count non-padding
tokens. Configs whose Trainer step does other work than one bare CPU step (gradient accumulation, torch_compile,
fp16, a masking-rate schedule, a GPU) are refused. Prints the medians and the ratio, and writes JSON (--json). The config's data is
read as the run would read it (the Wikipedia sample for the recipe: ../shared/data must be there).
"""

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import TrainerCallback

from scratchbert.cli import parse_config
from scratchbert.pretraining import (
    DataArguments,
    ModelArguments,
    build_datasets,
    build_model,
    build_trainer,
    load_documents_and_tokenizer,
)
from scratchbert.runs.options import RunArguments, ScratchBertTrainingArguments

REPO_ROOT = Path(__file__).resolve().parents[1]


class StepClock(TrainerCallback):
    """(time, non-padding tokens seen) at the end of every optimizer step."""

    def __init__(self):
        self.marks = []

    def on_step_end(self, args, state, control, **kwargs):
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen))


def trainer_rate(build, warmup: int, steps: int) -> tuple[float, int]:
    """(non-padding tokens/s over the timed steps, optimizer steps run) of one PretrainingTrainer.train()."""
    trainer = build(max_steps=warmup + steps)
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    if len(clock.marks) != warmup + steps:
        raise RuntimeError(f"the Trainer ran {len(clock.marks)} steps, not {warmup + steps}: its time budget or "
                           "a non-finite loss ended it early")
    (t0, n0), (t1, n1) = clock.marks[warmup - 1], clock.marks[-1]
    return (n1 - n0) / (t1 - t0), len(clock.marks)


def bare_rate(model, optimizer, batches, bf16: bool, max_grad_norm: float, warmup: int) -> float:
    """Non-padding tokens/s of forward, backward, clipping and optimizer step over `batches` (after `warmup` of them)."""
    model.train()

    def step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**batch).loss
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)  # as the Trainer does
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batch in batches[:warmup]:  # the allocator and kernels, after the other side's round
        step(batch)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    return tokens / (time.perf_counter() - start)


def cpu_name() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", default=str(REPO_ROOT / "configs" / "pretrain_wikipedia_30min.yaml"))
    parser.add_argument("--steps", type=int, default=60, help="timed steps per round and side")
    parser.add_argument("--warmup", type=int, default=10, help="Trainer steps before its clock starts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=str(REPO_ROOT / "benchmarks" / "results" / "trainer_vs_bare_step.json"))
    args, overrides = parser.parse_known_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")

    out = tempfile.TemporaryDirectory(prefix="trainer-vs-bare-")
    model_args, data_args, run_args, training_args, _ = parse_config(
        (ModelArguments, DataArguments, RunArguments, ScratchBertTrainingArguments),
        [args.config, *overrides, "--output_dir", out.name, "--eval_strategy", "no", "--save_strategy", "no",
         "--report_to", "none", "--max_steps", str(args.warmup + args.steps)],
    )
    # The bare step is one CPU step of the model's own loss: configs that make the Trainer do other work are refused.
    unlike = {
        "gradient_accumulation_steps > 1": training_args.gradient_accumulation_steps > 1,
        "torch_compile": training_args.torch_compile,
        "fp16": training_args.fp16,
        "a device other than the CPU": training_args.device.type != "cpu",
    }
    if any(unlike.values()):
        parser.error(f"the bare step cannot mirror {', '.join(k for k, v in unlike.items() if v)}")
    training_args.include_num_input_tokens_seen = "non_padding"
    training_args.label_names = ["labels"] if data_args.mlm_only else ["labels", "next_sentence_label"]
    training_args.remove_unused_columns = False
    transformers.set_seed(training_args.seed)
    tokenizer, train_documents, eval_documents = load_documents_and_tokenizer(model_args, data_args, training_args)
    model = build_model(model_args, tokenizer, data_args)
    train_dataset, eval_dataset = build_datasets(train_documents, eval_documents, tokenizer, data_args, training_args)

    def build(max_steps: int):
        training_args.max_steps = max_steps
        return build_trainer(model, tokenizer, train_dataset, eval_dataset, data_args, run_args, training_args)

    first = build(args.steps)
    loader = iter(first.get_train_dataloader())
    batches = [next(loader) for _ in range(args.steps)]  # what the Trainer's loader gives its first steps
    del loader  # no worker prefetching during the timing
    optimizer = first.create_optimizer()  # the config's optimizer and weight-decay groups, as the Trainer makes them
    bf16 = bool(training_args.bf16)
    initial_weights = {k: v.clone() for k, v in model.state_dict().items()}

    rates = {"trainer": [], "bare_step": []}
    steps_run = []
    for round_ in range(args.rounds):
        sides = ("bare_step", "trainer") if round_ % 2 == 0 else ("trainer", "bare_step")  # alternate who goes first
        for side in sides:
            model.load_state_dict(initial_weights)  # every round and side times the same weights
            if side == "trainer":
                rate, ran = trainer_rate(build, args.warmup, args.steps)
                steps_run.append(ran)
            else:
                rate = bare_rate(model, optimizer, batches, bf16, training_args.max_grad_norm, min(args.warmup, args.steps))
            rates[side].append(rate)
    out.cleanup()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    ratio = medians["trainer"] / medians["bare_step"]
    report = {
        "config": args.config, "cpu": cpu_name(), "torch": torch.__version__,
        "transformers": transformers.__version__, "threads": torch.get_num_threads(), "bf16": bf16,
        "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds, "trainer_steps_run": steps_run,
        "bare_step_tokens_per_round": sum(int(b["attention_mask"].sum()) for b in batches),
        "tokens_per_second": rates, "median_tokens_per_second": medians, "trainer_over_bare_step": ratio,
    }
    print(f"\n{Path(args.config).name}: Trainer {medians['trainer']:,.0f} tokens/s, bare step "
          f"{medians['bare_step']:,.0f} tokens/s (non-padding; medians of {args.rounds} rounds): "
          f"Trainer / bare = {ratio:.3f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"Wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
