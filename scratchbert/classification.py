"""Sentence-pair (and single-sentence) classification fine-tuning: the library behind run_classification.py.

Data: a GLUE task from the Hub by name, a Hub dataset, local csv/tsv/json/jsonl/parquet files, or NSP-style
pairs built from a plain-text corpus with the pretraining pair builder (the offline default: pairs from the
Python documentation shipped with CPython). Model: a ScratchBert checkpoint (ours, or a BERT converted by
scratchbert.convert); a fresh random model is allowed but warned about.
"""

import json
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorWithPadding,
)

from .cli import ConfigError, packaged_config
from .configuration_scratchbert import CLASSIFIER_POOLINGS, ScratchBertConfig
from .corpus import CorpusError, load_documents
from .glue_tasks import TASKS as GLUE_TASKS
from .glue_tasks import GlueDataError, load_hub_task, read_local_task, task_named
from .metrics import load_metric
from .model_cards import write_classification_card
from .pretraining_data import build_dataset, cached_wordpiece_tokenizer, split_documents
from .runs.distributed import tokenizer_for_run
from .runs.hub import publish_results
from .runs.options import check_sequence_length
from .runs.script import script_main, start_run
from .runs.trainer import GuardedTrainer, save_final_model, train_and_report_io_errors

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = packaged_config("classify_offline.yaml")

PROBLEM_TYPES = ("auto", "regression", "classification")
NSP_LABELS = ["next", "random"]  # as BERT's NSP: 0 = B follows A, 1 = B is random (F1's positive class)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "ScratchBert checkpoint folder or Hub id (ours or a converted BERT)"}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Default: the checkpoint's tokenizer"})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Load the checkpoint's own code (not needed once scratchbert is imported)"}
    )
    random_init: bool = field(
        default=False, metadata={"help": "Same architecture and tokenizer as the checkpoint, random weights (a baseline)"}
    )
    freeze_encoder: bool = field(default=False, metadata={"help": "Train only the classification head"})
    train_pooler: bool = field(default=True, metadata={"help": "With freeze_encoder, still train the pooler"})
    classifier_dropout: float | None = None
    classifier_pooling: str | None = field(
        default=None, metadata={"help": "cls (BERT's pooler over [CLS]) or mean (of the last hidden states); default: the checkpoint's"}
    )
    layerwise_lr_decay: float = field(
        default=1.0,
        metadata={"help": "Layer-wise learning-rate decay: the head learns at learning_rate, the top layer at that "
                          "times this factor, each layer below at this factor of the one above, the embeddings last (1: off)"},
    )
    unpad_inputs: bool = field(default=True, metadata={"help": "Skip the work on padding tokens (same results)"})
    # Sizes of a fresh model when there is no checkpoint at all (the offline default).
    vocab_size: int = 8000
    hidden_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 128

    def __post_init__(self):
        if self.classifier_pooling is not None and self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(f"classifier_pooling must be one of {', '.join(CLASSIFIER_POOLINGS)}, got {self.classifier_pooling!r}")
        if not 0 < self.layerwise_lr_decay <= 1:
            raise ValueError(f"layerwise_lr_decay must be in (0, 1] (1: off), got {self.layerwise_lr_decay}")


@dataclass
class DataArguments:
    task_name: str | None = field(
        default=None, metadata={"help": f"GLUE task ({', '.join(GLUE_TASKS)}), from the Hub or glue_dir: its columns, labels, metrics"}
    )
    glue_dir: str | None = field(
        default=None, metadata={"help": "With task_name: read the task from this GLUE folder (download_glue_data.py layout)"}
    )
    dataset_name: str | None = field(default=None, metadata={"help": "Another Hub dataset (with text/label columns)"})
    dataset_config_name: str | None = None
    train_file: str | None = field(default=None, metadata={"help": "Local .csv/.tsv/.json/.jsonl/.parquet"})
    validation_file: str | None = None
    test_file: str | None = None
    nsp_corpus: str | None = field(
        default=None, metadata={"help": "NSP-style pairs from a corpus: offline, synthetic, or a text/jsonl file"}
    )
    nsp_documents: int | None = field(default=None, metadata={"help": "Use at most this many corpus documents"})
    nsp_dupe_factor: int = field(default=1, metadata={"help": "Pairs per document pass, as in pretraining"})
    text_column_1: str | None = field(default=None, metadata={"help": "First text (default: the task's, or sentence1)"})
    text_column_2: str | None = field(default=None, metadata={"help": "Second text; none for single sentences"})
    label_column: str = "label"
    problem_type: str = field(
        default="auto",
        metadata={"help": "regression or classification of label_column; auto: a float column is a regression (as "
                          "transformers' run_glue decides), any other column classes", "choices": list(PROBLEM_TYPES)},
    )
    validation_split_percentage: float = field(
        default=10.0, metadata={"help": "Held out from training when there is no validation split"}
    )
    eval_seed: int = field(
        default=42,
        metadata={"help": "Seed of the held-out dev split (of train when there is no validation split, and of "
                          "nsp_corpus as pretraining's): fixed, so every training seed is scored on the same dev rows"},
    )
    max_seq_length: int = 128
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_predict_samples: int | None = None
    preprocessing_num_workers: int | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if self.task_name:  # CoLA, SST-2, ... -> cola, sst2: one spelling for data, labels and metrics
            try:
                self.task_name = task_named(self.task_name).name
            except GlueDataError as error:
                raise ValueError(str(error)) from None
        if self.glue_dir and not self.task_name:
            raise ValueError("glue_dir needs task_name (or run every task with python -m scratchbert.glue)")
        if self.problem_type not in PROBLEM_TYPES:
            raise ValueError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)}, got {self.problem_type!r}")
        if self.problem_type != "auto":  # where the data fixes the kind, a contradicting problem_type is an error
            fixed = (("regression" if GLUE_TASKS[self.task_name].regression else "classification", f"GLUE task {self.task_name}")
                     if self.task_name else None if self.dataset_name or self.train_file
                     else ("classification", "next-sentence pairs"))
            if fixed is not None and fixed[0] != self.problem_type:
                raise ValueError(f"problem_type {self.problem_type} contradicts the data: {fixed[1]} is a {fixed[0]}")


class DataError(ValueError):
    """Data that cannot train this model; the message names the column, label or file."""


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def _read_local(path: str, split: str, cache_dir):
    file = Path(path)
    if not file.is_file():
        raise DataError(f"{split} file {path} does not exist")
    if file.stat().st_size == 0:
        raise DataError(f"{split} file {path} is empty")
    suffix = file.suffix.lower()
    kinds = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
    if suffix not in kinds:
        raise DataError(f"{split} file {path}: unsupported type {suffix!r}; use one of {', '.join(kinds)}")
    # Text cells are text: pandas would read "NA", "null", "None", "nan", "N/A" as missing values (and they became
    # empty strings); keep_default_na off keeps them, and an empty cell reads as "" (a blank label is named later).
    kwargs = {"keep_default_na": False} if kinds[suffix] == "csv" else {}
    if suffix == ".tsv":  # TSV questions hold stray quote marks (QQP): read with quoting off, as csv.QUOTE_NONE.
        kwargs.update(delimiter="\t", quoting=3)
    try:
        return datasets.load_dataset(kinds[suffix], data_files=str(file), split="train", cache_dir=cache_dir, **kwargs)
    except Exception as error:
        raise DataError(f"cannot read {split} file {path}: {error}") from None


def load_raw_splits(data_args: DataArguments) -> tuple[datasets.DatasetDict | None, str | None, str | None, str]:
    """The splits (train, validation, maybe test), their text columns, and the name of the split the model is
    scored on (for the model card: `validation`, MNLI's `validation_matched`, or what was held out of train); NSP
    pairs (None) come pre-tokenized, from held-out documents.

    Without a validation split, `validation_split_percentage` of train is held out by `eval_seed`, never by the
    training seed: a seed sweep scores every seed on the same dev rows, none of them another seed's training data."""
    sources = [n for n in ("task_name", "dataset_name", "train_file", "nsp_corpus") if getattr(data_args, n)]
    if len(sources) > 1:
        raise ConfigError(f"give one data source, not {' and '.join(sources)}")
    text_1, text_2 = data_args.text_column_1, data_args.text_column_2
    if data_args.task_name:
        task = GLUE_TASKS[data_args.task_name]
        try:
            raw = read_local_task(data_args.glue_dir, task) if data_args.glue_dir else load_hub_task(task, data_args.cache_dir)
        except GlueDataError as error:
            raise DataError(str(error)) from None
        except Exception as error:
            raise DataError(f"cannot load GLUE task {task.name} from the Hub (nyu-mll/glue): {error}") from None
        data_args.label_column = "label"
        has_pair = "sentence2" in raw["train"].column_names
        dev = "validation_matched" if task.name == "mnli" else "validation"  # the Hub's split names (dev.tsv locally)
        return raw, text_1 or "sentence1", text_2 if text_1 else ("sentence2" if has_pair else None), dev
    if data_args.dataset_name:
        try:
            raw = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=data_args.cache_dir)
        except Exception as error:
            raise DataError(f"cannot load Hub dataset {data_args.dataset_name!r}: {error}") from None
        splits = {"train": raw["train"]}
        for name in ("validation", "test"):
            if name in raw:
                splits[name] = raw[name]
    elif data_args.train_file:
        splits = {"train": _read_local(data_args.train_file, "train", data_args.cache_dir)}
        if data_args.validation_file:
            splits["validation"] = _read_local(data_args.validation_file, "validation", data_args.cache_dir)
        if data_args.test_file:
            splits["test"] = _read_local(data_args.test_file, "test", data_args.cache_dir)
    else:
        return None, None, None, "held-out documents"  # NSP-style pairs: built after the tokenizer exists
    for name in ("train", "validation"):
        if name in splits:
            check_labels_present(splits[name], data_args.label_column, name)
    if "validation" not in splits:
        held_out = splits["train"].train_test_split(test_size=data_args.validation_split_percentage / 100, seed=data_args.eval_seed)
        splits["train"], splits["validation"] = held_out["train"], held_out["test"]
        dev = f"train ({data_args.validation_split_percentage:g}% held out, eval_seed {data_args.eval_seed})"
    else:
        dev = "validation"
    if not text_1 and not text_2 and "sentence2" in splits["train"].column_names:
        text_2 = "sentence2"  # a sentence1, sentence2 file is a pair task: never train on sentence1 alone
        logger.info("Text columns: sentence1 and sentence2 (set text_column_1 / text_column_2 to choose others)")
    text_1 = text_1 or "sentence1"
    for name, split in splits.items():
        needed = [text_1] + ([text_2] if text_2 else []) + ([data_args.label_column] if name != "test" else [])
        missing = [c for c in needed if c not in split.column_names]
        if missing:
            raise DataError(
                f"{name} data has no column {', '.join(repr(m) for m in missing)}; its columns are "
                f"{', '.join(split.column_names)} (set text_column_1 / text_column_2 / label_column)"
            )
    return datasets.DatasetDict(splits), text_1, text_2, dev


def check_labels_present(split: datasets.Dataset, label_column: str, name: str):
    """A blank label (an empty CSV cell reads as NaN or None) is named, rather than making the task a regression."""
    if label_column not in split.column_names:
        return
    for row, value in enumerate(split[label_column]):
        if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value.strip()):
            raise DataError(
                f"{name} data: row {row + 1} has a blank {label_column!r}; every training and validation row needs a label"
            )


def label_names_of(split: datasets.Dataset, label_column: str, task_name: str | None = None,
                   problem_type: str = "auto") -> list[str] | None:
    """Class names in id order, or None for a regression. A GLUE task's are the Hub's; otherwise `problem_type`
    decides, and `auto` decides as transformers' run_glue: a float column is a regression whatever its values
    (ratings 1.0 to 5.0 too), a ClassLabel, integer, string or bool column holds classes. The log says which."""
    if task_name:
        return None if GLUE_TASKS[task_name].regression else list(GLUE_TASKS[task_name].label_names)
    feature = split.features[label_column]
    dtype = getattr(feature, "dtype", None)
    if problem_type == "auto":
        regression = not isinstance(feature, datasets.ClassLabel) and dtype in ("float16", "float32", "float64")
        why = f"column {label_column!r} holds {'floats' if regression else dtype or 'classes'} (problem_type auto)"
    else:
        regression, why = problem_type == "regression", f"problem_type {problem_type}"
    if regression:
        if isinstance(feature, datasets.ClassLabel):
            raise DataError(f"problem_type regression, but {label_column!r} is a ClassLabel of classes ({', '.join(feature.names)})")
        for value in split[label_column]:
            regression_label(value)  # every training label a number, or a DataError naming the first that is not
        logger.info("Labels: a regression (%s)", why)
        return None
    if isinstance(feature, datasets.ClassLabel):
        names = list(feature.names)
    else:
        names = {str(v) for v in split[label_column]}
        try:
            names = sorted(names, key=float)  # numeric labels in numeric order: "2" before "10"
        except ValueError:
            names = sorted(names)
    logger.info("Labels: %d classes (%s)", len(names), why)
    return names


def regression_label(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"label {value!r} is not a number, and the labels are a regression's (problem_type)") from None


def nsp_corpus_documents(data_args: DataArguments):
    """(training, held-out) documents of `nsp_corpus`, made and split as pretraining makes and splits its corpus: by
    `eval_seed` (the synthetic corpus is data), never by the training seed."""
    corpus = data_args.nsp_corpus or "offline"
    source = {"corpus": corpus} if corpus in ("offline", "synthetic") else {"train_file": corpus}
    documents = load_documents(**source, max_documents=data_args.nsp_documents, seed=data_args.eval_seed, cache_dir=data_args.cache_dir)
    return split_documents(documents, data_args.validation_split_percentage, None, data_args.eval_seed)


def nsp_pair_splits(data_args: DataArguments, tokenizer, seed: int) -> datasets.DatasetDict:
    """Next-sentence classification from a corpus, labelled as BERT's NSP: 0 when B follows A, 1 when random."""
    train_documents, eval_documents = nsp_corpus_documents(data_args)
    # The pretraining pipeline builds the pairs (and caches them); only the label column is renamed.
    out = {}
    for name, documents, pair_seed, dupe_factor in (
        ("train", train_documents, seed, data_args.nsp_dupe_factor), ("validation", eval_documents, data_args.eval_seed, 1)
    ):
        pairs = build_dataset(
            documents, tokenizer, data_args.max_seq_length, dupe_factor=dupe_factor, seed=pair_seed,
            num_proc=data_args.preprocessing_num_workers, description=f"{data_args.nsp_corpus or 'offline'} {name}",
        )
        out[name] = pairs.rename_column("next_sentence_label", "label").remove_columns("special_tokens_mask")
    return datasets.DatasetDict(out)


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


def checkpoint_model_type(path: str) -> str | None:
    """The model_type of a local checkpoint folder (None for a Hub id); a folder without config.json is an error."""
    folder = Path(path)
    if not folder.exists():
        return None  # a Hub id: from_pretrained says what is wrong
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"{path} has no config.json: it is not a model checkpoint")
    return json.loads(config_file.read_text()).get("model_type")


def check_checkpoint(path: str):
    """A local folder must be a ScratchBert checkpoint; say how to convert a BERT."""
    model_type = checkpoint_model_type(path)
    if model_type == "bert":
        raise ConfigError(
            f"{path} is a transformers BERT checkpoint; convert it first: "
            f"python -m scratchbert.convert bert-to-scratchbert {path} {path.rstrip('/')}-scratchbert"
        )
    if model_type not in (None, "scratchbert"):
        raise ConfigError(f"{path} holds a {model_type!r} model, not a ScratchBert (or a BERT to convert)")


def checkpoint_config(path: str, trust_remote_code: bool):
    try:
        return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise ConfigError(f"cannot load the config of {path}: {error}") from None


def head_from_checkpoint(auto_class, config, model_args, tokenizer, label_kwargs: dict):
    """`auto_class` (a sequence or token classification head) on the checkpoint's encoder, or on the same
    architecture from random weights with `random_init` (the baseline); labels from `label_kwargs`."""
    if config.vocab_size != len(tokenizer):
        raise ConfigError(f"the checkpoint's vocab_size ({config.vocab_size}) does not match the tokenizer's {len(tokenizer)} tokens")
    path = model_args.model_name_or_path
    if model_args.random_init:
        logger.warning("random_init: the architecture of %s with random weights", path)
        config.update(label_kwargs)
        return auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
    try:
        return auto_class.from_pretrained(path, trust_remote_code=model_args.trust_remote_code, **label_kwargs)
    except Exception as error:  # corrupt or mismatched weights: name the checkpoint, not a library frame
        raise ConfigError(f"cannot load {path}: {type(error).__name__}: {error}") from None


def build_model(model_args: ModelArguments, tokenizer, label_names: list[str] | None):
    num_labels = 1 if label_names is None else len(label_names)
    label_kwargs = {"num_labels": num_labels, "problem_type": "regression" if label_names is None else "single_label_classification"}
    if label_names is not None:
        label_kwargs.update(id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)})
    if model_args.classifier_dropout is not None:
        label_kwargs["classifier_dropout"] = model_args.classifier_dropout
    if model_args.classifier_pooling is not None:
        label_kwargs["classifier_pooling"] = model_args.classifier_pooling

    if model_args.model_name_or_path:
        config = checkpoint_config(model_args.model_name_or_path, model_args.trust_remote_code)
        saved_labels = getattr(config, "id2label", None)
        trained_head = any("ForSequenceClassification" in a for a in (config.architectures or []))
        if trained_head and saved_labels and len(saved_labels) != num_labels:
            raise ConfigError(
                f"{model_args.model_name_or_path} classifies into {len(saved_labels)} labels "
                f"({', '.join(map(str, saved_labels.values()))}) but the data has {num_labels}"
            )
        model = head_from_checkpoint(AutoModelForSequenceClassification, config, model_args, tokenizer, label_kwargs)
    else:
        logger.warning(
            "No model_name_or_path: fine-tuning a freshly initialised ScratchBert. Expect far lower scores than "
            "from a pretrained checkpoint (python run_pretraining.py makes one)."
        )
        config = ScratchBertConfig(
            vocab_size=len(tokenizer), hidden_size=model_args.hidden_size, num_hidden_layers=model_args.num_hidden_layers,
            num_attention_heads=model_args.num_attention_heads, intermediate_size=model_args.intermediate_size,
            max_position_embeddings=model_args.max_position_embeddings, pad_token_id=tokenizer.pad_token_id, **label_kwargs,
        )
        model = AutoModelForSequenceClassification.from_config(config)
    if model.config.model_type != "scratchbert":
        raise ConfigError(f"{model_args.model_name_or_path} is not a ScratchBert model")
    model.config.unpad_inputs = model_args.unpad_inputs
    if model_args.freeze_encoder:
        for name, parameter in model.scratchbert.named_parameters():
            parameter.requires_grad = model_args.train_pooler and name.startswith("pooler.")
    return model


def layerwise_lr_scales(model, decay: float) -> dict[str, float]:
    """Parameter name -> learning-rate factor for layer-wise decay (ELECTRA, and most small-encoder fine-tuning).

    The classifier and pooler learn at 1, the top encoder layer at `decay`, each layer below at `decay` times the
    one above, the embeddings at `decay ** (num_layers + 1)`: the lower layers, which hold what pretraining
    taught and what every task shares, move least.
    """
    num_layers = model.config.num_hidden_layers
    scales = {}
    for name, _ in model.named_parameters():
        layer = re.search(r"\.layers\.(\d+)\.", name)
        if layer:
            depth = num_layers - int(layer.group(1))  # the top layer 1, the bottom num_layers
        elif ".embeddings." in name:
            depth = num_layers + 1
        elif ".final_norm." in name:
            depth = 1  # pre-LN's last LayerNorm sits on top of the top layer
        else:
            depth = 0  # classifier, pooler
        scales[name] = decay ** depth
    return scales


def get_tokenizer(model_args: ModelArguments, data_args: DataArguments, checkpoint: str | None = None):
    """A resumed run's checkpoint tokenizer; else `tokenizer_name` or the model's; else (no model) a WordPiece."""
    if checkpoint is not None and (Path(checkpoint) / "tokenizer_config.json").is_file():
        return AutoTokenizer.from_pretrained(checkpoint)  # never a fresh training: its ids would differ
    source = model_args.tokenizer_name or model_args.model_name_or_path
    if source:
        try:
            return AutoTokenizer.from_pretrained(source, trust_remote_code=model_args.trust_remote_code)
        except Exception as error:
            raise ConfigError(f"cannot load a tokenizer from {source}: {error}") from None
    if data_args.task_name or data_args.dataset_name or data_args.train_file:
        raise ConfigError("give model_name_or_path (a pretrained checkpoint) or tokenizer_name")
    # Trained on the training documents only, and shared with pretraining: on the same corpus, split and sizes,
    # run_pretraining.py's cached tokenizer is this one.
    train_documents, _ = nsp_corpus_documents(data_args)
    logger.info("No checkpoint and no tokenizer: a WordPiece tokenizer of the %s corpus", data_args.nsp_corpus or "offline")
    return cached_wordpiece_tokenizer(
        train_documents, vocab_size=model_args.vocab_size, model_max_length=model_args.max_position_embeddings,
        cache_dir=data_args.cache_dir,
    )


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------


def constant(predictions: np.ndarray) -> bool:
    """Whether every prediction is the same: one class, or one score to float32's precision (a collapsed head)."""
    if predictions.size == 0 or not np.isfinite(predictions).all():
        return False
    return bool(np.ptp(predictions) <= 1e-6 * max(1.0, float(np.abs(predictions).max())))


def make_compute_metrics(task_name: str | None, label_names: list[str] | None):
    """GLUE's metrics, each beside its trivial line: accuracy (+ F1 of label 1 for binary tasks), Matthews for
    CoLA, Pearson/Spearman for a regression (STS-B).

    `majority_baseline_*` scores always predicting the split's most frequent class (an upper bound on any
    constant classifier); `constant_baseline_*` of a regression is 0, as any constant prediction correlates
    with nothing.

    `constant_predictions` says the model gave every example the same class or score; `nonfinite_predictions`
    that some output was NaN or inf. A constant regression scores Pearson and Spearman 0 (undefined, NaN in
    SciPy; 0 as scikit-learn defines Matthews of a constant classifier), and `diverged` (below) counts it as
    diverged; a constant classifier scores what the majority-class line scores, as it is.
    """
    regression = label_names is None
    metrics = ["pearsonr", "spearmanr"] if regression else ["accuracy"]
    if not regression and len(label_names) == 2:
        metrics.append("f1")
    if task_name is not None and task_name.lower() == "cola":
        metrics.append("matthews_correlation")
    loaded = {name: load_metric(name) for name in metrics}

    def compute_metrics(eval_prediction):
        logits, references = eval_prediction.predictions, eval_prediction.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        predictions = logits.squeeze(-1) if regression else logits.argmax(-1)
        results = {"constant_predictions": constant(predictions), "nonfinite_predictions": not np.isfinite(logits).all()}
        for name, metric in loaded.items():
            if regression and results["constant_predictions"]:
                results[name] = 0.0  # a correlation with a constant is undefined: scored as correlating with nothing
            else:
                results.update(metric.compute(predictions=predictions, references=references))
        if regression:
            results.update({f"constant_baseline_{name}": 0.0 for name in loaded})
        else:  # the majority class of the same split
            majority = np.full_like(references, np.bincount(references.astype(np.int64)).argmax())
            for metric in loaded.values():
                scores = metric.compute(predictions=majority, references=references)
                results.update({f"majority_baseline_{name}": value for name, value in scores.items()})
        return results

    return compute_metrics


def diverged(results: dict, regression: bool) -> str | None:
    """Why a finished run counts as diverged (None: it did not): a non-finite training loss, evaluation loss,
    score or prediction, or, for a regression, one score for every dev example. The GLUE suite never picks such
    a run's learning rate nor averages its scores."""
    reasons = []
    if not np.isfinite(results.get("train_loss", 0.0)):
        reasons.append(f"training loss {results['train_loss']}")
    for key, value in results.items():
        if not key.startswith("eval_") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not np.isfinite(value):
            reasons.append(f"{key} {value}")
    for key, value in results.items():
        if key.startswith("eval_") and key.endswith("nonfinite_predictions") and value:
            reasons.append(f"non-finite predictions ({key})")
        if regression and key.startswith("eval_") and key.endswith("_constant_predictions") and value:
            reasons.append(f"the same score for every example ({key}; Pearson and Spearman undefined, scored 0)")
    return "; ".join(reasons) or None


def is_divergence(error: Exception) -> bool:
    """Whether a TrainingFailure is the NaN guard's stop (the loss became NaN or inf), not a failed write."""
    return str(error).startswith("the loss became")


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def tokenize_splits(raw, tokenizer, data_args, text_1, text_2, label_names):
    label2id = None if label_names is None else {n: i for i, n in enumerate(label_names)}
    column = data_args.label_column
    class_ids = isinstance(raw["train"].features[column], datasets.ClassLabel)  # already ids (Hub datasets)

    def encode(batch, indices):
        texts = (batch[text_1], batch[text_2]) if text_2 else (batch[text_1],)
        for column_name, column_texts in zip((text_1, text_2), texts):
            if None in column_texts:  # a null in JSON or parquet: no text to classify, said rather than made ""
                row = indices[column_texts.index(None)] + 1
                raise DataError(f"row {row} has no text in column {column_name!r} (a null); give every row its text")
        encoded = tokenizer(*texts, truncation=True, max_length=data_args.max_seq_length)
        if column in batch:
            if label2id is None:
                encoded["labels"] = [regression_label(v) for v in batch[column]]
            elif class_ids:
                encoded["labels"] = [int(v) for v in batch[column]]
            else:
                unknown = sorted({str(v) for v in batch[column]} - set(label2id) - {"-1"})
                if unknown:
                    raise DataError(f"labels {', '.join(unknown)} are not among the training labels {', '.join(label2id)}")
                encoded["labels"] = [label2id.get(str(v), -1) for v in batch[column]]
        return encoded

    out = {}
    for name, split in raw.items():
        kind = name.split("_")[0]  # validation_mismatched is a validation split, test_mismatched a test split
        limit = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples, "test": data_args.max_predict_samples}[kind]
        if limit is not None:
            split = split.select(range(min(limit, len(split))))
        try:
            out[name] = split.map(
                encode, batched=True, with_indices=True, num_proc=data_args.preprocessing_num_workers,
                remove_columns=[c for c in split.column_names if not (kind == "test" and c == "idx")],  # idx: submissions
                desc=f"{name}: tokenizing",
            )
        except Exception as error:  # datasets may wrap errors raised inside map
            cause = error if isinstance(error, DataError) else (error.__cause__ or error)
            if isinstance(cause, DataError):
                raise DataError(f"{name} split: {cause}") from None
            raise
        if kind != "test" and label2id is not None:  # GLUE test splits carry label -1
            out[name] = out[name].filter(lambda b: [l >= 0 for l in b["labels"]], batched=True)
    return datasets.DatasetDict(out)


def write_predictions(trainer, split: datasets.Dataset, label_names: list[str] | None, path: Path):
    """`index<TAB>prediction` per row (a label name, or a score for a regression); index is the row's `idx`."""
    inputs = split.remove_columns([c for c in ("labels", "idx") if c in split.column_names])
    prediction = trainer.predict(inputs)
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    indices = split["idx"] if "idx" in split.column_names else range(len(split))
    if trainer.is_world_process_zero():
        with open(path, "w") as f:
            f.write("index\tprediction\n")
            for index, row in zip(indices, logits):
                f.write(f"{index}\t{row[0]:.6f}\n" if label_names is None else f"{index}\t{label_names[int(row.argmax())]}\n")


def check_model_path(model_args: ModelArguments, data_args: DataArguments, training_args):
    """start_run's check: a local model folder is a ScratchBert checkpoint, before the output folder is touched."""
    if model_args.model_name_or_path:
        check_checkpoint(model_args.model_name_or_path)


def run(argv: list[str] | None = None) -> dict:
    start = time.time()
    model_args, data_args, run_args, training_args, config_path, checkpoint, push_to_hub = start_run(
        ModelArguments, DataArguments, argv, DEFAULT_CONFIG, check=check_model_path,
        layerwise_lr_decay=lambda model_args: model_args.layerwise_lr_decay,
    )

    raw, text_1, text_2, dev_split = load_raw_splits(data_args)
    # One tokenizer for the whole run: global rank 0 loads or trains it, every other rank loads its files.
    tokenizer = tokenizer_for_run(lambda: get_tokenizer(model_args, data_args, checkpoint))
    if raw is None:  # NSP-style pairs from a corpus
        splits, label_names = nsp_pair_splits(data_args, tokenizer, training_args.seed), NSP_LABELS
        for name in list(splits):
            limit = data_args.max_train_samples if name == "train" else data_args.max_eval_samples
            if limit is not None:
                splits[name] = splits[name].select(range(min(limit, len(splits[name]))))
            splits[name] = splits[name].rename_column("label", "labels")
    else:
        label_names = label_names_of(raw["train"], data_args.label_column, data_args.task_name, data_args.problem_type)
        splits = tokenize_splits(raw, tokenizer, data_args, text_1, text_2, label_names)
    model = build_model(model_args, tokenizer, label_names)
    check_sequence_length(data_args.max_seq_length, model.config.max_position_embeddings)
    logger.info("%d training and %d evaluation examples; labels: %s", len(splits["train"]), len(splits["validation"]), label_names)

    trainer = GuardedTrainer(
        on_nonfinite_loss=run_args.on_nonfinite_loss,
        max_train_minutes=run_args.max_train_minutes,
        lr_scales=layerwise_lr_scales(model, model_args.layerwise_lr_decay) if model_args.layerwise_lr_decay != 1 else None,
        model=model,
        args=training_args,
        train_dataset=splits["train"],
        eval_dataset=splits["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(data_args.task_name, label_names),
    )
    train_result = train_and_report_io_errors(trainer, checkpoint)
    output_dir = Path(training_args.output_dir)
    save_final_model(trainer, output_dir)  # before the final evaluation: no evaluation failure can lose it
    eval_metrics = trainer.evaluate()
    for name in sorted(n for n in splits if n.startswith("validation_")):  # MNLI's mismatched dev set
        eval_metrics.update(trainer.evaluate(splits[name], metric_key_prefix=f"eval_{name.removeprefix('validation_')}"))
    results = {
        "train_loss": train_result.training_loss,
        **{k: v for k, v in eval_metrics.items() if k.startswith("eval_")},
        "steps": trainer.state.global_step,
        "runtime_seconds": time.time() - start,
        "train_runtime_seconds": train_result.metrics.get("train_runtime"),
        "num_labels": model.config.num_labels,
        "label2id": getattr(model.config, "label2id", None),
        "model": model_args.model_name_or_path,
        "model_class": f"{type(model).__module__}.{type(model).__name__}",
        "random_init": model_args.random_init or not model_args.model_name_or_path,
        "config": config_path,
        "eval_split": dev_split,
    }
    results["diverged_reason"] = diverged(results, regression=label_names is None)
    results["diverged"] = results["diverged_reason"] is not None
    if results["diverged"]:
        logger.warning("This run diverged: %s", results["diverged_reason"])
    if training_args.do_predict:
        for name in sorted(n for n in splits if n.split("_")[0] == "test"):  # test, and MNLI's test_mismatched
            path = output_dir / f"predictions{name.removeprefix('test')}.tsv"
            write_predictions(trainer, splits[name], label_names, path)
            results[f"predictions_file{name.removeprefix('test')}"] = str(path)
    if trainer.is_world_process_zero():
        write_classification_card(output_dir, results, model_args, data_args, config_path)
        publish_results(output_dir, results, run_args, training_args, push_to_hub)
    return results


def main(argv: list[str] | None = None) -> int:
    return script_main(run, argv, (ConfigError, CorpusError, DataError))


if __name__ == "__main__":  # python -m scratchbert.classification
    sys.exit(main())
