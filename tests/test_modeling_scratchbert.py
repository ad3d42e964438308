"""Every head: forward, backward, loss by hand; save/load; tying; resizing; attention paths; padding; inputs."""

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from scratchbert import (
    ScratchBertConfig,
    ScratchBertForMaskedLM,
    ScratchBertForMultipleChoice,
    ScratchBertForNextSentencePrediction,
    ScratchBertForPreTraining,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
)
from conftest import make_batch, tiny_config

ALL_CLASSES = [
    ScratchBertModel,
    ScratchBertForPreTraining,
    ScratchBertForMaskedLM,
    ScratchBertForNextSentencePrediction,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertForQuestionAnswering,
    ScratchBertForMultipleChoice,
]
AUTO_CLASSES = {
    AutoModel: ScratchBertModel,
    AutoModelForPreTraining: ScratchBertForPreTraining,
    AutoModelForMaskedLM: ScratchBertForMaskedLM,
    AutoModelForNextSentencePrediction: ScratchBertForNextSentencePrediction,
    AutoModelForSequenceClassification: ScratchBertForSequenceClassification,
    AutoModelForTokenClassification: ScratchBertForTokenClassification,
    AutoModelForQuestionAnswering: ScratchBertForQuestionAnswering,
    AutoModelForMultipleChoice: ScratchBertForMultipleChoice,
}


def mlm_labels(batch, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = batch["input_ids"].clone()
    chosen = (torch.rand(labels.shape, generator=g) < 0.3) & batch["attention_mask"].bool()
    chosen[0, 1] = True  # at least one label
    return labels.masked_fill(~chosen, -100)


def inputs_for(model_class, config, batch):
    """Inputs and labels that exercise each head's loss."""
    b = dict(batch)
    n = b["input_ids"].shape[0]
    if model_class is ScratchBertForPreTraining:
        b.update(labels=mlm_labels(batch), next_sentence_label=torch.tensor([0, 1, 0])[:n])
    elif model_class is ScratchBertForMaskedLM:
        b.update(labels=mlm_labels(batch))
    elif model_class in (ScratchBertForNextSentencePrediction, ScratchBertForSequenceClassification):
        b.update(labels=torch.tensor([1, 0, 1])[:n])
    elif model_class is ScratchBertForTokenClassification:
        b.update(labels=torch.randint(0, config.num_labels, b["input_ids"].shape).masked_fill(b["attention_mask"] == 0, -100))
    elif model_class is ScratchBertForQuestionAnswering:
        b.update(start_positions=torch.tensor([1, 2, 3])[:n], end_positions=torch.tensor([3, 4, 5])[:n])
    elif model_class is ScratchBertForMultipleChoice:
        b = {k: v.unsqueeze(1).expand(-1, 2, -1).contiguous() for k, v in b.items()}
        b.update(labels=torch.tensor([1, 0, 1])[:n])
    return b


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_forward_backward_every_head(model_class, config):
    torch.manual_seed(0)
    model = model_class(config)
    batch = inputs_for(model_class, config, make_batch(config))
    out = model(**batch)
    if model_class is ScratchBertModel:
        assert out.last_hidden_state.shape == (3, 12, config.hidden_size)
        assert out.pooler_output.shape == (3, config.hidden_size)
        loss = out.last_hidden_state.sum()
    else:
        assert out.loss is not None and out.loss.ndim == 0 and torch.isfinite(out.loss)
        loss = out.loss
    loss.backward()
    grads = [p.grad for p in model.scratchbert.layers.parameters()] if model_class is not ScratchBertModel else [
        p.grad for p in model.layers.parameters()
    ]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_pretraining_loss_by_hand(config):
    torch.manual_seed(0)
    config.mlm_loss_weight, config.nsp_loss_weight = 0.7, 0.3
    model = ScratchBertForPreTraining(config).eval()
    batch = make_batch(config)
    labels, nsp = mlm_labels(batch), torch.tensor([0, 1, 1])
    out = model(**batch, labels=labels, next_sentence_label=nsp)
    logits, nsp_logits = out.prediction_logits, out.seq_relationship_logits
    # Cross-entropy by hand: -log softmax at the label, averaged over labelled positions.
    log_probs = logits.log_softmax(-1)
    positions = (labels != -100).nonzero(as_tuple=True)
    mlm = -log_probs[positions + (labels[positions],)].mean()
    nsp_loss = -nsp_logits.log_softmax(-1)[torch.arange(3), nsp].mean()
    torch.testing.assert_close(out.loss, 0.7 * mlm + 0.3 * nsp_loss)
    torch.testing.assert_close(out.mlm_loss, mlm)
    torch.testing.assert_close(out.nsp_loss, nsp_loss)
    # With MLM labels only, the loss is the MLM loss (never None); with NSP only, the NSP loss.
    torch.testing.assert_close(model(**batch, labels=labels).loss, 0.7 * mlm)
    torch.testing.assert_close(model(**batch, next_sentence_label=nsp).loss, 0.3 * nsp_loss)
    assert model(**batch).loss is None


def test_sequence_classification_problem_types(config):
    batch = make_batch(config)
    torch.manual_seed(0)
    single = ScratchBertForSequenceClassification(tiny_config(num_labels=3)).eval()
    labels = torch.tensor([0, 2, 1])
    out = single(**batch, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
    assert single.config.problem_type == "single_label_classification"

    regression = ScratchBertForSequenceClassification(tiny_config(num_labels=1)).eval()
    targets = torch.tensor([0.5, -1.0, 2.0])
    out = regression(**batch, labels=targets)
    torch.testing.assert_close(out.loss, ((out.logits.squeeze(-1) - targets) ** 2).mean())
    assert regression.config.problem_type == "regression"

    multi = ScratchBertForSequenceClassification(tiny_config(num_labels=4)).eval()
    multi_hot = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]])
    out = multi(**batch, labels=multi_hot)
    torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, multi_hot))
    assert multi.config.problem_type == "multi_label_classification"


def test_other_heads_loss_by_hand(config):
    torch.manual_seed(0)
    batch = make_batch(config)
    nsp = ScratchBertForNextSentencePrediction(config).eval()
    out = nsp(**batch, labels=torch.tensor([0, 1, 0]))
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, torch.tensor([0, 1, 0])))

    tokens = ScratchBertForTokenClassification(tiny_config(num_labels=5)).eval()
    labels = inputs_for(ScratchBertForTokenClassification, tokens.config, batch)["labels"]
    out = tokens(**batch, labels=labels)
    keep = labels != -100
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits[keep], labels[keep]))

    qa = ScratchBertForQuestionAnswering(config).eval()
    start, end = torch.tensor([1, 2, 3]), torch.tensor([3, 4, 5])
    out = qa(**batch, start_positions=start, end_positions=end)
    expected = (F.cross_entropy(out.start_logits, start) + F.cross_entropy(out.end_logits, end)) / 2
    torch.testing.assert_close(out.loss, expected)

    choice = ScratchBertForMultipleChoice(config).eval()
    inputs = inputs_for(ScratchBertForMultipleChoice, config, batch)
    out = choice(**inputs)
    assert out.logits.shape == (3, 2)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, inputs["labels"]))


def test_sparse_mlm_prediction_equals_dense(config):
    """Training with sparse prediction gives the dense path's loss and gradients, without dense logits."""
    batch = make_batch(config)
    labels = mlm_labels(batch)
    torch.manual_seed(0)
    sparse = ScratchBertForPreTraining(config).train()
    dense = ScratchBertForPreTraining(tiny_config(sparse_mlm_prediction=False)).train()
    dense.load_state_dict(sparse.state_dict())
    out_sparse = sparse(**batch, labels=labels, next_sentence_label=torch.tensor([0, 1, 0]))
    out_dense = dense(**batch, labels=labels, next_sentence_label=torch.tensor([0, 1, 0]))
    assert out_sparse.prediction_logits is None and out_dense.prediction_logits.shape == (3, 12, config.vocab_size)
    torch.testing.assert_close(out_sparse.loss, out_dense.loss, atol=1e-6, rtol=1e-6)
    out_sparse.loss.backward()
    out_dense.loss.backward()
    for (name, p_sparse), p_dense in zip(sparse.named_parameters(), dense.parameters()):
        torch.testing.assert_close(p_sparse.grad, p_dense.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_eager_equals_sdpa(config):
    torch.manual_seed(0)
    sdpa = ScratchBertForPreTraining(config).eval()
    eager = AutoModelForPreTraining.from_config(tiny_config(), attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    assert eager.config._attn_implementation == "eager"
    batch = make_batch(config)
    a, b = sdpa(**batch), eager(**batch)
    torch.testing.assert_close(a.prediction_logits, b.prediction_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(a.seq_relationship_logits, b.seq_relationship_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", [{}, {"attention_position_bias": "alibi"}, {"unpad_inputs": True}])
def test_cpu_bf16_training_spells_attention_out_and_equals_sdpa(layout, monkeypatch):
    """The CPU bf16 training path (SDPA's bf16 backward is slow on CPU) computes what SDPA computes, grads too."""
    from scratchbert import modeling_scratchbert

    config = tiny_config(attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0, **layout)
    torch.manual_seed(0)
    model = ScratchBertForPreTraining(config).train()
    batch = make_batch(config)
    labels = mlm_labels(batch)
    sdpa_calls = []
    real_sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(modeling_scratchbert.F, "scaled_dot_product_attention",
                        lambda *a, **k: sdpa_calls.append(1) or real_sdpa(*a, **k))

    def loss_and_grads(explicit: bool):
        monkeypatch.setattr(modeling_scratchbert.ScratchBertSelfAttention, "explicit_softmax_for_cpu_bf16_training", explicit)
        model.zero_grad()
        sdpa_calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch, labels=labels, next_sentence_label=torch.tensor([0, 1, 0])).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}, len(sdpa_calls)

    sdpa_loss, sdpa_grads, sdpa_count = loss_and_grads(explicit=False)
    loss, grads, count = loss_and_grads(explicit=True)
    assert sdpa_count == config.num_hidden_layers and count == 0, "training in bf16 on CPU skips SDPA"
    torch.testing.assert_close(loss, sdpa_loss, atol=2e-2, rtol=1e-2)  # bf16's tolerance
    for name, grad in grads.items():
        scale = sdpa_grads[name].abs().max().item() + 1e-6
        assert (grad - sdpa_grads[name]).abs().max().item() <= 0.05 * scale, name
    # Inference and fp32 keep SDPA.
    sdpa_calls.clear()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(**batch)
    model(**batch, labels=labels).loss.backward()
    assert len(sdpa_calls) == 2 * config.num_hidden_layers


def test_padding_invariance_and_all_padding_row(config):
    torch.manual_seed(0)
    model = ScratchBertModel(config).eval()
    batch = make_batch(config, pad_last=False, seq_len=10)
    base = model(**batch).last_hidden_state
    padded = {k: F.pad(v, (0, 6), value=0) for k, v in batch.items()}
    out = model(**padded).last_hidden_state
    torch.testing.assert_close(out[:, :10], base, atol=1e-5, rtol=1e-5)
    # A row that is all padding gives finite numbers, on both attention paths.
    padded["attention_mask"][1] = 0
    for impl in ("sdpa", "eager"):
        model.config._attn_implementation = impl
        result = model(**padded)
        assert torch.isfinite(result.last_hidden_state).all() and torch.isfinite(result.pooler_output).all()


def test_hidden_states_attentions_and_tuples(config):
    model = ScratchBertForSequenceClassification(config).eval()
    batch = make_batch(config)
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    assert len(out.hidden_states) == config.num_hidden_layers + 1
    assert out.hidden_states[0].shape == (3, 12, config.hidden_size)
    assert len(out.attentions) == config.num_hidden_layers and out.attentions[0].shape == (3, 4, 12, 12)
    # Attention probabilities sum to one over keys and give padding no weight.
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(3, 4, 12))
    assert out.attentions[0][2, :, :, -4:].abs().max() == 0
    as_tuple = model(**batch, labels=torch.tensor([0, 1, 0]), return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 2
    torch.testing.assert_close(as_tuple[1], out.logits)


def test_gradient_checkpointing_gives_same_gradients(config):
    torch.manual_seed(0)
    plain = ScratchBertForMaskedLM(config).train()
    checkpointed = ScratchBertForMaskedLM(config).train()
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.is_activation_checkpointing
    batch = make_batch(config)
    labels = mlm_labels(batch)
    plain(**batch, labels=labels).loss.backward()
    checkpointed(**batch, labels=labels).loss.backward()
    for p, q in zip(plain.parameters(), checkpointed.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


@pytest.mark.parametrize("model_class", ALL_CLASSES)
def test_save_load_every_parameter_equal(model_class, config, tmp_path):
    torch.manual_seed(0)
    model = model_class(config)
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path)
    own, other = model.state_dict(), loaded.state_dict()
    assert own.keys() == other.keys()
    for name in own:
        assert torch.equal(own[name], other[name]), name
    for (name, buffer), (_, other_buffer) in zip(model.named_buffers(), loaded.named_buffers()):
        assert torch.equal(buffer, other_buffer), name


def test_loading_never_overwrites_weights_with_init(config, tmp_path):
    torch.manual_seed(0)
    model = ScratchBertForPreTraining(config)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.123)  # a value no initialiser produces
    model.save_pretrained(tmp_path)
    loaded = ScratchBertForPreTraining.from_pretrained(tmp_path)
    assert all(torch.all(p == 0.123) for p in loaded.parameters())


def test_decoder_tied_to_embeddings_one_copy_saved(config, tmp_path):
    from safetensors import safe_open

    model = ScratchBertForPreTraining(config)
    assert model.mlm_head.decoder.weight is model.scratchbert.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    assert "scratchbert.embeddings.word_embeddings.weight" in keys and "mlm_head.decoder.weight" not in keys
    loaded = ScratchBertForMaskedLM.from_pretrained(tmp_path)
    assert loaded.mlm_head.decoder.weight is loaded.scratchbert.embeddings.word_embeddings.weight
    with torch.no_grad():
        loaded.scratchbert.embeddings.word_embeddings.weight[7] += 1
    assert torch.equal(loaded.mlm_head.decoder.weight[7], loaded.scratchbert.embeddings.word_embeddings.weight[7])


def test_resize_token_embeddings_keeps_tie(config, tmp_path):
    torch.manual_seed(0)
    config = tiny_config()
    vocab = config.vocab_size
    model = ScratchBertForPreTraining(tiny_config())
    old_bias = model.mlm_head.decoder.bias.detach().clone()
    model.resize_token_embeddings(vocab + 13)
    assert model.config.vocab_size == config.vocab_size + 13
    assert model.get_input_embeddings().weight.shape == (config.vocab_size + 13, config.hidden_size)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert model.mlm_head.decoder.bias.shape == (config.vocab_size + 13,)
    assert torch.equal(model.mlm_head.decoder.bias[: config.vocab_size], old_bias)
    model.eval()
    batch = make_batch(model.config)
    assert model(**batch).prediction_logits.shape[-1] == config.vocab_size + 13
    model.save_pretrained(tmp_path)
    loaded = ScratchBertForPreTraining.from_pretrained(tmp_path)
    assert loaded.mlm_head.decoder.weight is loaded.scratchbert.embeddings.word_embeddings.weight
    assert loaded.config.vocab_size == config.vocab_size + 13
    shrunk = ScratchBertForMaskedLM(config)
    shrunk.resize_token_embeddings(50)
    assert shrunk.mlm_head.decoder.weight.shape[0] == 50 and shrunk.mlm_head.decoder.bias.shape[0] == 50
    assert shrunk.get_output_embeddings().weight is shrunk.get_input_embeddings().weight


@pytest.mark.parametrize("auto_class, model_class", list(AUTO_CLASSES.items()))
def test_auto_classes_in_process(auto_class, model_class, config, tmp_path):
    model = auto_class.from_config(config)
    assert type(model) is model_class
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is ScratchBertConfig
    assert type(auto_class.from_pretrained(tmp_path)) is model_class


def test_bad_inputs_are_named(config):
    model = ScratchBertModel(config).eval()
    batch = make_batch(config)
    with pytest.raises(ValueError, match="vocab_size=99"):
        model(input_ids=batch["input_ids"] + 200)
    with pytest.raises(ValueError, match="max_position_embeddings=64"):
        model(input_ids=torch.ones(1, 65, dtype=torch.long))
    with pytest.raises(ValueError, match="type_vocab_size=2"):
        model(input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"] + 2)
    with pytest.raises(ValueError, match="exactly one"):
        model()


def test_inputs_embeds_equals_input_ids(config):
    model = ScratchBertModel(config).eval()
    batch = make_batch(config)
    embeds = model.get_input_embeddings()(batch["input_ids"])
    a = model(**batch).last_hidden_state
    b = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"], token_type_ids=batch["token_type_ids"])
    torch.testing.assert_close(a, b.last_hidden_state)


@pytest.mark.parametrize("model_class", [ScratchBertForPreTraining, ScratchBertForSequenceClassification, ScratchBertForTokenClassification])
def test_unpadded_path_equals_padded_path(model_class, config):
    """Outputs at real tokens, the loss and every gradient: the same with and without unpadding."""
    torch.manual_seed(0)
    plain = model_class(config).train()
    fast = model_class(tiny_config(unpad_inputs=True)).train()
    fast.load_state_dict(plain.state_dict())
    batch = inputs_for(model_class, config, make_batch(config, batch_size=3, seq_len=16))
    a, b = plain(**batch), fast(**batch)
    torch.testing.assert_close(a.loss, b.loss, atol=1e-6, rtol=1e-6)
    a.loss.backward()
    b.loss.backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5, msg=name)
    plain.eval(), fast.eval()
    real = batch["attention_mask"].bool()
    x = plain.scratchbert(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    y = fast.scratchbert(**{k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")})
    torch.testing.assert_close(x.last_hidden_state[real], y.last_hidden_state[real], atol=1e-5, rtol=1e-5)
    assert y.last_hidden_state[~real].abs().max() == 0
    if x.pooler_output is not None:
        torch.testing.assert_close(x.pooler_output, y.pooler_output, atol=1e-5, rtol=1e-5)


RECIPE_LAYOUT = dict(attention_position_bias="alibi", position_embedding_init="sinusoidal", linear_bias=False)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_unpadded_pretraining_step_equals_padded_in_the_recipes_layout(bf16):
    """run_pretraining.py unpads by default; in the 30-minute recipe's layout (ALiBi, no linear biases) the loss and
    every gradient match the padded step's: exactly in fp32, and within bf16's resolution on the CPU bf16 path
    (attention spelled out, the blockwise MLM loss training uses), where only the matmuls' blocking differs."""
    from scratchbert.blockwise_cross_entropy import use_blockwise_cross_entropy

    torch.manual_seed(0)
    plain = use_blockwise_cross_entropy(ScratchBertForPreTraining(tiny_config(**RECIPE_LAYOUT)).train())
    fast = use_blockwise_cross_entropy(ScratchBertForPreTraining(tiny_config(**RECIPE_LAYOUT, unpad_inputs=True)).train())
    fast.load_state_dict(plain.state_dict())
    batch = inputs_for(ScratchBertForPreTraining, plain.config, make_batch(plain.config, batch_size=3, seq_len=16))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        a, b = plain(**batch), fast(**batch)
    tolerance = dict(atol=2e-2, rtol=2e-2) if bf16 else dict(atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, **tolerance)
    a.loss.backward()
    b.loss.backward()
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        scale = p.grad.abs().max().clamp(min=1e-3) if bf16 else 1.0  # bf16: relative to the tensor's largest entry
        torch.testing.assert_close(p.grad / scale, q.grad / scale, **tolerance, msg=name)


def test_unpadded_path_steps_aside_for_hidden_states(config):
    model = ScratchBertModel(tiny_config(unpad_inputs=True)).eval()
    out = model(**make_batch(config), output_hidden_states=True)
    assert len(out.hidden_states) == 3 and out.hidden_states[1].shape == (3, 12, 32)


def test_torch_compile_has_no_graph_breaks_on_the_main_path(config):
    import torch._dynamo

    torch._dynamo.reset()
    model = ScratchBertForSequenceClassification(config).eval()
    batch = make_batch(config)
    explanation = torch._dynamo.explain(model)(**batch)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model, backend="eager")
    torch.testing.assert_close(compiled(**batch).logits, model(**batch).logits)


def test_bf16_autocast_keeps_the_loss_in_fp32_and_close(config):
    torch.manual_seed(0)
    model = ScratchBertForPreTraining(config).eval()
    batch = make_batch(config)
    labels = mlm_labels(batch)
    reference = model(**batch, labels=labels, next_sentence_label=torch.tensor([0, 1, 0])).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, labels=labels, next_sentence_label=torch.tensor([0, 1, 0]))
    assert out.prediction_logits.dtype == torch.bfloat16  # the matmuls ran in bf16
    assert out.loss.dtype == torch.float32  # the loss did not
    torch.testing.assert_close(out.loss, reference, rtol=2e-2, atol=2e-2)


# --------------------------------------------------------------------------------------------------------------
# Options for fast pretraining: sinusoidal position init, pre-LayerNorm layers
# --------------------------------------------------------------------------------------------------------------


def test_sinusoidal_position_init_is_a_scaled_sin_cos_table_and_only_a_start(tmp_path):
    config = tiny_config(position_embedding_init="sinusoidal", initializer_range=0.02)
    model = ScratchBertForPreTraining(config)
    table = model.scratchbert.embeddings.position_embeddings.weight.detach().clone()
    scale = 0.02 * 2**0.5
    position, dim = 3, config.hidden_size
    assert table[position, 0].item() == pytest.approx(scale * torch.sin(torch.tensor(3.0)).item(), abs=1e-6)
    assert table[position, 1].item() == pytest.approx(scale * torch.cos(torch.tensor(3.0)).item(), abs=1e-6)
    assert table[0, 1::2].allclose(torch.full((dim // 2,), scale))
    # The word embeddings keep BERT's normal draw, and a saved model loads its trained table, not the init.
    assert abs(model.scratchbert.embeddings.word_embeddings.weight.std().item() - 0.02) < 0.005
    with torch.no_grad():
        model.scratchbert.embeddings.position_embeddings.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = ScratchBertForPreTraining.from_pretrained(tmp_path)
    assert torch.equal(loaded.scratchbert.embeddings.position_embeddings.weight, table + 1.0)


def test_pre_layernorm_layers_by_hand(config):
    config = tiny_config(layer_norm_position="pre")
    model = ScratchBertModel(config).eval()
    batch = make_batch(config, pad_last=False)
    with torch.no_grad():
        x = model.embeddings(batch["input_ids"], batch["token_type_ids"])
        for layer in model.layers:
            attention_output, _ = layer.attention(layer.attention_norm(x))
            x = x + attention_output
            x = x + layer.ffn_out(layer.act(layer.ffn_in(layer.ffn_norm(x))))
        expected = model.final_norm(x)
        assert torch.allclose(model(**batch).last_hidden_state, expected, atol=1e-6)
    assert ScratchBertModel(tiny_config()).final_norm is None, "BERT's post-LN layout has no final LayerNorm"


def assert_unpadded_path_equals_padded_path(model):
    batch = make_batch(model.config)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        padded = model(**batch).prediction_logits
        model.config.unpad_inputs = True
        unpadded = model(**batch).prediction_logits
    assert torch.allclose(padded[real], unpadded[real], atol=1e-5)


def test_pre_layernorm_unpadded_path_equals_padded_path():
    assert_unpadded_path_equals_padded_path(ScratchBertForPreTraining(tiny_config(layer_norm_position="pre")).eval())


def test_gated_feed_forward_by_hand():
    config = tiny_config(feed_forward_type="glu")
    model = ScratchBertModel(config).eval()
    layer = model.layers[0]
    assert layer.ffn_in.out_features == 2 * config.intermediate_size
    assert layer.ffn_out.in_features == config.intermediate_size

    def gated_ffn(h):  # GeGLU: the first half of the projection gates the second
        gate, value = (h @ layer.ffn_in.weight.T + layer.ffn_in.bias).split(config.intermediate_size, dim=-1)
        return (torch.nn.functional.gelu(gate) * value) @ layer.ffn_out.weight.T + layer.ffn_out.bias

    x = torch.randn(2, 5, config.hidden_size)
    with torch.no_grad():
        attention_output, _ = layer.attention(x)
        h = layer.attention_norm(x + attention_output)
        assert torch.allclose(layer(x), layer.ffn_norm(h + gated_ffn(h)), atol=1e-6)


def test_gated_feed_forward_at_two_thirds_width_has_the_mlps_parameters():
    mlp = ScratchBertModel(tiny_config(hidden_size=48, intermediate_size=192, num_attention_heads=4))
    glu = ScratchBertModel(tiny_config(hidden_size=48, intermediate_size=128, num_attention_heads=4, feed_forward_type="glu"))
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert abs(count(glu) - count(mlp)) / count(mlp) < 0.01


@pytest.mark.parametrize("options", [{"linear_bias": False}, {"linear_bias": False, "feed_forward_type": "glu", "layer_norm_position": "pre"}])
def test_layers_without_linear_biases(options):
    config = tiny_config(**options)
    model = ScratchBertForPreTraining(config).eval()
    for layer in model.scratchbert.layers:
        for linear in (layer.attention.qkv, layer.attention.out, layer.ffn_in, layer.ffn_out):
            assert linear.bias is None
        assert layer.attention_norm.bias is not None, "LayerNorms keep their biases"
    assert model.mlm_head.decoder.bias is not None, "the heads keep their biases"
    assert_unpadded_path_equals_padded_path(model)


@pytest.mark.parametrize("field, value", [("layer_norm_position", "middle"), ("position_embedding_init", "zeros"), ("attention_position_bias", "rope"), ("feed_forward_type", "swiglu")])
def test_new_options_are_validated(field, value):
    with pytest.raises(ValueError, match=f"ScratchBertConfig.{field} must be one of"):
        tiny_config(**{field: value})


def test_linear_bias_must_be_a_bool():
    with pytest.raises(ValueError, match="ScratchBertConfig.linear_bias must be true or false, got 'no'"):
        tiny_config(linear_bias="no")


def test_alibi_bias_by_hand():
    from scratchbert.modeling_scratchbert import alibi_bias

    bias = alibi_bias(num_heads=4, seq_len=5, device="cpu", dtype=torch.float32)
    assert bias.shape == (1, 4, 5, 5)
    assert bias[0, 0, 1, 3].item() == pytest.approx(-2 * 2**-2) and bias[0, 3, 4, 0].item() == pytest.approx(-4 * 2**-8)
    assert torch.equal(bias, bias.transpose(-1, -2)) and (bias.diagonal(dim1=-2, dim2=-1) == 0).all()


def test_alibi_attention_paths_agree_and_padding_is_still_ignored():
    config = tiny_config(attention_position_bias="alibi")
    torch.manual_seed(0)
    model = ScratchBertModel(config).eval()
    batch = make_batch(config)
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        sdpa = model(**batch).last_hidden_state
        model.config._attn_implementation = "eager"
        eager = model(**batch).last_hidden_state
        model.config._attn_implementation = "sdpa"
        model.config.unpad_inputs = True
        unpadded = model(**batch).last_hidden_state
        # Row 1 alone, without its padding: the same outputs at its real tokens.
        n = int(real[1].sum())
        alone = model(**{k: v[1:2, :n] for k, v in batch.items()}).last_hidden_state
        plain = ScratchBertModel(tiny_config()).eval()
        plain.load_state_dict(model.state_dict())
        without_alibi = plain(**batch).last_hidden_state
    assert torch.allclose(sdpa[real], eager[real], atol=1e-5)
    assert torch.allclose(sdpa[real], unpadded[real], atol=1e-5)
    assert torch.allclose(sdpa[1, :n], alone[0], atol=1e-5)
    assert not torch.allclose(sdpa[real], without_alibi[real], atol=1e-3), "the bias changes attention"


def test_mean_pooling_classifies_from_the_mean_of_real_tokens(config):
    from scratchbert.modeling_scratchbert import mean_pool

    torch.manual_seed(0)
    model = ScratchBertForSequenceClassification(tiny_config(classifier_pooling="mean", num_labels=3)).eval()
    assert model.scratchbert.pooler is None  # no pooler to train
    batch = make_batch(model.config)
    with torch.no_grad():
        hidden = model.scratchbert(**batch).last_hidden_state
        logits = model(**batch).logits
        mask = batch["attention_mask"].bool()
        by_hand = torch.stack([hidden[row][mask[row]].mean(0) for row in range(hidden.shape[0])])
    torch.testing.assert_close(mean_pool(hidden, batch["attention_mask"]), by_hand, rtol=0, atol=1e-6)
    torch.testing.assert_close(logits, model.classifier(by_hand), rtol=0, atol=1e-6)
    # Padding changes nothing: the last row alone, unpadded, scores the same.
    with torch.no_grad():
        alone = model(input_ids=batch["input_ids"][-1:, mask[-1]], token_type_ids=batch["token_type_ids"][-1:, mask[-1]]).logits
    torch.testing.assert_close(alone, logits[-1:], rtol=0, atol=1e-5)


def test_embedding_size_apart_from_the_hidden_size_projects_and_is_not_bert():
    from scratchbert.convert import ConversionError, check_bert_layout

    assert tiny_config(embedding_size=32).embedding_size is None, "as wide as the layers is BERT's layout: None"
    config = tiny_config(embedding_size=16)
    model = ScratchBertForMaskedLM(config).eval()
    assert model.scratchbert.embeddings.word_embeddings.weight.shape == (config.vocab_size, 16)
    assert model.scratchbert.embeddings_project.weight.shape == (32, 16)
    assert model.mlm_head.decoder.weight is model.scratchbert.embeddings.word_embeddings.weight  # tied, [V, E]
    batch = make_batch(config)
    assert model(**batch).logits.shape == (*batch["input_ids"].shape, config.vocab_size)
    with pytest.raises(ConversionError, match="embedding_size=16"):
        check_bert_layout(config)
    assert ScratchBertModel(tiny_config()).embeddings_project is None
