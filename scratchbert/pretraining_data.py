"""The pretraining data pipeline: documents -> sentences -> BERT examples (MLM + NSP pairs, or MLM-only
segments), the held-out set masked once, the tokenizer trained (and cached) on the training documents, and the
collator that masks training batches. Both scripts build their data here: run_pretraining.py, and
run_classification.py for its next-sentence pairs.

transformers 5 removed its NSP dataset classes (TextDatasetForNextSentencePrediction), so the pair builder is
ScratchBert's own, following Google's create_pretraining_data.py:

- a document's sentences are gathered into a chunk until it reaches the target length (max_seq_length - 3,
  or with probability short_seq_prob a random shorter one, so the model also sees short inputs);
- a random number of leading sentences of the chunk becomes segment A;
- with probability 1/2, B is the rest of the chunk: the true continuation (label 0); otherwise B is taken from
  a random place in another document (label 1) and the unused sentences go back to the document;
- the pair is trimmed to fit, one token at a time from the longer segment, at a random end;
- the result is "[CLS] A [SEP] B [SEP]" with token types 0 for [CLS] A [SEP] and 1 for B [SEP].

One change from Google's code: it forces a random B whenever a chunk holds a single sentence, which skews
labels towards "random" on corpora of long sentences. Here a one-sentence chunk takes the next sentence too,
and the last sentence of a document alone makes no pair, so labels stay balanced at 50 %.

Randomness comes from a generator seeded by (seed, repetition, document index): the same seed gives the same
pairs. Random B documents are drawn from the documents of the same `datasets.map` batch, which works the same
on a streamed corpus.
"""

import functools
import hashlib
import logging
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node
from datasets.fingerprint import Hasher
from transformers import (
    AutoTokenizer,
    DataCollatorForLanguageModeling,
    DataCollatorForTokenClassification,
    TrainerCallback,
)

from .corpus import CorpusError, split_sentences
from .tokenization import train_wordpiece_tokenizer

logger = logging.getLogger(__name__)

NEXT, RANDOM = 0, 1  # next_sentence_label values, as in BERT: 0 = B follows A
# The pair objectives the binary head can learn. nsp (BERT): is B the segment after A, or one from another document?
# sop (ALBERT's sentence-order prediction): A and B are always consecutive segments of one document, and label 1
# (RANDOM's value) means their order was swapped; it cannot be solved by telling topics apart, as NSP largely can.
PAIR_OBJECTIVES = {"nsp": "next sentence prediction", "sop": "sentence-order prediction"}
SWAPPED = RANDOM  # sop's label 1; an unswapped pair keeps NEXT's 0


def tokenize_documents(batch: dict[str, list], tokenizer) -> dict[str, list]:
    """`text` -> `sentences`: per document, the token ids of each sentence (no special tokens)."""
    documents = []
    for text in batch["text"]:
        sentences = split_sentences(text or "")
        # split_special_tokens: corpus text such as "[MASK]" or "[SEP]" is text, never a special token's id.
        ids = (
            tokenizer(sentences, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]
            if sentences else []
        )
        documents.append([s for s in ids if s])
    return {"sentences": documents}


def truncate_pair(tokens_a: list[int], tokens_b: list[int], max_num_tokens: int, rng: random.Random):
    """Trim the longer segment, from its front or back at random, until the pair fits (in place)."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def pairs_from_document(
    index: int,
    documents: list[list[list[int]]],
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
    pair_objective: str = "nsp",
) -> list[tuple[list[int], list[int], int]]:
    """(segment A, segment B, label) pairs from documents[index].

    nsp: other documents give the random Bs (label RANDOM). sop: B always follows A in the document, and half the
    pairs are swapped (label SWAPPED), as ALBERT builds them.
    """
    document = documents[index]
    max_num_tokens = max_seq_length - 3  # [CLS] A [SEP] B [SEP]
    target_length = max_num_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_num_tokens)
    others = [i for i in range(len(documents)) if i != index and documents[i]] if pair_objective == "nsp" else []
    pairs, chunk, chunk_length, i = [], [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        at_end = i == len(document) - 1
        if at_end or (chunk_length >= target_length and len(chunk) >= 2):
            if len(chunk) >= 2:
                a_end = rng.randint(1, len(chunk) - 1)
                tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
                if pair_objective == "nsp" and rng.random() < 0.5 and others:
                    label = RANDOM
                    other = documents[rng.choice(others)]
                    target_b_length = max(target_length - len(tokens_a), 1)
                    tokens_b = []
                    for sentence in other[rng.randint(0, len(other) - 1) :]:
                        tokens_b.extend(sentence)
                        if len(tokens_b) >= target_b_length:
                            break
                    i -= len(chunk) - a_end  # the sentences B did not use go back to this document
                else:
                    label = NEXT
                    tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
                truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if pair_objective == "sop" and rng.random() < 0.5:
                    label, tokens_a, tokens_b = SWAPPED, tokens_b, tokens_a
                if tokens_a and tokens_b:
                    pairs.append((tokens_a, tokens_b, label))
            chunk, chunk_length = [], 0
        i += 1
    return pairs


def segments_from_document(document: list[list[int]], max_seq_length: int, short_seq_prob: float, rng: random.Random):
    """MLM-only: whole sentences packed into single segments of up to max_seq_length - 2 tokens."""
    max_num_tokens = max_seq_length - 2  # [CLS] A [SEP]
    target_length = max_num_tokens if rng.random() >= short_seq_prob else rng.randint(2, max_num_tokens)
    segments, current = [], []
    for sentence in document:
        current.extend(sentence)
        while len(current) >= target_length:  # what does not fit opens the next segment: no token is dropped
            segments.append(current[:max_num_tokens])
            current = current[max_num_tokens:]
    if current:
        segments.append(current)
    return segments


def build_examples(
    batch: dict[str, list],
    indices: list[int],
    cls_token_id: int,
    sep_token_id: int,
    max_seq_length: int,
    short_seq_prob: float = 0.1,
    dupe_factor: int = 1,
    nsp: bool = True,
    seed: int = 0,
    pair_objective: str = "nsp",
) -> dict[str, list]:
    """A batched `datasets.map` function: `sentences` of a batch of documents -> model-ready examples.

    Each document is used `dupe_factor` times with different randomness, as BERT's data generator does.
    """
    out = {"input_ids": [], "token_type_ids": [], "special_tokens_mask": []}
    if nsp:
        out["next_sentence_label"] = []
    documents = batch["sentences"]
    for repetition in range(dupe_factor):
        for position, index in enumerate(indices):
            rng = random.Random(f"{seed}:{repetition}:{index}")
            if nsp:
                for tokens_a, tokens_b, label in pairs_from_document(
                    position, documents, max_seq_length, short_seq_prob, rng, pair_objective
                ):
                    out["input_ids"].append([cls_token_id, *tokens_a, sep_token_id, *tokens_b, sep_token_id])
                    out["token_type_ids"].append([0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1))
                    out["special_tokens_mask"].append([1] + [0] * len(tokens_a) + [1] + [0] * len(tokens_b) + [1])
                    out["next_sentence_label"].append(label)
            else:
                for segment in segments_from_document(documents[position], max_seq_length, short_seq_prob, rng):
                    out["input_ids"].append([cls_token_id, *segment, sep_token_id])
                    out["token_type_ids"].append([0] * (len(segment) + 2))
                    out["special_tokens_mask"].append([1] + [0] * len(segment) + [1])
    return out


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    generator: torch.Generator,
    mlm_probability: float,
    mask_replace_prob: float,
    random_replace_prob: float,
    mask_token_id: int,
    vocab_size: int,
    word_starts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking of a padded batch: (masked input ids, labels), every draw from `generator`.

    Tokens (or, with `word_starts`, whole words) are chosen with probability `mlm_probability`, never special
    tokens or padding; each chosen token becomes [MASK] with probability `mask_replace_prob`, a random token
    with `random_replace_prob`, and stays itself otherwise. Labels hold the original id at chosen positions,
    -100 elsewhere.

    transformers' DataCollatorForLanguageModeling masks the same way, but the generator it draws from is its
    private state, which 5.24 started re-creating on the first batch of each process: a run that must mask
    reproducibly (resume, workers) cannot depend on it, so the draws are made here with the caller's generator.
    """
    input_ids = input_ids.clone()  # [B, T]
    maskable = ~special_tokens_mask.bool()  # [B, T]
    draw = torch.rand(input_ids.shape, generator=generator)
    if word_starts is not None:
        # A word is chosen by the draw at its first piece; its other pieces follow that choice.
        starts = word_starts | ~maskable  # a special token or padding also ends the word before it
        positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        first_piece = torch.where(starts, positions, 0).cummax(dim=1).values  # [B, T]: where each token's word starts
        draw = draw.gather(1, first_piece)
    chosen = (draw < mlm_probability) & maskable
    labels = torch.where(chosen, input_ids, -100)
    action = torch.rand(input_ids.shape, generator=generator)  # < mask: [MASK]; < mask + random: a random token
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    to_mask = chosen & (action < mask_replace_prob)
    to_random = chosen & (action >= mask_replace_prob) & (action < mask_replace_prob + random_replace_prob)
    input_ids[to_mask] = mask_token_id
    input_ids[to_random] = random_ids[to_random]
    return input_ids, labels


@dataclass
class DataCollatorForPretraining(DataCollatorForLanguageModeling):
    """DataCollatorForLanguageModeling for pre-built pairs: pads, masks 15 % (80/10/10), keeps NSP labels.

    transformers' collator supplies the options and their checks; the masking itself is `mask_tokens`, so that
    its randomness is ours (see there). Special tokens and padding are never masked (the examples carry
    `special_tokens_mask`). Whole-word masking follows the WordPiece marks: a "##" piece continues the previous
    word, and Google's 80/10/10 applies to each token of a chosen word (transformers' collator would force
    100 % [MASK]).

    Each batch is masked by a generator seeded from (seed, epoch, the batch's token ids), never from the global
    RNG or from a process's or worker's identity: masks change every epoch, yet a run resumed from a checkpoint,
    or loading with any number of DataLoader workers, masks exactly as the uninterrupted run did.
    `MaskingEpochCallback` keeps `epoch` current. The epoch lives in a shared-memory tensor, so DataLoader
    workers (persistent ones too, which keep their copy of the collator) see it change. Without a `seed` the
    generator is drawn from torch's global RNG (which the Trainer seeds). Evaluation always masks 15 %.
    """

    def __post_init__(self):
        self._epoch = torch.zeros((), dtype=torch.long).share_memory_()
        # transformers' check forces mask_replace_prob to 1 under whole-word masking; keep the configured split.
        replace_probs = (self.mask_replace_prob, self.random_replace_prob)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Random token replacement is not supported")
            super().__post_init__()
        self.mask_replace_prob, self.random_replace_prob = (float(p) for p in replace_probs)
        self.is_continuation = torch.zeros(len(self.tokenizer), dtype=torch.bool)
        for token, token_id in self.tokenizer.get_vocab().items():
            if token.startswith("##") and token_id < len(self.is_continuation):
                self.is_continuation[token_id] = True

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @epoch.setter
    def epoch(self, value: int):
        self._epoch.fill_(int(value))

    def batch_generator(self, examples) -> torch.Generator:
        if self.seed is None:
            return torch.Generator().manual_seed(int(torch.randint(2**62, ())))
        digest = hashlib.blake2b(digest_size=8)
        digest.update(f"{self.seed}:{self.epoch}:".encode())
        for example in examples:
            digest.update(np.asarray(example["input_ids"], dtype=np.int64).tobytes())
        return torch.Generator().manual_seed(int.from_bytes(digest.digest(), "little") >> 1)

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        if "labels" in examples[0]:  # masked once already (the evaluation set): pad, never mask again
            return self.pad_premasked(examples)
        generator = self.batch_generator(examples)
        batch = self.tokenizer.pad(examples, return_tensors="pt", pad_to_multiple_of=self.pad_to_multiple_of)
        if "special_tokens_mask" in batch:
            special_tokens_mask = batch.pop("special_tokens_mask")  # [B, T], built with the examples
        else:  # examples without it (the Trainer's remove_unused_columns dropped it): from the tokenizer
            special_tokens_mask = torch.tensor([
                self.tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)
                for row in batch["input_ids"].tolist()
            ])
        special_tokens_mask = special_tokens_mask.bool() | (batch["attention_mask"] == 0)  # padding is never masked
        word_starts = ~self.is_continuation[batch["input_ids"]] if self.whole_word_mask else None
        batch["input_ids"], batch["labels"] = mask_tokens(
            batch["input_ids"], special_tokens_mask, generator, self.mlm_probability, self.mask_replace_prob,
            self.random_replace_prob, self.tokenizer.mask_token_id, len(self.tokenizer), word_starts,
        )
        return batch

    def pad_premasked(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad inputs and `labels` (with -100): what transformers' token-classification collator does."""
        pad = DataCollatorForTokenClassification(self.tokenizer, pad_to_multiple_of=self.pad_to_multiple_of)
        return pad([{k: v for k, v in example.items() if k != "special_tokens_mask"} for example in examples])


EVAL_MLM_PROBABILITY = 0.15  # evaluation masks as BERT reports them, whatever the training mask rate


def mask_for_evaluation(
    batch: dict[str, list],
    indices: list[int],
    mask_token_id: int,
    vocab_size: int,
    seed: int,
    mlm_probability: float = EVAL_MLM_PROBABILITY,
) -> dict[str, list]:
    """A batched `datasets.map` function that masks evaluation examples once, for good: 15 %, 80/10/10.

    Each example draws from a generator seeded by (seed, its index), so the same held-out examples get the
    same masks in every run, however long it trains and whatever it trains with. Adds `labels` (the original
    id at chosen positions, -100 elsewhere); special tokens are never chosen.
    """
    out = {"input_ids": [], "labels": []}
    for input_ids, special, index in zip(batch["input_ids"], batch["special_tokens_mask"], indices):
        rng = np.random.default_rng([seed, index])
        ids = np.asarray(input_ids, dtype=np.int64)
        chosen = (rng.random(len(ids)) < mlm_probability) & (np.asarray(special) == 0)
        action = rng.random(len(ids))  # < 0.8: [MASK]; < 0.9: a random token; else: unchanged
        random_ids = rng.integers(0, vocab_size, len(ids))
        labels = np.where(chosen, ids, -100)
        masked = np.where(chosen & (action < 0.8), mask_token_id, ids)
        masked = np.where(chosen & (action >= 0.8) & (action < 0.9), random_ids, masked)
        out["input_ids"].append(masked.tolist())
        out["labels"].append(labels.tolist())
    return out


class MaskingEpochCallback(TrainerCallback):
    """Tells DataCollatorForPretraining which epoch it is masking for."""

    def __init__(self, collator: DataCollatorForPretraining):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)


# ----------------------------------------------------------------------------------------------------------------
# The pipeline: held-out split, tokenizer, examples (each step cached)
# ----------------------------------------------------------------------------------------------------------------


def is_held_out(text: str | None, seed: int, share: float) -> bool:
    """Whether a streamed document belongs to the held-out share: decided by its text alone (and the seed)."""
    digest = hashlib.blake2b(f"{seed}:".encode() + (text or "").encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < share


def split_documents(documents, validation_split_percentage: float, max_eval_documents: int | None, seed: int):
    """(training, held-out) documents: whole documents are held out, so no eval pair shares one with training.

    `seed` should stay fixed across runs that are to be compared (`eval_seed`), not follow the training seed.

    A streamed corpus has no length to split: each document is held out or not by a hash of (seed, its text),
    `validation_split_percentage` of them, so the split is the same however the stream is later divided between
    ranks (a held-out-first-n split is not: `datasets` divides a skip between the ranks' files). The evaluation
    set is the first `max_eval_documents` (default 1,000) held-out documents; training never sees any held-out
    document, those beyond the evaluation set included.
    """
    if isinstance(documents, datasets.IterableDataset):
        n_eval = max_eval_documents or 1000
        share = validation_split_percentage / 100
        held_out = functools.partial(is_held_out, seed=seed, share=share)
        return (
            documents.filter(lambda row: not held_out(row["text"])),
            documents.filter(lambda row: held_out(row["text"])).take(n_eval),
        )
    if len(documents) < 2:
        raise CorpusError("the corpus needs at least 2 documents (one to train on, one to evaluate)")
    n_eval = max(1, round(len(documents) * validation_split_percentage / 100))
    if max_eval_documents is not None:
        n_eval = min(n_eval, max_eval_documents)
    n_eval = min(n_eval, len(documents) - 1)
    split = documents.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"]


def stream_share(documents: datasets.IterableDataset, rank: int, world_size: int, seed: int, buffer_size: int):
    """This rank's share of a streamed corpus (`split_dataset_by_node`), in an order shuffled through a buffer.

    A stream comes in storage order (Wikipedia: by article id); without a shuffle each batch holds pairs from a
    few neighbouring articles. When the stream's shards (files) divide evenly between the ranks, each rank
    reads only its own files; otherwise every rank reads the whole stream and keeps every world_size-th document.
    """
    share = split_dataset_by_node(documents, rank=rank, world_size=world_size) if world_size > 1 else documents
    return share.shuffle(seed=seed, buffer_size=buffer_size)


TOKENIZER_TRAINING_DOCUMENTS = 100_000  # a new WordPiece tokenizer is trained on at most this many documents


def cached_wordpiece_tokenizer(
    train_documents,
    vocab_size: int,
    lowercase: bool = True,
    model_max_length: int = 512,
    training_documents: int = TOKENIZER_TRAINING_DOCUMENTS,
    cache_dir: str | None = None,
    corpus_id: Any = None,
):
    """A WordPiece tokenizer trained on (at most `training_documents` of) the training documents, cached.

    Training is deterministic (`scratchbert.tokenization`), but counting a large corpus takes a while (about a
    minute for 7M words). The result is kept by corpus fingerprint (or `corpus_id` for a stream) and settings:
    reruns and both scripts share it, and with it the caches of every later step.
    """
    corpus_id = getattr(train_documents, "_fingerprint", None) or corpus_id
    key = Hasher.hash(("wordpiece-v2", corpus_id, vocab_size, lowercase, model_max_length, training_documents))
    cached = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "scratchbert_tokenizers" / key
    if (cached / "tokenizer.json").is_file():
        logger.info("Reusing the WordPiece tokenizer trained on this corpus before: %s", cached)
        return AutoTokenizer.from_pretrained(cached)
    logger.info("Training a WordPiece tokenizer (vocab %d) on the training documents", vocab_size)
    texts = (row["text"] for row in train_documents.take(training_documents))
    tokenizer = train_wordpiece_tokenizer(
        texts, vocab_size=vocab_size, lowercase=lowercase, model_max_length=model_max_length
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    staging = cached.with_name(f"{cached.name}.partial-{os.getpid()}")
    tokenizer.save_pretrained(staging)
    try:
        os.replace(staging, cached)  # atomic: a reader never sees half a tokenizer
    except OSError:  # another process got there first: its tokenizer is the one every later run will load
        shutil.rmtree(staging, ignore_errors=True)
        logger.info("Another process cached a tokenizer for this corpus first; using that one")
    return AutoTokenizer.from_pretrained(cached)  # the cached files, whoever wrote them


def build_dataset(
    documents,
    tokenizer,
    max_seq_length: int,
    short_seq_prob: float = 0.1,
    dupe_factor: int = 1,
    nsp: bool = True,
    seed: int = 0,
    num_proc: int | None = None,
    description: str = "train",
    pair_objective: str = "nsp",
):
    """Documents -> tokenized sentences -> pretraining examples, both steps cached by `datasets`.

    The cache keys are explicit (input fingerprint + tokenizer JSON + settings): a freshly trained tokenizer
    pickles differently each run, which would otherwise defeat the cache. A streamed corpus is processed lazily.
    """
    streaming = isinstance(documents, datasets.IterableDataset)
    tokenizer_state = tokenizer.backend_tokenizer.to_str()
    sentences_kwargs, examples_kwargs = {}, {}
    if not streaming:
        sentences_fingerprint = Hasher.hash(("sentences-v2", documents._fingerprint, tokenizer_state))
        sentences_kwargs = dict(num_proc=num_proc, desc=f"{description}: tokenizing", new_fingerprint=sentences_fingerprint)
    sentences = documents.map(
        tokenize_documents, batched=True, remove_columns=["text"], fn_kwargs={"tokenizer": tokenizer}, **sentences_kwargs
    )
    if not streaming and nsp:
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
        "max_seq_length": max_seq_length,
        "short_seq_prob": short_seq_prob,
        "dupe_factor": dupe_factor,
        "nsp": nsp,
        "seed": seed,
        "pair_objective": pair_objective,
    }
    if not streaming:
        examples_kwargs = dict(
            num_proc=num_proc,
            desc=f"{description}: building MLM{' + ' + pair_objective.upper() if nsp else ''} examples",
            new_fingerprint=Hasher.hash(("examples-v2", sentences_fingerprint, sorted(build_kwargs.items()))),
        )
    examples = sentences.map(
        build_examples, batched=True, batch_size=1000, with_indices=True, remove_columns=["sentences"],
        fn_kwargs=build_kwargs, **examples_kwargs,
    )
    if not streaming and len(examples) == 0:
        raise CorpusError(f"{description}: the documents produced no examples (are they empty?)")
    return examples


def build_eval_dataset(
    documents, tokenizer, max_seq_length: int, short_seq_prob: float = 0.1, nsp: bool = True, seed: int = 42,
    num_proc: int | None = None, pair_objective: str = "nsp",
):
    """Held-out documents -> examples masked once and for all (15 %, 80/10/10, seeded by `seed`).

    One pass over the documents (no dupe_factor) and masks independent of training: every run on the same
    documents, tokenizer and max_seq_length is scored on exactly the same positions, however long it trained.
    """
    examples = build_dataset(
        documents, tokenizer, max_seq_length, short_seq_prob, dupe_factor=1, nsp=nsp, seed=seed, num_proc=num_proc,
        description="eval", pair_objective=pair_objective,
    )
    mask_kwargs = {"mask_token_id": tokenizer.mask_token_id, "vocab_size": len(tokenizer), "seed": seed}
    extra = {}
    if not isinstance(examples, datasets.IterableDataset):
        extra = dict(
            desc="eval: masking once",
            new_fingerprint=Hasher.hash(("eval-masks-v1", examples._fingerprint, sorted(mask_kwargs.items()))),
        )
    return examples.map(
        mask_for_evaluation, batched=True, with_indices=True, remove_columns=["special_tokens_mask"],
        fn_kwargs=mask_kwargs, **extra,
    )
