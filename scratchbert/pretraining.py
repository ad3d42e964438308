"""Pretraining with transformers' Trainer (MLM + NSP, or replaced-token detection: objectives.py): run_pretraining.py's library.

The flow, top to bottom in `run()`: parse and check every input, load documents, get a tokenizer (load or
train one), turn documents into masked-LM + NSP examples (cached by `datasets`), build or load the model, train,
evaluate, and export a folder that loads anywhere (weights, tokenizer, remote code, model card, results).
"""

import dataclasses
import functools
import inspect
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForPreTraining, AutoTokenizer

from .cli import ConfigError, moved_option, packaged_config
from .configuration_scratchbert import ScratchBertConfig, retired_option
from .corpus import CorpusError, load_documents
from .curves import write_training_curves
from .objectives import MaskedLanguageModelling, objective_named
from .pretraining_data import (
    EVAL_MLM_PROBABILITY,
    DataCollatorForPretraining,
    MaskingEpochCallback,
    PAIR_OBJECTIVES,
    build_dataset,
    build_eval_dataset,
    cached_wordpiece_tokenizer,
    split_documents,
    stream_share,
)
from .runs.distributed import tokenizer_for_run
from .runs.hub import publish_results
from .runs.options import check_sequence_length
from .runs.script import script_main, start_run
from .runs.trainer import GuardedTrainer, save_final_model, train_and_report_io_errors

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
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
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
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "A fresh model's ScratchBertConfig fields that have no option of their own, as key=value,"
                          "key=value (e.g. hidden_dropout_prob=0.0,initializer_range=0.01; also hidden_act, "
                          "attention_probs_dropout_prob, mlm_loss_weight, nsp_loss_weight, sparse_mlm_prediction); "
                          "not with model_name_or_path"},
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
    rtd_loss_weight: float = field(
        default=50.0, metadata={"help": "rtd: weight of the replaced-token loss against the generator's MLM loss (ELECTRA: 50)"}
    )
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa or eager"})
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
    max_documents: int | None = field(
        default=None, metadata={"help": "Use at most this many documents (the synthetic corpus: generate this many, default 2000)"}
    )
    validation_split_percentage: float = field(
        default=5.0, metadata={"help": "Percent of documents held out for evaluation"}
    )
    max_eval_documents: int | None = field(default=None, metadata={"help": "Cap on held-out documents"})
    eval_seed: int = field(
        default=42,
        metadata={"help": "Seed of the held-out split, its pairs and its fixed masks: keep it to compare runs"},
    )
    max_seq_length: int = 128
    dupe_factor: int = field(default=1, metadata={"help": "Times each document is used, with different pairs"})
    mlm_probability: float = field(
        default=0.15, metadata={"help": "Share of tokens masked in training; evaluation always masks 15%%"}
    )
    whole_word_mask: bool = False
    mlm_only: bool = field(default=False, metadata={"help": "Train MLM alone (single segments, no NSP)"})
    pair_objective: str = field(
        default="nsp",
        metadata={"help": "What the binary pair head learns: nsp (BERT: is B the next segment or a random one) or "
                          "sop (ALBERT: are two consecutive segments in order or swapped); eval_nsp_accuracy scores it"},
    )
    preprocessing_num_workers: int | None = None
    cache_dir: str | None = None

    def __post_init__(self):
        if self.max_seq_length < 8:
            raise ValueError(f"max_seq_length={self.max_seq_length} is too short for a sentence pair")
        if not 0 < self.mlm_probability < 1:
            raise ValueError(f"mlm_probability={self.mlm_probability} must be a share of tokens in (0, 1)")
        if self.pair_objective not in PAIR_OBJECTIVES:
            raise ValueError(f"pair_objective must be one of {', '.join(PAIR_OBJECTIVES)}, got {self.pair_objective!r}")
        if self.mlm_only and self.pair_objective != "nsp":
            raise ValueError(f"pair_objective={self.pair_objective!r} needs sentence pairs, but mlm_only trains on single segments")


# Options that are gone (issue 44), refused by name from a config file or a flag: retired ones (their findings are in
# docs/lab-notebook.md), and ScratchBertConfig fields that config_overrides sets now (with an example value).
RETIRED_OPTIONS = {
    **{name: retired_option(name) for name in (
        "deepnorm", "generator_heads", "rtd_discriminator_mlm_weight", "rtd_masked_share", "rtd_head_at_prior",
        "tokenizer_training_documents", "synthetic_documents", "short_seq_prob", "mlm_probability_start",
        "batch_size_ramp_start", "batch_size_ramp_fraction", "shuffle_buffer_documents", "shuffle_buffer_examples",
    )},
    **{name: moved_option(name, example) for name, example in (
        ("hidden_act", "gelu"), ("initializer_range", "0.02"), ("hidden_dropout_prob", "0.0"),
        ("attention_probs_dropout_prob", "0.0"), ("sparse_mlm_prediction", "true"), ("mlm_loss_weight", "1.0"),
        ("nsp_loss_weight", "0.5"),
    )},
}
STREAM_SHUFFLE_DOCUMENTS = 1000  # streaming: documents are shuffled in a buffer of this many
STREAM_SHUFFLE_EXAMPLES = 10_000  # streaming: training examples are shuffled in a buffer of this many


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
        cache_dir=data_args.cache_dir,
        corpus_id=(data_args.dataset_name, data_args.dataset_config_name, data_args.train_file, data_args.max_documents),
    )


def override_value(key: str, text: str, default):
    """config_overrides' `text` for `key` as a value of its field's type (that of ScratchBertConfig's `default`)."""
    if isinstance(default, bool):
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
    elif isinstance(default, (int, float)):
        try:
            return type(default)(text)
        except ValueError:
            pass
    elif isinstance(default, str):
        return text
    else:  # None by default (embedding_size, classifier_dropout): a number, or none
        if text.lower() in ("none", "null"):
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
    kind = "number or none" if default is None else type(default).__name__
    raise ConfigError(f"config_overrides: {key}={text} is not a {kind}")


def parse_config_overrides(model_args: ModelArguments) -> dict:
    """config_overrides ("key=value,key=value") as ScratchBertConfig fields with typed values; a key that is no
    ScratchBertConfig field, or that another option (or the tokenizer) sets, is a ConfigError naming it."""
    if not model_args.config_overrides:
        return {}
    own_options = {f.name for f in dataclasses.fields(ModelArguments)}
    defaults = ScratchBertConfig()
    overrides = {}
    for item in model_args.config_overrides.split(","):
        key, equals, text = (part.strip() for part in item.partition("="))
        if not equals or not key:
            raise ConfigError(f"config_overrides: {item!r} is not key=value (e.g. config_overrides: hidden_act=gelu)")
        if key not in CONFIG_FIELDS:
            raise ConfigError(f"config_overrides: {key} is not a ScratchBertConfig field")
        if key in own_options or key in ("pad_token_id", "pretraining_objective"):
            owner = {"pad_token_id": "the tokenizer", "pretraining_objective": "objective"}.get(key, key)
            raise ConfigError(f"config_overrides: {key} is set by {owner}, not through config_overrides")
        overrides[key] = override_value(key, text, getattr(defaults, key))
    return overrides


def fresh_model_config(model_args: ModelArguments, data_args: DataArguments, vocab_size: int, pad_token_id: int):
    """The model section of the config as one ScratchBertConfig: the model options, then config_overrides; the
    tokenizer sets the vocabulary, and MLM-only runs carry no NSP loss. With objective rtd, the config also carries
    the generator's sizes (`rtd_generator`) and the loss weight. A bad value is a ConfigError naming the field."""
    model_section = {k: v for k, v in dataclasses.asdict(model_args).items() if k in CONFIG_FIELDS}
    model_section.update(parse_config_overrides(model_args), vocab_size=vocab_size, pad_token_id=pad_token_id)
    if data_args.mlm_only:
        model_section["nsp_loss_weight"] = 0.0
    try:
        return objective_named(model_args.objective).configure(ScratchBertConfig(**model_section), model_args)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def build_model(model_args: ModelArguments, tokenizer, data_args: DataArguments, checkpoint: str | None = None):
    """The training model: the objective's, fresh or continued from model_name_or_path (resumed weights are loaded
    by the Trainer later)."""
    objective = objective_named(model_args.objective)
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
        model = objective.continue_from(model, model_args, checkpoint)
    else:
        config = fresh_model_config(model_args, data_args, vocab_size, tokenizer.pad_token_id)
        model = objective.fresh_model(config, model_args, checkpoint)
    check_sequence_length(data_args.max_seq_length, model.config.max_position_embeddings)
    if data_args.mlm_only:
        # No NSP loss, so the pooler and NSP head would run without a gradient: DDP with
        # ddp_find_unused_parameters false fails on such parameters. Frozen, they stay as they are and are saved.
        for module in (model.scratchbert.pooler, model.nsp_head):
            module.requires_grad_(False)
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
    """

    def __init__(self, *args, objective: MaskedLanguageModelling | None = None, eval_seed: int = 42, **kwargs):
        super().__init__(*args, **kwargs)
        self.objective = objective or MaskedLanguageModelling()
        self.eval_seed = eval_seed
        # LOGGED_TERMS: the optimizer step in progress (its micro-batches add up), and the sums of the steps taken since
        # the last training log with their count. Counted, not inferred from global_step: a resumed run starts at its
        # checkpoint's step, and a step the NaN guard skipped adds nothing.
        self._step_terms: dict[str, torch.Tensor] = {}
        self._step_of_terms: int | None = None  # global_step while that step runs (it is step global_step + 1)
        self._term_sums: dict[str, torch.Tensor] = {}
        self._term_steps = 0

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

    # The objective's terms, logged beside the weighted sum ("loss") so a run shows which one learns: the MLM loss (rtd:
    # the generator's), the replaced-token loss and the pair loss, each before its weight.
    LOGGED_TERMS = ("mlm_loss", "rtd_loss", "nsp_loss")

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
            if self._step_of_terms != self.state.global_step:  # the first micro-batch of a new optimizer step
                self._close_step_terms()
                self._step_of_terms = self.state.global_step
            for name in self.LOGGED_TERMS:
                term = getattr(outputs, name, None)
                if term is not None:
                    self._step_terms[name] = self._step_terms.get(name, 0.0) + term.detach().float() * scale
        return (loss, outputs) if return_outputs else loss

    def _close_step_terms(self):
        """Add the finished optimizer step's terms to the logging window, unless the NaN guard skipped that step."""
        if self._step_of_terms is not None and self._step_of_terms + 1 not in self.skipped_steps:
            for name, value in self._step_terms.items():
                self._term_sums[name] = self._term_sums.get(name, 0.0) + value
            self._term_steps += 1
        self._step_terms, self._step_of_terms = {}, None

    def log(self, logs: dict, *args, **kwargs):
        if "loss" in logs:  # a training log, after its step: each term's mean over this process's steps taken since the last
            self._close_step_terms()
            if self._term_steps:
                logs = {**logs, **{name: round(total.item() / self._term_steps, 4) for name, total in self._term_sums.items()}}
            self._term_sums, self._term_steps = {}, 0
        return super().log(logs, *args, **kwargs)

    def evaluation_loop(self, *args, **kwargs):
        # Replaced-token detection samples the generator's tokens: evaluation draws them from its own seeded
        # generator, so every evaluation of every run scores the same kind of corruption (the masks are fixed already).
        self.eval_sampling_generator = torch.Generator(device=self.args.device).manual_seed(self.eval_seed)
        return super().evaluation_loop(*args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss, outputs, labels = self.objective.predictions(model, inputs, self.eval_sampling_generator)
        if prediction_loss_only:
            return loss, None, None
        return loss, outputs, labels

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """Checkpoints (internal calls) hold the whole training model (rtd: the generator too), for resuming; the run's
        final export is the objective's (rtd: the discriminator, and the generator in generator/)."""
        if _internal_call:
            return super().save_model(output_dir, _internal_call)
        self.objective.save_export(self, output_dir or self.args.output_dir, functools.partial(super().save_model, output_dir))


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
        max_seq_length=data_args.max_seq_length, nsp=not data_args.mlm_only,
        pair_objective=data_args.pair_objective, num_proc=data_args.preprocessing_num_workers,
    )
    if data_args.streaming:  # each rank reads its own share of the stream, documents shuffled in a buffer
        train_documents = stream_share(
            train_documents, training_args.process_index, training_args.world_size, training_args.seed,
            STREAM_SHUFFLE_DOCUMENTS,
        )
    with training_args.main_process_first(desc="building the datasets"):
        train_dataset = build_dataset(
            train_documents, tokenizer, dupe_factor=data_args.dupe_factor, seed=training_args.seed, **settings
        )
        eval_dataset = build_eval_dataset(eval_documents, tokenizer, seed=data_args.eval_seed, **settings)
    if data_args.streaming:  # a document's pairs are made together: spread them over many batches
        train_dataset = train_dataset.shuffle(seed=training_args.seed, buffer_size=STREAM_SHUFFLE_EXAMPLES)
    if data_args.streaming and training_args.max_steps <= 0:
        raise ConfigError("a streamed corpus has no length: set max_steps")
    if not data_args.streaming:
        logger.info("%d training and %d evaluation examples", len(train_dataset), len(eval_dataset))
    if data_args.mlm_probability != EVAL_MLM_PROBABILITY:
        logger.info(
            "Training masks %g %% of tokens; evaluation stays at %g %% so runs compare",
            100 * data_args.mlm_probability, 100 * EVAL_MLM_PROBABILITY,
        )
    return train_dataset, eval_dataset


def build_trainer(model, tokenizer, train_dataset, eval_dataset, data_args, run_args, training_args,
                  objective: MaskedLanguageModelling | None = None):
    train_collator = DataCollatorForPretraining(
        tokenizer=tokenizer, mlm_probability=data_args.mlm_probability, whole_word_mask=data_args.whole_word_mask,
        seed=training_args.seed,
    )
    trainer_objective = objective or MaskedLanguageModelling()
    return PretrainingTrainer(
        objective=trainer_objective,
        eval_seed=data_args.eval_seed,
        on_nonfinite_loss=run_args.on_nonfinite_loss,
        max_train_minutes=run_args.max_train_minutes,
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=train_collator,
        callbacks=[MaskingEpochCallback(train_collator)],
        processing_class=tokenizer,
        compute_metrics=functools.partial(trainer_objective.metrics, mask_token_id=tokenizer.mask_token_id),
    )


# ----------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------


def check_pretraining_options(model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
    """start_run's check: what pretraining refuses before the output folder is touched."""
    objective_named(model_args.objective).check(model_args)
    if not model_args.model_name_or_path:  # a fresh model's config is known now: fail before any data work
        fresh_model_config(model_args, data_args, vocab_size=1000, pad_token_id=0)  # the tokenizer's come later
        check_sequence_length(data_args.max_seq_length, model_args.max_position_embeddings)
    elif model_args.config_overrides:
        raise ConfigError(f"config_overrides sets a fresh model's config; model_name_or_path "
                          f"({model_args.model_name_or_path}) brings its own")


def run(argv: list[str] | None = None) -> dict:
    start = time.time()
    model_args, data_args, run_args, training_args, config_path, checkpoint, push_to_hub = start_run(
        ModelArguments, DataArguments, argv, DEFAULT_CONFIG, check=check_pretraining_options, retired=RETIRED_OPTIONS
    )
    if training_args.include_num_input_tokens_seen == "no":
        training_args.include_num_input_tokens_seen = "non_padding"
    training_args.label_names = ["labels"] if data_args.mlm_only else ["labels", "next_sentence_label"]
    training_args.remove_unused_columns = False  # the collator consumes special_tokens_mask; nothing else is extra

    tokenizer, train_documents, eval_documents = load_documents_and_tokenizer(
        model_args, data_args, training_args, checkpoint
    )
    objective = objective_named(model_args.objective)
    model = build_model(model_args, tokenizer, data_args, checkpoint)  # before preprocessing: a bad config fails fast
    train_dataset, eval_dataset = build_datasets(train_documents, eval_documents, tokenizer, data_args, training_args)
    trainer = build_trainer(model, tokenizer, train_dataset, eval_dataset, data_args, run_args, training_args, objective)
    train_result = train_and_report_io_errors(trainer, checkpoint)
    output_dir = Path(training_args.output_dir)
    # Saved before the final evaluation: no evaluation failure can lose the trained model.
    if training_args.should_save:
        objective.prepare_output_dir(output_dir)
    save_final_model(trainer, output_dir)  # the objective's export (with remote code) + tokenizer
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
        write_training_curves(trainer.state.log_history, output_dir / "training_curves.png", title=output_dir.name,
                              masked_lm_of=objective.masked_lm_of)
        objective.write_cards(output_dir, results, model_args, data_args, training_args, config_path)
        publish_results(output_dir, results, run_args, training_args, push_to_hub)
    return results


def main(argv: list[str] | None = None) -> int:
    return script_main(run, argv, (ConfigError, CorpusError))


if __name__ == "__main__":  # python -m scratchbert.pretraining
    sys.exit(main())
