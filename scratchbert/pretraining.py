"""MLM + NSP pretraining with transformers' Trainer: the library behind run_pretraining.py.

The flow, top to bottom in `run()`: parse and check every input, load documents, get a tokenizer (load or
train one), turn documents into masked-LM + NSP examples (cached by `datasets`), build or load the model, train,
evaluate, and export a folder that loads anywhere (weights, tokenizer, remote code, model card, results).
"""

import json
import logging
import logging.handlers
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch.nn.functional as F
import transformers
from transformers import AutoModelForPreTraining, AutoTokenizer, TrainingArguments

from .cli import ConfigError, parse_config
from .runs import (
    GuardedTrainer,
    RunArguments,
    check_output_dir,
    publish_results,
    resolve_checkpoint,
    script_main,
    save_final_model,
    setup_logging,
    train_and_report_io_errors,
)
from .configuration_scratchbert import ScratchBertConfig
from .corpus import CorpusError, load_documents
from .nsp import DataCollatorForPretraining, MaskingEpochCallback, build_examples, tokenize_documents
from .tokenization import train_wordpiece_tokenizer

logger = logging.getLogger("scratchbert.pretraining")

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "configs" / "pretrain_offline.yaml"


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Continue pretraining this checkpoint (folder or Hub id); else a fresh model"}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id; default: the checkpoint's, else train WordPiece"}
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "Vocabulary size: of the WordPiece tokenizer to train, or checked against a given one"}
    )
    lowercase: bool = field(default=True, metadata={"help": "Lowercase text in a newly trained tokenizer"})
    tokenizer_training_documents: int = field(
        default=100_000, metadata={"help": "At most this many documents train the tokenizer"}
    )
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    mlm_loss_weight: float = 1.0
    nsp_loss_weight: float = 1.0
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa or eager"})
    sparse_mlm_prediction: bool = field(
        default=True, metadata={"help": "Run the MLM head on masked positions only in training (same loss, faster)"}
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset, e.g. wikimedia/wikipedia"})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. 20231101.en"})
    streaming: bool = field(default=False, metadata={"help": "Stream the Hub dataset instead of downloading it"})
    train_file: str | None = field(
        default=None, metadata={"help": "Local .txt (BERT format: a sentence a line, blank line between documents), .json/.jsonl/.csv/.parquet"}
    )
    corpus: str | None = field(
        default=None, metadata={"help": "offline (Python docs shipped with CPython, the default) or synthetic"}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding a document's text"})
    max_documents: int | None = field(default=None, metadata={"help": "Use at most this many documents"})
    synthetic_documents: int = field(default=2000, metadata={"help": "Documents the synthetic corpus generates"})
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "Percent of documents held out for evaluation"}
    )
    max_eval_documents: int | None = field(default=None, metadata={"help": "Cap on held-out documents"})
    max_seq_length: int = 128
    short_seq_prob: float = field(default=0.1, metadata={"help": "Probability of a shorter target length, as in BERT"})
    dupe_factor: int = field(default=1, metadata={"help": "Times each document is used, with different pairs"})
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    mlm_only: bool = field(default=False, metadata={"help": "Train MLM alone (single segments, no NSP)"})
    preprocessing_num_workers: int | None = None
    cache_dir: str | None = None


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer, data and model
# ----------------------------------------------------------------------------------------------------------------


def get_tokenizer(model_args: ModelArguments, data_args: DataArguments, train_documents):
    source = model_args.tokenizer_name or model_args.model_name_or_path
    if source:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except Exception as error:
            raise ConfigError(f"cannot load a tokenizer from {source}: {error}") from None
        if model_args.vocab_size is not None and model_args.vocab_size != len(tokenizer):
            logger.warning(
                "vocab_size=%d is for training a tokenizer; the model takes the size of %s: %d tokens",
                model_args.vocab_size, source, len(tokenizer),
            )
        return tokenizer
    vocab_size = model_args.vocab_size or 30522
    # WordPiece training breaks frequency ties in hash order, so two trainings on one corpus may differ in a
    # few rare tokens. Keep the trained tokenizer by corpus fingerprint: reruns share it, and their caches.
    # Under several processes the main one trains it first and the others load the same files.
    from datasets.fingerprint import Hasher

    corpus_id = getattr(train_documents, "_fingerprint", None) or (
        data_args.dataset_name, data_args.dataset_config_name, data_args.train_file, data_args.max_documents
    )
    key = Hasher.hash((
        "wordpiece-v1", corpus_id, vocab_size, model_args.lowercase,
        model_args.max_position_embeddings, model_args.tokenizer_training_documents,
    ))
    cached = Path(data_args.cache_dir or datasets.config.HF_DATASETS_CACHE) / "scratchbert_tokenizers" / key
    if (cached / "tokenizer.json").is_file():
        logger.info("Reusing the WordPiece tokenizer trained on this corpus before: %s", cached)
        return AutoTokenizer.from_pretrained(cached)
    logger.info("Training a WordPiece tokenizer (vocab %d) on the training corpus", vocab_size)
    texts = (row["text"] for row in train_documents.take(model_args.tokenizer_training_documents))
    tokenizer = train_wordpiece_tokenizer(
        texts, vocab_size=vocab_size, lowercase=model_args.lowercase, model_max_length=model_args.max_position_embeddings
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = cached.with_name(f"{cached.name}.partial-{os.getpid()}")
    tokenizer.save_pretrained(staging)
    try:
        os.replace(staging, cached)  # atomic: a reader never sees half a tokenizer
    except OSError:  # another process got there first
        shutil.rmtree(staging, ignore_errors=True)
    return tokenizer


def split_documents(documents, data_args: DataArguments, seed: int):
    """Hold out whole documents for evaluation, so no eval pair shares a document with training."""
    if data_args.streaming:
        n_eval = data_args.max_eval_documents or 1000
        return documents.skip(n_eval), documents.take(n_eval)
    if len(documents) < 2:
        raise CorpusError("the corpus needs at least 2 documents (one to train on, one to evaluate)")
    n_eval = max(1, round(len(documents) * data_args.validation_split_percentage / 100))
    if data_args.max_eval_documents is not None:
        n_eval = min(n_eval, data_args.max_eval_documents)
    n_eval = min(n_eval, len(documents) - 1)
    split = documents.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"]


def build_dataset(documents, tokenizer, data_args: DataArguments, seed: int, description: str):
    """Documents -> tokenized sentences -> pretraining examples, both steps cached by `datasets`.

    The cache keys are explicit (input fingerprint + tokenizer JSON + settings): a freshly trained tokenizer
    pickles differently each run, which would otherwise defeat the cache.
    """
    from datasets.fingerprint import Hasher

    streaming = data_args.streaming
    tokenizer_state = tokenizer.backend_tokenizer.to_str()
    sentences_kwargs, examples_kwargs = {}, {}
    if not streaming:
        sentences_fingerprint = Hasher.hash(("sentences-v1", documents._fingerprint, tokenizer_state))
        sentences_kwargs = dict(
            num_proc=data_args.preprocessing_num_workers, desc=f"{description}: tokenizing", new_fingerprint=sentences_fingerprint
        )
    sentences = documents.map(
        tokenize_documents, batched=True, remove_columns=["text"], fn_kwargs={"tokenizer": tokenizer}, **sentences_kwargs
    )
    if not streaming and not data_args.mlm_only:
        counts = sentences.map(
            lambda batch: {"multi": [len(s) >= 2 for s in batch["sentences"]]},
            batched=True, remove_columns=["sentences"], new_fingerprint=Hasher.hash(("multi-v1", sentences_fingerprint)),
        )
        if not any(counts["multi"]):
            raise CorpusError(
                f"{description}: no document has two or more sentences, so no next-sentence pairs can be made; "
                "give documents of several sentences, or pass --mlm_only to train masked LM alone"
            )
    build_kwargs = {
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "max_seq_length": data_args.max_seq_length,
        "short_seq_prob": data_args.short_seq_prob,
        "dupe_factor": data_args.dupe_factor,
        "nsp": not data_args.mlm_only,
        "seed": seed,
    }
    if not streaming:
        examples_kwargs = dict(
            num_proc=data_args.preprocessing_num_workers,
            desc=f"{description}: building {'MLM' if data_args.mlm_only else 'MLM + NSP'} examples",
            new_fingerprint=Hasher.hash(("examples-v1", sentences_fingerprint, sorted(build_kwargs.items()))),
        )
    examples = sentences.map(
        build_examples, batched=True, batch_size=1000, with_indices=True, remove_columns=["sentences"],
        fn_kwargs=build_kwargs, **examples_kwargs,
    )
    if not streaming and len(examples) == 0:
        raise CorpusError(f"{description}: the documents produced no examples (are they empty?)")
    return examples


def build_model(model_args: ModelArguments, tokenizer, data_args: DataArguments):
    vocab_size = len(tokenizer)
    if model_args.model_name_or_path:
        try:
            model = AutoModelForPreTraining.from_pretrained(
                model_args.model_name_or_path, attn_implementation=model_args.attn_implementation
            )
        except Exception as error:
            raise ConfigError(f"cannot load a pretraining model from {model_args.model_name_or_path}: {error}") from None
        if model.config.model_type != "scratchbert":
            raise ConfigError(
                f"{model_args.model_name_or_path} is a {model.config.model_type!r} model; convert a BERT with "
                "`python -m scratchbert.convert bert-to-scratchbert` first"
            )
        if model.config.vocab_size != vocab_size:
            raise ConfigError(
                f"the checkpoint's vocab_size ({model.config.vocab_size}) does not match its tokenizer's "
                f"({vocab_size} tokens); pass the tokenizer it was trained with"
            )
    else:
        try:
            config = ScratchBertConfig(
                vocab_size=vocab_size,
                hidden_size=model_args.hidden_size,
                num_hidden_layers=model_args.num_hidden_layers,
                num_attention_heads=model_args.num_attention_heads,
                intermediate_size=model_args.intermediate_size,
                hidden_act=model_args.hidden_act,
                hidden_dropout_prob=model_args.hidden_dropout_prob,
                attention_probs_dropout_prob=model_args.attention_probs_dropout_prob,
                max_position_embeddings=model_args.max_position_embeddings,
                pad_token_id=tokenizer.pad_token_id,
                mlm_loss_weight=model_args.mlm_loss_weight,
                nsp_loss_weight=model_args.nsp_loss_weight,
                sparse_mlm_prediction=model_args.sparse_mlm_prediction,
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
        model = AutoModelForPreTraining.from_config(config, attn_implementation=model_args.attn_implementation)
    if data_args.max_seq_length > model.config.max_position_embeddings:
        raise ConfigError(
            f"max_seq_length={data_args.max_seq_length} exceeds the model's max_position_embeddings="
            f"{model.config.max_position_embeddings}"
        )
    if data_args.mlm_only:
        model.config.nsp_loss_weight = 0.0  # no NSP labels; recorded in the saved config
    return model


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------


def reduce_logits_for_metrics(logits, labels):
    """Per batch, keep what the metrics need instead of [B, T, V] logits: predictions and per-token MLM loss."""
    prediction_logits, nsp_logits = logits[0], logits[1]
    mlm_labels = labels[0] if isinstance(labels, (tuple, list)) else labels
    token_loss = F.cross_entropy(
        prediction_logits.float().transpose(1, 2), mlm_labels, ignore_index=-100, reduction="none"
    )  # [B, T], 0 where unlabelled
    return prediction_logits.argmax(-1), token_loss, nsp_logits.float()


def compute_pretraining_metrics(eval_prediction) -> dict[str, float]:
    """MLM loss / accuracy / perplexity and the most-frequent-token baseline; NSP loss / accuracy when present."""
    mlm_predictions, token_loss, nsp_logits = eval_prediction.predictions
    label_ids = eval_prediction.label_ids
    mlm_labels, nsp_labels = (label_ids if isinstance(label_ids, (tuple, list)) else (label_ids, None))[:2]
    labelled = mlm_labels != -100
    n = max(int(labelled.sum()), 1)
    mlm_loss = float(token_loss[labelled].sum() / n)
    counts = np.bincount(mlm_labels[labelled].astype(np.int64)) if labelled.any() else np.array([0])
    metrics = {
        "mlm_loss": mlm_loss,
        "mlm_accuracy": float((mlm_predictions[labelled] == mlm_labels[labelled]).sum() / n),
        "mlm_baseline_accuracy": float(counts.max() / n),
        "perplexity": float(math.exp(min(mlm_loss, 50))),
        "masked_tokens": int(labelled.sum()),
    }
    if nsp_labels is not None:
        nsp_labels = nsp_labels.reshape(-1).astype(np.int64)
        logits = nsp_logits.reshape(-1, 2)[: len(nsp_labels)]
        log_probs = logits - np.logaddexp(logits[:, 0], logits[:, 1])[:, None]
        metrics["nsp_loss"] = float(-log_probs[np.arange(len(nsp_labels)), nsp_labels].mean())
        metrics["nsp_accuracy"] = float((logits.argmax(-1) == nsp_labels).mean())
    return metrics


# ----------------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------------


def write_model_card(output_dir: Path, results: dict, model_args, data_args, training_args, config_path):
    source = (
        f"Hub dataset `{data_args.dataset_name}` (`{data_args.dataset_config_name}`)"
        if data_args.dataset_name
        else f"local file `{data_args.train_file}`"
        if data_args.train_file
        else f"the `{data_args.corpus or 'offline'}` corpus"
    )
    config = json.loads((output_dir / "config.json").read_text())
    objective = "masked language modelling" if data_args.mlm_only else "masked language modelling + next sentence prediction"
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in results.items())
    card = f"""---
library_name: transformers
tags:
- scratchbert
- bert
- fill-mask
---

# ScratchBert ({config['hidden_size']} hidden, {config['num_hidden_layers']} layers, {config['num_attention_heads']} heads)

A BERT encoder pretrained from scratch with [ScratchBert](https://github.com/) on {source},
with {objective}: max sequence length {data_args.max_seq_length}, {results.get('steps')} steps of
{training_args.per_device_train_batch_size} x {training_args.gradient_accumulation_steps} sequences per device,
learning rate {training_args.learning_rate}{f', config `{config_path}`' if config_path else ''}.

## Results (held-out documents)

| metric | value |
|---|---|
{metrics}

`eval_mlm_baseline_accuracy` is the accuracy of always predicting the most frequent masked token.

## Load it

The folder carries its own code, so it loads without ScratchBert installed:

```python
from transformers import AutoModelForMaskedLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{output_dir.name}", trust_remote_code=True)
model = AutoModelForMaskedLM.from_pretrained("{output_dir.name}", trust_remote_code=True)
```

Any head loads from it (`AutoModelForSequenceClassification`, `AutoModelForPreTraining`, ...); with
`import scratchbert` first, `trust_remote_code` is not needed.
"""
    (output_dir / "README.md").write_text(card)


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> dict:
    start = time.time()
    model_args, data_args, run_args, training_args, config_path = parse_config(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments), argv, DEFAULT_CONFIG
    )
    setup_logging(training_args, run_args)
    logger.info("Configuration: %s", config_path or "flags only")
    check_output_dir(training_args, run_args)
    checkpoint = resolve_checkpoint(training_args)
    if data_args.max_seq_length < 8:
        raise ConfigError(f"max_seq_length={data_args.max_seq_length} is too short for a sentence pair")
    if data_args.max_seq_length > model_args.max_position_embeddings and not model_args.model_name_or_path:
        raise ConfigError(
            f"max_seq_length={data_args.max_seq_length} exceeds max_position_embeddings={model_args.max_position_embeddings}"
        )
    if run_args.wandb_project and not os.environ.get("WANDB_PROJECT"):
        os.environ["WANDB_PROJECT"] = run_args.wandb_project
    push_to_hub = training_args.push_to_hub
    training_args.push_to_hub = False  # the Trainer would push every checkpoint; we push the final folder once
    if training_args.include_num_input_tokens_seen == "no":
        training_args.include_num_input_tokens_seen = "non_padding"
    training_args.label_names = ["labels"] if data_args.mlm_only else ["labels", "next_sentence_label"]
    training_args.remove_unused_columns = False  # the collator consumes special_tokens_mask; nothing else is extra
    transformers.set_seed(training_args.seed)

    documents = load_documents(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        corpus=data_args.corpus,
        text_column=data_args.text_column,
        streaming=data_args.streaming,
        max_documents=data_args.max_documents,
        synthetic_documents_count=data_args.synthetic_documents,
        seed=training_args.seed,
        cache_dir=data_args.cache_dir,
    )
    train_documents, eval_documents = split_documents(documents, data_args, training_args.seed)
    with training_args.main_process_first(desc="training the tokenizer"):
        tokenizer = get_tokenizer(model_args, data_args, train_documents)
    model = build_model(model_args, tokenizer, data_args)

    with training_args.main_process_first(desc="building the datasets"):
        train_dataset = build_dataset(train_documents, tokenizer, data_args, training_args.seed, "train")
        eval_dataset = build_dataset(eval_documents, tokenizer, data_args, training_args.seed + 1, "eval")
    if data_args.streaming and training_args.max_steps <= 0:
        raise ConfigError("a streamed corpus has no length: set max_steps")
    if not data_args.streaming:
        logger.info("%d training and %d evaluation examples", len(train_dataset), len(eval_dataset))

    collator_kwargs = dict(
        tokenizer=tokenizer, mlm_probability=data_args.mlm_probability, whole_word_mask=data_args.whole_word_mask,
        seed=training_args.seed,
    )
    train_collator = DataCollatorForPretraining(**collator_kwargs)
    trainer = GuardedTrainer(
        on_nonfinite_loss=run_args.on_nonfinite_loss,
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=train_collator,
        callbacks=[MaskingEpochCallback(train_collator)],
        processing_class=tokenizer,
        compute_metrics=compute_pretraining_metrics,
        preprocess_logits_for_metrics=reduce_logits_for_metrics,
    )
    train_result = train_and_report_io_errors(trainer, checkpoint)
    eval_metrics = trainer.evaluate()

    output_dir = Path(training_args.output_dir)
    save_final_model(trainer, output_dir)  # model.save_pretrained (with remote code) + tokenizer
    runtime = train_result.metrics.get("train_runtime") or 1e-9
    tokens_seen = trainer.state.num_input_tokens_seen
    # A resumed run's state counts the earlier session's tokens too; its runtime does not.
    session_tokens = tokens_seen - getattr(trainer, "_initial_num_input_tokens_seen", 0)
    results = {
        "train_loss": train_result.training_loss,
        **{k: v for k, v in eval_metrics.items() if k.startswith("eval_")},
        "steps": trainer.state.global_step,
        "train_tokens": tokens_seen,
        "train_tokens_per_second": session_tokens / runtime,
        "train_runtime_seconds": runtime,
        "runtime_seconds": time.time() - start,
        "device": str(training_args.device),
        "world_size": training_args.world_size,
        "config": config_path,
    }
    if trainer.is_world_process_zero():
        write_model_card(output_dir, results, model_args, data_args, training_args, config_path)
        publish_results(output_dir, results, run_args, training_args, push_to_hub)
    return results


def main(argv: list[str] | None = None) -> int:
    return script_main(run, argv, (ConfigError, CorpusError))
