"""run_token_classification.py's library: CoNLL files read exactly, tags on first word pieces, seqeval F1 beside the
all-O line, a model that learns, and bad input named before anything trains."""

import json
import random

import numpy as np
import pytest
from huggingface_hub import ModelCard
from seqeval.metrics.sequence_labeling import get_entities
from transformers import AutoTokenizer, EvalPrediction

import scratchbert
from scratchbert import ScratchBertForPreTraining
from scratchbert.cli import ConfigError
from scratchbert.token_classification import (
    DataArguments,
    DataError,
    ModelArguments,
    ScoredWords,
    align_tags,
    load_splits,
    main,
    make_compute_metrics,
    read_conll,
    run,
    tag_names_of,
)
from conftest import SHARED_DATA, requires_shared_data, tiny_config

PEOPLE, PLACES = ["alice", "bob", "carol", "dave"], ["paris", "rome", "oslo", "lima"]
FILLER = ["the", "met", "in", "went", "to", "saw", "near", "today", "with", "and"]


def conll_text(n_sentences: int, seed: int) -> str:
    """Sentences whose tags follow from the words alone: a person is I-PER, a place I-LOC, the rest O."""
    rng = random.Random(seed)
    blocks = ["-DOCSTART- -X- O O\n"]
    for _ in range(n_sentences):
        words = rng.sample(FILLER, 4) + [rng.choice(PEOPLE), rng.choice(PLACES)]
        rng.shuffle(words)
        tags = ["I-PER" if w in PEOPLE else "I-LOC" if w in PLACES else "O" for w in words]
        blocks.append("".join(f"{w} NN I-NP {t}\n" for w, t in zip(words, tags)))
    return "\n".join(blocks)


@pytest.fixture(scope="module")
def ner_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ner")
    (root / "train.txt").write_text(conll_text(160, seed=0))
    (root / "dev.txt").write_text(conll_text(40, seed=1))
    checkpoint = root / "checkpoint"
    texts = [" ".join(PEOPLE + PLACES + FILLER)] * 20
    tokenizer = scratchbert.train_wordpiece_tokenizer(texts, vocab_size=80, model_max_length=64, save_directory=str(checkpoint))
    ScratchBertForPreTraining(tiny_config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id)).save_pretrained(checkpoint)
    return root


def tag(tmp_path, ner_data, *args):
    out = tmp_path / "run"
    return out, run([
        "--model_name_or_path", str(ner_data / "checkpoint"), "--train_file", str(ner_data / "train.txt"),
        "--validation_file", str(ner_data / "dev.txt"), "--output_dir", str(out), "--output", str(tmp_path / "r.json"),
        "--max_seq_length", "32", "--per_device_train_batch_size", "16", "--learning_rate", "3e-3",
        "--num_train_epochs", "6", "--use_cpu", "true", "--report_to", "none", "--save_strategy", "no", *args,
    ])


def test_conll_files_are_read_as_released(tmp_path):
    path = tmp_path / "x.conll"
    path.write_text("-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n\n\nPeter NNP I-NP I-PER\n"
                    "-DOCSTART- -X- O O\nBRUSSELS NNP I-NP I-LOC")
    sentences = read_conll(path)
    assert sentences["tokens"] == [["EU", "rejects"], ["Peter"], ["BRUSSELS"]]
    assert sentences["tags"] == [["I-ORG", "O"], ["I-PER"], ["I-LOC"]]


def test_a_byte_order_mark_is_not_read_as_a_word(tmp_path):
    path = tmp_path / "bom.conll"
    path.write_text("\ufeff-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP O\n", encoding="utf-8")
    sentences = read_conll(path)
    assert sentences["tokens"] == [["EU", "rejects"]] and sentences["tags"] == [["I-ORG", "O"]]


def test_bad_conll_input_is_named(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU I-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"bad.conll, line 2: 'rejects' has no tag column"):
        read_conll(path)
    (tmp_path / "empty.conll").write_text("-DOCSTART- -X- O O\n\n")
    with pytest.raises(DataError, match="holds no sentences"):
        read_conll(tmp_path / "empty.conll")
    with pytest.raises(DataError, match="no such file"):
        read_conll(tmp_path / "missing.conll")


def test_a_tag_unseen_in_training_is_refused(tmp_path, ner_data):
    (tmp_path / "dev.txt").write_text("alice NN I-NP I-PER\nfoo NN I-NP B-MISC\n")
    code = main(["--model_name_or_path", str(ner_data / "checkpoint"), "--train_file", str(ner_data / "train.txt"),
                 "--validation_file", str(tmp_path / "dev.txt"), "--output_dir", str(tmp_path / "out")])
    assert code == 2 and not list((tmp_path / "out").glob("*"))  # refused before anything was written


def test_no_checkpoint_is_a_named_error(tmp_path, ner_data):
    with pytest.raises(ConfigError, match="give model_name_or_path"):
        run(["--train_file", str(ner_data / "train.txt"), "--validation_file", str(ner_data / "dev.txt"),
             "--output_dir", str(tmp_path / "out")])


def test_each_words_tag_goes_to_its_first_word_piece(tmp_path, ner_data, tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)  # trained on other text: long words split into pieces
    (tmp_path / "t.txt").write_text("Tokenizers NN I-NP I-ORG\nsplit VB I-VP O\nunbelievably RB I-NP I-MISC\n")

    data_args = DataArguments(train_file=str(tmp_path / "t.txt"), validation_file=str(tmp_path / "t.txt"), max_seq_length=64)
    splits = load_splits(data_args)
    names = tag_names_of(splits)
    assert names[0] == "O"
    encoded = align_tags(splits, tokenizer, names, data_args)["train"][0]
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    expected, words = [], iter(["I-ORG", "O", "I-MISC"])
    for piece in pieces:
        expected.append(-100 if piece in ("[CLS]", "[SEP]") or piece.startswith("##") else names.index(next(words)))
    assert any(p.startswith("##") for p in pieces)
    assert encoded["labels"] == expected


def long_sentences(tmp_path):
    """Two sentences of 30 words (many of two pieces: "went" is w ##ent), a person at the very end of the first."""
    rng = random.Random(3)
    sentences = []
    for _ in range(2):
        words = [rng.choice(FILLER + PLACES) for _ in range(29)] + [rng.choice(PEOPLE)]
        sentences.append([(w, "I-PER" if w in PEOPLE else "I-LOC" if w in PLACES else "O") for w in words])
    sentences.append([("alice", "I-PER"), ("went", "O")])  # and a short one
    path = tmp_path / "long.txt"
    path.write_text("\n".join("".join(f"{w} NN I-NP {t}\n" for w, t in rows) for rows in sentences))
    return path, sentences


@pytest.mark.parametrize("stride", ["0", "3", "6"])
def test_long_sentences_are_windowed_and_every_word_labelled_once(tmp_path, ner_data, stride):
    # Truncated at max_seq_length, the words past it (and the person at the end) would vanish from the scores.
    path, sentences = long_sentences(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(ner_data / "checkpoint")
    data_args = DataArguments(train_file=str(path), validation_file=str(path), max_seq_length=16, stride=int(stride))
    splits = load_splits(data_args)
    names = tag_names_of(splits)
    encoded = align_tags(splits, tokenizer, names, data_args)["validation"]
    assert len(encoded) > len(sentences) and max(len(ids) for ids in encoded["input_ids"]) <= 16
    labelled = {}
    for sentence, words, labels in zip(encoded["sentence"], encoded["words"], encoded["labels"]):
        kept = [label for label in labels if label != -100]
        assert len(kept) == len(words)
        for word, label in zip(words, kept):
            assert (sentence, word) not in labelled  # once, in one window only
            labelled[sentence, word] = names[label]
    assert labelled == {(s, w): tag for s, rows in enumerate(sentences) for w, (_, tag) in enumerate(rows)}


def test_windows_are_merged_back_and_every_word_is_scored(tmp_path, ner_data):
    path, sentences = long_sentences(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(ner_data / "checkpoint")
    data_args = DataArguments(train_file=str(path), validation_file=str(path), max_seq_length=16)
    splits = load_splits(data_args)
    names = tag_names_of(splits)
    encoded = align_tags(splits, tokenizer, names, data_args)["validation"]
    scored = ScoredWords.of(encoded, splits["validation"])
    width = max(len(ids) for ids in encoded["input_ids"])
    labels = np.array([row + [-100] * (width - len(row)) for row in encoded["labels"]])
    perfect = np.eye(len(names))[np.where(labels == -100, 0, labels)]  # one-hot: the right tag on every piece
    metrics = make_compute_metrics(names, scored)(EvalPrediction(predictions=perfect, label_ids=labels))
    assert metrics["words"] == sum(len(rows) for rows in sentences) == 62
    assert metrics["f1"] == 1.0 and metrics["recall"] == 1.0

    # Miss the person at the end of the first sentence (in its last window): recall counts it as missed.
    last_row = max(i for i, s in enumerate(encoded["sentence"]) if s == 0)
    position = int(np.flatnonzero(labels[last_row] != -100)[-1])
    perfect[last_row, position] = np.eye(len(names))[names.index("O")]
    entities = len(get_entities([[tag for _, tag in rows] for rows in sentences]))
    metrics = make_compute_metrics(names, scored)(EvalPrediction(predictions=perfect, label_ids=labels))
    assert metrics["recall"] == pytest.approx((entities - 1) / entities)


def test_a_stride_that_leaves_no_room_is_refused(tmp_path, ner_data):
    path, _ = long_sentences(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(ner_data / "checkpoint")
    data_args = DataArguments(train_file=str(path), validation_file=str(path), max_seq_length=16, stride=14)
    splits = load_splits(data_args)
    with pytest.raises(ConfigError, match="stride=14 must be below the 14 word pieces"):
        align_tags(splits, tokenizer, tag_names_of(splits), data_args)


@pytest.mark.slow
def test_tagging_is_learnt_and_scored_beside_the_all_o_line(tmp_path, ner_data):
    out, results = tag(tmp_path, ner_data)
    assert results["eval_f1"] > 0.9 and results["eval_all_o_baseline_f1"] == 0.0
    assert results["eval_all_o_baseline_accuracy"] == pytest.approx(4 / 6)  # four O words of six in every sentence
    assert results["eval_words"] == 40 * 6
    assert results["tags"] == ["O", "I-LOC", "I-PER"]
    assert json.loads((tmp_path / "r.json").read_text())["eval_f1"] == pytest.approx(results["eval_f1"])
    data = ModelCard.load(out / "README.md").data.to_dict()
    assert data["pipeline_tag"] == "token-classification" and data["license"] == "apache-2.0"
    assert {m["name"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}["entity F1 (validation, seqeval)"] == pytest.approx(results["eval_f1"])

    from transformers import pipeline

    # As the model card says: each word tagged by its first piece, the way it was trained ("went" is w ##ent).
    tagger = pipeline("token-classification", model=str(out), trust_remote_code=True, device="cpu", aggregation_strategy="first")
    found = {(e["word"], e["entity_group"]) for e in tagger("alice went to paris")}
    assert found == {("alice", "PER"), ("paris", "LOC")}


@pytest.mark.slow
def test_random_init_keeps_the_architecture_and_tokenizer(tmp_path, ner_data):
    # Windows of 8 pieces (6 words): most sentences are longer, and every word of them is still scored.
    out, results = tag(tmp_path, ner_data, "--random_init", "true", "--num_train_epochs", "1", "--max_seq_length", "8")
    assert results["random_init"] is True and (out / "tokenizer.json").is_file()
    assert results["eval_words"] == 40 * 6
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "O", "1": "I-LOC", "2": "I-PER"}


@requires_shared_data("conll2003", "eng.train")
def test_the_shared_conll2003_files_read_in_full():
    train, dev = read_conll(SHARED_DATA / "conll2003" / "eng.train"), read_conll(SHARED_DATA / "conll2003" / "eng.testa")
    assert (len(train), sum(len(t) for t in train["tokens"])) == (14041, 203621)  # as ../shared/data/README.md says
    assert len(dev) == 3250
    data_args = DataArguments(train_file=str(SHARED_DATA / "conll2003" / "eng.train"),
                              validation_file=str(SHARED_DATA / "conll2003" / "eng.testa"))
    assert set(tag_names_of(load_splits(data_args))) == {
        "O", "I-PER", "I-ORG", "I-LOC", "I-MISC", "B-ORG", "B-LOC", "B-MISC"}
