"""Train a BERT WordPiece tokenizer from raw text, deterministically.

`tokenizers`' WordPieceTrainer is not deterministic: its BPE trainer hands out symbol ids in hash order and
breaks count ties by id, so two trainings on one corpus give different token sets and ids (a known, unfixed
bug). A run's vocabulary decides its cached datasets, its embeddings and its figures, so the merges are made
here instead (`wordpiece_vocabulary`, BPE over word counts with ties broken by the pair's text), while
`tokenizers` still does the fast part: normalising and splitting the text into words, and tokenizing.
"""

import heapq
from collections import Counter
from collections.abc import Iterable

from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizer

# Fixed ids so that pad_token_id = 0 as in ScratchBertConfig's default and BERT's vocabularies.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PREFIX = "##"  # a word piece that continues the previous one


def count_words(texts: Iterable[str], lowercase: bool = True) -> Counter:
    """Words (BERT's normalisation and pre-tokenisation, as the trained tokenizer will apply them) -> count."""
    normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    counts = Counter()
    for text in texts:
        if text and text.strip():
            counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    return counts


def wordpiece_vocabulary(word_counts: Counter, vocab_size: int, min_frequency: int = 2) -> list[str]:
    """A WordPiece vocabulary learnt as `tokenizers` learns one, with every choice deterministic.

    Start from the characters (a word's first as itself, the rest as "##c"), then repeatedly merge the most
    frequent adjacent pair (counted over word occurrences), ties broken by the pair's text, until the
    vocabulary holds `vocab_size` tokens or no pair occurs `min_frequency` times. Order: special tokens, the
    characters sorted, then merged tokens in the order they were learnt.
    """
    words = [[word[0], *(PREFIX + c for c in word[1:])] for word in sorted(word_counts)]
    counts = [word_counts[word] for word in sorted(word_counts)]
    vocabulary = SPECIAL_TOKENS + sorted({symbol for word in words for symbol in word} - set(SPECIAL_TOKENS))
    known = set(vocabulary)
    pair_counts: Counter = Counter()
    pair_words: dict[tuple[str, str], set[int]] = {}
    for index, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += counts[index]
            pair_words.setdefault(pair, set()).add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]  # most frequent first, then the smaller text
    heapq.heapify(heap)
    while len(vocabulary) < vocab_size and heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale: the pair's count changed since this entry was pushed
        if -negative_count < min_frequency:
            break
        first, second = pair
        merged = first + second.removeprefix(PREFIX)
        if merged not in known:
            known.add(merged)
            vocabulary.append(merged)
        changed = set()
        for index in sorted(pair_words.pop(pair, ())):
            word, count = words[index], counts[index]
            for old in zip(word, word[1:]):  # this word's pairs leave the counts ...
                pair_counts[old] -= count
                changed.add(old)
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            words[index] = out
            for new in zip(out, out[1:]):  # ... and its new pairs come back
                pair_counts[new] += count
                pair_words.setdefault(new, set()).add(index)
                changed.add(new)
        pair_counts.pop(pair, None)
        for other in changed:
            if pair_counts.get(other, 0) > 0:
                heapq.heappush(heap, (-pair_counts[other], other))
            else:
                pair_counts.pop(other, None)
    return vocabulary


def train_wordpiece_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 30522,
    lowercase: bool = True,
    model_max_length: int = 512,
    min_frequency: int = 2,
    save_directory: str | None = None,
) -> BertTokenizer:
    """Train a BERT WordPiece tokenizer on `texts` and return it as a transformers fast tokenizer.

    The result has [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, builds "[CLS] A [SEP] B [SEP]" with token types
    0/1 for pairs, and decodes "##" pieces back into words. The same texts always give the same vocabulary and
    ids. `model_max_length` should be the model's max_position_embeddings. With `save_directory`, it is saved
    there with `save_pretrained`, so `AutoTokenizer.from_pretrained(save_directory)` gives it back. The
    vocabulary may come out smaller than `vocab_size` on a small corpus: read `len(tokenizer)` for the model's
    vocab_size.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
    word_counts = count_words(texts, lowercase)
    if not word_counts:
        raise ValueError("Cannot train a tokenizer: the corpus holds no non-empty text")
    vocabulary = wordpiece_vocabulary(word_counts, vocab_size, min_frequency)
    # transformers' BertTokenizer over the vocabulary: the same normaliser, pre-tokeniser, post-processor and
    # decoder as every BERT checkpoint on the Hub.
    tokenizer = BertTokenizer(
        vocab={token: index for index, token in enumerate(vocabulary)}, do_lower_case=lowercase,
        model_max_length=model_max_length,
    )
    if save_directory is not None:
        tokenizer.save_pretrained(save_directory)
    return tokenizer
