"""sentence-transformers' files beside a saved model: SentenceTransformer loads it with mean pooling, as chosen."""

import json
import logging

import pytest
import torch
from transformers import AutoTokenizer

from scratchbert import ScratchBertForSequenceClassification
from scratchbert.sentence_embeddings import write_sentence_transformers_files
from conftest import tiny_config

sentence_transformers = pytest.importorskip("sentence_transformers")


def test_the_files_are_sized_by_the_saved_config(tmp_path):
    model = ScratchBertForSequenceClassification(tiny_config(hidden_size=48, max_position_embeddings=96))
    model.save_pretrained(tmp_path)
    write_sentence_transformers_files(tmp_path)
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert [(m["path"], m["type"]) for m in modules] == [
        ("", "sentence_transformers.models.Transformer"), ("1_Pooling", "sentence_transformers.models.Pooling")]
    pooling = json.loads((tmp_path / "1_Pooling" / "config.json").read_text())
    assert pooling["word_embedding_dimension"] == 48 and pooling["pooling_mode_mean_tokens"]
    assert not pooling["pooling_mode_cls_token"]
    assert json.loads((tmp_path / "sentence_bert_config.json").read_text())["max_seq_length"] == 96


@pytest.mark.parametrize("layout", [
    {},  # BERT's
    {"attention_position_bias": "alibi"},
    {"layer_norm_position": "pre"},
])
def test_saved_folder_loads_in_sentence_transformers_with_mean_pooling(tmp_path, tokenizer_dir, layout):
    """With sentence-transformers' own files beside it, a saved folder loads without the "no sentence-transformers
    model found" guess, and its embeddings are the mean of the last hidden states over real tokens."""
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    model = ScratchBertForSequenceClassification(tiny_config(vocab_size=len(tokenizer), **layout)).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    write_sentence_transformers_files(tmp_path)

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    st_logger, level = logging.getLogger("sentence_transformers"), logging.getLogger("sentence_transformers").level
    st_logger.addHandler(handler)
    st_logger.setLevel(logging.INFO)  # 6.x says it is guessing ("No modules.json found ...") at INFO, 2.x-5.x warn
    try:
        embedder = sentence_transformers.SentenceTransformer(str(tmp_path), trust_remote_code=True, device="cpu")
    finally:
        st_logger.removeHandler(handler)
        st_logger.setLevel(level)
    messages = [r.getMessage() for r in records]
    assert not [m for m in messages if "modules.json" in m or "No sentence-transformers model" in m], messages
    assert not [r for r in records if r.levelno >= logging.WARNING], messages

    sentences = ["The cat sat on the mat.", "Tokenizers split unbelievably long words into word pieces, twice over."]
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    assert (batch["attention_mask"] == 0).any()  # padding in the batch: the mean must skip it
    with torch.no_grad():
        hidden = model.scratchbert(**batch).last_hidden_state  # [B, T, H]
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    expected = (hidden * mask).sum(1) / mask.sum(1)
    embeddings = embedder.encode(sentences, convert_to_tensor=True, batch_size=2)
    torch.testing.assert_close(embeddings, expected, atol=1e-5, rtol=0)
