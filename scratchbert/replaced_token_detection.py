"""Replaced-token detection (ELECTRA, Clark et al. 2020): a small MLM generator and the encoder as its discriminator.

One training step, given a batch masked as for BERT (the same collator, 15 % of positions chosen, 80/10/10):
  1. the generator, a narrow ScratchBertForMaskedLM, predicts the chosen positions (its MLM loss; its head runs at
     those positions only);
  2. each chosen position is filled with a token sampled from the generator's distribution (`sample_from_logits`;
     no gradient flows through the sampling);
  3. the discriminator, the encoder being trained (ScratchBertForReplacedTokenDetection), says for EVERY real token
     whether it was replaced (a sampled token equal to the original counts as original), and its pair head learns
     NSP or SOP on [CLS] as BERT's does.
  loss = mlm_loss_weight * generator MLM + rtd_loss_weight * discriminator BCE + nsp_loss_weight * pair loss.
The two share the token, position and segment embeddings and the embedding LayerNorm (the generator projects them to
its width); ELECTRA's paper weighs the discriminator 50 and finds a generator 1/4 to 1/2 as wide works best. The
generator keeps the discriminator's number of heads (narrower ones): ALiBi's slopes follow the head count; it is half
as deep by default, for the step's cost (`generator_config`).

The discriminator is what a run saves as its checkpoint (every head loads its encoder); the generator is saved in
the checkpoint's `generator/` subfolder, a plain ScratchBertForMaskedLM that answers fill-mask. This file is not
copied into checkpoints: nothing needs it to load either model.

The held-out replaced-token figures score the discriminator on text its own generator corrupted (seeded draws, so
one checkpoint always scores alike): a stronger generator makes the task harder, so they compare runs only beside
the generator's own figures.
"""

import os
from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput

from .configuration_scratchbert import ScratchBertConfig, retired_option
from .modeling_scratchbert import (
    ScratchBertForMaskedLM,
    ScratchBertForReplacedTokenDetection,
    mean_loss,
)
from .sentence_embeddings import write_sentence_transformers_files


def generator_config(discriminator: ScratchBertConfig, width: float, num_hidden_layers: int | None = None) -> dict:
    """The generator's sizes: `width` times the discriminator's hidden and intermediate sizes, half its depth (rounded
    up) unless given, and the same number of heads (narrower ones).

    ELECTRA's generator is as deep as its discriminator; DeBERTa-v3's is half as deep. On a CPU a narrow layer costs
    far more than its matmuls (its attention scores are as large as the encoder's): at the 30-minute recipe's shape
    four generator layers make the step 1.36-1.42x MLM + NSP's, two 1.25-1.32x (the bound asked for: 1.3x), for a
    generator a little behind at equal time (0.075 at [MASK] against 0.083 after 3 minutes) and a discriminator no
    different (docs/performance.md, docs/lab-notebook.md).

    ELECTRA keeps heads of 64 (its small generator: 64 hidden, 1 head), which suits learned positions. Under ALiBi a
    head's slope comes from its index among the heads, so a 1-head generator keeps only the most global slope and
    loses the local heads that make attention know what is near: alone as an MLM at width 1/4 it stays near the
    unigram line (0.058 at [MASK] after 3 minutes), where 4 heads of 16 reach 0.123 (docs/lab-notebook.md).
    """
    if not 0 < width <= 1:
        raise ValueError(f"generator_width={width} must be a share of the discriminator's width in (0, 1]")
    hidden = max(16, round(discriminator.hidden_size * width))
    heads = discriminator.num_attention_heads
    if hidden % heads:
        raise ValueError(f"generator_width={width} gives a hidden size of {hidden}, not a multiple of the encoder's "
                         f"{heads} heads (the generator has as many): choose another generator_width")
    layers = (discriminator.num_hidden_layers + 1) // 2 if num_hidden_layers is None else num_hidden_layers
    if layers < 1:
        raise ValueError(f"generator layers={layers} must be at least 1")
    return {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": max(1, round(discriminator.intermediate_size * width))}


# rtd fields of retired options (issue 44): configs saved before then carry them, at 0 unless the option was on.
RETIRED_CONFIG_FIELDS = ("rtd_discriminator_mlm_weight", "rtd_masked_share")


def refuse_retired_fields(fields: dict):
    """A config (its fields) trained with a retired rtd option on describes a model this code no longer builds:
    ValueError."""
    for name in RETIRED_CONFIG_FIELDS:
        if fields.get(name):
            raise ValueError(f"this model was trained with {name}={fields[name]!r}: {retired_option(name)}")


def build_generator_config(config: ScratchBertConfig) -> ScratchBertConfig:
    """The generator's ScratchBertConfig: the discriminator's, with the generator's sizes and its embeddings' width."""
    fields = config.to_dict()
    for key in ("rtd_generator", "rtd_loss_weight", *RETIRED_CONFIG_FIELDS, "architectures", "auto_map", "model_type",
                "transformers_version"):
        fields.pop(key, None)
    fields.update(config.rtd_generator, embedding_size=config.embedding_size or config.hidden_size,
                  pretraining_objective="mlm", nsp_loss_weight=0.0)
    return ScratchBertConfig(**fields)


def sample_from_logits(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of `logits` [N, V], drawn from softmax(logits) in fp32: [N] ids.

    By the inverse CDF, a block of rows at a time: one uniform number per row, then softmax, cumulative sum and a
    binary search while the block sits in cache. Gumbel-max (argmax of logits plus noise) would draw N x V random
    numbers; on a CPU that costs more than the rest of the sampling (at the 30-minute recipe's shape, ~600 x 16k:
    116 ms against 8 ms here, a third of the whole step). torch.multinomial takes the same route unblocked (slower).
    Written by hand: no library samples a large categorical blockwise.
    """
    num_rows, vocab_size = logits.shape
    uniform = torch.rand(num_rows, 1, generator=generator, device=logits.device)  # [N, 1]
    sampled = torch.empty(num_rows, dtype=torch.long, device=logits.device)
    rows = max(1, 2**18 // vocab_size)  # 1 MB of fp32 per block
    for start in range(0, num_rows, rows):
        cdf = torch.softmax(logits[start : start + rows].float(), dim=-1).cumsum_(dim=-1)  # [rows, V]
        sampled[start : start + rows] = torch.searchsorted(cdf, uniform[start : start + rows] * cdf[:, -1:]).squeeze(-1)
    return sampled.clamp_(max=vocab_size - 1)  # a draw at the very top of a row's rounded total


@dataclass
class ReplacedTokenDetectionOutput(ModelOutput):
    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None  # the generator's
    rtd_loss: torch.Tensor | None = None
    nsp_loss: torch.Tensor | None = None
    rtd_logits: torch.Tensor | None = None  # [B, T]
    rtd_labels: torch.Tensor | None = None  # [B, T]: 1 replaced, 0 original, -100 padding
    generator_logits: torch.Tensor | None = None  # [N, V] at the N chosen positions
    seq_relationship_logits: torch.Tensor | None = None  # [B, 2]


class ReplacedTokenDetectionModel(ScratchBertForReplacedTokenDetection):
    """The discriminator (this class's encoder and heads, ScratchBertForReplacedTokenDetection's) with its generator,
    trained together. `config` is the discriminator's, with more fields: `rtd_generator` (the generator's sizes,
    from `generator_config`) and `rtd_loss_weight`.

    A checkpoint of it (`checkpoint-N/`) keeps the discriminator's weight names, so every head loads its encoder from
    there too; the generator's weights sit beside them under `generator.`.
    """

    # The generator's embeddings ARE the discriminator's (one module) and its decoder is tied to them: listed so that
    # save_pretrained stores each shared tensor once, under the discriminator's name ...
    _tied_weights_keys = {
        **{f"generator.scratchbert.embeddings.{name}": f"scratchbert.embeddings.{name}" for name in (
            "word_embeddings.weight", "position_embeddings.weight", "token_type_embeddings.weight",
            "layer_norm.weight", "layer_norm.bias")},
        "generator.mlm_head.decoder.weight": "scratchbert.embeddings.word_embeddings.weight",
    }
    # ... and so absent from checkpoints: the Trainer's resume then re-ties them (tie_weights) instead of warning.
    _keys_to_ignore_on_save = list(_tied_weights_keys)

    def __init__(self, config: ScratchBertConfig):
        refuse_retired_fields(vars(config))
        super().__init__(config)
        self.generator = ScratchBertForMaskedLM(build_generator_config(config))
        self.share_embeddings()
        self.post_init()

    def post_init(self):
        # The discriminator's __init__ calls post_init before the generator exists; its tied keys need both.
        if "generator" in self._modules:
            super().post_init()

    def share_embeddings(self):
        shared = self.scratchbert.embeddings
        self.generator.scratchbert.embeddings = shared
        self.generator.mlm_head.decoder.weight = shared.word_embeddings.weight

    def tie_weights(self, *args, **kwargs):  # transformers calls it after loading: the modules stay shared
        self.share_embeddings()

    @staticmethod
    def replace_chosen(input_ids, labels, generator_logits, sampling_generator=None):
        """Fill the chosen positions with tokens sampled from the generator: (corrupted input ids [B, T], labels
        [B, T] that say which tokens changed). No gradient flows through the sampling."""
        chosen = labels != -100  # [B, T]
        with torch.no_grad():
            sampled = sample_from_logits(generator_logits.detach(), sampling_generator)  # [N]
            corrupted = input_ids.clone()
            corrupted[chosen] = sampled
            replaced = (corrupted != torch.where(chosen, labels, input_ids)).long()  # [B, T], vs the original text
        return corrupted, replaced

    def forward(
        self,
        input_ids=None,  # [B, T], masked by the collator
        attention_mask=None,
        token_type_ids=None,
        labels: torch.Tensor | None = None,  # [B, T] original ids at chosen positions, -100 elsewhere
        next_sentence_label: torch.Tensor | None = None,  # [B]
        num_items_in_batch=None,
        sampling_generator: torch.Generator | None = None,  # evaluation: fixed samples, the same for every run
        **kwargs,
    ) -> ReplacedTokenDetectionOutput:
        if labels is None:
            raise ValueError("replaced-token detection trains on masked batches: pass labels (-100 where not chosen)")
        generated = self.generator.scratchbert(input_ids, attention_mask, token_type_ids, return_dict=True)
        chosen = labels != -100  # [B, T]
        generator_logits = self.generator.mlm_head(generated.last_hidden_state[chosen])  # [N, V]
        mlm_sum, mlm_count = self.cross_entropy_sum(generator_logits, labels[chosen])
        mlm_loss = mean_loss(mlm_sum, mlm_count, num_items_in_batch)

        corrupted, replaced = self.replace_chosen(input_ids, labels, generator_logits, sampling_generator)
        rtd_labels = replaced if attention_mask is None else replaced.masked_fill(attention_mask == 0, -100)
        # The discriminator: its encoder and heads as ScratchBertForReplacedTokenDetection.forward runs them.
        encoded = self.scratchbert(corrupted, attention_mask, token_type_ids, return_dict=True)
        rtd_logits = self.rtd_head(encoded.last_hidden_state)  # [B, T]
        nsp_logits = self.nsp_head(encoded.pooler_output)  # [B, 2]
        rtd_loss, nsp_loss = self.replaced_token_losses(rtd_logits, nsp_logits, rtd_labels, next_sentence_label)
        if num_items_in_batch is not None:
            # The Trainer counts MLM labels over accumulated micro-batches; weight this micro-batch's means by its share
            # of them, as ScratchBertForPreTraining does its NSP loss, so the terms add up over the accumulated batch.
            share = mlm_count / num_items_in_batch
            rtd_loss = rtd_loss * share
            nsp_loss = None if nsp_loss is None else nsp_loss * share
        loss = self.config.mlm_loss_weight * mlm_loss + self.config.rtd_loss_weight * rtd_loss
        if nsp_loss is not None:
            loss = loss + self.config.nsp_loss_weight * nsp_loss
        return ReplacedTokenDetectionOutput(
            loss=loss, mlm_loss=mlm_loss.detach(), rtd_loss=rtd_loss.detach(),
            nsp_loss=None if nsp_loss is None else nsp_loss.detach(), rtd_logits=rtd_logits, rtd_labels=rtd_labels,
            generator_logits=generator_logits, seq_relationship_logits=nsp_logits,
        )

    def save_discriminator_and_generator(self, output_dir, state_dict: dict | None = None, tokenizer=None):
        """The run's export: the discriminator in `output_dir` (its config says pretraining_objective "rtd"), the
        generator in `output_dir/generator` (a whole ScratchBertForMaskedLM, the shared embeddings included), each
        with the tokenizer. `state_dict`: the training model's, gathered (FSDP, DeepSpeed); default its own."""
        state_dict = self.state_dict() if state_dict is None else state_dict
        discriminator = {k: v for k, v in state_dict.items() if not k.startswith("generator.")}
        generator = {k.removeprefix("generator."): v for k, v in state_dict.items() if k.startswith("generator.")}
        for name, value in discriminator.items():  # a gathered state dict may list a shared tensor once
            if name.startswith("scratchbert.embeddings."):
                generator.setdefault(name, value)
        generator.setdefault("mlm_head.decoder.weight", discriminator["scratchbert.embeddings.word_embeddings.weight"])
        generator_dir = os.path.join(output_dir, "generator")
        # A plain discriminator saves its half: config.json names ScratchBertForReplacedTokenDetection, not this class.
        ScratchBertForReplacedTokenDetection(self.config).save_pretrained(output_dir, state_dict=discriminator)
        self.generator.save_pretrained(generator_dir, state_dict=generator)
        for folder in (output_dir, generator_dir):  # each loads in sentence-transformers, mean-pooled
            write_sentence_transformers_files(folder)
        if tokenizer is not None:
            tokenizer.save_pretrained(output_dir)
            tokenizer.save_pretrained(generator_dir)


# ----------------------------------------------------------------------------------------------------------------
# Held-out figures (the evaluation loop that feeds them: pretraining.rtd_predictions)
# ----------------------------------------------------------------------------------------------------------------


def replaced_token_metrics(probabilities, labels) -> dict[str, float]:
    """The discriminator's held-out figures over real tokens: accuracy (at p > 0.5) beside calling every token
    original, the ROC AUC, and the share of tokens the generator replaced."""
    from sklearn.metrics import roc_auc_score  # scikit-learn is a dependency; imported here, on evaluation only

    real = labels != -100
    truth = labels[real].astype(int)
    scores = probabilities[real]
    both_classes = 0 < truth.sum() < truth.size
    return {
        "rtd_accuracy": float(((scores > 0.5) == truth).mean()) if truth.size else 0.0,
        "rtd_all_original_accuracy": float((truth == 0).mean()) if truth.size else 0.0,
        "rtd_auc": float(roc_auc_score(truth, scores)) if both_classes else float("nan"),
        "rtd_replaced_share": float(truth.mean()) if truth.size else 0.0,
        "rtd_replaced_accuracy": float((scores[truth == 1] > 0.5).mean()) if truth.any() else 0.0,
    }
