"""The NSP and sentence-order pair builder and the masking collator: the properties BERT's data pipeline promises."""

import os
import random

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from scratchbert import train_wordpiece_tokenizer
from scratchbert.pretraining_data import (
    split_documents,
    DataCollatorForPretraining,
    build_examples,
    cached_wordpiece_tokenizer,
    mask_for_evaluation,
    pairs_from_document,
    stream_share,
    tokenize_documents,
)
from conftest import SAMPLE_TEXTS

CLS, SEP = 2, 3


def numbered_documents(num_documents=400, seed=0):
    """Document d, sentence s holds tokens that encode (d, s), so every pair can be traced back."""
    rng = random.Random(seed)
    documents = []
    for d in range(num_documents):
        sentences = []
        for s in range(rng.randint(1, 9)):
            length = rng.randint(3, 40)
            sentences.append([10_000 + d * 100 + s] * length)
        documents.append(sentences)
    return documents


def origin(token):
    return (token - 10_000) // 100, (token - 10_000) % 100


def build(documents, seed=0, max_seq_length=64, **kwargs):
    return build_examples(
        {"sentences": documents}, list(range(len(documents))), CLS, SEP, max_seq_length, seed=seed, **kwargs
    )


def test_labels_are_balanced_on_a_large_sample():
    examples = build(numbered_documents(2000), dupe_factor=2)
    labels = examples["next_sentence_label"]
    assert len(labels) > 5000
    assert abs(sum(labels) / len(labels) - 0.5) < 0.05


def test_next_pairs_never_cross_documents_and_random_pairs_do():
    examples = build(numbered_documents())
    for ids, types, label in zip(examples["input_ids"], examples["token_type_ids"], examples["next_sentence_label"]):
        a = [origin(t) for t, k in zip(ids, types) if k == 0 and t not in (CLS, SEP)]
        b = [origin(t) for t, k in zip(ids, types) if k == 1 and t != SEP]
        docs_a, docs_b = {d for d, _ in a}, {d for d, _ in b}
        assert len(docs_a) == 1, "segment A comes from one document"
        if label == 0:
            assert docs_b == docs_a
            assert b[0][1] > a[-1][1], "B comes after A (truncation may trim sentences at the seam)"
            sentence_order = [s for _, s in a + b]
            assert sentence_order == sorted(sentence_order)
        else:
            assert docs_b.isdisjoint(docs_a)


def test_sentence_order_pairs_are_consecutive_segments_of_one_document_half_of_them_swapped():
    examples = build(numbered_documents(2000), pair_objective="sop")
    labels = examples["next_sentence_label"]
    assert len(labels) > 2500 and abs(sum(labels) / len(labels) - 0.5) < 0.05
    for ids, types, label in zip(examples["input_ids"], examples["token_type_ids"], labels):
        a = [origin(t) for t, k in zip(ids, types) if k == 0 and t not in (CLS, SEP)]
        b = [origin(t) for t, k in zip(ids, types) if k == 1 and t != SEP]
        assert {d for d, _ in a} == {d for d, _ in b} and len({d for d, _ in a}) == 1, "never a random B"
        first, second = (a, b) if label == 0 else (b, a)  # label 1: the later segment comes first
        assert second[0][1] > first[-1][1]
        assert [s for _, s in first + second] == sorted(s for _, s in first + second)


def test_lengths_token_types_and_special_tokens():
    examples = build(numbered_documents(), max_seq_length=48, short_seq_prob=0.3)
    lengths = [len(ids) for ids in examples["input_ids"]]
    assert max(lengths) <= 48
    assert min(lengths) < 30, "short_seq_prob gives some short sequences"
    for ids, types, special in zip(examples["input_ids"], examples["token_type_ids"], examples["special_tokens_mask"]):
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2
        first_sep = ids.index(SEP)
        assert types == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1)
        assert special == [1 if t in (CLS, SEP) else 0 for t in ids]


def test_deterministic_for_a_seed():
    documents = numbered_documents(100)
    assert build(documents, seed=3) == build(documents, seed=3)
    assert build(documents, seed=3)["input_ids"] != build(documents, seed=4)["input_ids"]


def test_single_sentence_documents_make_no_pairs_but_serve_as_random_b():
    documents = [[[11] * 5], [[12] * 5, [13] * 5, [14] * 5]]
    pairs = []
    for seed in range(50):
        pairs += pairs_from_document(0, documents, 64, 0.0, random.Random(seed))
    assert pairs == []


def test_mlm_only_packs_whole_sentences_into_single_segments():
    examples = build(numbered_documents(50), max_seq_length=64, nsp=False)
    assert "next_sentence_label" not in examples
    for ids, types in zip(examples["input_ids"], examples["token_type_ids"]):
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 1 and set(types) == {0}
        assert len(ids) <= 64


def test_tokenize_documents_splits_sentences(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    out = tokenize_documents({"text": ["The cat sat on the mat. It was a sunny day.\nA new paragraph.", ""]}, tokenizer)
    assert len(out["sentences"][0]) == 3 and out["sentences"][1] == []
    assert tokenizer.decode(out["sentences"][0][1]) == "it was a sunny day."


# --------------------------------------------------------------------------------------------------------------
# Masking
# --------------------------------------------------------------------------------------------------------------


def collated_examples(tokenizer, n=400):
    g = random.Random(0)
    examples = []
    for _ in range(n):
        a = [g.randint(5, len(tokenizer) - 1) for _ in range(g.randint(3, 30))]
        b = [g.randint(5, len(tokenizer) - 1) for _ in range(g.randint(3, 30))]
        examples.append({
            "input_ids": [CLS, *a, SEP, *b, SEP],
            "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1),
            "special_tokens_mask": [1] + [0] * len(a) + [1] + [0] * len(b) + [1],
            "next_sentence_label": g.randint(0, 1),
        })
    return examples


def collated(tokenizer, whole_word_mask=False, n=400):
    examples = collated_examples(tokenizer, n)
    originals = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["input_ids"]) for e in examples], batch_first=True)
    collator = DataCollatorForPretraining(tokenizer=tokenizer, whole_word_mask=whole_word_mask, seed=0)
    return collator([dict(e) for e in examples]), originals


def test_masking_statistics(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    batch, originals = collated(tokenizer)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask", "labels", "next_sentence_label"}
    real = batch["attention_mask"].bool()
    special = (originals == CLS) | (originals == SEP) | ~real
    masked = batch["labels"] != -100
    assert not (masked & special).any(), "special tokens and padding are never masked"
    assert torch.equal(batch["labels"][masked], originals[masked])
    rate = masked.sum() / (~special).sum()
    assert 0.13 < rate < 0.17
    replaced_by_mask = (batch["input_ids"] == tokenizer.mask_token_id) & masked
    unchanged = (batch["input_ids"] == originals) & masked
    n = masked.sum()
    assert 0.76 < replaced_by_mask.sum() / n < 0.84
    assert 0.07 < unchanged.sum() / n < 0.13  # 10 % kept (plus the rare random token equal to the original)
    assert not ((batch["input_ids"] != originals) & ~masked).any(), "unmasked positions are untouched"
    assert batch["next_sentence_label"].shape == (400,)


def test_whole_word_masking_masks_every_piece_of_a_word(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    continuation = torch.tensor([t.startswith("##") for t, _ in sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])])
    batch, originals = collated(tokenizer, whole_word_mask=True)
    masked = batch["labels"] != -100
    assert masked.any()
    is_piece = continuation[originals] & batch["attention_mask"].bool()
    follows_word = ~torch.isin(originals, torch.tensor([CLS, SEP]))  # a piece after [SEP] starts a new word
    # A continuation piece is masked exactly when the token before it is.
    rows, cols = (is_piece[:, 1:] & follows_word[:, :-1]).nonzero(as_tuple=True)
    cols = cols + 1
    assert torch.equal(masked[rows, cols], masked[rows, cols - 1])


def test_whole_word_masking_keeps_80_10_10_per_token(tokenizer_dir):
    # transformers' collator turns every chosen token into [MASK] under whole-word masking; Google's does not.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    batch, originals = collated(tokenizer, whole_word_mask=True, n=600)
    masked = batch["labels"] != -100
    n = masked.sum()
    replaced_by_mask = (batch["input_ids"] == tokenizer.mask_token_id) & masked
    unchanged = (batch["input_ids"] == originals) & masked
    assert 0.75 < replaced_by_mask.sum() / n < 0.85
    assert 0.06 < unchanged.sum() / n < 0.14


# --------------------------------------------------------------------------------------------------------------
# Evaluation masks: drawn once, the same for every run
# --------------------------------------------------------------------------------------------------------------


def masked_share(batch, originals):
    special = (originals == CLS) | (originals == SEP) | ~batch["attention_mask"].bool()
    return float((batch["labels"] != -100).sum() / (~special).sum())


def test_the_collator_masks_as_mask_tokens_does_from_its_batch_generator(tokenizer_dir):
    from scratchbert.pretraining_data import mask_tokens

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = collated_examples(tokenizer, n=800)
    originals = torch.nn.utils.rnn.pad_sequence([torch.tensor(e["input_ids"]) for e in examples], batch_first=True)
    collator = DataCollatorForPretraining(tokenizer=tokenizer, seed=0, mlm_probability=0.15)
    batch = collator([dict(e) for e in examples])
    # About 11k maskable tokens: the binomial spread of a share is under 0.005, so this band cannot fail by luck.
    assert 0.13 < masked_share(batch, originals) < 0.17
    padded = tokenizer.pad([dict(e) for e in examples], return_tensors="pt")
    special = padded.pop("special_tokens_mask").bool() | (padded["attention_mask"] == 0)
    ids, labels = mask_tokens(padded["input_ids"], special, collator.batch_generator(examples), 0.15, 0.8, 0.1,
                              tokenizer.mask_token_id, len(tokenizer))
    assert torch.equal(batch["input_ids"], ids) and torch.equal(batch["labels"], labels)


def eval_examples(n=300, seed=0):
    g = random.Random(seed)
    ids = [[CLS, *[g.randint(5, 119) for _ in range(g.randint(5, 60))], SEP] for _ in range(n)]
    return {"input_ids": ids, "special_tokens_mask": [[1] + [0] * (len(x) - 2) + [1] for x in ids]}


def test_evaluation_masks_are_15_percent_80_10_10_and_never_special():
    batch = eval_examples()
    out = mask_for_evaluation(batch, list(range(300)), mask_token_id=4, vocab_size=120, seed=7)
    original = np.concatenate([np.asarray(x) for x in batch["input_ids"]])
    masked = np.concatenate([np.asarray(x) for x in out["input_ids"]])
    labels = np.concatenate([np.asarray(x) for x in out["labels"]])
    special = np.concatenate([np.asarray(x) for x in batch["special_tokens_mask"]]) == 1
    chosen = labels != -100
    assert not (chosen & special).any()
    assert np.array_equal(labels[chosen], original[chosen])
    assert 0.13 < chosen.sum() / (~special).sum() < 0.17
    assert 0.76 < (masked[chosen] == 4).mean() < 0.84
    assert 0.07 < (masked[chosen] == original[chosen]).mean() < 0.14
    assert np.array_equal(masked[~chosen], original[~chosen]), "positions not chosen are untouched"


def test_evaluation_masks_depend_on_seed_and_example_only():
    batch = eval_examples()
    whole = mask_for_evaluation(batch, list(range(300)), mask_token_id=4, vocab_size=120, seed=7)
    # Another batching of the same examples (as another num_proc or batch size would give): the same masks.
    part = mask_for_evaluation({k: v[100:200] for k, v in batch.items()}, list(range(100, 200)), 4, 120, seed=7)
    assert part["input_ids"] == whole["input_ids"][100:200] and part["labels"] == whole["labels"][100:200]
    other = mask_for_evaluation(batch, list(range(300)), mask_token_id=4, vocab_size=120, seed=8)
    assert other["labels"] != whole["labels"]


def test_collator_pads_premasked_examples_without_masking_again(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = [
        {"input_ids": [CLS, 4, 9, SEP], "token_type_ids": [0, 0, 0, 0], "labels": [-100, 7, -100, -100], "next_sentence_label": 1},
        {"input_ids": [CLS, 8, SEP], "token_type_ids": [0, 0, 0], "labels": [-100, -100, -100], "next_sentence_label": 0},
    ]
    batch = DataCollatorForPretraining(tokenizer=tokenizer, seed=0)(examples)
    assert batch["input_ids"].tolist() == [[CLS, 4, 9, SEP], [CLS, 8, SEP, 0]]
    assert batch["labels"].tolist() == [[-100, 7, -100, -100], [-100, -100, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["next_sentence_label"].tolist() == [1, 0]


# --------------------------------------------------------------------------------------------------------------
# Defects found on the way (issue 13)
# --------------------------------------------------------------------------------------------------------------


def test_masking_epoch_reaches_persistent_workers(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = [dict(e) for e in collated_examples(tokenizer, n=16)]
    collator = DataCollatorForPretraining(tokenizer=tokenizer, seed=0)
    loader = torch.utils.data.DataLoader(examples, batch_size=16, collate_fn=collator, num_workers=1,
                                         persistent_workers=True)
    epoch0 = next(iter(loader))["input_ids"]
    collator.epoch = 1  # what MaskingEpochCallback does at the next epoch, in the main process
    epoch1 = next(iter(loader))["input_ids"]
    in_process = DataCollatorForPretraining(tokenizer=tokenizer, seed=0)
    in_process.epoch = 1
    assert not torch.equal(epoch0, epoch1), "the worker masked epoch 1 like epoch 0"
    assert torch.equal(epoch1, in_process([dict(e) for e in examples])["input_ids"])


def test_literal_special_token_text_stays_text(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    ids = tokenize_documents({"text": ["The cat wrote [MASK] and [SEP] on the mat. It purred."]}, tokenizer)["sentences"][0]
    flat = [t for sentence in ids for t in sentence]
    assert tokenizer.mask_token_id not in flat and tokenizer.sep_token_id not in flat and tokenizer.cls_token_id not in flat


def test_mlm_only_packing_keeps_the_overflow():
    from scratchbert.pretraining_data import segments_from_document

    document = [[1] * 5, [2] * 9, [3] * 4]  # the second sentence crosses the limit of 8 tokens a segment
    segments = segments_from_document(document, max_seq_length=10, short_seq_prob=0.0, rng=random.Random(0))
    assert all(len(s) <= 8 for s in segments)
    assert [t for s in segments for t in s] == [t for sentence in document for t in sentence], "no token dropped"


# --------------------------------------------------------------------------------------------------------------
# Several processes: the tokenizer cache race, each rank's share of a stream
# --------------------------------------------------------------------------------------------------------------


def test_a_process_that_loses_the_cache_race_uses_the_cached_tokenizer(tmp_path, monkeypatch):
    documents = datasets.Dataset.from_dict({"text": SAMPLE_TEXTS})
    winner = train_wordpiece_tokenizer(["zebra quokka narwhal axolotl"] * 30 + SAMPLE_TEXTS, vocab_size=90)
    real_replace = os.replace

    def replace_after_another_process(source, destination):
        winner.save_pretrained(destination)  # another process cached its tokenizer while this one trained
        return real_replace(source, destination)

    monkeypatch.setattr(os, "replace", replace_after_another_process)
    tokenizer = cached_wordpiece_tokenizer(documents, vocab_size=90, cache_dir=str(tmp_path))
    assert winner.get_vocab() != train_wordpiece_tokenizer(SAMPLE_TEXTS, vocab_size=90).get_vocab()
    assert tokenizer.get_vocab() == winner.get_vocab()


@pytest.mark.parametrize("num_shards", [1, 4])
def test_each_rank_reads_its_own_shuffled_share_of_a_stream(num_shards):
    texts = [f"document {i}" for i in range(200)]
    stream = datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(num_shards=num_shards)
    shares = [[row["text"] for row in stream_share(stream, rank, 2, seed=0, buffer_size=50)] for rank in (0, 1)]
    assert set(shares[0]).isdisjoint(shares[1]) and sorted(shares[0] + shares[1]) == sorted(texts)
    for share in shares:  # shuffled through the buffer, not in storage order
        assert share != sorted(share, key=lambda text: int(text.split()[1]))
    again = [row["text"] for row in stream_share(stream, 0, 2, seed=0, buffer_size=50)]
    assert again == shares[0], "the same seed gives the same order"


@pytest.mark.parametrize("world_size", [1, 2, 4])
def test_streamed_hold_out_never_reaches_any_ranks_training_share(world_size):
    # Two files of 40 documents: a held-out-first-n split once let ranks train on held-out documents, because
    # datasets divides a skip between the ranks' files.
    texts = [f"file {f} document {d}. It has a second sentence." for f in range(2) for d in range(40)]
    stream = datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset(num_shards=2)
    train, held_out = split_documents(stream, validation_split_percentage=25, max_eval_documents=6, seed=42)
    evaluated = [row["text"] for row in held_out]
    assert len(evaluated) == 6
    trained = [row["text"] for rank in range(world_size)
               for row in stream_share(train, rank, world_size, seed=0, buffer_size=10)]
    assert not set(trained) & set(evaluated)
    all_held_out = {t for t in texts if t not in trained}
    assert set(evaluated) <= all_held_out and 0.1 < len(all_held_out) / len(texts) < 0.45
    assert len(trained) == len(set(trained)), "no document trained twice"
    assert sorted(trained) == sorted(set(texts) - all_held_out)
