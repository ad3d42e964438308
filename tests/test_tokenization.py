import pytest
from transformers import AutoTokenizer

from scratchbert import train_wordpiece_tokenizer
from conftest import SAMPLE_TEXTS


def test_trained_tokenizer_round_trips_through_auto_tokenizer(tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert tokenizer.is_fast
    assert tokenizer.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]) == [0, 1, 2, 3, 4]
    assert tokenizer.model_max_length == 64
    encoded = tokenizer("The cat sat.", "Unbelievably long words.")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    first_sep = tokens.index("[SEP]")
    assert set(encoded["token_type_ids"][: first_sep + 1]) == {0}
    assert set(encoded["token_type_ids"][first_sep + 1 :]) == {1}
    assert any(t.startswith("##") for t in tokenizer.tokenize("unbelievably tokenizers"))
    assert tokenizer.decode(encoded["input_ids"], skip_special_tokens=True) == "the cat sat. unbelievably long words."


def test_lowercase_off_keeps_case(tmp_path):
    tokenizer = train_wordpiece_tokenizer(SAMPLE_TEXTS, vocab_size=150, lowercase=False, save_directory=tmp_path)
    assert "The" in tokenizer.decode(tokenizer("The cat")["input_ids"], skip_special_tokens=True)


def test_empty_corpus_is_an_error():
    with pytest.raises(ValueError, match="no non-empty text"):
        train_wordpiece_tokenizer(["", "   "], vocab_size=100)
