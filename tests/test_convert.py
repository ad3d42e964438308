"""ScratchBert mirrors BERT exactly: same outputs on the same weights, and lossless conversion both ways."""

import json
import subprocess
import sys

import pytest
import torch
import transformers
from transformers import AutoModelForPreTraining, AutoModelForSequenceClassification

import scratchbert
from scratchbert import convert
from scratchbert.convert import (
    ConversionError,
    bert_to_scratchbert_state_dict,
    convert_bert_to_scratchbert,
    convert_scratchbert_to_bert,
    scratchbert_config_to_bert,
    scratchbert_to_bert_state_dict,
)
from conftest import REPO_ROOT, make_batch, tiny_config

SHAPES = [
    dict(),  # 32 wide, 2 layers, 4 heads
    dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=3, intermediate_size=96, hidden_act="gelu_new"),
    dict(hidden_size=64, num_attention_heads=8, num_hidden_layers=1, type_vocab_size=3, vocab_size=150),
]
HEADS = list(convert.HEAD_CLASSES)


def bert_model(head, shape, impl="sdpa", num_labels=2):
    config = scratchbert_config_to_bert(tiny_config(num_labels=num_labels, **shape))
    torch.manual_seed(0)
    model = getattr(transformers, head)(config).eval()
    # Random, non-default values everywhere (biases and LayerNorms too), so no mapping error can hide.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.config._attn_implementation = impl
    return model


def scratch_from(bert, head, impl):
    model_class = getattr(scratchbert, convert.HEAD_CLASSES[head])
    config = convert.bert_config_to_scratchbert(bert.config.to_dict())
    model = model_class(config).eval()
    state = bert_to_scratchbert_state_dict(bert.state_dict())
    if model_class is scratchbert.ScratchBertModel:
        state = {k.removeprefix("scratchbert."): v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    assert set(result.missing_keys) <= {"mlm_head.decoder.weight"} and not result.unexpected_keys
    model.config._attn_implementation = impl
    return model


def compare_outputs(bert, scratch, head, batch):
    """Every output both models share, on real (non-padding) positions: max abs difference <= 1e-5."""
    if head == "BertForMultipleChoice":
        batch = {k: torch.stack([v, v.flip(0)], dim=1) for k, v in batch.items()}
    with torch.no_grad():
        a, b = bert(**batch), scratch(**batch)
    real = batch["attention_mask"].bool()
    pairs = {
        "BertModel": [("last_hidden_state", True), ("pooler_output", False)],
        "BertForPreTraining": [("prediction_logits", True), ("seq_relationship_logits", False)],
        "BertForMaskedLM": [("logits", True)],
        "BertForNextSentencePrediction": [("logits", False)],
        "BertForSequenceClassification": [("logits", False)],
        "BertForTokenClassification": [("logits", True)],
        "BertForQuestionAnswering": [("start_logits", True), ("end_logits", True)],
        "BertForMultipleChoice": [("logits", False)],
    }[head]
    for name, per_token in pairs:
        x, y = getattr(a, name), getattr(b, name)
        if per_token:
            x, y = x[real], y[real]
        assert (x - y).abs().max().item() <= 1e-5, (head, name, (x - y).abs().max().item())


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("head", HEADS)
def test_same_outputs_as_transformers_bert(head, shape, impl):
    bert = bert_model(head, SHAPES[shape], impl)
    scratch = scratch_from(bert, head, impl)
    config = scratch.config
    batch = make_batch(config, batch_size=3, seq_len=16)
    batch["token_type_ids"][0, 8:] = config.type_vocab_size - 1
    compare_outputs(bert, scratch, head, batch)
    if head != "BertForMultipleChoice":  # hidden states of every layer too
        with torch.no_grad():
            a, b = bert(**batch, output_hidden_states=True), scratch(**batch, output_hidden_states=True)
        real = batch["attention_mask"].bool()
        for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
            assert (x[real] - y[real]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("head", HEADS)
def test_state_dict_round_trip_is_bit_exact(head):
    bert = bert_model(head, SHAPES[1])
    original = bert.state_dict()
    back = scratchbert_to_bert_state_dict(bert_to_scratchbert_state_dict(original), base_model=head == "BertModel")
    assert set(back) == set(original)
    for name, tensor in original.items():
        assert torch.equal(back[name], tensor), name


def test_legacy_names_and_no_prefix_are_accepted():
    bert = bert_model("BertModel", SHAPES[0])
    state = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
             for k, v in bert.state_dict().items()}
    state["embeddings.position_ids"] = torch.arange(64)[None]
    mapped = bert_to_scratchbert_state_dict(state)
    assert "scratchbert.embeddings.layer_norm.weight" in mapped and "scratchbert.embeddings.position_ids" not in mapped


# --------------------------------------------------------------------------------------------------------------
# Folders and the command line
# --------------------------------------------------------------------------------------------------------------


def save_bert(head, folder, tokenizer_dir=None, legacy_bin=False, **shape):
    bert = bert_model(head, shape or SHAPES[0])
    bert.config._attn_implementation = "sdpa"
    bert.save_pretrained(folder)
    if legacy_bin:
        state = {k: v.contiguous() for k, v in bert.state_dict().items()}
        (folder / "model.safetensors").unlink()
        torch.save(state, folder / "pytorch_model.bin")
    if tokenizer_dir is not None:
        transformers.AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(folder)
    return bert


@pytest.mark.parametrize("legacy_bin", [False, True], ids=["safetensors", "pytorch_model.bin"])
@pytest.mark.parametrize("head", ["BertForPreTraining", "BertForSequenceClassification", "BertModel"])
def test_folder_conversion_both_ways(head, legacy_bin, tmp_path, tokenizer_dir):
    src, mid, back = tmp_path / "bert", tmp_path / "scratch", tmp_path / "back"
    bert = save_bert(head, src, tokenizer_dir, legacy_bin=legacy_bin)
    result = convert_bert_to_scratchbert(src, mid)
    assert result["newly_initialized"] == []
    assert (mid / "modeling_scratchbert.py").is_file() and (mid / "tokenizer.json").is_file()
    assert json.loads((mid / "config.json").read_text())["model_type"] == "scratchbert"
    # sentence-transformers' files: SentenceTransformer(mid, trust_remote_code=True) mean-pools (test_sentence_embeddings)
    pooling = json.loads((mid / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and (mid / "modules.json").is_file()
    auto = {"BertForPreTraining": AutoModelForPreTraining, "BertForSequenceClassification": AutoModelForSequenceClassification,
            "BertModel": transformers.AutoModel}[head]
    scratch = auto.from_pretrained(mid).eval()
    compare_outputs(bert.eval(), scratch, head, make_batch(scratch.config, seq_len=16))

    convert_scratchbert_to_bert(mid, back)
    reloaded, info = getattr(transformers, head).from_pretrained(back, output_loading_info=True)
    assert all(not info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    original = bert.state_dict()
    for name, tensor in reloaded.state_dict().items():
        assert torch.equal(tensor, original[name]), name
    assert (back / "tokenizer.json").is_file()


def test_missing_heads_are_reported_as_newly_initialised(tmp_path, capsys):
    save_bert("BertModel", tmp_path / "bert")
    result = convert_bert_to_scratchbert(tmp_path / "bert", tmp_path / "out", head="BertForPreTraining")
    assert set(result["newly_initialized"]) == {
        "mlm_head.dense.weight", "mlm_head.dense.bias", "mlm_head.layer_norm.weight", "mlm_head.layer_norm.bias",
        "mlm_head.decoder.bias", "nsp_head.weight", "nsp_head.bias",
    }
    assert "newly initialised" in capsys.readouterr().err


def test_bad_checkpoints_are_refused_and_nothing_is_written(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConversionError, match="no config.json"):
        convert_bert_to_scratchbert(tmp_path / "empty", out)
    with pytest.raises(ConversionError, match="is not a folder"):
        convert_bert_to_scratchbert(tmp_path / "missing", out)

    gpt = tmp_path / "gpt"
    transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(gpt)
    with pytest.raises(ConversionError, match="model_type 'gpt2'"):
        convert_bert_to_scratchbert(gpt, out)

    no_encoder = tmp_path / "no_encoder"
    save_bert("BertModel", no_encoder)
    from safetensors.torch import load_file, save_file
    state = {k: v for k, v in load_file(no_encoder / "model.safetensors").items() if "layer.1." not in k}
    save_file(state, no_encoder / "model.safetensors")
    with pytest.raises(ConversionError, match="layers.1.attention.qkv.weight"):
        convert_bert_to_scratchbert(no_encoder, out)

    wrong_shape = tmp_path / "wrong_shape"
    save_bert("BertModel", wrong_shape)
    config = json.loads((wrong_shape / "config.json").read_text())
    config["intermediate_size"] = 50
    (wrong_shape / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="disagree with the config's shapes: .*ffn_in.weight"):
        convert_bert_to_scratchbert(wrong_shape, out)

    corrupt = tmp_path / "corrupt"
    save_bert("BertModel", corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ConversionError, match="cannot read the weights"):
        convert_bert_to_scratchbert(corrupt, out)

    assert not out.exists()
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())


def test_pickle_that_runs_code_is_refused(tmp_path):
    folder = tmp_path / "evil"
    save_bert("BertModel", folder, legacy_bin=True)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, folder / "pytorch_model.bin", _use_new_zipfile_serialization=True)
    with pytest.raises(ConversionError, match="cannot read the weights"):
        convert_bert_to_scratchbert(folder, tmp_path / "out")
    assert not marker.exists()


def test_existing_output_folder_is_refused(tmp_path):
    save_bert("BertModel", tmp_path / "bert")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="not an empty folder"):
        convert_bert_to_scratchbert(tmp_path / "bert", tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_command_line(tmp_path):
    save_bert("BertForMaskedLM", tmp_path / "bert")
    run = lambda *args: subprocess.run([sys.executable, "-m", "scratchbert.convert", *args], capture_output=True, text=True, cwd=REPO_ROOT)
    done = run("bert-to-scratchbert", str(tmp_path / "bert"), str(tmp_path / "scratch"))
    assert done.returncode == 0, done.stderr
    assert "ScratchBertForMaskedLM" in done.stdout
    done = run("scratchbert-to-bert", str(tmp_path / "scratch"), str(tmp_path / "back"))
    assert done.returncode == 0, done.stderr
    failed = run("bert-to-scratchbert", str(tmp_path / "nowhere"), str(tmp_path / "x"))
    assert failed.returncode == 2 and "error: " in failed.stderr and "Traceback" not in failed.stderr


@pytest.mark.parametrize(
    "option, value",
    [("layer_norm_position", "pre"), ("attention_position_bias", "alibi"), ("feed_forward_type", "glu"), ("linear_bias", False)],
)
def test_architecture_options_without_a_bert_layout_are_refused(tmp_path, option, value):
    model = scratchbert.ScratchBertForPreTraining(tiny_config(**{option: value}))
    model.save_pretrained(tmp_path / "model")
    with pytest.raises(ConversionError, match=f"{option}={value!r}.*no BERT layout"):
        convert_scratchbert_to_bert(tmp_path / "model", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConversionError, match="no BERT layout"):
        convert.scratchbert_config_to_bert(model.config)


def test_sinusoidal_position_init_keeps_the_bert_layout():
    config = tiny_config(position_embedding_init="sinusoidal")
    model = scratchbert.ScratchBertForPreTraining(config).eval()
    bert = transformers.BertForPreTraining(convert.scratchbert_config_to_bert(config)).eval()
    bert.load_state_dict(convert.scratchbert_to_bert_state_dict(model.state_dict()), strict=False)
    batch = make_batch(config)
    with torch.no_grad():
        ours, theirs = model(**batch).prediction_logits, bert(**batch).prediction_logits
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_googles_layout_converts_as_the_head_its_weights_hold(tmp_path, capsys):
    # bert-base-uncased declares BertForMaskedLM but stores the pooler and cls.seq_relationship too.
    bert = save_bert("BertForPreTraining", tmp_path / "bert")
    config = json.loads((tmp_path / "bert" / "config.json").read_text())
    (tmp_path / "bert" / "config.json").write_text(json.dumps({**config, "architectures": ["BertForMaskedLM"]}))
    result = convert_bert_to_scratchbert(tmp_path / "bert", tmp_path / "out")
    assert result["head"] == "ScratchBertForPreTraining" and result["newly_initialized"] == []
    assert "converting as BertForPreTraining" in capsys.readouterr().err
    scratch = AutoModelForPreTraining.from_pretrained(tmp_path / "out").eval()
    compare_outputs(bert.eval(), scratch, "BertForPreTraining", make_batch(scratch.config, seq_len=16))


def test_declared_head_is_kept_when_it_holds_the_weights(tmp_path):
    save_bert("BertForSequenceClassification", tmp_path / "bert")
    assert convert_bert_to_scratchbert(tmp_path / "bert", tmp_path / "out")["head"] == "ScratchBertForSequenceClassification"


@pytest.mark.parametrize("cased", [False, True], ids=["uncased", "cased"])
def test_a_folder_with_only_vocab_txt_gets_a_tokenizer_that_loads(tmp_path, cased):
    src = tmp_path / "bert"
    save_bert("BertForPreTraining", src)
    words = ["The", "Cat", "sat"] if cased else ["the", "cat", "sat"]
    (src / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, "##s"]) + "\n")
    convert_bert_to_scratchbert(src, tmp_path / "out")
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("The cats sat")["input_ids"])
    # Lowercased exactly when the vocabulary is uncased ("cats" has no pieces in the cased one).
    assert tokens == (["[CLS]", "The", "[UNK]", "sat", "[SEP]"] if cased else ["[CLS]", "the", "cat", "##s", "sat", "[SEP]"])
