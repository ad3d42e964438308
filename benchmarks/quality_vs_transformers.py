"""Quality in the same time: ScratchBert and transformers' BertForPreTraining, one recipe, one budget, one process.

    python benchmarks/quality_vs_transformers.py                          # 5 minutes each, the 30-minute recipe
    python benchmarks/quality_vs_transformers.py --minutes 30 --json out.json
    python benchmarks/quality_vs_transformers.py --config configs/pretrain_offline.yaml --minutes 1

The recipe's options that BERT has no layout for (`attention_position_bias: alibi`, `layer_norm_position: pre`)
are dropped for both models by default, so both train one architecture and the race is between implementations;
`--scratchbert-options keep` keeps them for ScratchBert alone (what a user of each gets from the recipe).

Both models start from the same weights (ScratchBert's fresh initialisation, converted to BERT's names), see
the same training examples in the same order with the same masks, and train with the same optimizer, learning
rate schedule and time budget (`max_train_minutes`). Both are then scored on the same held-out examples, masked
once: transformers' BERT is converted back to ScratchBert for scoring, which computes the same function
(equal to 1e-5 by tests/test_convert.py), so one evaluation code path scores both. Prints each model's tokens
seen, held-out masked accuracy and MLM loss beside the unigram lines, and the ratios. Extra arguments after
the options are flags for the config (e.g. `--per_device_train_batch_size 16`).
"""

import argparse
import copy
import json
import os
import platform
from pathlib import Path

import torch
import transformers
from transformers import BertForPreTraining, TrainingArguments

import scratchbert
from scratchbert.cli import parse_config
from scratchbert import convert
from scratchbert.convert import bert_to_scratchbert_state_dict, scratchbert_config_to_bert, scratchbert_to_bert_state_dict
from scratchbert.pretraining import (
    DataArguments,
    ModelArguments,
    build_datasets,
    build_model,
    build_trainer,
    load_documents_and_tokenizer,
)
from scratchbert.runs.options import RunArguments

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "pretrain_wikipedia_30min.yaml"
BERT_LAYOUT = {option: bert_value for option, (bert_value, _) in convert.BERT_LAYOUT.items()}  # what BERT computes
FIGURES = ("train_tokens", "steps", "eval_mlm_masked_accuracy", "eval_mlm_loss", "eval_mlm_accuracy", "eval_nsp_accuracy")


def train_for_the_budget(name, model, tokenizer, datasets_, data_args, run_args, training_args, output_dir):
    args = copy.deepcopy(training_args)
    args.output_dir = str(output_dir / name)
    trainer = build_trainer(model, tokenizer, *datasets_, data_args, run_args, args)
    trainer.train()
    return trainer


def evaluate_bert_as_scratchbert(bert, config, tokenizer, datasets_, data_args, run_args, training_args, output_dir):
    """transformers' BERT, converted to ScratchBert (the same function), scored by the same evaluation code."""
    model = scratchbert.ScratchBertForPreTraining(copy.deepcopy(config))
    model.load_state_dict(bert_to_scratchbert_state_dict(bert.state_dict()), strict=False)
    model.tie_weights()
    args = copy.deepcopy(training_args)
    args.output_dir = str(output_dir / "transformers-scored")
    return build_trainer(model, tokenizer, *datasets_, data_args, run_args, args).evaluate()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="pretraining YAML (default: the 30-minute recipe)")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget of each model")
    parser.add_argument("--output_dir", default="outputs/quality-vs-transformers")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument(
        "--scratchbert-options", choices=["drop", "keep"], default="drop",
        help="options BERT has no layout for: drop them for both models (default) or keep them for ScratchBert",
    )
    options, config_flags = parser.parse_known_args()

    model_args, data_args, run_args, training_args, _ = parse_config(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments),
        [options.config, *config_flags, "--max_train_minutes", str(options.minutes), "--save_strategy", "no",
         "--eval_strategy", "no", "--report_to", "none", "--output_dir", options.output_dir],
    )
    training_args.include_num_input_tokens_seen = "non_padding"
    training_args.label_names = ["labels", "next_sentence_label"]
    training_args.remove_unused_columns = False
    output_dir = Path(options.output_dir)
    transformers.set_seed(training_args.seed)

    # Options the pretraining arguments lack (classifier_pooling: a fine-tuning head's) are BERT's already.
    dropped = {k: v for k, v in BERT_LAYOUT.items() if getattr(model_args, k, v) != v}
    if dropped and options.scratchbert_options == "drop":
        print(f"Both models train BERT's layout: dropping {', '.join(f'{k}={getattr(model_args, k)}' for k in dropped)}")
        for key, value in dropped.items():
            setattr(model_args, key, value)
    tokenizer, train_documents, eval_documents = load_documents_and_tokenizer(model_args, data_args, training_args)
    datasets_ = build_datasets(train_documents, eval_documents, tokenizer, data_args, training_args)
    scratch = build_model(model_args, tokenizer, data_args)
    bert_layout = copy.deepcopy(scratch.config)
    bert_layout.update(BERT_LAYOUT)
    bert = BertForPreTraining(scratchbert_config_to_bert(bert_layout))
    start = {k: v for k, v in scratch.state_dict().items() if "final_norm" not in k}  # pre-LN's extra LayerNorm
    missing, unexpected = bert.load_state_dict(scratchbert_to_bert_state_dict(start), strict=False)
    assert not unexpected and all("position_ids" in k or "token_type_ids" in k for k in missing), (missing, unexpected)
    bert.tie_weights()

    results = {}
    scratch_trainer = train_for_the_budget("scratchbert", scratch, tokenizer, datasets_, data_args, run_args, training_args, output_dir)
    results["scratchbert"] = {**scratch_trainer.evaluate(), "train_tokens": scratch_trainer.state.num_input_tokens_seen,
                              "steps": scratch_trainer.state.global_step}
    bert_trainer = train_for_the_budget("transformers", bert, tokenizer, datasets_, data_args, run_args, training_args, output_dir)
    bert_scores = evaluate_bert_as_scratchbert(bert, bert_layout, tokenizer, datasets_, data_args, run_args,
                                               training_args, output_dir)
    results["transformers"] = {**bert_scores,
                               "train_tokens": bert_trainer.state.num_input_tokens_seen,
                               "steps": bert_trainer.state.global_step}

    s, t = results["scratchbert"], results["transformers"]
    rows = [(figure, s[figure], t[figure], s[figure] / t[figure] if t[figure] else float("nan")) for figure in FIGURES]
    kept = f"; ScratchBert alone keeps {dropped}" if dropped and options.scratchbert_options == "keep" else ""
    print(f"\nSame recipe, data and budget ({options.minutes:g} minutes of training each), {options.config}{kept}")
    print(f"{'figure':28s} {'ScratchBert':>12s} {'transformers':>12s} {'ratio':>8s}")
    for figure, a, b, ratio in rows:
        print(f"{figure:28s} {a:12.4g} {b:12.4g} {ratio:7.2f}x")
    print(f"{'eval_mlm_unigram_accuracy':28s} {s['eval_mlm_unigram_accuracy']:12.4g} (the line both must clear)")
    print(f"{'eval_mlm_unigram_loss':28s} {s['eval_mlm_unigram_loss']:12.4g} (the loss of word frequencies alone)")
    report = {
        "config": options.config, "minutes": options.minutes, "flags": config_flags,
        "bert_layout_options": {"dropped_for_both" if options.scratchbert_options == "drop" else "kept_for_scratchbert": dropped},
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "transformers": transformers.__version__},
        "rows": [{"figure": f, "scratchbert": a, "transformers": b, "ratio": r} for f, a, b, r in rows],
        "scratchbert": s, "transformers": t,
    }
    if options.json:
        Path(options.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
