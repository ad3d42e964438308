import json

import pytest
from transformers import AutoConfig

from scratchbert import ScratchBertConfig


def test_defaults_are_bert_base():
    config = ScratchBertConfig()
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers) == (30522, 768, 12)
    assert (config.num_attention_heads, config.intermediate_size, config.max_position_embeddings) == (12, 3072, 512)
    assert config.hidden_act == "gelu" and config.type_vocab_size == 2 and config.layer_norm_eps == 1e-12
    assert config.mlm_loss_weight == 1.0 and config.nsp_loss_weight == 1.0
    assert config.model_type == "scratchbert"


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(hidden_size=100, num_attention_heads=12), "hidden_size"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(num_hidden_layers=-1), "num_hidden_layers"),
        (dict(vocab_size=0), "vocab_size"),
        (dict(intermediate_size=2.5), "intermediate_size"),
        (dict(hidden_dropout_prob=1.0), "hidden_dropout_prob"),
        (dict(attention_probs_dropout_prob=-0.1), "attention_probs_dropout_prob"),
        (dict(classifier_dropout=1.5), "classifier_dropout"),
        (dict(hidden_act="swishy"), "hidden_act"),
        (dict(layer_norm_eps=0), "layer_norm_eps"),
        (dict(mlm_loss_weight=-1), "mlm_loss_weight"),
        (dict(pad_token_id=40000), "pad_token_id"),
    ],
)
def test_invalid_values_name_the_field_and_value(overrides, field):
    with pytest.raises(ValueError) as error:
        ScratchBertConfig(**overrides)
    message = str(error.value)
    assert field in message
    value = list(overrides.values())[-1] if field != "hidden_size" or "num_attention_heads" not in overrides else 100
    assert str(value) in message


def test_round_trip_through_json(tmp_path):
    config = ScratchBertConfig(hidden_size=64, num_attention_heads=4, nsp_loss_weight=0.5, num_labels=3)
    config.save_pretrained(tmp_path)
    loaded = ScratchBertConfig.from_pretrained(tmp_path)
    assert loaded.hidden_size == 64 and loaded.nsp_loss_weight == 0.5 and loaded.num_labels == 3


RETIRED_DEEPNORM = r"^deepnorm was retired: its finding is in docs/lab-notebook.md#deepnorm \(last ran at commit 0162353\)$"


def test_a_retired_option_turned_on_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=RETIRED_DEEPNORM):
        ScratchBertConfig(deepnorm=True)
    # A saved config.json that turned it on: refused on load, as every reader of the folder would be.
    config_dict = ScratchBertConfig(hidden_size=64, num_attention_heads=4).to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**config_dict, "deepnorm": True}))
    with pytest.raises(ValueError, match=RETIRED_DEEPNORM):
        AutoConfig.from_pretrained(tmp_path)


def test_a_retired_option_turned_off_is_dropped_without_a_word(tmp_path):
    config_dict = ScratchBertConfig(hidden_size=64, num_attention_heads=4).to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**config_dict, "deepnorm": False}))  # as older saves wrote it
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.hidden_size == 64 and not hasattr(config, "deepnorm")
    config.save_pretrained(tmp_path / "again")
    assert "deepnorm" not in json.loads((tmp_path / "again" / "config.json").read_text())
    assert not hasattr(ScratchBertConfig(deepnorm=False), "deepnorm")
