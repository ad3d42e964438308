"""The nine GLUE tasks: where their data lives (the Hub's nyu-mll/glue, or a folder in the layout of the
original download_glue_data.py), how each file is read exactly, their labels in the Hub's order, their metrics.

Local folders hold one sub-folder per task (CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI; any case,
with or without the dash), each with train.tsv, dev.tsv and test.tsv (MNLI: dev_matched.tsv,
dev_mismatched.tsv, test_matched.tsv, test_mismatched.tsv). Every file is tab-separated and read with quoting
off (a quote mark is text). Their quirks:

- CoLA's train and dev files have no header: source, label, the original mark, sentence (label in column 2,
  sentence in column 4); its test file has a header (index, sentence).
- MRPC's files start with a UTF-8 byte-order mark; label `Quality`, texts `#1 String` and `#2 String`.
- STS-B's label (`score`) is a real number from 0 to 5: a regression.
- MNLI, QNLI and RTE give string labels (`entailment`, ...), MNLI's in `gold_label`; WNLI's are 0 / 1.

Every split becomes the same columns: `sentence1`, `sentence2` (absent for single-sentence tasks), `label`
(a ClassLabel in the Hub's order, so local and Hub runs of a task agree; -1 in test splits; a float for STS-B)
and `idx` (the row's index, used by submission files).
"""

import csv
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets

logger = logging.getLogger(__name__)
csv.field_size_limit(sys.maxsize)  # some GLUE fields are long (MNLI parses); quoting off, a field ends at a tab

class GlueDataError(ValueError):
    """A GLUE folder or file that cannot be read as its task; the message names the file and what is wrong."""


@dataclass(frozen=True)
class GlueTask:
    name: str  # the Hub's config name: cola, sst2, ...
    folder: str  # download_glue_data.py's folder name
    hub_text_columns: tuple[str, str | None]  # text columns of the Hub dataset
    text_columns: tuple  # in the local files: header names, or 0-based positions for CoLA's headerless files
    label_column: str | int | None  # in the local train / dev files
    label_names: tuple[str, ...] | None  # the Hub's ClassLabel order; None: a regression (STS-B)
    labels_are_names: bool  # local labels are the names (entailment, ...) rather than ids (0, 1)
    metrics: tuple[str, ...]  # what GLUE reports for it (the task score is their mean)
    submission: tuple[str, ...]  # submission file per test split
    files: dict = field(default_factory=lambda: {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"})
    headerless: tuple[str, ...] = ()  # splits whose file has no header row
    test_text_columns: tuple | None = None  # the test file's text columns, where they differ (CoLA's)

    @property
    def regression(self) -> bool:
        return self.label_names is None


NLI_FILES = {
    "train": "train.tsv",
    "validation": "dev_matched.tsv",
    "validation_mismatched": "dev_mismatched.tsv",
    "test": "test_matched.tsv",
    "test_mismatched": "test_mismatched.tsv",
}

TASKS = {
    task.name: task
    for task in (
        GlueTask("cola", "CoLA", ("sentence", None), (3,), 1, ("unacceptable", "acceptable"), False,
                 ("matthews_correlation",), ("CoLA.tsv",), headerless=("train", "validation"),
                 test_text_columns=("sentence",)),
        GlueTask("sst2", "SST-2", ("sentence", None), ("sentence",), "label", ("negative", "positive"), False,
                 ("accuracy",), ("SST-2.tsv",)),
        GlueTask("mrpc", "MRPC", ("sentence1", "sentence2"), ("#1 String", "#2 String"), "Quality",
                 ("not_equivalent", "equivalent"), False, ("accuracy", "f1"), ("MRPC.tsv",)),
        GlueTask("stsb", "STS-B", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "score", None, False,
                 ("pearsonr", "spearmanr"), ("STS-B.tsv",)),
        GlueTask("qqp", "QQP", ("question1", "question2"), ("question1", "question2"), "is_duplicate",
                 ("not_duplicate", "duplicate"), False, ("accuracy", "f1"), ("QQP.tsv",)),
        GlueTask("mnli", "MNLI", ("premise", "hypothesis"), ("sentence1", "sentence2"), "gold_label",
                 ("entailment", "neutral", "contradiction"), True, ("accuracy", "mismatched_accuracy"),
                 ("MNLI-m.tsv", "MNLI-mm.tsv"), files=NLI_FILES),
        GlueTask("qnli", "QNLI", ("question", "sentence"), ("question", "sentence"), "label",
                 ("entailment", "not_entailment"), True, ("accuracy",), ("QNLI.tsv",)),
        GlueTask("rte", "RTE", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "label",
                 ("entailment", "not_entailment"), True, ("accuracy",), ("RTE.tsv",)),
        GlueTask("wnli", "WNLI", ("sentence1", "sentence2"), ("sentence1", "sentence2"), "label",
                 ("not_entailment", "entailment"), False, ("accuracy",), ("WNLI.tsv",)),
    )
}


def task_named(name: str) -> GlueTask:
    """A task by any usual spelling: cola, CoLA, SST-2, sst2, STS-B, ..."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in TASKS:
        raise GlueDataError(f"unknown GLUE task {name!r}; the tasks are {', '.join(TASKS)}")
    return TASKS[key]


def task_folder(glue_dir: str | Path, task: GlueTask) -> Path | None:
    """The task's folder under glue_dir (CoLA, cola, SST-2, sst2, ...), or None."""
    glue_dir = Path(glue_dir)
    wanted = {task.folder.lower(), task.name}
    if glue_dir.is_dir():
        for child in sorted(glue_dir.iterdir()):
            if child.is_dir() and child.name.lower() in wanted:
                return child
    return None


def tasks_in(glue_dir: str | Path) -> list[GlueTask]:
    """Every task with a folder under glue_dir, in GLUE's order."""
    return [task for task in TASKS.values() if task_folder(glue_dir, task) is not None]


def split_files(glue_dir: str | Path, task: GlueTask) -> dict[str, Path]:
    """The task's files that exist (train and dev required: a GlueDataError names what is missing)."""
    folder = task_folder(glue_dir, task)
    if folder is None:
        raise GlueDataError(f"{glue_dir} has no {task.folder} folder for GLUE task {task.name}")
    found = {split: folder / name for split, name in task.files.items() if (folder / name).is_file()}
    missing = [task.files[split] for split in task.files if split not in found and not split.startswith("test")]
    if missing:
        raise GlueDataError(f"{folder} lacks {', '.join(missing)} (GLUE task {task.name} needs {', '.join(task.files.values())}, test files optional)")
    return found


def _rows(path: Path, limit: int | None = None) -> list[list[str]]:
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as file:  # utf-8-sig drops MRPC's byte-order mark
        for row in csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row:
                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def file_layout(path: Path, task: GlueTask, split: str, first_row: list[str]) -> tuple[list[int], int | None, bool]:
    """(text positions, label position or None, has a header row), from the file's first row.

    A first row that is not the task's header (or, for CoLA's headerless files, not a data row) is an error.
    """
    labelled = not split.startswith("test")
    if split in task.headerless:
        # CoLA: source, label, original mark, sentence. A header row here means the file is not CoLA's.
        if len(first_row) != 4 or first_row[1] not in ("0", "1"):
            raise GlueDataError(
                f"{path}: not GLUE {task.name}'s headerless format (source, label 0/1, mark, sentence); "
                f"first row: {first_row[:4]}"
            )
        return list(task.text_columns), task.label_column, False
    text_names = list(task.test_text_columns if split.startswith("test") and task.test_text_columns else task.text_columns)
    needed = text_names + ([task.label_column] if labelled else [])
    missing = [name for name in needed if name not in first_row]
    if missing:
        raise GlueDataError(
            f"{path}: the header is not GLUE {task.name}'s: no column {', '.join(repr(m) for m in missing)} "
            f"(found {', '.join(first_row)})"
        )
    label_position = first_row.index(task.label_column) if labelled else None
    return [first_row.index(name) for name in text_names], label_position, True


def check_task_files(glue_dir: str | Path, task: GlueTask) -> dict[str, Path]:
    """The task's files, each header checked (first rows only): what read_local_task would refuse, found early."""
    files = split_files(glue_dir, task)
    for split, path in files.items():
        first = _rows(path, limit=1)
        if not first:
            raise GlueDataError(f"{path} is empty")
        file_layout(path, task, split, first[0])
    return files


def read_split(path: Path, task: GlueTask, split: str) -> datasets.Dataset:
    """One GLUE file as `sentence1`, [`sentence2`], `label`, `idx`; a header that is not the task's is an error."""
    rows = _rows(path)
    if not rows:
        raise GlueDataError(f"{path} is empty")
    positions, label_position, has_header = file_layout(path, task, split, rows[0])
    body = rows[1:] if has_header else rows
    texts = [[] for _ in positions]
    labels, indices, skipped = [], [], 0
    last = max(positions + ([label_position] if label_position is not None else []))
    for index, row in enumerate(body):
        line = index + (2 if has_header else 1)
        if len(row) <= last:
            if split.startswith("test"):  # a submission needs every test row
                raise GlueDataError(f"{path}, line {line}: {len(row)} fields, fewer than GLUE {task.name}'s test rows have")
            skipped += 1  # a malformed row (a few in QQP's train file), skipped as GLUE's own processors do
            continue
        for column, position in zip(texts, positions):
            column.append(row[position])
        indices.append(index)  # the row's place in the file, even after a skipped row
        if label_position is not None:
            labels.append(_label(row[label_position], task, path, line))
    if skipped:
        logger.warning("%s: skipped %d malformed row(s)", path, skipped)
    columns = {"sentence1": texts[0]}
    if len(texts) > 1:
        columns["sentence2"] = texts[1]
    labelled = label_position is not None
    columns["label"] = labels if labelled else [-1.0 if task.regression else -1] * len(texts[0])
    columns["idx"] = indices
    features = {name: datasets.Value("string") for name in columns if name.startswith("sentence")}
    features["label"] = datasets.Value("float32") if task.regression else datasets.ClassLabel(names=list(task.label_names))
    features["idx"] = datasets.Value("int32")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _label(value: str, task: GlueTask, path: Path, line: int):
    if task.regression:
        try:
            return float(value)
        except ValueError:
            raise GlueDataError(f"{path}, line {line}: score {value!r} is not a number") from None
    if task.labels_are_names:
        if value not in task.label_names:
            raise GlueDataError(f"{path}, line {line}: label {value!r} is not one of {', '.join(task.label_names)}")
        return task.label_names.index(value)
    if value not in ("0", "1"):
        raise GlueDataError(f"{path}, line {line}: label {value!r} is not 0 or 1")
    return int(value)


def read_local_task(glue_dir: str | Path, task: GlueTask) -> datasets.DatasetDict:
    """Every split the task's folder holds, read exactly (see the module docstring)."""
    return datasets.DatasetDict({split: read_split(path, task, split) for split, path in split_files(glue_dir, task).items()})


def load_hub_task(task: GlueTask, cache_dir: str | None = None) -> datasets.DatasetDict:
    """The task from the Hub (nyu-mll/glue), with the local layout's split names and columns."""
    raw = datasets.load_dataset("nyu-mll/glue", task.name, cache_dir=cache_dir)
    names = {"train": "train", "validation": "validation", "test": "test"}
    if task.name == "mnli":
        names = {"train": "train", "validation": "validation_matched", "validation_mismatched": "validation_mismatched",
                 "test": "test_matched", "test_mismatched": "test_mismatched"}
    text_1, text_2 = task.hub_text_columns
    renames = {text_1: "sentence1", **({text_2: "sentence2"} if text_2 else {})}
    out = {}
    for split, hub_split in names.items():
        if hub_split in raw:
            dataset = raw[hub_split]
            out[split] = dataset.rename_columns({k: v for k, v in renames.items() if k != v})
    return datasets.DatasetDict(out)
