"""Every model card ScratchBert writes: a saved folder's README.md.

A card is front matter that the Hub (and `huggingface_hub.ModelCard`) parses, built with huggingface_hub's own
`ModelCardData` and `EvalResult`, then text from the templates below, filled with `str.format`. The model-index
holds the saved model's own scores only; trivial predictors' lines and other models' scores (an rtd run's
generator) stay in the text and results.json.

- `write_pretraining_card`: run_pretraining.py's export, with the objective's own parts (`CardParts`: MLM_CARD,
  RTD_CARD), and `write_generator_card` for replaced-token detection's generator/ folder.
- `write_classification_card`, `write_token_classification_card`: the fine-tuning scripts' exports.
"""

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

logger = logging.getLogger(__name__)

LICENSE = "apache-2.0"  # ScratchBert's licence; the weights' terms also follow the data they were trained on


# ----------------------------------------------------------------------------------------------------------------
# Front matter
# ----------------------------------------------------------------------------------------------------------------


def is_baseline(name: str) -> bool:
    """A metric line that scores a trivial predictor (majority class, all O, most frequent token), not the model."""
    return "baseline" in name.lower()


def front_matter(
    model_name: str,
    pipeline_tag: str,
    tags: list[str],
    task_type: str,
    dataset_name: str,
    dataset_type: str,
    metrics: list[tuple],
    datasets: list[str] | None = None,
    base_model: str | None = None,
    dataset_config: str | None = None,
    dataset_split: str = "validation",
) -> str:
    """`---` YAML `---`: library, licence, pipeline tag, tags, datasets, base model and a model-index whose
    results are `metrics`, (metric type, readable name, value) each, or (metric type, readable name, value, split)
    for a score on another split (MNLI's validation_mismatched), measured on `dataset_name` (`dataset_type`, its
    config `dataset_config`, split `dataset_split`: a split name the Hub reads).

    The model-index holds the model's own scores only: the Hub and leaderboards read every entry as this model's
    result, so a line that scores a trivial predictor (a name with "baseline" in it) is left out; it belongs in
    the card's text and results.json."""
    own = [metric for metric in metrics if not is_baseline(metric[1])]
    if len(own) < len(metrics):
        logger.info("Model card: %d baseline line(s) kept out of the model-index", len(metrics) - len(own))
    data = ModelCardData(
        library_name="transformers",
        license=LICENSE,
        pipeline_tag=pipeline_tag,
        tags=tags,
        datasets=datasets or None,
        base_model=base_model,
        model_name=model_name,
        eval_results=[
            EvalResult(task_type=task_type, dataset_type=dataset_type, dataset_name=dataset_name,
                       dataset_config=dataset_config, dataset_split=split[0] if split else dataset_split,
                       metric_type=metric_type, metric_name=name, metric_value=float(value))
            for metric_type, name, value, *split in own
        ] or None,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def hub_id_or_none(name_or_path: str | None) -> str | None:
    """A model's Hub id, for `base_model`; None for a local folder (the Hub takes ids only)."""
    if not name_or_path or Path(name_or_path).exists():
        return None
    return name_or_path


def results_rows(results: dict) -> str:
    """results.json as the rows of a `| metric | value |` table (nested values left out)."""
    return "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in results.items() if not isinstance(v, dict))


def scores(results: dict, lines: tuple[tuple[str, str, str], ...]) -> list[tuple[str, str, float]]:
    """(metric type, readable name, value) for each (type, name, results key) of `lines` with a finite number."""
    return [(kind, name, results[key]) for kind, name, key in lines
            if isinstance(results.get(key), (int, float)) and math.isfinite(results[key])]


# ----------------------------------------------------------------------------------------------------------------
# Pretraining: the exported encoder, and replaced-token detection's generator
# ----------------------------------------------------------------------------------------------------------------

PRETRAINING_CARD = """
# ScratchBert ({hidden_size} hidden, {num_hidden_layers} layers, {num_attention_heads} heads)

A BERT encoder pretrained {start} with ScratchBert on {source},
with {objective}: max sequence length {max_seq_length}, {steps} steps of
{batch_size} x {accumulation} sequences per device,
learning rate {learning_rate}{config}.

## Results (held-out documents)

| metric | value |
|---|---|
{rows}

Each figure stands beside the trivial predictor it must beat. The held-out examples are masked once
(15 %, 80/10/10, a fixed seed), the same for every run on these documents and this tokenizer.
`eval_mlm_masked_accuracy` is measured at [MASK] positions only, against `eval_mlm_unigram_accuracy`
(always the most frequent token there); `eval_mlm_accuracy` counts every chosen position, as BERT reports it,
against `eval_mlm_copy_baseline_accuracy` (copy the input token unless it is [MASK]). `eval_mlm_loss` compares
with `eval_mlm_unigram_loss`, the loss of predicting word frequencies alone.
{curves}
## Load it

The folder carries its own code, so it loads without ScratchBert installed:

```python
from transformers import {load_class}, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{name}", trust_remote_code=True)
model = {load_class}.from_pretrained("{name}", trust_remote_code=True)
```

{heads_note}; with `import scratchbert` first, `trust_remote_code` is not needed.
{section}"""

CURVES = """
## Training curves

![training loss and held-out masked accuracy against tokens seen](training_curves.png)
"""

RTD_SECTION = """
## Replaced-token detection: what is where

This folder is the discriminator: `ScratchBertForReplacedTokenDetection` (the encoder, its replaced-token head and the
pair head). Every head loads its encoder as above. It has **no masked-LM head**, so `AutoModelForMaskedLM` and
`pipeline("fill-mask")` refuse this folder rather than answer from a random head. The generator, the small MLM
trained beside it, is in `generator/` (with a card of its own) and answers fill-mask:

```python
from transformers import pipeline
fill = pipeline("fill-mask", model="{name}/generator", trust_remote_code=True)
```

Held-out figures: `eval_rtd_accuracy` (the discriminator, every real token, at p > 0.5) against
`eval_rtd_all_original_accuracy` (calling every token original), `eval_rtd_auc`, and `eval_rtd_replaced_share` (the
share of tokens the generator changed). The `eval_mlm_*` figures are the generator's, not this model's.
"""

GENERATOR_CARD = """
# The generator of {parent} ({hidden_size} hidden, {num_hidden_layers} layers, {num_attention_heads} heads)

The small masked-LM that filled the masked positions while the discriminator in the folder above this one learned
replaced-token detection (ELECTRA), pretrained on {source}. It shares the discriminator's embeddings (a copy is
saved here) and answers fill-mask:

```python
from transformers import pipeline
fill = pipeline("fill-mask", model="{parent}/generator", trust_remote_code=True)
```

## Its held-out figures

| metric | value |
|---|---|
{rows}

At [MASK] positions: `eval_mlm_masked_accuracy` against `eval_mlm_unigram_accuracy` (always the most frequent token);
`eval_mlm_loss` against `eval_mlm_unigram_loss` (word frequencies alone).
"""

# The held-out masked-LM and pair figures: (metric type, name in the model-index, results key).
MASKED_LM_SCORES = (
    ("accuracy", "held-out accuracy at [MASK]", "eval_mlm_masked_accuracy"),
    ("accuracy", "held-out accuracy at [MASK]: most frequent token (baseline)", "eval_mlm_unigram_accuracy"),
    ("accuracy", "held-out masked-LM accuracy (all chosen positions)", "eval_mlm_accuracy"),
    ("loss", "held-out masked-LM loss", "eval_mlm_loss"),
)
PAIR_SCORES = (("accuracy", "held-out next-sentence accuracy", "eval_nsp_accuracy"),)
REPLACED_TOKEN_SCORES = (
    ("accuracy", "held-out replaced-token accuracy", "eval_rtd_accuracy"),
    ("roc_auc", "held-out replaced-token ROC AUC", "eval_rtd_auc"),
)


@dataclass(frozen=True)
class CardParts:
    """What an objective puts in its exported encoder's card."""

    pipeline_tag: str
    load_class: str  # the Auto class the card's example loads the folder with
    heads_note: str
    model_index: tuple  # MASKED_LM_SCORES-like lines: the saved model's own scores
    section: str = ""  # a template, filled with the folder's name
    tags: tuple[str, ...] = ()


MLM_CARD = CardParts(
    pipeline_tag="fill-mask", load_class="AutoModelForMaskedLM",
    heads_note="Any head loads from it (`AutoModelForSequenceClassification`, `AutoModelForPreTraining`, ...)",
    model_index=MASKED_LM_SCORES + PAIR_SCORES,
)
RTD_CARD = CardParts(
    pipeline_tag="feature-extraction", load_class="AutoModel",
    heads_note="Every head but the masked-LM ones loads its encoder (`AutoModelForSequenceClassification`, "
               "`AutoModelForTokenClassification`, ...; fill-mask: the generator, below)",
    model_index=REPLACED_TOKEN_SCORES + PAIR_SCORES, section=RTD_SECTION, tags=("electra",),
)


def corpus_description(data_args) -> str:
    """The pretraining corpus in words: a Hub dataset, a local file or a built-in corpus."""
    if data_args.dataset_name:
        return f"Hub dataset `{data_args.dataset_name}` (`{data_args.dataset_config_name}`)"
    if data_args.train_file:
        return f"local file `{data_args.train_file}`"
    return f"the `{data_args.corpus or 'offline'}` corpus"


def pretraining_front_matter(name: str, parts: CardParts, results: dict, model_args, data_args) -> str:
    source = corpus_description(data_args)
    pipeline_tag = parts.pipeline_tag
    return front_matter(
        model_name=name, pipeline_tag=pipeline_tag, tags=["scratchbert", "bert", pipeline_tag, *parts.tags],
        task_type=pipeline_tag, dataset_name=f"held-out documents of {source}".replace("`", ""),
        dataset_type=data_args.dataset_name or ("json" if data_args.train_file else data_args.corpus or "offline"),
        metrics=scores(results, parts.model_index), datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        base_model=hub_id_or_none(model_args.model_name_or_path),
    )


def write_pretraining_card(output_dir: Path, results: dict, parts: CardParts, objective: str, model_args, data_args,
                           training_args, config_path: str | None):
    """README.md of a pretraining run's export; `objective` describes what it learned, in words."""
    config = json.loads((output_dir / "config.json").read_text())
    start = f"from `{model_args.model_name_or_path}`" if model_args.model_name_or_path else "from scratch"
    text = PRETRAINING_CARD.format(
        **{k: config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads")},
        start=start, source=corpus_description(data_args), objective=objective, max_seq_length=data_args.max_seq_length,
        steps=results.get("steps"), batch_size=training_args.per_device_train_batch_size,
        accumulation=training_args.gradient_accumulation_steps, learning_rate=training_args.learning_rate,
        config=f", config `{config_path}`" if config_path else "", rows=results_rows(results),
        curves=CURVES if (output_dir / "training_curves.png").is_file() else "",
        load_class=parts.load_class, name=output_dir.name, heads_note=parts.heads_note,
        section=parts.section.format(name=output_dir.name),
    )
    header = pretraining_front_matter(output_dir.name, parts, results, model_args, data_args)
    (output_dir / "README.md").write_text(header + text)


def write_generator_card(generator_dir: Path, results: dict, model_args, data_args):
    """README.md of replaced-token detection's generator/: its own masked-LM figures in its model-index."""
    config = json.loads((generator_dir / "config.json").read_text())
    generator_results = {k: v for k, v in results.items() if k.startswith("eval_mlm_")}
    parts = CardParts(pipeline_tag="fill-mask", load_class="AutoModelForMaskedLM", heads_note="",
                      model_index=MASKED_LM_SCORES, tags=("electra-generator",))
    name = f"{generator_dir.parent.name}-generator"
    text = GENERATOR_CARD.format(
        **{k: config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads")},
        parent=generator_dir.parent.name, source=corpus_description(data_args), rows=results_rows(generator_results),
    )
    header = pretraining_front_matter(name, parts, generator_results, model_args, data_args)
    (generator_dir / "README.md").write_text(header + text)


# ----------------------------------------------------------------------------------------------------------------
# Fine-tuning: sentence (pair) classification and token classification
# ----------------------------------------------------------------------------------------------------------------

CLASSIFICATION_CARD = """
# ScratchBert fine-tuned on {data}

Fine-tuned from {start} with ScratchBert's run_classification.py{config},
max sequence length {max_seq_length}. Scored on {split}{baselines}.

| metric | value |
|---|---|
{rows}

```python
from transformers import pipeline
classify = pipeline("text-classification", model="{name}", trust_remote_code=True)
classify({{"text": "first sentence", "text_pair": "second sentence"}})
```
"""

TOKEN_CLASSIFICATION_CARD = """
# ScratchBert fine-tuned for token classification on {data}

Fine-tuned from {start} with ScratchBert's run_token_classification.py{config};
each word's tag on its first word piece, max sequence length {max_seq_length}. Tags: {tags}.

| metric | value |
|---|---|
{rows}

```python
from transformers import pipeline
tag = pipeline("token-classification", model="{name}", trust_remote_code=True, aggregation_strategy="first")
tag("Peter Blackburn spoke in Brussels.")
```
"""

CLASSIFICATION_METRICS = {"accuracy": "accuracy", "f1": "F1", "matthews_correlation": "Matthews correlation",
                          "pearsonr": "Pearson correlation", "spearmanr": "Spearman correlation"}


def write_classification_card(output_dir: Path, results: dict, model_args, data_args, config_path: str | None):
    data = (
        f"GLUE {data_args.task_name}" if data_args.task_name
        else f"`{data_args.dataset_name}`" if data_args.dataset_name
        else f"`{data_args.train_file}`" if data_args.train_file
        else f"next-sentence pairs from the {data_args.nsp_corpus or 'offline'} corpus"
    )
    start = "random weights" if model_args.random_init or not model_args.model_name_or_path else f"`{model_args.model_name_or_path}`"
    split = results.get("eval_split") or "validation"
    # Rows held out of train (no validation split given) are scored under the split the Hub knows them by, "train";
    # the text says how many were held out and by which seed (results.json's eval_split).
    hub_split, scored_on = ("train", "held-out rows of train") if split.startswith("train") else (split, split)
    metrics = [(metric, f"{label} ({scored_on})", results[f"eval_{metric}"]) for metric, label in CLASSIFICATION_METRICS.items()
               if isinstance(results.get(f"eval_{metric}"), (int, float))]
    if isinstance(results.get("eval_mismatched_accuracy"), (int, float)):  # MNLI's second dev set
        metrics.append(("accuracy", "accuracy (validation_mismatched)", results["eval_mismatched_accuracy"], "validation_mismatched"))
    baselines = ", ".join(f"{k.removeprefix('eval_')} {v:.4g}" for k, v in results.items()
                          if "_baseline_" in k and isinstance(v, (int, float)))
    from_hub = bool(data_args.task_name and not data_args.glue_dir)
    dataset_type = (
        "nyu-mll/glue" if from_hub else "glue" if data_args.task_name else data_args.dataset_name
        or (Path(data_args.train_file).suffix.lstrip(".").lower().replace("tsv", "csv").replace("jsonl", "json")
            if data_args.train_file else "nsp-pairs")
    )
    dataset_config = (
        data_args.task_name or data_args.dataset_config_name if data_args.task_name or data_args.dataset_name
        else None if data_args.train_file else data_args.nsp_corpus or "offline"
    )
    header = front_matter(
        model_name=output_dir.name, pipeline_tag="text-classification", tags=["scratchbert", "text-classification"],
        task_type="text-classification", dataset_name=data.replace("`", ""), dataset_type=dataset_type,
        dataset_config=dataset_config, dataset_split=hub_split, metrics=metrics,
        datasets=["nyu-mll/glue"] if from_hub else [data_args.dataset_name] if data_args.dataset_name else None,
        base_model=None if model_args.random_init else hub_id_or_none(model_args.model_name_or_path),
    )
    text = CLASSIFICATION_CARD.format(
        data=data, start=start, config=f" (config `{config_path}`)" if config_path else "",
        max_seq_length=data_args.max_seq_length, split=f"split `{split}`",
        baselines=f"; the trivial lines on it (not this model): {baselines}" if baselines else "",
        rows=results_rows(results), name=output_dir.name,
    )
    (output_dir / "README.md").write_text(header + text)


TOKEN_CLASSIFICATION_SCORES = (
    ("f1", "entity F1 (validation, seqeval)", "eval_f1"),
    ("precision", "entity precision (validation)", "eval_precision"),
    ("recall", "entity recall (validation)", "eval_recall"),
    ("accuracy", "tag accuracy (validation)", "eval_accuracy"),
    ("accuracy", "tag accuracy (validation, all O: the baseline)", "eval_all_o_baseline_accuracy"),
)


def write_token_classification_card(output_dir: Path, results: dict, model_args, data_args, config_path: str | None):
    data = f"`{data_args.dataset_name}`" if data_args.dataset_name else f"`{data_args.train_file}`"
    start = "random weights" if model_args.random_init else f"`{model_args.model_name_or_path}`"
    header = front_matter(
        model_name=output_dir.name, pipeline_tag="token-classification", tags=["scratchbert", "token-classification", "ner"],
        task_type="token-classification", dataset_name=data.replace("`", ""),
        dataset_type=data_args.dataset_name or "conll", metrics=scores(results, TOKEN_CLASSIFICATION_SCORES),
        dataset_config=data_args.dataset_config_name if data_args.dataset_name else None,
        datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        base_model=None if model_args.random_init else hub_id_or_none(model_args.model_name_or_path),
    )
    text = TOKEN_CLASSIFICATION_CARD.format(
        data=data, start=start, config=f" (config `{config_path}`)" if config_path else "",
        max_seq_length=data_args.max_seq_length, tags=", ".join(results["tags"]), rows=results_rows(results),
        name=output_dir.name,
    )
    (output_dir / "README.md").write_text(header + text)
