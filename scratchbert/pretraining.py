"""MLM + NSP pretraining with transformers' Trainer: the library behind run_pretraining.py.

The flow, top to bottom in `run()`: parse and check every input, load documents, get a tokenizer (load or
train one), turn documents into masked-LM + NSP examples (cached by `datasets`), build or load the model, train,
evaluate, and export a folder that loads anywhere (weights, tokenizer, remote code, model card, results).
"""

import dataclasses
import functools
import inspect
import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForPreTraining, AutoTokenizer

from .cli import ConfigError, packaged_config, parse_config
from .runs import (
    GuardedTrainer,
    RunArguments,
    ScratchBertTrainingArguments,
    check_sequence_length,
    check_output_dir,
    check_run_options,
    publish_results,
    resolve_checkpoint,
    script_main,
    save_final_model,
    setup_logging,
    tokenizer_for_run,
    train_and_report_io_errors,
    superseded_folder,
    training_progress,
)
from .configuration_scratchbert import ScratchBertConfig
from .replaced_token_detection import (
    RTD_OPTION_DEFAULTS,
    ReplacedTokenDetectionModel,
    build_generator_config,
    generator_config,
    replaced_token_metrics,
)
from .corpus import CorpusError, load_documents
from .curves import write_training_curves
from .model_cards import front_matter, hub_id_or_none
from .pretraining_data import (
    EVAL_MLM_PROBABILITY,
    DataCollatorForPretraining,
    MaskingEpochCallback,
    PAIR_OBJECTIVES,
    build_dataset,
    build_eval_dataset,
    cached_wordpiece_tokenizer,
    first_examples,
    ramped_batch_size,
    split_documents,
    stream_share,
    thin_masks,
)

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = packaged_config("pretrain_offline.yaml")


# ModelArguments fields that are ScratchBertConfig parameters (the rest choose the checkpoint and tokenizer).
CONFIG_FIELDS = set(inspect.signature(ScratchBertConfig.__init__).parameters) - {"self", "kwargs"}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Continue pretraining this checkpoint (folder or Hub id); else a fresh model"}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id; default: the checkpoint's, else train WordPiece"}
    )
    vocab_size: int | None = field(
        default=None, metadata={"help": "Vocabulary size: of the WordPiece tokenizer to train, or checked against a given one"}
    )
    lowercase: bool = field(default=True, metadata={"help": "Lowercase text in a newly trained tokenizer"})
    tokenizer_training_documents: int = field(
        default=100_000, metadata={"help": "At most this many documents train the tokenizer"}
    )
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    layer_norm_position: str = field(
        default="post", metadata={"help": "post (BERT's) or pre (pre-LayerNorm layers + a final LayerNorm; not convertible to BERT)"}
    )
    attention_position_bias: str = field(
        default="none", metadata={"help": "none (BERT's) or alibi (a -slope * distance bias per head; not convertible to BERT)"}
    )
    position_embedding_init: str = field(
        default="normal", metadata={"help": "normal (BERT's) or sinusoidal: how fresh position embeddings start"}
    )
    feed_forward_type: str = field(
        default="mlp", metadata={"help": "mlp (BERT's) or glu (GeGLU; 2/3 the intermediate_size at equal parameters; not convertible to BERT)"}
    )
    linear_bias: bool = field(
        default=True, metadata={"help": "Biases in the encoder layers' linear layers (false: none, as Cramming; not convertible to BERT)"}
    )
    deepnorm: bool = field(
        default=False, metadata={"help": "DeepNorm's scaled residual and init for post-LN layers (not convertible to BERT)"}
    )
    objective: str = field(
        default="mlm",
        metadata={"help": "mlm (BERT's masked LM, with the pair objective) or rtd (ELECTRA's replaced-token detection: a "
                          "small MLM generator fills the masked positions and the encoder learns which tokens were "
                          "replaced, at every position; scratchbert/replaced_token_detection.py)"},
    )
    generator_width: float = field(
        default=0.25, metadata={"help": "rtd: the generator's hidden and intermediate sizes as a share of the encoder's"}
    )
    generator_layers: int | None = field(
        default=None,
        metadata={"help": "rtd: the generator's layers (default: half the encoder's, rounded up; ELECTRA's are as many)"},
    )
    generator_heads: int | None = field(
        default=None,
        metadata={"help": "rtd: the generator's attention heads (default: as many as the encoder's, narrower; under "
                          "ALiBi a head's slope follows the head count)"},
    )
    rtd_loss_weight: float = field(
        default=50.0, metadata={"help": "rtd: weight of the replaced-token loss against the generator's MLM loss (ELECTRA: 50)"}
    )
    rtd_discriminator_mlm_weight: float = field(
        default=0.0,
        metadata={"help": "rtd: > 0 also trains the encoder to restore the original tokens at the masked positions from "
                          "the corrupted text (its own MLM head, for training only), a loss term of this weight"},
    )
    rtd_masked_share: float = field(
        default=0.0,
        metadata={"help": "rtd: the share of masked positions that keep their [MASK] in the encoder's input instead of "
                          "a generator sample (no replaced-token label there; rtd_discriminator_mlm_weight restores them)"},
    )
    rtd_head_at_prior: bool = field(
        default=False,
        metadata={"help": "rtd: start the replaced-token head's bias at the log-odds of mlm_probability (the share of "
                          "tokens a fresh generator replaces) instead of 0 (p = 0.5)"},
    )
    mlm_loss_weight: float = field(default=1.0, metadata={"help": "Weight of the MLM loss (rtd: the generator's)"})
    nsp_loss_weight: float = 1.0
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa or eager"})
    sparse_mlm_prediction: bool = field(
        default=True, metadata={"help": "Run the MLM head on masked positions only in training (same loss, faster)"}
    )
    # Off by default: faster in one process on a fixed batch (1.12-1.18x), not end to end (docs/performance.md).
    unpad_inputs: bool = field(
        default=False,
        metadata={"help": "Skip the work on padding tokens (same loss and gradients; a fifth of a pretraining batch is "
                          "padding). Leave it off under torch_compile (unpadding's shapes depend on the data)"},
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset, e.g. wikimedia/wikipedia"})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset config, e.g. 20231101.en"})
    streaming: bool = field(default=False, metadata={"help": "Stream the Hub dataset instead of downloading it"})
    train_file: str | None = field(
        default=None, metadata={"help": "Local .txt (BERT format: a sentence a line, blank line between documents), .json/.jsonl/.csv/.parquet"}
    )
    corpus: str | None = field(
        default=None, metadata={"help": "offline (Python docs shipped with CPython, the default) or synthetic"}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding a document's text"})
    max_documents: int | None = field(default=None, metadata={"help": "Use at most this many documents"})
    synthetic_documents: int = field(default=2000, metadata={"help": "Documents the synthetic corpus generates"})
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "Percent of documents held out for evaluation"}
    )
    max_eval_documents: int | None = field(default=None, metadata={"help": "Cap on held-out documents"})
    eval_seed: int = field(
        default=42,
        metadata={"help": "Seed of the held-out split, its pairs and its fixed masks: keep it to compare runs"},
    )
    max_seq_length: int = 128
    short_seq_prob: float = field(default=0.1, metadata={"help": "Probability of a shorter target length, as in BERT"})
    dupe_factor: int = field(default=1, metadata={"help": "Times each document is used, with different pairs"})
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Share of tokens masked in training (at the end, with mlm_probability_start)"}
    )
    mlm_probability_start: float | None = field(
        default=None,
        metadata={"help": "Masking rate at the start, falling linearly to mlm_probability over the run "
                          "(Ankner et al. 2023: 0.3 -> 0.15); evaluation always masks 15%%"},
    )
    batch_size_ramp_start: int | None = field(
        default=None,
        metadata={"help": "Batch size at the start, growing in steps of itself to per_device_train_batch_size over the "
                          "first batch_size_ramp_fraction of training (Cramming); the rest of each early batch is skipped"},
    )
    batch_size_ramp_fraction: float = field(
        default=0.5, metadata={"help": "Share of training (of the steps, or of max_train_minutes) the batch-size ramp spans"}
    )
    whole_word_mask: bool = False
    mlm_only: bool = field(default=False, metadata={"help": "Train MLM alone (single segments, no NSP)"})
    pair_objective: str = field(
        default="nsp",
        metadata={"help": "What the binary pair head learns: nsp (BERT: is B the next segment or a random one) or "
                          "sop (ALBERT: are two consecutive segments in order or swapped); eval_nsp_accuracy scores it"},
    )
    shuffle_buffer_documents: int = field(
        default=1000, metadata={"help": "Streaming: documents are shuffled in a buffer of this many"}
    )
    shuffle_buffer_examples: int = field(
        default=10_000, metadata={"help": "Streaming: training examples are shuffled in a buffer of this many"}
    )
    preprocessing_num_workers: int | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short for a sentence pair")
        for name in ("mlm_probability", "mlm_probability_start"):
            value = getattr(self, name)
            if value is not None and not 0 < value < 1:
                raise ValueError(f"{name}={value} must be a share of tokens in (0, 1)")
        if self.batch_size_ramp_start is not None and (
            isinstance(self.batch_size_ramp_start, bool) or not isinstance(self.batch_size_ramp_start, int)
            or self.batch_size_ramp_start < 1
        ):
            raise ValueError(f"batch_size_ramp_start must be a positive number of examples, got {self.batch_size_ramp_start!r}")
        if not 0 < self.batch_size_ramp_fraction <= 1:
            raise ValueError(f"batch_size_ramp_fraction={self.batch_size_ramp_fraction} must be a share of training in (0, 1]")
        if self.pair_objective not in PAIR_OBJECTIVES:
            raise ValueError(f"pair_objective must be one of {', '.join(PAIR_OBJECTIVES)}, got {self.pair_objective!r}")
        if self.mlm_only and self.pair_objective != "nsp":
            raise ValueError(f"pair_objective={self.pair_objective!r} needs sentence pairs, but mlm_only trains on single segments")


# ----------------------------------------------------------------------------------------------------------------
# Tokenizer, data and model
# ----------------------------------------------------------------------------------------------------------------


def get_tokenizer(model_args: ModelArguments, data_args: DataArguments, train_documents, checkpoint: str | None = None):
    """The checkpoint's tokenizer when resuming; else `tokenizer_name` or the model's; else a trained WordPiece.

    A resumed run never trains a new one: WordPiece training is not deterministic, and a vocabulary with other
    ids would silently scramble the embeddings the checkpoint learned.
    """
    if checkpoint is not None:
        if not (Path(checkpoint) / "tokenizer_config.json").is_file():
            raise ConfigError(f"checkpoint {checkpoint} holds no tokenizer; cannot resume with the vocabulary it was trained on")
        return AutoTokenizer.from_pretrained(checkpoint)
    source = model_args.tokenizer_name or model_args.model_name_or_path
    if source:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
        except Exception as error:
            raise ConfigError(f"cannot load a tokenizer from {source}: {error}") from None
        if model_args.vocab_size is not None and model_args.vocab_size != len(tokenizer):
            logger.warning(
                "vocab_size=%d is for training a tokenizer; the model takes the size of %s: %d tokens",
                model_args.vocab_size, source, len(tokenizer),
            )
        return tokenizer
    return cached_wordpiece_tokenizer(
        train_documents,
        vocab_size=model_args.vocab_size or 30522,
        lowercase=model_args.lowercase,
        model_max_length=model_args.max_position_embeddings,
        training_documents=model_args.tokenizer_training_documents,
        cache_dir=data_args.cache_dir,
        corpus_id=(data_args.dataset_name, data_args.dataset_config_name, data_args.train_file, data_args.max_documents),
    )


OBJECTIVES = ("mlm", "rtd")


def check_objective(model_args: ModelArguments):
    """Refuse, by name, what replaced-token detection cannot do, before any data work."""
    if model_args.objective not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {model_args.objective!r}")
    if model_args.objective != "rtd":
        if model_args.rtd_head_at_prior:
            raise ConfigError("rtd_head_at_prior: true needs objective: rtd (an MLM run has no replaced-token head)")
        if model_args.rtd_discriminator_mlm_weight:
            raise ConfigError("rtd_discriminator_mlm_weight needs objective: rtd (an MLM run's encoder already trains "
                              "on MLM, weighted by mlm_loss_weight)")
        if model_args.rtd_masked_share:
            raise ConfigError("rtd_masked_share needs objective: rtd (an MLM run has no generator samples to leave out)")
        return
    if model_args.model_name_or_path:
        saved = Path(model_args.model_name_or_path) / "config.json"  # a local folder; a Hub id is checked on loading
        if saved.is_file() and json.loads(saved.read_text()).get("pretraining_objective") == "rtd":
            raise ConfigError(
                f"model_name_or_path ({model_args.model_name_or_path}) is already an rtd discriminator, without the "
                "generator it trained beside: to continue that run, pass resume_from_checkpoint (its checkpoint-N "
                "folders hold both)"
            )
    if not model_args.rtd_loss_weight > 0:
        raise ConfigError(f"rtd_loss_weight={model_args.rtd_loss_weight} must be positive: it is what rtd trains")
    if model_args.generator_layers is not None and model_args.generator_layers < 1:
        raise ConfigError(f"generator_layers must be a positive number of layers, got {model_args.generator_layers}")
    if not model_args.rtd_discriminator_mlm_weight >= 0:
        raise ConfigError(f"rtd_discriminator_mlm_weight={model_args.rtd_discriminator_mlm_weight} must be 0 (off) or positive")
    if not 0 <= model_args.rtd_masked_share < 1:
        raise ConfigError(f"rtd_masked_share={model_args.rtd_masked_share} must be a share of the masked positions in [0, 1)")
    if model_args.rtd_masked_share and not model_args.rtd_discriminator_mlm_weight:
        raise ConfigError("rtd_masked_share leaves [MASK]s in the encoder's input that only the discriminator's own MLM "
                          "term learns from: set rtd_discriminator_mlm_weight > 0 with it")
    if model_args.generator_heads is not None and model_args.generator_heads < 1:
        raise ConfigError(f"generator_heads must be a positive number of heads, got {model_args.generator_heads}")
    if not model_args.sparse_mlm_prediction:
        raise ConfigError("objective: rtd runs the generator's head at masked positions only; sparse_mlm_prediction: false "
                          "has no meaning for it")


def fresh_model_config(model_args: ModelArguments, data_args: DataArguments, vocab_size: int, pad_token_id: int):
    """The model section of the config as one ScratchBertConfig; the tokenizer sets the vocabulary, and MLM-only
    runs carry no NSP loss. With objective rtd, the config also carries the generator's sizes (`rtd_generator`) and
    the loss weight. A bad value is a ConfigError naming the field."""
    model_section = {k: v for k, v in dataclasses.asdict(model_args).items() if k in CONFIG_FIELDS}
    model_section.update(
        vocab_size=vocab_size, pad_token_id=pad_token_id,
        nsp_loss_weight=0.0 if data_args.mlm_only else model_args.nsp_loss_weight,
    )
    try:
        config = ScratchBertConfig(**model_section)
        if model_args.objective == "rtd":
            add_rtd_fields(config, model_args)
        return config
    except ValueError as error:
        raise ConfigError(str(error)) from None


def add_rtd_fields(config: ScratchBertConfig, model_args: ModelArguments):
    """Make `config` a ReplacedTokenDetectionModel's: the objective, the generator's sizes and the rtd options. A
    generator that cannot be built fails now (ValueError)."""
    config.pretraining_objective = "rtd"
    config.rtd_generator = generator_config(
        config, model_args.generator_width, model_args.generator_layers, model_args.generator_heads)
    config.rtd_loss_weight = model_args.rtd_loss_weight
    for name in RTD_OPTION_DEFAULTS:
        setattr(config, name, getattr(model_args, name))
    build_generator_config(config)


def generator_flags(config: ScratchBertConfig, trained: dict) -> list[str] | None:
    """The --generator_* options that rebuild `trained` (a checkpoint's generator sizes) beside this encoder, those
    that differ from `config`'s: [] if none do, None if no options can (a width is offered only once it rebuilds both
    the hidden and the intermediate size, which generator_config rounds apart)."""
    current = config.rtd_generator
    flags = [f"--generator_{flag} {trained[key]}"
             for flag, key in (("layers", "num_hidden_layers"), ("heads", "num_attention_heads"))
             if trained[key] != current[key]]
    if all(trained[key] == current[key] for key in ("hidden_size", "intermediate_size")):
        return flags
    ratios = (trained["hidden_size"] / config.hidden_size, trained["intermediate_size"] / config.intermediate_size)
    for width in (round(ratio, digits) for digits in range(2, 7) for ratio in ratios):
        try:
            if generator_config(config, width, trained["num_hidden_layers"], trained["num_attention_heads"]) == trained:
                return [*flags, f"--generator_width {width:g}"]
        except ValueError:  # not a width generator_config takes
            continue
    return None


def check_resumed_generator(config: ScratchBertConfig, checkpoint: str):
    """A resumed rtd run rebuilds its pair from the options: refuse, by name, options that differ from the checkpoint's
    (another generator would not load its weights; another loss weight would silently change the objective)."""
    saved = json.loads((Path(checkpoint) / "config.json").read_text())
    for name in ("rtd_generator", "rtd_loss_weight", *RTD_OPTION_DEFAULTS, "mlm_loss_weight", "nsp_loss_weight"):
        trained = saved.get(name, RTD_OPTION_DEFAULTS.get(name))  # checkpoints from before the options lack them
        if trained != getattr(config, name):
            hint = ""
            if name == "rtd_generator" and isinstance(trained, dict):  # runs saved under earlier generator defaults
                flags = generator_flags(config, trained)  # never [] here: the sizes differ
                if flags is None:
                    hint = " (no generator_* options rebuild its generator's sizes)"
                else:
                    hint = f" (resume with {' '.join(flags)})"
            raise ConfigError(
                f"{checkpoint} was trained with {name}={trained!r}, these options give "
                f"{getattr(config, name)!r}: resume with the options it was trained with{hint}"
            )


def build_model(model_args: ModelArguments, tokenizer, data_args: DataArguments, checkpoint: str | None = None):
    vocab_size = len(tokenizer)
    if model_args.model_name_or_path:
        try:
            model = AutoModelForPreTraining.from_pretrained(
                model_args.model_name_or_path, attn_implementation=model_args.attn_implementation
            )
        except Exception as error:
            raise ConfigError(f"cannot load a pretraining model from {model_args.model_name_or_path}: {error}") from None
        if model.config.model_type != "scratchbert":
            raise ConfigError(
                f"{model_args.model_name_or_path} is a {model.config.model_type!r} model; convert a BERT with "
                "`python -m scratchbert.convert bert-to-scratchbert` first"
            )
        if model.config.vocab_size != vocab_size:
            raise ConfigError(
                f"the checkpoint's vocab_size ({model.config.vocab_size}) does not match its tokenizer's "
                f"({vocab_size} tokens); pass the tokenizer it was trained with"
            )
        if data_args.mlm_only:
            model.config.nsp_loss_weight = 0.0  # no NSP labels; recorded in the saved config
        model.config.unpad_inputs = model_args.unpad_inputs
        if model_args.objective == "rtd":
            model = discriminator_from_mlm(model, model_args, data_args)
            if checkpoint is not None:  # a two-stage run resumed: its rtd stage's options, as from scratch
                check_resumed_generator(model.config, checkpoint)
    elif model_args.objective == "rtd":
        config = fresh_model_config(model_args, data_args, vocab_size, tokenizer.pad_token_id)
        if checkpoint is not None:
            check_resumed_generator(config, checkpoint)
        model = ReplacedTokenDetectionModel._from_config(config, attn_implementation=model_args.attn_implementation)
    else:
        config = fresh_model_config(model_args, data_args, vocab_size, tokenizer.pad_token_id)
        model = AutoModelForPreTraining.from_config(config, attn_implementation=model_args.attn_implementation)
    if model_args.rtd_head_at_prior:  # a resumed run then loads the checkpoint's head over it
        # The labelled tokens' replaced share: masked positions left as [MASK] (rtd_masked_share) carry no label.
        masked, kept = data_args.mlm_probability, model_args.rtd_masked_share
        model.start_rtd_head_at(masked * (1 - kept) / (1 - masked * kept))
    check_sequence_length(data_args.max_seq_length, model.config.max_position_embeddings)
    if data_args.mlm_only:
        # No NSP loss, so the pooler and NSP head would run without a gradient: DDP with
        # ddp_find_unused_parameters false fails on such parameters. Frozen, they stay as they are and are saved.
        for module in (model.scratchbert.pooler, model.nsp_head):
            module.requires_grad_(False)
    return model


def discriminator_from_mlm(mlm, model_args: ModelArguments, data_args: DataArguments) -> ReplacedTokenDetectionModel:
    """ELECTRA's two-stage training: replaced-token detection whose discriminator starts from an MLM-trained
    checkpoint's encoder (and pair head, and its MLM head for the discriminator's own MLM term if that is on), the
    replaced-token head and the generator fresh (the generator shares the loaded embeddings). From scratch, the
    discriminator needs context before it can tell a sampled token from the original, and a short run does not give
    it that (docs/pretraining-recipes.md, issue 35); an MLM stage does."""
    try:
        config = ScratchBertConfig(**{
            **mlm.config.to_dict(),
            "mlm_loss_weight": model_args.mlm_loss_weight,  # the generator's, from now on
            "nsp_loss_weight": 0.0 if data_args.mlm_only else model_args.nsp_loss_weight,
        })
        add_rtd_fields(config, model_args)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    model = ReplacedTokenDetectionModel._from_config(config, attn_implementation=model_args.attn_implementation)
    weights = mlm.state_dict()
    encoder = {k: v for k, v in weights.items() if k.startswith(("scratchbert.", "nsp_head."))}
    if model.discriminator_mlm_head is not None:  # rtd_discriminator_mlm_weight: the MLM stage's head goes on
        encoder.update({"discriminator_mlm_head." + k.removeprefix("mlm_head."): v
                        for k, v in weights.items() if k.startswith("mlm_head.")})
    # Copied into the existing parameters: the generator's embeddings, the same module, are the loaded ones.
    missing, unexpected = model.load_state_dict(encoder, strict=False)
    not_loaded = [k for k in missing if not k.startswith(("rtd_head.", "generator."))]  # those two stay fresh
    if not_loaded or unexpected:
        raise ConfigError(f"{model_args.model_name_or_path}'s encoder does not fit a discriminator: missing "
                          f"{not_loaded}, unexpected {unexpected}")
    return model


# ----------------------------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------------------------


class RankShareDataLoader(torch.utils.data.DataLoader):
    """A DataLoader over one rank's share of a stream; the Trainer's set_epoch reshuffles its buffers."""

    def set_epoch(self, epoch: int):
        self.dataset.set_epoch(epoch)


class PretrainingTrainer(GuardedTrainer):
    """Evaluates masked LM at the labelled positions alone: the MLM head runs on [N, H], never on [B, T, H].

    Dense [B, T, V] logits for every position cost most of an evaluation and are thrown away; what the metrics
    need is, per labelled position, the prediction and its loss, plus the input token (was it [MASK]?).

    Two schedules act on training batches just before their step (`get_batch_samples`): a falling masking rate
    (the collator's `mlm_probability_start`) and a batch-size ramp (`batch_size_ramp_start`).
    """

    def __init__(self, *args, batch_size_ramp_start: int | None = None, batch_size_ramp_fraction: float = 0.5,
                 eval_seed: int = 42, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_seed = eval_seed
        self.batch_size_ramp_start = batch_size_ramp_start
        self.batch_size_ramp_fraction = batch_size_ramp_fraction
        self._term_sums: dict[str, torch.Tensor] = {}  # LOGGED_TERMS since the last training log
        self._terms_logged_at = 0  # the step of that log

    def get_train_dataloader(self):
        """A streamed corpus is already this rank's own share (`stream_share`): load it as it is.

        accelerate would otherwise split it again, or have rank 0 read every rank's batches (dispatch_batches).
        The shares differ in length, so each repeats until max_steps ends the run: no rank runs dry while the
        others still step (their collectives would wait for it forever).
        """
        if not (isinstance(self.train_dataset, datasets.IterableDataset) and self.args.world_size > 1):
            return super().get_train_dataloader()
        return RankShareDataLoader(
            self.train_dataset.repeat(None), batch_size=self._train_batch_size, collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory,
        )

    def training_progress(self) -> float:
        """The share of training done: of the steps, or of a time budget if further along (as the lr counts it)."""
        return min(training_progress(self.time_budget, self.state.global_step, self.state.max_steps), 1.0)

    def get_batch_samples(self, epoch_iterator, num_batches, device):
        """This step's batches, cut to the batch-size ramp's size and thinned to the masking schedule's rate.

        Batches are collated ahead of their step (DataLoader workers, accelerate's prefetch), at full size and,
        with a masking schedule, at its highest rate (see DataCollatorForPretraining). Here, in the main process
        and just before the step they feed, they are brought to the step's size and rate, and the Trainer's count
        of labelled tokens (num_items_in_batch, the loss's divisor) is taken again. The ramp keeps a batch's first
        examples and skips the rest for this epoch (the sampler has drawn them already; the next epoch reshuffles).
        """
        batches, num_items_in_batch = super().get_batch_samples(epoch_iterator, num_batches, device)
        masking_schedule = any("mlm_draws" in batch for batch in batches)
        if self.batch_size_ramp_start is None and not masking_schedule:
            return batches, num_items_in_batch
        progress = self.training_progress()
        if self.batch_size_ramp_start is not None:
            size = ramped_batch_size(
                progress, self.batch_size_ramp_start, self.args.per_device_train_batch_size, self.batch_size_ramp_fraction
            )
            batches = [first_examples(batch, size) for batch in batches]
        if masking_schedule:
            rate = self.data_collator.masking_rate(progress)
            batches = [thin_masks(batch, rate) for batch in batches]
        return batches, self._get_num_items_in_batch(batches, device)

    # The objective's terms, logged beside the weighted sum ("loss") so a run shows which one learns: the MLM loss (rtd:
    # the generator's), the replaced-token loss, the discriminator's own MLM loss (rtd_discriminator_mlm_weight) and the
    # pair loss, each before its weight.
    LOGGED_TERMS = ("mlm_loss", "rtd_loss", "discriminator_mlm_loss", "nsp_loss")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            # Each micro-batch's term is its share of the step's mean over the labelled tokens the Trainer counted:
            # over the accumulated micro-batches they add up (and, with tokens counted across processes, the Trainer
            # scales by the number of processes: so do we). Without that count, each is a micro-batch's own mean.
            if num_items_in_batch is None:
                scale = 1 / self.args.gradient_accumulation_steps
            else:
                scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
            for name in self.LOGGED_TERMS:
                term = getattr(outputs, name, None)
                if term is not None:
                    self._term_sums[name] = self._term_sums.get(name, 0.0) + term.detach().float() * scale
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs):
        if self._term_sums and "loss" in logs:  # a training log: each term's mean over the steps since the last one
            steps = max(self.state.global_step - self._terms_logged_at, 1)  # (this process's)
            logs = {**logs, **{name: round(total.item() / steps, 4) for name, total in self._term_sums.items()}}
            self._term_sums, self._terms_logged_at = {}, self.state.global_step
        return super().log(logs, *args, **kwargs)

    def is_rtd(self) -> bool:
        return isinstance(self.accelerator.unwrap_model(self.model), ReplacedTokenDetectionModel)

    def evaluation_loop(self, *args, **kwargs):
        # Replaced-token detection samples the generator's tokens: evaluation draws them from its own seeded
        # generator, so every evaluation of every run scores the same kind of corruption (the masks are fixed already).
        self.eval_sampling_generator = torch.Generator(device=self.args.device).manual_seed(self.eval_seed)
        return super().evaluation_loop(*args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            if self.is_rtd():
                loss, outputs, labels = rtd_predictions(model, inputs, self.eval_sampling_generator)
            else:
                loss, outputs, labels = labelled_predictions(model, inputs)
        if prediction_loss_only:
            return loss, None, None
        return loss, outputs, labels

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Checkpoints (internal calls) hold the whole training model, generator included, for resuming. The run's
        final export with objective rtd is the discriminator, the generator in its generator/ subfolder."""
        if _internal_call or not self.is_rtd():
            return super().save_model(output_dir, _internal_call)
        output_dir = output_dir or self.args.output_dir
        # Every rank: FSDP and DeepSpeed gather the full weights together (DeepSpeed from its engine, as the Trainer's
        # own save_model does).
        state_dict = self.accelerator.get_state_dict(self.model_wrapped if self.is_deepspeed_enabled else self.model)
        if self.args.should_save:
            self.accelerator.unwrap_model(self.model).save_discriminator_and_generator(
                output_dir, state_dict, self.processing_class
            )
            torch.save(self.args, os.path.join(output_dir, "training_args.bin"))


def set_aside_stale_generator(output_dir: Path):
    """An MLM export lands where an earlier rtd run left its `generator/` (overwritten with delete_old_checkpoints, whose
    final files stay for the new run to replace): no new run replaces that folder, and beside an MLM it would pass for
    this model's generator. Moved into `superseded-<UTC time>/`, never deleted."""
    stale = output_dir / "generator"
    if stale.is_dir():
        keep = superseded_folder(output_dir)
        os.replace(stale, keep / stale.name)
        logger.warning("%s was an earlier rtd run's generator, not this model's: moved to %s", stale, keep)


def labelled_predictions(model, inputs: dict):
    """One evaluation batch through the model's own forward, the MLM head run at labelled positions alone.

    The (possibly FSDP- or DeepSpeed-wrapped) model is called as a whole, never its submodules: a wrapper's
    hooks (FSDP2 gathering the sharded weights, say) run only around the root's forward. Returns (loss,
    (predictions [B, T] with -100 where unlabelled, per-position loss [B, T], input ids[, NSP logits [B, 2]]),
    labels or (labels, NSP labels)).
    """
    labels = inputs["labels"]  # [B, T], -100 where not chosen
    nsp_labels = inputs.get("next_sentence_label")  # [B] or None (mlm_only)
    output = model(
        input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
        token_type_ids=inputs.get("token_type_ids"), labels=labels, next_sentence_label=nsp_labels,
        sparse_logits=True, return_dict=True,
    )
    outputs = (*masked_lm_outputs(output.prediction_logits, labels), inputs["input_ids"])
    if nsp_labels is None:
        return output.loss.detach(), outputs, labels
    return output.loss.detach(), (*outputs, output.seq_relationship_logits.float()), (labels, nsp_labels)


def masked_lm_outputs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[N, V] logits at the labelled positions -> (predictions [B, T] with -100 where unlabelled, per-position loss
    [B, T], in fp32): what compute_pretraining_metrics reads."""
    chosen = labels != -100
    logits = logits.float()
    predictions = torch.full_like(labels, -100)
    predictions[chosen] = logits.argmax(-1)
    per_position_loss = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    per_position_loss[chosen] = F.cross_entropy(logits, labels[chosen], reduction="none")
    return predictions, per_position_loss


def rtd_predictions(model, inputs: dict, sampling_generator: torch.Generator | None):
    """labelled_predictions for replaced-token detection: one evaluation batch through the (possibly wrapped) training
    pair as a whole, the generator's tokens drawn from `sampling_generator`. The same layout, the generator's MLM in
    place of the model's, with two more outputs at the end: the discriminator's replaced-probability [B, T] and its
    labels [B, T] (-100 at padding, and at masked positions left as [MASK] by rtd_masked_share)."""
    labels = inputs["labels"]  # [B, T]
    nsp_labels = inputs.get("next_sentence_label")
    output = model(
        input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
        token_type_ids=inputs.get("token_type_ids"), labels=labels, next_sentence_label=nsp_labels,
        sampling_generator=sampling_generator,
    )
    outputs = [*masked_lm_outputs(output.generator_logits, labels), inputs["input_ids"]]
    if nsp_labels is not None:
        outputs.append(output.seq_relationship_logits.float())
    outputs += [torch.sigmoid(output.rtd_logits.float()), output.rtd_labels]
    return output.loss.detach(), tuple(outputs), labels if nsp_labels is None else (labels, nsp_labels)


def compute_pretraining_metrics(eval_prediction, mask_token_id: int) -> dict[str, float]:
    """Held-out MLM and NSP figures, each beside the trivial predictor it must beat.

    Over the chosen (labelled) positions: `mlm_accuracy` (as BERT reports it) and
    `mlm_copy_baseline_accuracy` (copy the input token, or the most frequent token where the input is [MASK]:
    the 10 % of chosen positions left unchanged give their answer away). At [MASK] positions only:
    `mlm_masked_accuracy` and `mlm_unigram_accuracy` (always the most frequent token there). `mlm_loss` is the
    mean cross-entropy over chosen positions and `mlm_unigram_loss` the entropy of their tokens' frequencies:
    a model that only learned word frequencies sits on these lines.
    """
    mlm_predictions, token_loss, input_ids = eval_prediction.predictions[:3]
    label_ids = eval_prediction.label_ids
    mlm_labels, nsp_labels = (label_ids if isinstance(label_ids, (tuple, list)) else (label_ids, None))[:2]
    chosen = mlm_labels != -100
    at_mask = chosen & (input_ids == mask_token_id)
    n_chosen, n_mask = max(int(chosen.sum()), 1), max(int(at_mask.sum()), 1)
    targets = mlm_labels[chosen].astype(np.int64)
    frequencies = np.bincount(targets) / n_chosen if chosen.any() else np.array([1.0])
    mask_targets = mlm_labels[at_mask].astype(np.int64)
    most_frequent = int(np.bincount(mask_targets).argmax()) if at_mask.any() else 0
    copy_predictions = np.where(input_ids == mask_token_id, most_frequent, input_ids)
    mlm_loss = float(token_loss[chosen].sum() / n_chosen)
    metrics = {
        "mlm_masked_accuracy": float((mlm_predictions[at_mask] == mlm_labels[at_mask]).sum() / n_mask),
        "mlm_unigram_accuracy": float((mask_targets == most_frequent).sum() / n_mask),
        "mlm_accuracy": float((mlm_predictions[chosen] == mlm_labels[chosen]).sum() / n_chosen),
        "mlm_copy_baseline_accuracy": float((copy_predictions[chosen] == mlm_labels[chosen]).sum() / n_chosen),
        "mlm_loss": mlm_loss,
        "mlm_unigram_loss": float(-(frequencies[frequencies > 0] * np.log(frequencies[frequencies > 0])).sum()),
        "perplexity": float(math.exp(min(mlm_loss, 50))),
        "masked_tokens": int(chosen.sum()),
    }
    if nsp_labels is not None:
        nsp_logits = eval_prediction.predictions[3]
        nsp_labels = nsp_labels.reshape(-1).astype(np.int64)
        logits = nsp_logits.reshape(-1, 2)[: len(nsp_labels)]
        log_probs = logits - np.logaddexp(logits[:, 0], logits[:, 1])[:, None]
        metrics["nsp_loss"] = float(-log_probs[np.arange(len(nsp_labels)), nsp_labels].mean())
        metrics["nsp_accuracy"] = float((logits.argmax(-1) == nsp_labels).mean())
    return metrics


def compute_rtd_metrics(eval_prediction, mask_token_id: int) -> dict[str, float]:
    """Replaced-token detection's held-out figures: the generator's masked-LM figures under the MLM names (beside
    the same trivial lines), the pair head's, and the discriminator's (`replaced_token_metrics`)."""
    *mlm_outputs, probabilities, rtd_labels = eval_prediction.predictions
    mlm_prediction = transformers.EvalPrediction(predictions=tuple(mlm_outputs), label_ids=eval_prediction.label_ids)
    return {**compute_pretraining_metrics(mlm_prediction, mask_token_id), **replaced_token_metrics(probabilities, rtd_labels)}


def load_documents_and_tokenizer(model_args, data_args, training_args, checkpoint: str | None = None):
    """The corpus split into training and held-out documents, and the tokenizer (see get_tokenizer)."""
    documents = load_documents(
        dataset_name=data_args.dataset_name,
        dataset_config_name=data_args.dataset_config_name,
        train_file=data_args.train_file,
        corpus=data_args.corpus,
        text_column=data_args.text_column,
        streaming=data_args.streaming,
        max_documents=data_args.max_documents,
        synthetic_documents_count=data_args.synthetic_documents,
        seed=data_args.eval_seed,  # the synthetic corpus is data: it stays put when the training seed changes
        cache_dir=data_args.cache_dir,
    )
    train_documents, eval_documents = split_documents(
        documents, data_args.validation_split_percentage, data_args.max_eval_documents, data_args.eval_seed
    )
    # One tokenizer for the whole run: global rank 0 loads or trains it, every other rank loads its files.
    tokenizer = tokenizer_for_run(lambda: get_tokenizer(model_args, data_args, train_documents, checkpoint))
    return tokenizer, train_documents, eval_documents


def build_datasets(train_documents, eval_documents, tokenizer, data_args, training_args):
    """Training examples (masked per batch by the collator) and the held-out examples (masked once, here)."""
    settings = dict(
        max_seq_length=data_args.max_seq_length, short_seq_prob=data_args.short_seq_prob, nsp=not data_args.mlm_only,
        pair_objective=data_args.pair_objective, num_proc=data_args.preprocessing_num_workers,
    )
    if data_args.streaming:  # each rank reads its own share of the stream, documents shuffled in a buffer
        train_documents = stream_share(
            train_documents, training_args.process_index, training_args.world_size, training_args.seed,
            data_args.shuffle_buffer_documents,
        )
    with training_args.main_process_first(desc="building the datasets"):
        train_dataset = build_dataset(
            train_documents, tokenizer, dupe_factor=data_args.dupe_factor, seed=training_args.seed, **settings
        )
        eval_dataset = build_eval_dataset(eval_documents, tokenizer, seed=data_args.eval_seed, **settings)
    if data_args.streaming:  # a document's pairs are made together: spread them over many batches
        train_dataset = train_dataset.shuffle(seed=training_args.seed, buffer_size=data_args.shuffle_buffer_examples)
    if data_args.streaming and training_args.max_steps <= 0:
        raise ConfigError("a streamed corpus has no length: set max_steps")
    if not data_args.streaming:
        logger.info("%d training and %d evaluation examples", len(train_dataset), len(eval_dataset))
    if data_args.mlm_probability_start is not None:
        logger.info(
            "Training masks %g %% of tokens at the start, falling to %g %%; evaluation stays at %g %% so runs compare",
            100 * data_args.mlm_probability_start, 100 * data_args.mlm_probability, 100 * EVAL_MLM_PROBABILITY,
        )
    elif data_args.mlm_probability != EVAL_MLM_PROBABILITY:
        logger.info(
            "Training masks %g %% of tokens; evaluation stays at %g %% so runs compare",
            100 * data_args.mlm_probability, 100 * EVAL_MLM_PROBABILITY,
        )
    return train_dataset, eval_dataset


def build_trainer(model, tokenizer, train_dataset, eval_dataset, data_args, run_args, training_args):
    train_collator = DataCollatorForPretraining(
        tokenizer=tokenizer, mlm_probability=data_args.mlm_probability, whole_word_mask=data_args.whole_word_mask,
        seed=training_args.seed, mlm_probability_start=data_args.mlm_probability_start,
    )
    metrics = compute_rtd_metrics if isinstance(model, ReplacedTokenDetectionModel) else compute_pretraining_metrics
    return PretrainingTrainer(
        eval_seed=data_args.eval_seed,
        batch_size_ramp_start=data_args.batch_size_ramp_start,
        batch_size_ramp_fraction=data_args.batch_size_ramp_fraction,
        on_nonfinite_loss=run_args.on_nonfinite_loss,
        max_train_minutes=run_args.max_train_minutes,
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=train_collator,
        callbacks=[MaskingEpochCallback(train_collator)],
        processing_class=tokenizer,
        compute_metrics=functools.partial(metrics, mask_token_id=tokenizer.mask_token_id),
    )


# ----------------------------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------------------------


def write_model_card(output_dir: Path, results: dict, model_args, data_args, training_args, config_path):
    source = (
        f"Hub dataset `{data_args.dataset_name}` (`{data_args.dataset_config_name}`)"
        if data_args.dataset_name
        else f"local file `{data_args.train_file}`"
        if data_args.train_file
        else f"the `{data_args.corpus or 'offline'}` corpus"
    )
    config = json.loads((output_dir / "config.json").read_text())
    rtd = model_args.objective == "rtd"
    pair = "" if data_args.mlm_only else f" + {PAIR_OBJECTIVES[data_args.pair_objective]}"
    if rtd:
        generator = config["rtd_generator"]
        objective = (
            f"replaced-token detection (ELECTRA){pair}: a generator MLM ({generator['hidden_size']} hidden, "
            f"{generator['num_hidden_layers']} layers, {generator['num_attention_heads']} heads, sharing the embeddings) "
            f"fills the masked positions, and this encoder learns, at every position, which tokens were replaced (loss "
            f"weight {config['rtd_loss_weight']:g})"
        )
        if config.get("rtd_discriminator_mlm_weight"):
            objective += (f", and restores the masked tokens (weight {config['rtd_discriminator_mlm_weight']:g}, "
                          f"{config.get('rtd_masked_share') or 0:g} of them left as [MASK]; that head is not exported)")
    else:
        objective = "masked language modelling" + pair
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in results.items())
    curves = (
        "\n## Training curves\n\n![training loss and held-out masked accuracy against tokens seen](training_curves.png)\n"
        if (output_dir / "training_curves.png").is_file() else ""
    )
    generator_note = " (the generator)" if rtd else ""
    held_out = [
        (kind, name, results[key]) for kind, name, key in (
            ("accuracy", "held-out replaced-token accuracy", "eval_rtd_accuracy"),
            ("roc_auc", "held-out replaced-token ROC AUC", "eval_rtd_auc"),
            ("accuracy", f"held-out accuracy at [MASK]{generator_note}", "eval_mlm_masked_accuracy"),
            ("accuracy", "held-out accuracy at [MASK]: most frequent token (baseline)", "eval_mlm_unigram_accuracy"),
            ("accuracy", f"held-out masked-LM accuracy (all chosen positions){generator_note}", "eval_mlm_accuracy"),
            ("loss", f"held-out masked-LM loss{generator_note}", "eval_mlm_loss"),
            ("accuracy", "held-out next-sentence accuracy", "eval_nsp_accuracy"),
        ) if isinstance(results.get(key), (int, float)) and math.isfinite(results[key])
    ]
    pipeline_tag = "feature-extraction" if rtd else "fill-mask"
    load_class = "AutoModel" if rtd else "AutoModelForMaskedLM"
    heads_note = (
        "Every head but the masked-LM ones loads its encoder (`AutoModelForSequenceClassification`, "
        "`AutoModelForTokenClassification`, ...; fill-mask: the generator, below)" if rtd else
        "Any head loads from it (`AutoModelForSequenceClassification`, `AutoModelForPreTraining`, ...)"
    )
    header = front_matter(
        model_name=output_dir.name, pipeline_tag=pipeline_tag,
        tags=["scratchbert", "bert", pipeline_tag] + (["electra"] if rtd else []),
        task_type=pipeline_tag, dataset_name=f"held-out documents of {source}".replace("`", ""),
        dataset_type=data_args.dataset_name or ("json" if data_args.train_file else data_args.corpus or "offline"),
        metrics=held_out, datasets=[data_args.dataset_name] if data_args.dataset_name else None,
        base_model=hub_id_or_none(model_args.model_name_or_path),
    )
    card = header + f"""
# ScratchBert ({config['hidden_size']} hidden, {config['num_hidden_layers']} layers, {config['num_attention_heads']} heads)

A BERT encoder pretrained {f"from `{model_args.model_name_or_path}`" if model_args.model_name_or_path else "from scratch"} with ScratchBert on {source},
with {objective}: max sequence length {data_args.max_seq_length}, {results.get('steps')} steps of
{training_args.per_device_train_batch_size} x {training_args.gradient_accumulation_steps} sequences per device,
learning rate {training_args.learning_rate}{f', config `{config_path}`' if config_path else ''}.

## Results (held-out documents)

| metric | value |
|---|---|
{metrics}

Each figure stands beside the trivial predictor it must beat. The held-out examples are masked once
(15 %, 80/10/10, a fixed seed), the same for every run on these documents and this tokenizer.
`eval_mlm_masked_accuracy` is measured at [MASK] positions only, against `eval_mlm_unigram_accuracy`
(always the most frequent token there); `eval_mlm_accuracy` counts every chosen position, as BERT reports it,
against `eval_mlm_copy_baseline_accuracy` (copy the input token unless it is [MASK]). `eval_mlm_loss` compares
with `eval_mlm_unigram_loss`, the loss of predicting word frequencies alone.
{curves}
## Load it

The folder carries its own code, so it loads without ScratchBert installed:

```python
from transformers import {load_class}, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{output_dir.name}", trust_remote_code=True)
model = {load_class}.from_pretrained("{output_dir.name}", trust_remote_code=True)
```

{heads_note}; with `import scratchbert` first, `trust_remote_code` is not needed.
"""
    if rtd:
        card += f"""
## Replaced-token detection: what is where

This folder is the discriminator: `ScratchBertForReplacedTokenDetection` (the encoder, its replaced-token head and the
pair head). Every head loads its encoder as above. It has **no masked-LM head**, so `AutoModelForMaskedLM` and
`pipeline("fill-mask")` refuse this folder rather than answer from a random head. The generator, the small MLM
trained beside it, is in `generator/` and answers fill-mask:

```python
from transformers import pipeline
fill = pipeline("fill-mask", model="{output_dir.name}/generator", trust_remote_code=True)
```

Held-out figures: `eval_rtd_accuracy` (the discriminator, every real token, at p > 0.5) against
`eval_rtd_all_original_accuracy` (calling every token original), `eval_rtd_auc`, and `eval_rtd_replaced_share` (the
share of tokens the generator changed). The `eval_mlm_*` figures are the generator's.
"""
    (output_dir / "README.md").write_text(card)


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def run(argv: list[str] | None = None) -> dict:
    start = time.time()
    model_args, data_args, run_args, training_args, config_path = parse_config(
        (ModelArguments, DataArguments, RunArguments, ScratchBertTrainingArguments), argv, DEFAULT_CONFIG
    )
    setup_logging(training_args, run_args)
    logger.info("Configuration: %s", config_path or "flags only")
    check_run_options(training_args, run_args)
    if (data_args.batch_size_ramp_start or 0) > training_args.per_device_train_batch_size:
        raise ConfigError(
            f"batch_size_ramp_start={data_args.batch_size_ramp_start} is above per_device_train_batch_size="
            f"{training_args.per_device_train_batch_size}: the ramp grows the batch up to it"
        )
    check_objective(model_args)
    check_output_dir(training_args, run_args)
    checkpoint = resolve_checkpoint(training_args)
    if not model_args.model_name_or_path:  # a fresh model's config is known now: fail before any data work
        fresh_model_config(model_args, data_args, vocab_size=1000, pad_token_id=0)  # the tokenizer's come later
        check_sequence_length(data_args.max_seq_length, model_args.max_position_embeddings)
    if run_args.wandb_project and not os.environ.get("WANDB_PROJECT"):
        os.environ["WANDB_PROJECT"] = run_args.wandb_project
    push_to_hub = training_args.push_to_hub
    training_args.push_to_hub = False  # the Trainer would push every checkpoint; we push the final folder once
    if training_args.include_num_input_tokens_seen == "no":
        training_args.include_num_input_tokens_seen = "non_padding"
    training_args.label_names = ["labels"] if data_args.mlm_only else ["labels", "next_sentence_label"]
    training_args.remove_unused_columns = False  # the collator consumes special_tokens_mask; nothing else is extra
    transformers.set_seed(training_args.seed)

    tokenizer, train_documents, eval_documents = load_documents_and_tokenizer(
        model_args, data_args, training_args, checkpoint
    )
    model = build_model(model_args, tokenizer, data_args, checkpoint)  # before preprocessing: a bad config fails fast
    train_dataset, eval_dataset = build_datasets(train_documents, eval_documents, tokenizer, data_args, training_args)
    trainer = build_trainer(model, tokenizer, train_dataset, eval_dataset, data_args, run_args, training_args)
    train_result = train_and_report_io_errors(trainer, checkpoint)
    output_dir = Path(training_args.output_dir)
    # Saved before the final evaluation: no evaluation failure can lose the trained model.
    if model_args.objective != "rtd" and training_args.should_save:
        set_aside_stale_generator(output_dir)
    save_final_model(trainer, output_dir)  # model.save_pretrained (with remote code) + tokenizer
    eval_metrics = trainer.evaluate()
    runtime = train_result.metrics.get("train_runtime") or 1e-9
    tokens_seen = trainer.state.num_input_tokens_seen
    # A resumed run's state counts the earlier session's tokens too; its runtime does not.
    session_tokens = tokens_seen - getattr(trainer, "_initial_num_input_tokens_seen", 0)
    results = {
        "train_loss": train_result.training_loss,
        **{k: v for k, v in eval_metrics.items() if k.startswith("eval_")},
        "steps": trainer.state.global_step,
        "train_tokens": tokens_seen,
        "train_tokens_per_second": session_tokens / runtime,
        "train_runtime_seconds": runtime,
        # Training time alone (evaluation during training excluded), the figure a time budget counts.
        "train_minutes": (trainer.time_budget.elapsed() if trainer.time_budget else runtime) / 60,
        "runtime_seconds": time.time() - start,
        "device": str(training_args.device),
        "world_size": training_args.world_size,
        "config": config_path,
    }
    if trainer.is_world_process_zero():
        write_training_curves(trainer.state.log_history, output_dir / "training_curves.png", title=output_dir.name)
        write_model_card(output_dir, results, model_args, data_args, training_args, config_path)
        publish_results(output_dir, results, run_args, training_args, push_to_hub)
    return results


def main(argv: list[str] | None = None) -> int:
    return script_main(run, argv, (ConfigError, CorpusError))


if __name__ == "__main__":  # python -m scratchbert.pretraining
    sys.exit(main())
