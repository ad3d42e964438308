"""ScratchBert: BERT (Devlin et al., 2018) written from scratch as a transformers model.

Read top to bottom: embeddings, self-attention, encoder layer, the base model, then one class per task head.
Shapes in comments use B = batch, T = sequence length, H = hidden size, V = vocabulary, N = labelled positions
(MLM), R = real (non-padding) tokens packed together on the unpadded path.

This file is copied as-is into every exported checkpoint (remote code), so it imports only torch, transformers,
the configuration beside it and the standard library. It never imports transformers.models.bert: the maths mirror BERT exactly, the
parameter names are ScratchBert's own (scratchbert.convert maps them to and from BERT's).
"""

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.dynamic_module_utils import custom_object_save
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    NextSentencePredictorOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_scratchbert import ScratchBertConfig


# ----------------------------------------------------------------------------------------------------------------
# Encoder
# ----------------------------------------------------------------------------------------------------------------


class ScratchBertEmbeddings(nn.Module):
    """Token + learned position + segment embeddings, then LayerNorm and dropout. E = config.embedding_size, which is
    H unless set (a small ELECTRA generator shares a wider model's embeddings)."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        width = embedding_width(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, width, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.position_embeddings.is_position_table = True  # _init_weights may start it as a sin/cos table
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, unpadded=None):
        batch_size, seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if position_ids is None:
            position_ids = torch.arange(seq_len, device=device)
        position_ids = position_ids.expand(batch_size, seq_len)  # [B, T]
        if token_type_ids is None:
            token_type_ids = torch.zeros((batch_size, seq_len), dtype=torch.long, device=device)
        if unpadded is not None:  # keep only the real tokens: [B, T, ...] -> [R, ...]
            input_ids, inputs_embeds, token_type_ids, position_ids = (
                None if t is None else unpadded.unpad(t) for t in (input_ids, inputs_embeds, token_type_ids, position_ids)
            )
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)  # [B, T, H], or [R, H] unpadded
        embeddings = inputs_embeds + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.dropout(self.layer_norm(embeddings))  # [B, T, E]


def embedding_width(config: ScratchBertConfig) -> int:
    """E: the embeddings' width, the hidden size unless config.embedding_size says otherwise."""
    return config.embedding_size or config.hidden_size


def sinusoidal_positions(num_positions: int, dim: int, std: float) -> torch.Tensor:
    """The Transformer's sin/cos position table [P, H], scaled so each entry has standard deviation ~`std`."""
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]  # [P, 1]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / dim))
    table = torch.zeros(num_positions, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table * std * 2**0.5  # sin and cos have standard deviation 1/sqrt(2)


def alibi_bias(num_heads: int, seq_len: int, device, dtype) -> torch.Tensor:
    """ALiBi (Press et al., 2022; MosaicBERT's bidirectional form): head h adds -slope_h * |i - j| to its scores.
    Slopes 2^(-8 (h + 1) / heads) give each head its own reach, from nearly local to nearly global: attention
    starts out knowing what is near, which BERT otherwise learns slowly through its position embeddings.
    Returns [1, heads, T, T].
    """
    slopes = torch.pow(2.0, -8.0 * torch.arange(1, num_heads + 1, device=device) / num_heads)  # [heads]
    position = torch.arange(seq_len, device=device)
    distance = (position[None, :] - position[:, None]).abs()  # [T, T]
    return (-slopes[:, None, None] * distance).to(dtype)[None]


def attention_bias(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[B, T] mask of 1 (attend) / 0 (padding) -> [B, 1, 1, T] additive bias in `dtype`. Padding gets the most
    negative finite value rather than -inf, so a row that is all padding softmaxes to uniform instead of NaN."""
    keep = attention_mask[:, None, None, :].bool()
    bias = torch.zeros(keep.shape, dtype=dtype, device=attention_mask.device)
    return bias.masked_fill(~keep, torch.finfo(dtype).min)


# Unpadding (the fast path, after MosaicBERT): real tokens are packed into one [R, H] matrix so that the
# embeddings, projections and feed-forward blocks do no work on padding. Attention alone needs the [B, T]
# layout: each layer scatters Q/K/V back for it and gathers the result. Outputs equal the padded path's.


@dataclass
class Unpadded:
    """Where the R packed tokens sit in the [B, T] batch."""

    indices: torch.Tensor  # [R], flat positions b * T + t of the real tokens
    batch_size: int
    seq_len: int

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor) -> "Unpadded":
        return cls(attention_mask.reshape(-1).nonzero().squeeze(-1), *attention_mask.shape)

    def unpad(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, ...] -> [R, ...]
        return x.reshape(self.batch_size * self.seq_len, *x.shape[2:]).index_select(0, self.indices)

    def pad(self, x: torch.Tensor) -> torch.Tensor:  # [R, ...] -> [B, T, ...], zeros at padding
        out = x.new_zeros((self.batch_size * self.seq_len, *x.shape[1:]))
        return out.index_copy(0, self.indices, x).view(self.batch_size, self.seq_len, *x.shape[1:])


class ScratchBertSelfAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection. The default path is torch's
    scaled_dot_product_attention; `attn_implementation="eager"` (or asking for attention probabilities) spells the
    softmax out. Both compute the same function. Training in bf16 on a CPU spells the softmax out too: there SDPA's
    backward (its flash-attention kernel for CPU) takes 3-4x longer than two batched matmuls and a softmax,
    which run on the CPU's bf16 matmul units: at the 30-minute recipe's shape, 25 ms against 9 ms per layer for
    forward and backward (benchmarks/attention_cpu_bf16.py), a third of the whole step (benchmarks/profile_step.py;
    docs/performance.md). SDPA's forward is the faster one, so inference keeps it, as do fp32, fp16 and every GPU.
    """

    # Class-wide switch, for benchmarks that time SDPA against the spelled-out path in one process.
    explicit_softmax_for_cpu_bf16_training = True

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.linear_bias)
        self.out = nn.Linear(config.hidden_size, config.hidden_size, bias=config.linear_bias)
        self.dropout_prob = config.attention_probs_dropout_prob

    def forward(self, hidden_states, attention_bias=None, output_attentions=False, unpadded=None, **kwargs):
        # attention_bias: additive, in the compute dtype, built once per forward by ScratchBertModel: [B, 1, 1, T]
        # for padding, [1 or B, heads, T, T] with ALiBi; None when there is neither.
        qkv = self.qkv(hidden_states)  # [B, T, 3H], or [R, 3H] when unpadded
        if unpadded is not None:
            qkv = unpadded.pad(qkv)  # [R, 3H] -> [B, T, 3H]
        batch_size, seq_len, _ = qkv.shape
        hidden_size = self.num_heads * self.head_dim
        # [B, T, 3H] -> 3 x [B, heads, T, head_dim]
        qkv = qkv.view(batch_size, seq_len, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        dropout_prob = self.dropout_prob if self.training else 0.0

        cpu_bf16_training = (
            self.explicit_softmax_for_cpu_bf16_training
            and query.device.type == "cpu"
            and query.dtype == torch.bfloat16
            and torch.is_grad_enabled()
        )
        if self.config._attn_implementation == "eager" or output_attentions or cpu_bf16_training:
            # Scaling the query ([B, heads, T, head_dim]) is cheaper than scaling the scores ([B, heads, T, T]).
            scores = torch.matmul(query * self.head_dim**-0.5, key.transpose(-1, -2))  # [B, heads, T, T]
            if attention_bias is not None:
                scores = scores + attention_bias
            # In bf16/fp16 the softmax kernels accumulate in fp32 and round only their output.
            probs = F.softmax(scores, dim=-1)
            context = torch.matmul(F.dropout(probs, p=dropout_prob, training=self.training), value)
        else:
            probs = None
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_bias, dropout_p=dropout_prob)

        context = context.transpose(1, 2).reshape(batch_size, seq_len, hidden_size)  # [B, T, H]
        if unpadded is not None:
            context = unpadded.unpad(context)  # [R, H]
        return self.out(context), probs


class ScratchBertLayer(GradientCheckpointingLayer):
    """Post-LayerNorm transformer layer: x = LN(x + attn(x)); x = LN(x + FFN(x)), as in BERT.
    With config.layer_norm_position = "pre": x = x + attn(LN(x)); x = x + FFN(LN(x)) (same parameters, other order).
    With config.feed_forward_type = "glu", FFN(x) = ffn_out(act(gate) * value), where [gate, value] = ffn_in(x).
    """

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        self.pre_norm = config.layer_norm_position == "pre"
        self.gated = config.feed_forward_type == "glu"
        bias = config.linear_bias
        self.attention = ScratchBertSelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        ffn_in_size = 2 * config.intermediate_size if self.gated else config.intermediate_size
        self.ffn_in = nn.Linear(config.hidden_size, ffn_in_size, bias=bias)
        self.act = ACT2FN[config.hidden_act]
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:  # [B, T, H] -> [B, T, H]
        if self.gated:
            gate, value = self.ffn_in(hidden_states).chunk(2, dim=-1)  # [B, T, I] each
            return self.ffn_out(self.act(gate) * value)
        return self.ffn_out(self.act(self.ffn_in(hidden_states)))  # via [B, T, I]

    def forward(self, hidden_states, attention_bias=None, **kwargs) -> torch.Tensor:
        # hidden_states: [B, T, H], or [R, H] on the unpadded path; everything but attention is per token.
        if self.pre_norm:
            attention_output, _ = self.attention(self.attention_norm(hidden_states), attention_bias, **kwargs)
            hidden_states = hidden_states + self.dropout(attention_output)
            return hidden_states + self.dropout(self.feed_forward(self.ffn_norm(hidden_states)))
        attention_output, _ = self.attention(hidden_states, attention_bias, **kwargs)
        hidden_states = self.attention_norm(hidden_states + self.dropout(attention_output))
        return self.ffn_norm(hidden_states + self.dropout(self.feed_forward(hidden_states)))


class ScratchBertPooler(nn.Module):
    """Dense + tanh over the [CLS] position: the sentence vector that NSP and classification read."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden_states[:, 0]))  # [B, H]


class ScratchBertMLMHead(nn.Module):
    """Transform (dense, activation, LayerNorm) from H to the embeddings' width E (as ELECTRA's generator), then the
    decoder to the vocabulary, tied to the word embeddings."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        width = embedding_width(config)
        self.dense = nn.Linear(config.hidden_size, width)
        self.act = ACT2FN[config.hidden_act]
        self.layer_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(width, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.act(self.dense(hidden_states))))  # [..., H] -> [..., E] -> [..., V]


class ScratchBertReplacedTokenHead(nn.Module):
    """ELECTRA's discriminator head: dense, activation, then one score per token (was it replaced?)."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = ACT2FN[config.hidden_act]
        self.classifier = nn.Linear(config.hidden_size, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.act(self.dense(hidden_states))).squeeze(-1)  # [..., H] -> [...]


# ----------------------------------------------------------------------------------------------------------------
# Base classes
# ----------------------------------------------------------------------------------------------------------------


def mean_loss(loss_sum: torch.Tensor, num_items: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Mean of a summed loss over its items. Under gradient accumulation the Trainer passes `num_items_in_batch`, the
    labelled items of the whole accumulated batch: dividing by it makes 2 x 4 accumulation give the same loss and
    update as one batch of 8. An empty micro-batch gives 0, not NaN."""
    if num_items_in_batch is not None:
        return loss_sum / num_items_in_batch
    return loss_sum / num_items.clamp(min=1)


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor):
    """(sum of cross-entropy over positions whose label is not -100, number of such positions), in fp32."""
    labels = labels.reshape(-1)
    logits = logits.reshape(labels.numel(), logits.shape[-1])  # [N, C]; N may be 0 (nothing masked)
    return F.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum"), (labels != -100).sum()


class ScratchBertPreTrainedModel(PreTrainedModel):
    config_class = ScratchBertConfig
    config: ScratchBertConfig
    base_model_prefix = "scratchbert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["ScratchBertEmbeddings", "ScratchBertLayer"]
    _can_record_outputs = {"hidden_states": ScratchBertLayer, "attentions": ScratchBertSelfAttention}

    # The cross-entropy of every head's loss. scratchbert's training gives a model an equal one that is faster for
    # bf16 logits on CPU (scratchbert/blockwise_cross_entropy.py); a checkpoint loaded elsewhere keeps this one.
    cross_entropy_sum = staticmethod(cross_entropy_sum)

    def save_pretrained(self, save_directory, *args, is_main_process: bool = True, push_to_hub: bool = False, **kwargs):
        """Save as transformers does, plus this file and the configuration's (remote code) and the full auto_map.

        Each head's `_auto_class` (set from AUTO_CLASSES) makes transformers copy the code files. A head no Auto class
        names gets them copied here, after transformers' save; `save_pretrained(push_to_hub=True)` would upload inside
        that save, before they exist, so it saves first and then pushes the folder through `push_to_hub()`.
        """
        self.config.auto_map = dict(AUTO_MAP)
        hub_kwargs = {k: kwargs.pop(k) for k in ("repo_id", "commit_message", "create_pr", "token", "private") if k in kwargs}
        super().save_pretrained(save_directory, *args, is_main_process=is_main_process, **kwargs)
        if is_main_process and os.path.isdir(save_directory):
            if self._auto_class is None and type(self).__module__ == __name__:  # a head no Auto class names
                custom_object_save(self, save_directory)  # the code files, leaving the auto_map above as it is
            if push_to_hub:
                repo_id = hub_kwargs.pop("repo_id", os.path.basename(os.path.normpath(save_directory)))
                self.push_to_hub(repo_id, **hub_kwargs)

    @torch.no_grad()
    def _init_weights(self, module):
        """BERT's initialisation. The `init` functions skip tensors that from_pretrained has already loaded."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and getattr(module, "is_position_table", False) and (
            self.config.position_embedding_init == "sinusoidal"
        ):
            init.copy_(module.weight, sinusoidal_positions(*module.weight.shape, std=std).to(module.weight.dtype))
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            # Slicing drops the "already loaded" flag, so check it here.
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class ScratchBertModel(ScratchBertPreTrainedModel):
    """The bare encoder: embeddings, `num_hidden_layers` layers and (optionally) the pooler."""

    def __init__(self, config: ScratchBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = ScratchBertEmbeddings(config)
        # Only when the embeddings are narrower or wider than the layers (config.embedding_size): E -> H.
        width = embedding_width(config)
        self.embeddings_project = nn.Linear(width, config.hidden_size) if width != config.hidden_size else None
        self.layers = nn.ModuleList([ScratchBertLayer(config) for _ in range(config.num_hidden_layers)])
        # Pre-LN layers leave their output unnormalised: one LayerNorm closes the stack.
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.layer_norm_position == "pre" else None
        )
        self.pooler = ScratchBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def check_inputs(self, input_ids, inputs_embeds, token_type_ids):
        """Name bad inputs here rather than fail with an index error deep inside an embedding."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if seq_len > self.config.max_position_embeddings:
            raise ValueError(
                f"Sequence length {seq_len} exceeds max_position_embeddings={self.config.max_position_embeddings}; "
                "truncate the inputs (e.g. tokenizer(..., truncation=True))"
            )
        if torch.compiler.is_compiling():
            return
        if input_ids is not None and input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= self.config.vocab_size):
            raise ValueError(
                f"input_ids must lie in [0, vocab_size={self.config.vocab_size}), got values in "
                f"[{int(input_ids.min())}, {int(input_ids.max())}]: does the tokenizer match the model?"
            )
        if token_type_ids is not None and token_type_ids.numel() and (
            token_type_ids.min() < 0 or token_type_ids.max() >= self.config.type_vocab_size
        ):
            raise ValueError(
                f"token_type_ids must lie in [0, type_vocab_size={self.config.type_vocab_size}), got values in "
                f"[{int(token_type_ids.min())}, {int(token_type_ids.max())}]"
            )

    @capture_outputs
    def forward(
        self,
        input_ids: torch.Tensor | None = None,  # [B, T]
        attention_mask: torch.Tensor | None = None,  # [B, T], 1 = token, 0 = padding
        token_type_ids: torch.Tensor | None = None,  # [B, T], 0 = segment A, 1 = segment B
        position_ids: torch.Tensor | None = None,  # [B, T] or [1, T]
        inputs_embeds: torch.Tensor | None = None,  # [B, T, H]
        **kwargs,
    ) -> BaseModelOutputWithPooling:
        self.check_inputs(input_ids, inputs_embeds, token_type_ids)
        output_attentions = kwargs.get("output_attentions", self.config.output_attentions)
        output_hidden_states = kwargs.get("output_hidden_states", self.config.output_hidden_states)
        # The unpadded fast path (config.unpad_inputs) packs real tokens into [R, H]; per-layer outputs are
        # then packed too, so it steps aside when they are asked for.
        if attention_mask is not None and not torch.compiler.is_compiling() and bool(attention_mask.all()):
            attention_mask = None  # no padding: let attention take its unmasked (fastest) kernel
        unpadded = None
        if self.config.unpad_inputs and attention_mask is not None and not (output_attentions or output_hidden_states):
            unpadded = Unpadded.from_mask(attention_mask)
        hidden_states = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds, unpadded=unpadded)
        if self.embeddings_project is not None:
            hidden_states = self.embeddings_project(hidden_states)  # [B, T, E] -> [B, T, H]
        # One additive bias for every layer, in the dtype attention computes in (bf16 under autocast).
        bias = None
        device_type = hidden_states.device.type
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else hidden_states.dtype
        if attention_mask is not None:
            bias = attention_bias(attention_mask, dtype)  # [B, 1, 1, T]
        if self.config.attention_position_bias == "alibi":
            seq_len = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            alibi = alibi_bias(self.config.num_attention_heads, seq_len, hidden_states.device, dtype)  # [1, heads, T, T]
            bias = alibi if bias is None else bias + alibi  # [B, heads, T, T]
        for layer in self.layers:
            hidden_states = layer(hidden_states, bias, output_attentions=output_attentions, unpadded=unpadded)
        if self.final_norm is not None:
            hidden_states = self.final_norm(hidden_states)
        if unpadded is not None:
            hidden_states = unpadded.pad(hidden_states)  # [R, H] -> [B, T, H], zeros at padding
        pooled_output = self.pooler(hidden_states) if self.pooler is not None else None  # [B, H]
        return BaseModelOutputWithPooling(last_hidden_state=hidden_states, pooler_output=pooled_output)


# ----------------------------------------------------------------------------------------------------------------
# Pretraining heads
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ScratchBertForPreTrainingOutput(ModelOutput):
    """
    loss: mlm_loss_weight * MLM loss + nsp_loss_weight * NSP loss (whichever labels were given).
    prediction_logits: [B, T, V] MLM scores; None in training with sparse MLM prediction; [N, V] at the N
        labelled positions with `sparse_logits`.
    seq_relationship_logits: [B, 2] NSP scores; class 0 = "B follows A", 1 = "B is random".
    mlm_loss, nsp_loss: the two terms before weighting, for logging.
    """

    loss: torch.Tensor | None = None
    prediction_logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    mlm_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None


class ScratchBertMLMMixin:
    """MLM head plumbing shared by the pretraining and masked-LM models: tied decoder and the (sparse) MLM loss."""

    _tied_weights_keys = {"mlm_head.decoder.weight": "scratchbert.embeddings.word_embeddings.weight"}

    @staticmethod
    def check_has_mlm_head(config: ScratchBertConfig):
        """An encoder trained by replaced-token detection has no MLM head: a random one would answer fill-mask."""
        if config.pretraining_objective == "rtd":
            raise ValueError("this ScratchBert encoder was pretrained by replaced-token detection (pretraining_objective="
                             "'rtd'): it has no masked-LM head, and a random one would answer fill-mask. Its generator, an "
                             "MLM, answers it: load the checkpoint's generator/ subfolder (pipeline('fill-mask', model="
                             "'<checkpoint>/generator')). To train a new MLM head on this encoder anyway, set "
                             "config.pretraining_objective = 'mlm'.")

    def get_output_embeddings(self):
        return self.mlm_head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.mlm_head.decoder = new_embeddings

    def mlm_logits_and_loss(self, sequence_output, labels, sparse_logits=False):
        """MLM logits [B, T, V] (or None) and (summed loss, number of labelled positions), or None without labels.

        Sparse prediction (training with `sparse_mlm_prediction`, or `sparse_logits`): gather the N
        labelled positions and run the head on [N, H] alone. Only ~15 % of positions carry a label, so this
        skips most of the vocabulary-sized work; the loss and gradients are those of the dense path. With
        `sparse_logits` the [N, V] logits are returned (row-major order of `labels != -100`): what an
        evaluation needs, through the model's own forward (so FSDP's and DeepSpeed's hooks run).
        """
        if labels is None:
            return self.mlm_head(sequence_output), None
        if sparse_logits or (self.training and self.config.sparse_mlm_prediction):
            labelled = labels != -100  # [B, T]
            labelled_logits = self.mlm_head(sequence_output[labelled])  # [N, H] -> [N, V]
            return (labelled_logits if sparse_logits else None), self.cross_entropy_sum(labelled_logits, labels[labelled])
        logits = self.mlm_head(sequence_output)  # [B, T, V]
        return logits, self.cross_entropy_sum(logits, labels)


class ScratchBertForPreTraining(ScratchBertMLMMixin, ScratchBertPreTrainedModel):
    """Encoder + MLM head + NSP head, trained on loss = mlm_loss_weight * MLM + nsp_loss_weight * NSP."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.check_has_mlm_head(config)
        self.scratchbert = ScratchBertModel(config)
        self.mlm_head = ScratchBertMLMHead(config)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        labels: torch.Tensor | None = None,  # [B, T] token ids at masked positions, -100 elsewhere
        next_sentence_label: torch.Tensor | None = None,  # [B], 0 = B follows A, 1 = B is random
        num_items_in_batch=None,
        # With labels: prediction_logits [N, V] at the N labelled positions only (what an evaluation needs). Named
        # without "label": the Trainer takes every forward argument whose name holds it for a label.
        sparse_logits: bool = False,
        **kwargs,
    ) -> ScratchBertForPreTrainingOutput:
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        prediction_logits, mlm_sums = self.mlm_logits_and_loss(outputs.last_hidden_state, labels, sparse_logits)
        nsp_logits = self.nsp_head(outputs.pooler_output)  # [B, 2]

        loss = mlm_loss = nsp_loss = None
        if mlm_sums is not None:
            mlm_loss = mean_loss(*mlm_sums, num_items_in_batch)
            loss = self.config.mlm_loss_weight * mlm_loss
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.reshape(-1))
            if num_items_in_batch is not None and mlm_sums is not None:
                # The Trainer counts only MLM labels across accumulated micro-batches. Weight this micro-batch's
                # NSP mean by its share of them, so the terms add up to one mean over the accumulated batch
                # (exact when micro-batches hold equally many masked tokens, as with fixed-length pairs).
                nsp_loss = nsp_loss * mlm_sums[1] / num_items_in_batch
            weighted = self.config.nsp_loss_weight * nsp_loss
            loss = weighted if loss is None else loss + weighted

        return ScratchBertForPreTrainingOutput(
            loss=loss,
            prediction_logits=prediction_logits,
            seq_relationship_logits=nsp_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            mlm_loss=None if mlm_loss is None else mlm_loss.detach(),
            nsp_loss=None if nsp_loss is None else nsp_loss.detach(),
        )


class ScratchBertForMaskedLM(ScratchBertMLMMixin, ScratchBertPreTrainedModel):
    """Encoder (no pooler) + MLM head: fill-mask and MLM-only pretraining."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.check_has_mlm_head(config)
        self.scratchbert = ScratchBertModel(config, add_pooling_layer=False)
        self.mlm_head = ScratchBertMLMHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        labels: torch.Tensor | None = None,  # [B, T], -100 = no label
        num_items_in_batch=None,
        **kwargs,
    ) -> MaskedLMOutput:
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        logits, mlm_sums = self.mlm_logits_and_loss(outputs.last_hidden_state, labels)
        loss = None if mlm_sums is None else mean_loss(*mlm_sums, num_items_in_batch)
        return MaskedLMOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class ScratchBertForNextSentencePrediction(ScratchBertPreTrainedModel):
    """Encoder + NSP head: does segment B follow segment A? (label 0 = yes, 1 = B is random)."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.scratchbert = ScratchBertModel(config)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        labels: torch.Tensor | None = None,  # [B]
        num_items_in_batch=None,
        **kwargs,
    ) -> NextSentencePredictorOutput:
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        logits = self.nsp_head(outputs.pooler_output)  # [B, 2]
        loss = None if labels is None else mean_loss(*self.cross_entropy_sum(logits, labels), num_items_in_batch)
        return NextSentencePredictorOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


@dataclass
class ScratchBertForReplacedTokenDetectionOutput(ModelOutput):
    """
    loss: the replaced-token loss (binary cross-entropy over real tokens) + nsp_loss_weight * pair loss, whichever
        labels were given.
    logits: [B, T] replaced-token scores (> 0: replaced).
    seq_relationship_logits: [B, 2] pair-objective scores (NSP or SOP), as ScratchBertForPreTraining's.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    seq_relationship_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    rtd_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None


class ScratchBertForReplacedTokenDetection(ScratchBertPreTrainedModel):
    """Encoder + per-token "was this token replaced?" head (+ the pair head): ELECTRA's discriminator.

    What replaced-token detection (scratchbert/replaced_token_detection.py) trains and saves as the checkpoint: every
    head loads its encoder as it loads an MLM-trained one. No Auto class names it (transformers has none for it).
    """

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.scratchbert = ScratchBertModel(config)
        self.rtd_head = ScratchBertReplacedTokenHead(config)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.post_init()

    @staticmethod
    def replaced_token_losses(logits, nsp_logits, labels=None, next_sentence_label=None):
        """(replaced-token loss, pair loss), each None without its labels: the binary cross-entropy's mean over
        labelled tokens (0, not NaN, for none) and the pair head's cross-entropy, both unweighted."""
        rtd_loss = nsp_loss = None
        if labels is not None:
            labelled = labels != -100
            rtd_loss = F.binary_cross_entropy_with_logits(
                logits[labelled].float(), labels[labelled].float(), reduction="sum") / labelled.sum().clamp(min=1)
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits.float(), next_sentence_label.reshape(-1))
        return rtd_loss, nsp_loss

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        labels: torch.Tensor | None = None,  # [B, T], 1 = replaced, 0 = original, -100 = no label (padding)
        next_sentence_label: torch.Tensor | None = None,  # [B]
        **kwargs,
    ) -> ScratchBertForReplacedTokenDetectionOutput:
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        logits = self.rtd_head(outputs.last_hidden_state)  # [B, T]
        nsp_logits = self.nsp_head(outputs.pooler_output)  # [B, 2]
        rtd_loss, nsp_loss = self.replaced_token_losses(logits, nsp_logits, labels, next_sentence_label)
        loss = rtd_loss
        if nsp_loss is not None:
            weighted = self.config.nsp_loss_weight * nsp_loss
            loss = weighted if loss is None else loss + weighted
        return ScratchBertForReplacedTokenDetectionOutput(
            loss=loss, logits=logits, seq_relationship_logits=nsp_logits, hidden_states=outputs.hidden_states,
            attentions=outputs.attentions, rtd_loss=rtd_loss, nsp_loss=nsp_loss,
        )


# ----------------------------------------------------------------------------------------------------------------
# Fine-tuning heads
# ----------------------------------------------------------------------------------------------------------------


def classifier_dropout(config: ScratchBertConfig) -> nn.Dropout:
    p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
    return nn.Dropout(p)


def mean_pool(last_hidden_state: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """[B, T, H] -> [B, H]: the mean over real tokens (attention_mask 1), padding left out."""
    if attention_mask is None:
        return last_hidden_state.mean(dim=1)
    weights = attention_mask.to(last_hidden_state.dtype).unsqueeze(-1)  # [B, T, 1]
    return (last_hidden_state * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class ScratchBertForSequenceClassification(ScratchBertPreTrainedModel):
    """Encoder + dropout + linear over the pooled [CLS] vector (`classifier_pooling` "cls", BERT's), or over the
    mean of the last hidden states ("mean": no pooler).

    The loss follows `config.problem_type` as BERT does: regression (MSE) for num_labels == 1, single-label
    (cross-entropy) for integer labels, multi-label (BCE with logits) otherwise.
    """

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.scratchbert = ScratchBertModel(config, add_pooling_layer=config.classifier_pooling == "cls")
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        labels: torch.Tensor | None = None,  # [B] class ids or floats, or [B, num_labels] multi-hot
        num_items_in_batch=None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        if self.config.classifier_pooling == "mean":
            pooled = mean_pool(outputs.last_hidden_state, attention_mask)  # [B, H]
        else:
            pooled = outputs.pooler_output  # [B, H]: dense + tanh over [CLS]
        logits = self.classifier(self.dropout(pooled))  # [B, num_labels]

        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss_sum = F.mse_loss(logits.float().squeeze(-1), labels.float().reshape(-1), reduction="sum")
                loss = mean_loss(loss_sum, torch.tensor(labels.numel()), num_items_in_batch)
            elif self.config.problem_type == "single_label_classification":
                loss = mean_loss(*self.cross_entropy_sum(logits, labels), num_items_in_batch)
            else:
                loss_sum = F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="sum")
                loss = mean_loss(loss_sum, torch.tensor(labels.numel()), num_items_in_batch)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class ScratchBertForTokenClassification(ScratchBertPreTrainedModel):
    """Encoder (no pooler) + dropout + linear per token: tagging (NER, POS)."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.scratchbert = ScratchBertModel(config, add_pooling_layer=False)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        labels: torch.Tensor | None = None,  # [B, T], -100 = no label
        num_items_in_batch=None,
        **kwargs,
    ) -> TokenClassifierOutput:
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))  # [B, T, num_labels]
        loss = None if labels is None else mean_loss(*self.cross_entropy_sum(logits, labels), num_items_in_batch)
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


class ScratchBertForQuestionAnswering(ScratchBertPreTrainedModel):
    """Encoder (no pooler) + linear to start/end scores per token: extractive QA (SQuAD)."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.scratchbert = ScratchBertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
        start_positions: torch.Tensor | None = None,  # [B]
        end_positions: torch.Tensor | None = None,  # [B]
        **kwargs,
    ) -> QuestionAnsweringModelOutput:
        kwargs.pop("num_items_in_batch", None)  # QA has no `labels`, so the Trainer never counts items for it
        outputs = self.scratchbert(
            input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, return_dict=True, **kwargs
        )
        logits = self.qa_outputs(outputs.last_hidden_state)  # [B, T, 2]
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))  # [B, T] each

        loss = None
        if start_positions is not None and end_positions is not None:
            # Positions outside the sequence (answer truncated away) are ignored, as in BERT.
            ignored_index = start_logits.size(1)
            start_positions = start_positions.reshape(-1).clamp(0, ignored_index)
            end_positions = end_positions.reshape(-1).clamp(0, ignored_index)
            start_loss = F.cross_entropy(start_logits.float(), start_positions, ignore_index=ignored_index)
            end_loss = F.cross_entropy(end_logits.float(), end_positions, ignore_index=ignored_index)
            loss = (start_loss + end_loss) / 2
        return QuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits,
            end_logits=end_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class ScratchBertForMultipleChoice(ScratchBertPreTrainedModel):
    """Encoder + linear scoring each (context, choice) pair; inputs are [B, num_choices, T]."""

    def __init__(self, config: ScratchBertConfig):
        super().__init__(config)
        self.scratchbert = ScratchBertModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,  # [B, C, T]
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,  # [B, C, T, H]
        labels: torch.Tensor | None = None,  # [B], index of the right choice
        num_items_in_batch=None,
        **kwargs,
    ) -> MultipleChoiceModelOutput:
        num_choices = input_ids.shape[1] if input_ids is not None else inputs_embeds.shape[1]

        def flatten(t):  # [B, C, ...] -> [B * C, ...]
            return None if t is None else t.reshape(-1, *t.shape[2:])

        outputs = self.scratchbert(
            flatten(input_ids),
            flatten(attention_mask),
            flatten(token_type_ids),
            flatten(position_ids),
            flatten(inputs_embeds),
            return_dict=True,
            **kwargs,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output)).view(-1, num_choices)  # [B, C]
        loss = None if labels is None else mean_loss(*self.cross_entropy_sum(logits, labels), num_items_in_batch)
        return MultipleChoiceModelOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# ----------------------------------------------------------------------------------------------------------------
# The list of heads, kept once: the package's exports and Auto registration, the auto_map of saved folders and
# scratchbert.convert's BERT class names all derive from it.
# ----------------------------------------------------------------------------------------------------------------

AUTO_CLASSES = {
    "AutoModel": ScratchBertModel,
    "AutoModelForPreTraining": ScratchBertForPreTraining,
    "AutoModelForMaskedLM": ScratchBertForMaskedLM,
    "AutoModelForNextSentencePrediction": ScratchBertForNextSentencePrediction,
    "AutoModelForSequenceClassification": ScratchBertForSequenceClassification,
    "AutoModelForTokenClassification": ScratchBertForTokenClassification,
    "AutoModelForQuestionAnswering": ScratchBertForQuestionAnswering,
    "AutoModelForMultipleChoice": ScratchBertForMultipleChoice,
}
for _auto_name, _model_class in AUTO_CLASSES.items():
    _model_class._auto_class = _auto_name  # save_pretrained then copies this file beside the weights (remote code)

# Every Auto class a saved folder answers to. save_pretrained writes all of them into config.json (transformers
# would write only the saved class), so one folder loads into any head with trust_remote_code.
AUTO_MAP = {
    "AutoConfig": "configuration_scratchbert.ScratchBertConfig",
    **{name: f"modeling_scratchbert.{model_class.__name__}" for name, model_class in AUTO_CLASSES.items()},
}

__all__ = [
    "ScratchBertPreTrainedModel",
    "ScratchBertForPreTrainingOutput",
    "ScratchBertForReplacedTokenDetection",
    "ScratchBertForReplacedTokenDetectionOutput",
    *(model_class.__name__ for model_class in AUTO_CLASSES.values()),
]
