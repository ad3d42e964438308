"""GLUE folders in download_glue_data.py's layout: every task read exactly, labels in the Hub's order."""

import datasets
import pytest

from scratchbert.glue_tasks import (
    TASKS,
    GlueDataError,
    check_task_files,
    load_hub_task,
    read_local_task,
    task_named,
    tasks_in,
)
from conftest import GLUE_LABELS, glue_texts, write_glue_folder

N_TRAIN, N_DEV, N_TEST = 24, 12, 6


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue_folder(tmp_path_factory.mktemp("glue"), n_train=N_TRAIN, n_dev=N_DEV, n_test=N_TEST)


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_is_read_exactly(glue_dir, name):
    task = TASKS[name]
    splits = read_local_task(glue_dir, task)
    expected = {"train", "validation", "test"} | ({"validation_mismatched", "test_mismatched"} if name == "mnli" else set())
    assert set(splits) == expected
    train = splits["train"]
    # Every row, stray quote marks included (quoting off): a quoting reader would swallow rows after a quote.
    assert len(train) == N_TRAIN and len(splits["validation"]) == N_DEV and len(splits["test"]) == N_TEST
    file_labels = GLUE_LABELS[task.folder]
    for i, row in enumerate(train):
        label = f"{(i % 26) / 5:.3f}" if file_labels is None else file_labels[i % len(file_labels)]
        a, b = glue_texts(i, label)
        assert row["sentence1"] == a and row["idx"] == i
        assert row.get("sentence2", b) == b and ("sentence2" in row) == (task.hub_text_columns[1] is not None)
        if task.regression:
            assert row["label"] == pytest.approx(float(label))
        else:  # ids in the Hub's ClassLabel order: names mapped, 0/1 kept
            assert train.features["label"].names == list(task.label_names)
            assert train.features["label"].int2str(row["label"]) == (label if task.labels_are_names else task.label_names[int(label)])
    assert set(splits["test"]["label"]) == {-1} and splits["test"]["idx"] == list(range(N_TEST))


def test_hub_label_order_matches_the_local_files():
    assert TASKS["mrpc"].label_names == ("not_equivalent", "equivalent")  # Quality 1 = equivalent = id 1
    assert TASKS["rte"].label_names == ("entailment", "not_entailment")
    assert TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert TASKS["wnli"].label_names == ("not_entailment", "entailment")  # WNLI's files say 1 for entailment


def test_hub_and_local_runs_of_a_task_see_the_same_data(glue_dir, monkeypatch):
    local = read_local_task(glue_dir, TASKS["rte"])
    names = ["entailment", "not_entailment"]

    def fake_load_dataset(path, name=None, **kwargs):  # the network boundary: nyu-mll/glue's rte, as the Hub has it
        assert (path, name) == ("nyu-mll/glue", "rte")
        features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                      "label": datasets.ClassLabel(names=names), "idx": datasets.Value("int32")})
        return datasets.DatasetDict({split: datasets.Dataset.from_dict(local[split].to_dict(), features=features)
                                     for split in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    hub = load_hub_task(TASKS["rte"])
    for split in ("train", "validation", "test"):
        assert hub[split]["label"] == local[split]["label"] and hub[split]["sentence2"] == local[split]["sentence2"]


def test_task_names_in_any_usual_spelling(glue_dir):
    assert [task_named(n).name for n in ("CoLA", "SST-2", "sst2", "STS-B", "mnli", "QQP")] == ["cola", "sst2", "sst2", "stsb", "mnli", "qqp"]
    with pytest.raises(GlueDataError, match="unknown GLUE task 'mprc'"):
        task_named("mprc")
    assert [t.name for t in tasks_in(glue_dir)] == list(TASKS)


def test_a_folder_that_lacks_a_tasks_files_is_named(tmp_path):
    write_glue_folder(tmp_path, folders=("RTE",))
    (tmp_path / "RTE" / "dev.tsv").unlink()
    with pytest.raises(GlueDataError, match=r"RTE lacks dev.tsv"):
        check_task_files(tmp_path, TASKS["rte"])
    with pytest.raises(GlueDataError, match="has no MRPC folder"):
        check_task_files(tmp_path, TASKS["mrpc"])


def test_a_header_that_is_not_the_tasks_is_named(tmp_path):
    write_glue_folder(tmp_path, folders=("RTE", "QQP", "CoLA"))
    (tmp_path / "RTE" / "train.tsv").write_text((tmp_path / "QQP" / "train.tsv").read_text())  # QQP's file in RTE's place
    with pytest.raises(GlueDataError, match=r"RTE/train.tsv: the header is not GLUE rte's: no column 'sentence1', 'sentence2', 'label'"):
        check_task_files(tmp_path, TASKS["rte"])
    (tmp_path / "CoLA" / "dev.tsv").write_text("sentence\tlabel\nA sentence.\t1\n")  # a header on a headerless file
    with pytest.raises(GlueDataError, match=r"CoLA/dev.tsv: not GLUE cola's headerless format"):
        check_task_files(tmp_path, TASKS["cola"])


def test_a_label_outside_the_task_is_named(tmp_path):
    write_glue_folder(tmp_path, folders=("RTE",))
    path = tmp_path / "RTE" / "train.tsv"
    path.write_text(path.read_text().replace("\tnot_entailment\n", "\tcontradiction\n", 1))
    with pytest.raises(GlueDataError, match=r"train.tsv, line 3: label 'contradiction' is not one of entailment, not_entailment"):
        read_local_task(tmp_path, TASKS["rte"])


def test_malformed_rows_skipped_in_training_refused_in_test_files(tmp_path):
    write_glue_folder(tmp_path, folders=("QQP",))
    train = tmp_path / "QQP" / "train.tsv"
    lines = train.read_text().splitlines()
    lines[3] = "broken\trow"  # data row 2 (0-based): too few fields, as a few rows of QQP's real train file
    train.write_text("\n".join(lines) + "\n")
    read = read_local_task(tmp_path, TASKS["qqp"])["train"]
    assert len(read) == N_TRAIN - 1 and read["idx"][:4] == [0, 1, 3, 4]  # indices stay the file's
    test = tmp_path / "QQP" / "test.tsv"
    test.write_text(test.read_text() + "7\tonly one question\n")
    with pytest.raises(GlueDataError, match=r"test.tsv, line 8: 2 fields"):
        read_local_task(tmp_path, TASKS["qqp"])
