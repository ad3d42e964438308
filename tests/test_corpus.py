"""Text sources: each local format, the offline default, the synthetic corpus, and their errors."""

import json

import pytest

from scratchbert.corpus import CorpusError, load_documents, offline_documents, read_bert_format, split_sentences, synthetic_documents
from conftest import SHARED_DATA, requires_shared_data


def test_split_sentences_keeps_closing_quotes_and_brackets():
    text = 'He said "Hi there." Then he left. (It rained.) Next day was fine! "Yes!" (Or no.) [Done.]'
    assert split_sentences(text) == ['He said "Hi there."', "Then he left.", "(It rained.)", "Next day was fine!",
                                     '"Yes!"', "(Or no.)", "[Done.]"]


def test_split_sentences():
    text = 'First sentence. Second one? "Quoted" third!\nNew paragraph. 2019 was a year.\n\n'
    assert split_sentences(text) == ["First sentence.", "Second one?", '"Quoted" third!', "New paragraph.", "2019 was a year."]


def test_offline_corpus_is_real_english_and_needs_no_download():
    documents = offline_documents()
    assert len(documents) > 50
    words = " ".join(documents).split()
    assert len(words) > 40_000
    assert words.count("the") > 1000
    assert all(len(split_sentences(d)) >= 1 for d in documents)


def test_synthetic_documents_share_a_topic_within_a_document():
    documents = synthetic_documents(20, seed=1)
    first = [set(s.lower().strip(".").split()) for s in split_sentences(documents[0])]
    other = set(documents[1].lower().replace(".", "").split())
    assert len(first[0] & first[1]) > 0 or len(first[0]) < 3
    assert len(set().union(*first) & other) < len(set().union(*first))
    assert synthetic_documents(5, seed=1) == synthetic_documents(5, seed=1)


def test_the_synthetic_corpus_generates_max_documents_documents(tmp_path):
    few = load_documents(corpus="synthetic", max_documents=30, seed=1, cache_dir=str(tmp_path))
    assert few["text"] == synthetic_documents(30, seed=1) == synthetic_documents(2000, seed=1)[:30]
    assert len(load_documents(corpus="synthetic", cache_dir=str(tmp_path))) == 2000


@pytest.mark.parametrize("suffix", [".txt", ".json", ".jsonl", ".csv", ".parquet"])
def test_each_local_format(tmp_path, suffix):
    texts = ["Alpha one. Alpha two.", "Beta one. Beta two. Beta three."]
    path = tmp_path / f"corpus{suffix}"
    if suffix == ".txt":
        path.write_text("Alpha one.\nAlpha two.\n\nBeta one.\nBeta two.\nBeta three.\n")
    elif suffix == ".json":
        path.write_text(json.dumps([{"body": t} for t in texts]))
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps({"body": t}) for t in texts))
    elif suffix == ".csv":
        path.write_text("body\n" + "\n".join(f'"{t}"' for t in texts))
    else:
        import datasets

        datasets.Dataset.from_dict({"body": texts}).to_parquet(str(path))
    column = "text" if suffix == ".txt" else "body"
    documents = load_documents(train_file=str(path), text_column=column)
    assert documents.column_names == ["text"] and len(documents) == 2
    assert split_sentences(documents[1]["text"]) == ["Beta one.", "Beta two.", "Beta three."]


def test_bert_format_blank_lines_separate_documents(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n\nA.\nB.\n\n\n\nC.\n")
    assert read_bert_format(path) == ["A.\nB.", "C."]


def test_errors_are_named(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        load_documents(train_file=str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(CorpusError, match="is empty"):
        load_documents(train_file=str(tmp_path / "empty.txt"))
    (tmp_path / "blank.txt").write_text("\n\n\n")
    with pytest.raises(CorpusError, match="holds no text"):
        load_documents(train_file=str(tmp_path / "blank.txt"))
    (tmp_path / "c.jsonl").write_text(json.dumps({"body": "x"}))
    with pytest.raises(CorpusError, match="text column 'text' not found; the data has columns body"):
        load_documents(train_file=str(tmp_path / "c.jsonl"))
    (tmp_path / "c.docx").write_text("x")
    with pytest.raises(CorpusError, match="unsupported file type"):
        load_documents(train_file=str(tmp_path / "c.docx"))
    with pytest.raises(CorpusError, match="not dataset_name and train_file"):
        load_documents(dataset_name="x", train_file="y")
    with pytest.raises(CorpusError, match="corpus must be"):
        load_documents(corpus="novels")


def test_hub_dataset_path_is_real_and_fails_clearly_offline(monkeypatch):
    """The Hub code path calls datasets.load_dataset with the name and config; offline it fails with a named error."""
    import datasets

    calls = []

    def fake_load_dataset(name, config=None, **kwargs):
        calls.append((name, config, kwargs.get("split"), kwargs.get("streaming")))
        return datasets.Dataset.from_dict({"id": ["1"], "text": ["One. Two."], "title": ["t"], "url": ["u"]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    documents = load_documents(dataset_name="wikimedia/wikipedia", dataset_config_name="20231101.en")
    assert calls == [("wikimedia/wikipedia", "20231101.en", "train", False)]
    assert documents.column_names == ["text"]
    monkeypatch.undo()
    with pytest.raises(CorpusError, match="cannot load Hub dataset 'no-such/dataset'"):
        load_documents(dataset_name="no-such/dataset")


@requires_shared_data("wikipedia", "wiki_en_sample.jsonl")
def test_shared_wikipedia_sample_loads_in_the_hub_schema():
    documents = load_documents(train_file=str(SHARED_DATA / "wikipedia" / "wiki_en_sample.jsonl"), max_documents=50)
    assert len(documents) == 50
    assert sum(len(split_sentences(d)) >= 2 for d in documents["text"]) > 10
