"""Token classification (named entities and other per-word tags): the library behind run_token_classification.py.

Built the way scratchbert.classification is: YAML + flags, the Trainer (through GuardedTrainer: NaN guard, time
budget), `--output results.json`, a model card. Data: CoNLL-format files (one word a line, its tag in the last
column, a blank line between sentences, `-DOCSTART-` lines skipped) or a Hub dataset with word and tag columns
(`tokens`, `ner_tags`, as `conll2003`). Each word's tag goes to its first word piece; the other pieces are
ignored in the loss and the metrics (-100), as transformers' token-classification example does. A sentence
longer than `max_seq_length` pieces is cut into overlapping windows (`stride` pieces shared), each word labelled
in the one window where it has the most context, so no word is dropped. Scored with seqeval's entity-level F1
(conlleval's rules, which read IOB1 and IOB2 alike) over every word of the evaluation data, the windows merged
back into sentences, beside the all-`O` baseline.
"""

import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score
from transformers import AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification

from .classification import check_checkpoint, checkpoint_config, head_from_checkpoint
from .cli import ConfigError, packaged_config
from .model_cards import write_token_classification_card
from .runs.hub import publish_results
from .runs.options import check_sequence_length
from .runs.script import script_main, start_run
from .runs.trainer import GuardedTrainer, save_final_model, train_and_report_io_errors

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = packaged_config("ner_conll2003.yaml")
OUTSIDE = "O"


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "ScratchBert checkpoint folder or Hub id (ours or a converted BERT)"}
    )
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Load the checkpoint's own code (not needed once scratchbert is imported)"}
    )
    random_init: bool = field(
        default=False, metadata={"help": "Same architecture and tokenizer as the checkpoint, random weights (a baseline)"}
    )
    classifier_dropout: float | None = None


@dataclass
class DataArguments:
    train_file: str | None = field(default=None, metadata={"help": "CoNLL format: word ... tag per line, blank lines between sentences"})
    validation_file: str | None = None
    test_file: str | None = None
    dataset_name: str | None = field(default=None, metadata={"help": "A Hub dataset with word and tag columns, e.g. conll2003"})
    dataset_config_name: str | None = None
    word_column: str = field(default="tokens", metadata={"help": "Hub dataset: the column of words"})
    tag_column: str = field(default="ner_tags", metadata={"help": "Hub dataset: the column of tags (ids of a ClassLabel, or names)"})
    max_seq_length: int = 128
    stride: int | None = field(
        default=None,
        metadata={"help": "A sentence longer than max_seq_length pieces is cut into windows sharing this many pieces "
                          "(each word scored once, where it has the most context); unset: max_seq_length // 4"},
    )
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    preprocessing_num_workers: int | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if bool(self.train_file) == bool(self.dataset_name):
            raise ValueError("give train_file (CoNLL format, with validation_file) or dataset_name, exactly one")
        if self.train_file and not self.validation_file:
            raise ValueError("train_file needs validation_file: the scores are measured on held-out sentences")
        if self.stride is not None and self.stride < 0:
            raise ValueError(f"stride must be 0 or more pieces, got {self.stride}")


class DataError(ValueError):
    """Data that cannot train this model; the message names the file and line, or the tag."""


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def read_conll(path: str | Path) -> datasets.Dataset:
    """Sentences of a CoNLL file as {"tokens": [words], "tags": [tag names]}: the word is the first column, the
    tag the last. Written by hand because datasets has no CoNLL builder (the Hub's conll2003 was a loading
    script, which datasets 3+ no longer runs). Read as utf-8-sig, as the GLUE files are: a byte-order mark would
    otherwise turn the first `-DOCSTART-` line into a word."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, start=1):
            columns = line.split()
            if not columns or columns[0] == "-DOCSTART-":
                if words:
                    sentences.append({"tokens": words, "tags": tags})
                    words, tags = [], []
                continue
            if len(columns) < 2:
                raise DataError(f"{path}, line {number}: {line.strip()!r} has no tag column (CoNLL: word ... tag)")
            words.append(columns[0])
            tags.append(columns[-1])
    if words:
        sentences.append({"tokens": words, "tags": tags})
    if not sentences:
        raise DataError(f"{path} holds no sentences (CoNLL: one word and its tag a line, blank lines between sentences)")
    return datasets.Dataset.from_list(sentences)


def load_splits(data_args: DataArguments) -> datasets.DatasetDict:
    """train / validation (/ test) splits with `tokens` and `tags` (tag names), from files or the Hub."""
    if data_args.train_file:
        files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": data_args.test_file}
        return datasets.DatasetDict({name: read_conll(path) for name, path in files.items() if path})
    try:
        raw = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=data_args.cache_dir)
    except Exception as error:
        raise DataError(f"cannot load the dataset {data_args.dataset_name}: {error}") from None
    for column in (data_args.word_column, data_args.tag_column):
        if column not in raw["train"].column_names:
            raise DataError(f"{data_args.dataset_name} has no column {column!r} (it has {', '.join(raw['train'].column_names)})")
    feature = raw["train"].features[data_args.tag_column]
    names = getattr(getattr(feature, "feature", None), "names", None)  # Sequence(ClassLabel): ids -> names
    out = {}
    for name in ("train", "validation", "test"):
        if name in raw:
            split = raw[name]
            tags = [[names[t] for t in row] for row in split[data_args.tag_column]] if names else split[data_args.tag_column]
            out[name] = datasets.Dataset.from_dict({"tokens": split[data_args.word_column], "tags": tags})
    if "validation" not in out:
        raise DataError(f"{data_args.dataset_name} has no validation split")
    return datasets.DatasetDict(out)


def tag_names_of(splits: datasets.DatasetDict) -> list[str]:
    """The training tags, `O` first then sorted; a tag in another split that training never shows is an error."""
    train_tags = {t for row in splits["train"]["tags"] for t in row}
    for name, split in splits.items():
        unseen = sorted({t for row in split["tags"] for t in row} - train_tags)
        if unseen:
            raise DataError(f"tags {', '.join(unseen)} of the {name} split never occur in the training split")
    return sorted(train_tags, key=lambda t: (t != OUTSIDE, t))


SENTENCE, WORDS = "sentence", "words"  # align_tags' bookkeeping columns: where each row's labels come from


def select_samples(splits: datasets.DatasetDict, data_args: DataArguments) -> datasets.DatasetDict:
    """The first max_train_samples / max_eval_samples sentences of the training / validation split."""
    out = {}
    for name, split in splits.items():
        limit = {"train": data_args.max_train_samples, "validation": data_args.max_eval_samples}.get(name)
        out[name] = split.select(range(min(limit, len(split)))) if limit is not None else split
    return datasets.DatasetDict(out)


def window_stride(tokenizer, data_args: DataArguments) -> int:
    """The pieces two windows of a long sentence share: `stride`, or a quarter of max_seq_length."""
    room = data_args.max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    stride = data_args.max_seq_length // 4 if data_args.stride is None else data_args.stride
    if room < 1 or stride >= room:
        raise ConfigError(f"stride={stride} must be below the {room} word pieces a window of max_seq_length="
                          f"{data_args.max_seq_length} holds")
    return stride


def align_tags(splits: datasets.DatasetDict, tokenizer, tag_names: list[str], data_args: DataArguments) -> datasets.DatasetDict:
    """Word pieces with each word's tag id on its first piece and -100 on the rest (and on [CLS], [SEP]).

    A sentence longer than max_seq_length pieces becomes several rows: windows that share `stride` pieces (the
    tokenizer's overflow, as transformers' pipelines window long texts). A word whose first piece is in several
    windows is labelled in one of them, the one where it has the most context on its nearer side (the rule of
    BERT's SQuAD code), and -100 in the others, so every word with a piece is labelled exactly once. Beside the
    model's columns each row has `sentence` (its sentence's index in the split) and `words` (the word index of
    each labelled piece, in order): `ScoredWords` merges the windows back into sentences with them; drop both
    before training.
    """
    tag_ids = {t: i for i, t in enumerate(tag_names)}
    stride = window_stride(tokenizer, data_args)

    def encode(batch, indices):
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=data_args.max_seq_length,
                            stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True)
        rows_of = {}
        for row, position in enumerate(encoded["overflow_to_sample_mapping"]):
            rows_of.setdefault(position, []).append(row)
        labels, sentence_of_row, words_of_row = [None] * len(encoded["input_ids"]), [], []
        for position, rows in sorted(rows_of.items()):
            # A word's first piece: where it starts (word-relative offset) in the first window that shows it.
            first_start, best = {}, {}  # word -> offset of its first piece; word -> (context, row, index)
            for row in rows:
                word_ids, offsets = encoded.word_ids(row), encoded["offset_mapping"][row]
                real = [i for i, w in enumerate(word_ids) if w is not None]
                for i in real:
                    word = word_ids[i]
                    first_start.setdefault(word, offsets[i][0])
                    if offsets[i][0] != first_start[word] or (i > 0 and word_ids[i - 1] == word):
                        continue  # a later piece of the word, or a window that starts inside it
                    context = min(i - real[0], real[-1] - i) + 0.01 * len(real)
                    if word not in best or context > best[word][0]:
                        best[word] = (context, row, i)
            chosen = {(row, i): word for word, (_, row, i) in best.items()}
            tags = batch["tags"][position]
            for row in rows:
                length = len(encoded["input_ids"][row])
                labels[row] = [tag_ids[tags[chosen[row, i]]] if (row, i) in chosen else -100 for i in range(length)]
        for row, position in enumerate(encoded["overflow_to_sample_mapping"]):
            sentence_of_row.append(indices[position])
            words_of_row.append([w for w, label in zip(encoded.word_ids(row), labels[row]) if label != -100])
        encoded["labels"] = labels
        encoded[SENTENCE], encoded[WORDS] = sentence_of_row, words_of_row
        del encoded["overflow_to_sample_mapping"], encoded["offset_mapping"]
        return encoded

    out = {}
    for name, split in select_samples(splits, data_args).items():
        out[name] = split.map(encode, batched=True, with_indices=True, remove_columns=split.column_names,
                              num_proc=data_args.preprocessing_num_workers, desc=f"{name}: tokenizing")
    return datasets.DatasetDict(out)


@dataclass
class ScoredWords:
    """How the rows of one encoded split map back to its words: every word's tag (each sentence in full), the
    sentence of each row, and the word of each labelled piece of a row. A word with no word piece at all (only
    characters the tokenizer drops) is never labelled: it is scored as predicted `O`."""

    tags: list[list[str]]
    sentence_of_row: list[int]
    words_of_row: list[list[int]]

    @classmethod
    def of(cls, encoded: datasets.Dataset, sentences: datasets.Dataset) -> "ScoredWords":
        return cls(list(sentences["tags"]), list(encoded[SENTENCE]), [list(w) for w in encoded[WORDS]])

    def words_without_pieces(self) -> int:
        labelled = {(s, w) for s, words in zip(self.sentence_of_row, self.words_of_row) for w in words}
        return sum(len(tags) for tags in self.tags) - len(labelled)


# ----------------------------------------------------------------------------------------------------------------
# Model and metrics
# ----------------------------------------------------------------------------------------------------------------


def build_model(model_args: ModelArguments, tokenizer, tag_names: list[str]):
    label_kwargs = {"num_labels": len(tag_names), "id2label": dict(enumerate(tag_names)),
                    "label2id": {t: i for i, t in enumerate(tag_names)}}
    if model_args.classifier_dropout is not None:
        label_kwargs["classifier_dropout"] = model_args.classifier_dropout
    config = checkpoint_config(model_args.model_name_or_path, model_args.trust_remote_code)
    if config.model_type != "scratchbert":
        raise ConfigError(f"{model_args.model_name_or_path} is not a ScratchBert model")
    return head_from_checkpoint(AutoModelForTokenClassification, config, model_args, tokenizer, label_kwargs)


def make_compute_metrics(tag_names: list[str], scored: ScoredWords):
    """seqeval's entity precision, recall and F1 and its tag accuracy over every word of the evaluated split
    (`scored` says which: the windows of a long sentence are merged back into it, each word's prediction read
    from its first piece in the window that labels it), beside the all-`O` line (no entities predicted: F1 0,
    the share of `O` words as accuracy). `words` counts the words scored, all of them."""

    def compute_metrics(eval_prediction):
        logits, label_ids = eval_prediction.predictions, eval_prediction.label_ids
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted_ids = logits.argmax(-1)
        if len(label_ids) != len(scored.sentence_of_row):
            raise ValueError(f"{len(label_ids)} predicted rows for a split of {len(scored.sentence_of_row)}")
        truth = scored.tags
        predicted = [[OUTSIDE] * len(row) for row in truth]
        for row, (row_labels, row_predictions) in enumerate(zip(label_ids, predicted_ids)):
            positions = np.flatnonzero(row_labels != -100)
            words = scored.words_of_row[row]
            sentence = scored.sentence_of_row[row]
            if [tag_names[i] for i in row_labels[positions]] != [truth[sentence][w] for w in words]:
                raise ValueError(f"evaluation row {row} does not hold the tags of sentence {sentence}'s words "
                                 f"{words}: the rows came back in another order than the split's")
            for position, word in zip(positions, words):
                predicted[sentence][word] = tag_names[row_predictions[position]]
        all_outside = [[OUTSIDE] * len(row) for row in truth]
        return {
            "precision": precision_score(truth, predicted, zero_division=0),
            "recall": recall_score(truth, predicted, zero_division=0),
            "f1": f1_score(truth, predicted, zero_division=0),
            "accuracy": accuracy_score(truth, predicted),
            "all_o_baseline_f1": f1_score(truth, all_outside, zero_division=0),
            "all_o_baseline_accuracy": accuracy_score(truth, all_outside),
            "words": sum(len(row) for row in truth),
        }

    return compute_metrics


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def check_model_path(model_args: ModelArguments, data_args: DataArguments, training_args):
    """start_run's check: a pretrained ScratchBert is named (and a local one is a ScratchBert checkpoint)."""
    if not model_args.model_name_or_path:
        raise ConfigError("give model_name_or_path: a pretrained ScratchBert (python run_pretraining.py makes one); "
                          "with random_init: true its architecture and tokenizer start from random weights")
    check_checkpoint(model_args.model_name_or_path)


def run(argv: list[str] | None = None) -> dict:
    start = time.time()
    model_args, data_args, run_args, training_args, config_path, checkpoint, push_to_hub = start_run(
        ModelArguments, DataArguments, argv, DEFAULT_CONFIG, check=check_model_path
    )

    splits = load_splits(data_args)  # every file read and every tag checked before any model loads
    tag_names = tag_names_of(splits)
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint or model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code)
    except Exception as error:
        raise ConfigError(f"cannot load a tokenizer from {model_args.model_name_or_path}: {error}") from None
    if not tokenizer.is_fast:
        raise ConfigError(f"the tokenizer of {model_args.model_name_or_path} is not a fast tokenizer: words cannot be mapped to word pieces")
    model = build_model(model_args, tokenizer, tag_names)
    check_sequence_length(data_args.max_seq_length, model.config.max_position_embeddings)
    samples = select_samples(splits, data_args)
    encoded = align_tags(samples, tokenizer, tag_names, data_args)
    scored = {name: ScoredWords.of(encoded[name], samples[name]) for name in encoded}
    encoded = encoded.remove_columns([SENTENCE, WORDS])
    for name in encoded:
        logger.info("%s: %d sentences in %d windows of at most %d pieces", name, len(samples[name]), len(encoded[name]),
                    data_args.max_seq_length)
        if scored[name].words_without_pieces():
            logger.warning("%s: %d word(s) have no word piece (the tokenizer drops all their characters): scored as "
                           "predicted O", name, scored[name].words_without_pieces())
    logger.info("tags: %s", tag_names)

    trainer = GuardedTrainer(
        on_nonfinite_loss=run_args.on_nonfinite_loss,
        max_train_minutes=run_args.max_train_minutes,
        model=model,
        args=training_args,
        train_dataset=encoded["train"],
        eval_dataset=encoded["validation"],
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(tag_names, scored["validation"]),
    )
    train_result = train_and_report_io_errors(trainer, checkpoint)
    output_dir = Path(training_args.output_dir)
    save_final_model(trainer, output_dir)  # before the final evaluation: no evaluation failure can lose it
    results = {
        "train_loss": train_result.training_loss,
        **{k: v for k, v in trainer.evaluate().items() if k.startswith("eval_")},
    }
    if "test" in encoded:
        trainer.compute_metrics = make_compute_metrics(tag_names, scored["test"])
        results.update({k: v for k, v in trainer.evaluate(encoded["test"], metric_key_prefix="test").items() if k.startswith("test_")})
    results.update({
        "steps": trainer.state.global_step,
        "runtime_seconds": time.time() - start,
        "train_runtime_seconds": train_result.metrics.get("train_runtime"),
        "tags": tag_names,
        "model": model_args.model_name_or_path,
        "random_init": model_args.random_init,
        "config": config_path,
    })
    if trainer.is_world_process_zero():
        write_token_classification_card(output_dir, results, model_args, data_args, config_path)
        publish_results(output_dir, results, run_args, training_args, push_to_hub)
    return results


def main(argv: list[str] | None = None) -> int:
    return script_main(run, argv, (ConfigError, DataError))


if __name__ == "__main__":  # python -m scratchbert.token_classification
    sys.exit(main())
