"""ScratchBert configuration.

This file is copied verbatim into every exported checkpoint (remote code), so it imports only transformers.
"""

from transformers import PreTrainedConfig

# Activations the encoder and the MLM head accept (names as in transformers.activations.ACT2FN).
SUPPORTED_ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish", "tanh")
POSITION_EMBEDDING_INITS = ("normal", "sinusoidal")
LAYER_NORM_POSITIONS = ("post", "pre")
ATTENTION_POSITION_BIASES = ("none", "alibi")
CLASSIFIER_POOLINGS = ("cls", "mean")
FEED_FORWARD_TYPES = ("mlp", "glu")
# What trained the encoder: "mlm" (BERT's masked LM, with its MLM head) or "rtd" (ELECTRA's replaced-token detection:
# the encoder is the discriminator and holds no MLM head; its generator is saved beside it).
PRETRAINING_OBJECTIVES = ("mlm", "rtd")
# Options that left with their code (issue 44): a config that still turns one on is refused, naming where its finding
# is kept. Turned off (an older config.json's `false`), one is dropped without a word.
RETIRED_OPTIONS = ("deepnorm",)
RETIRED_AT = "0162353"  # the last commit that ran the options issue 44 retired


def retired_option(name: str) -> str:
    """The refusal of a retired option: where its finding is written down, and the last commit that ran it."""
    return f"{name} was retired: its finding is in docs/lab-notebook.md#{name} (last ran at commit {RETIRED_AT})"


class ScratchBertConfig(PreTrainedConfig):
    r"""
    Configuration of a ScratchBert encoder. Defaults give BERT-base (uncased vocabulary size).

    Args:
        vocab_size: number of tokens in the vocabulary.
        hidden_size: width of the encoder (embeddings, attention, pooler).
        num_hidden_layers: number of encoder layers.
        num_attention_heads: attention heads per layer; must divide `hidden_size`.
        intermediate_size: width of the feed-forward block.
        hidden_act: activation of the feed-forward block and the MLM head, one of `SUPPORTED_ACTIVATIONS`.
        hidden_dropout_prob: dropout on embeddings and residual branches, in [0, 1).
        attention_probs_dropout_prob: dropout on attention probabilities, in [0, 1).
        max_position_embeddings: longest sequence the learned position embeddings cover.
        type_vocab_size: number of segment (token type) ids; 2 for sentence pairs.
        initializer_range: standard deviation of the normal weight initialisation.
        position_embedding_init: how a fresh model's learned position embeddings start: "normal" (BERT's,
            N(0, initializer_range)) or "sinusoidal" (the Transformer's sin/cos table at the same scale). Only the
            starting point differs, so the layout stays BERT's; "sinusoidal" gives attention a notion of
            "nearby" from the first step, which a briefly trained BERT otherwise spends long learning.
        layer_norm_eps: epsilon of every LayerNorm.
        attention_position_bias: "none" (BERT's: positions enter through the embeddings alone) or "alibi" (every
            head also adds -slope * |i - j| to its attention scores, as MosaicBERT does). No BERT layout:
            `scratchbert.convert` refuses it.
        layer_norm_position: "post" (BERT's: x = LN(x + f(x)) in every sub-layer) or "pre" (x = x + f(LN(x)), plus
            a final LayerNorm after the last layer, as in GPT-2, Cramming and most recent encoders). Pre-LN keeps the
            residual path free of normalisation, so it trains stably at higher learning rates. It has no BERT layout:
            `scratchbert.convert` refuses it.
        feed_forward_type: "mlp" (BERT's: ffn_out(act(ffn_in(x)))) or "glu" (a gated linear unit, GeGLU with
            hidden_act "gelu", as in Cramming, MosaicBERT and ModernBERT: ffn_in projects to 2 * intermediate_size,
            half of it gates the other, ffn_out(act(gate) * value)). At equal parameters a GLU block takes 2/3 of
            the MLP's intermediate_size (1024 -> 683, say). No BERT layout: `scratchbert.convert` refuses it.
        linear_bias: whether the encoder layers' linear layers (QKV, attention output, feed-forward) have biases.
            False drops them (Cramming): fewer elementwise ops, a BERT-shaped model otherwise. LayerNorms, the
            embeddings and the heads keep theirs. No BERT layout: `scratchbert.convert` refuses False.
        embedding_size: width of the token, position and segment embeddings; `None` (BERT's) means `hidden_size`.
            A different width adds `embeddings_project` (embedding_size -> hidden_size) after the embeddings, and the
            MLM head maps back to embedding_size before its tied decoder: how ELECTRA's small generator shares the
            discriminator's embeddings. No BERT layout: `scratchbert.convert` refuses it.
        pretraining_objective: what trained this encoder, one of `PRETRAINING_OBJECTIVES`: "mlm" or "rtd" (ELECTRA's
            replaced-token detection). An "rtd" encoder has no MLM head, so the MLM heads refuse to load it (a
            random head would answer fill-mask); its generator, saved beside it, answers fill-mask.
        pad_token_id: id of [PAD]; its embedding row gets no gradient.
        classifier_dropout: dropout before classification heads; `None` means `hidden_dropout_prob`.
        classifier_pooling: what the sequence-classification head reads: "cls" (BERT's: the pooler, a dense + tanh
            layer over [CLS]) or "mean" (the mean of the last hidden states over real tokens, as
            sentence-transformers and ModernBERT pool; no pooler). "mean" has no BERT layout: `scratchbert.convert`
            refuses it.
        mlm_loss_weight, nsp_loss_weight: pretraining loss = mlm_loss_weight * MLM + nsp_loss_weight * NSP.
        sparse_mlm_prediction: in training, run the MLM head only on positions that carry a label (the loss and
            gradients are the same; the dense `[batch, seq, vocab]` logits are then not built and `logits` is None).
        unpad_inputs: drop padding tokens before the embeddings and run every per-token block on the real tokens
            only (attention still sees the padded layout). Same outputs at real tokens; zeros at padding. Off by
            default (it adds data-dependent shapes, a graph break for torch.compile). run_classification.py turns it on
            (sentence pairs such as QQP's fill a quarter of their padded length); run_pretraining.py leaves it off
            unless asked (a fifth of its slots are padding, but unpadded runs were no faster end to end on CPU).
    """

    model_type = "scratchbert"

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        position_embedding_init: str = "normal",
        layer_norm_eps: float = 1e-12,
        layer_norm_position: str = "post",
        attention_position_bias: str = "none",
        feed_forward_type: str = "mlp",
        linear_bias: bool = True,
        embedding_size: int | None = None,
        pretraining_objective: str = "mlm",
        pad_token_id: int | None = 0,
        classifier_dropout: float | None = None,
        classifier_pooling: str = "cls",
        mlm_loss_weight: float = 1.0,
        nsp_loss_weight: float = 1.0,
        sparse_mlm_prediction: bool = True,
        unpad_inputs: bool = False,
        tie_word_embeddings: bool = True,
        **kwargs,
    ):
        for name in RETIRED_OPTIONS:
            if kwargs.pop(name, False):
                raise ValueError(retired_option(name))
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.position_embedding_init = position_embedding_init
        self.layer_norm_eps = layer_norm_eps
        self.layer_norm_position = layer_norm_position
        self.attention_position_bias = attention_position_bias
        self.feed_forward_type = feed_forward_type
        self.linear_bias = linear_bias
        # As wide as the layers is BERT's layout, whichever way it is written: stored as None.
        self.embedding_size = None if embedding_size == hidden_size else embedding_size
        self.pretraining_objective = pretraining_objective
        self.classifier_dropout = classifier_dropout
        self.classifier_pooling = classifier_pooling
        self.mlm_loss_weight = mlm_loss_weight
        self.nsp_loss_weight = nsp_loss_weight
        self.sparse_mlm_prediction = sparse_mlm_prediction
        self.unpad_inputs = unpad_inputs
        self.pad_token_id = pad_token_id
        self.check_values()  # before the base class, whose own checks assume sane sizes
        super().__init__(pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings, **kwargs)

    def check_values(self):
        """Raise ValueError naming the first field whose value cannot build a model."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"ScratchBertConfig.{name} must be a positive integer, got {value!r}")
        if self.embedding_size is not None and (
            isinstance(self.embedding_size, bool) or not isinstance(self.embedding_size, int) or self.embedding_size <= 0
        ):
            raise ValueError(f"ScratchBertConfig.embedding_size must be None or a positive integer, got {self.embedding_size!r}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"ScratchBertConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        probabilities = {
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
        }
        if self.classifier_dropout is not None:
            probabilities["classifier_dropout"] = self.classifier_dropout
        for name, value in probabilities.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ValueError(f"ScratchBertConfig.{name} must be a probability in [0, 1), got {value!r}")
        for name in ("initializer_range", "layer_norm_eps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"ScratchBertConfig.{name} must be a positive number, got {value!r}")
        for name in ("mlm_loss_weight", "nsp_loss_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"ScratchBertConfig.{name} must be a non-negative number, got {value!r}")
        for name, choices in (
            ("hidden_act", SUPPORTED_ACTIVATIONS),
            ("layer_norm_position", LAYER_NORM_POSITIONS),
            ("attention_position_bias", ATTENTION_POSITION_BIASES),
            ("position_embedding_init", POSITION_EMBEDDING_INITS),
            ("classifier_pooling", CLASSIFIER_POOLINGS),
            ("feed_forward_type", FEED_FORWARD_TYPES),
            ("pretraining_objective", PRETRAINING_OBJECTIVES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"ScratchBertConfig.{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}"
                )
        if not isinstance(self.linear_bias, bool):
            raise ValueError(f"ScratchBertConfig.linear_bias must be true or false, got {self.linear_bias!r}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(
                f"ScratchBertConfig.pad_token_id must be None or in [0, vocab_size={self.vocab_size}), "
                f"got {self.pad_token_id!r}"
            )


__all__ = ["ScratchBertConfig"]
