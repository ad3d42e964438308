"""Train a BERT WordPiece tokenizer from raw text (the tokenizers library does the training)."""

from collections.abc import Iterable, Iterator

from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordPiece
from tokenizers.trainers import WordPieceTrainer
from transformers import BertTokenizer

# Fixed ids so that pad_token_id = 0 as in ScratchBertConfig's default and BERT's vocabularies.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


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
    0/1 for pairs, and decodes "##" pieces back into words. `model_max_length` should be the model's
    max_position_embeddings. With `save_directory`, it is saved there with `save_pretrained`, so
    `AutoTokenizer.from_pretrained(save_directory)` gives it back. The vocabulary may come out smaller than
    `vocab_size` on a small corpus: read `len(tokenizer)` for the model's vocab_size.
    """
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise ValueError(f"vocab_size must be at least {len(SPECIAL_TOKENS) + 1}, got {vocab_size}")
    wordpiece = Tokenizer(WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=None)
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, continuing_subword_prefix="##"
    )
    seen = 0

    def counted(texts: Iterable[str]) -> Iterator[str]:
        nonlocal seen
        for text in texts:
            if text and text.strip():
                seen += 1
                yield text

    wordpiece.train_from_iterator(counted(texts), trainer=trainer)
    if seen == 0:
        raise ValueError("Cannot train a tokenizer: the corpus holds no non-empty text")
    # Rebuild through transformers' BertTokenizer from the trained vocabulary: the same normaliser,
    # pre-tokeniser, post-processor and decoder as every BERT checkpoint on the Hub.
    tokenizer = BertTokenizer(vocab=wordpiece.get_vocab(), do_lower_case=lowercase, model_max_length=model_max_length)
    if save_directory is not None:
        tokenizer.save_pretrained(save_directory)
    return tokenizer
