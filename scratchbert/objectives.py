"""The pretraining objectives: masked LM with BERT's pair objective, and ELECTRA's replaced-token detection.

Each is one class behind one small interface, and `objective_named` is the one place that picks it; the rest of
run_pretraining.py asks the objective and never which one is running:

    check(model_args)                 refusals by name, before any data work
    configure(config, model_args)     a fresh model's config, completed (rtd: the generator's sizes, the loss weight)
    fresh_model / continue_from       the training model, from a config or from a loaded MLM checkpoint
    predictions(model, inputs, rng)   one held-out batch through the training model, as `metrics` reads it
    metrics(prediction, mask_id)      the held-out figures, each beside its trivial line
    prepare_output_dir / save_export  what the run leaves in its output folder
    describe(config, pair)            what the model learned, in words, for the card
    card, masked_lm_of                its model card's parts, and whose masked-LM figures the curves are
    write_cards(...)                  its model card(s)

The models themselves are elsewhere: ScratchBertForPreTraining (modeling_scratchbert.py) and the generator +
discriminator pair (replaced_token_detection.py).
"""

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForPreTraining

from .cli import ConfigError
from .configuration_scratchbert import ScratchBertConfig
from .model_cards import MLM_CARD, RTD_CARD, CardParts, write_generator_card, write_pretraining_card
from .pretraining_data import PAIR_OBJECTIVES
from .replaced_token_detection import (
    ReplacedTokenDetectionModel,
    build_generator_config,
    generator_config,
    refuse_retired_fields,
    replaced_token_metrics,
)
from .runs.output_dir import superseded_folder

logger = logging.getLogger(__name__)


class MaskedLanguageModelling:
    """BERT's objective: masked LM, with the pair objective (NSP or SOP) unless the run is MLM-only. The run saves
    the whole ScratchBertForPreTraining (encoder, MLM head, pair head)."""

    name = "mlm"
    card: CardParts = MLM_CARD
    masked_lm_of = ""  # the held-out masked-LM figures are the saved model's own

    def check(self, model_args):
        pass

    def configure(self, config: ScratchBertConfig, model_args) -> ScratchBertConfig:
        return config

    def fresh_model(self, config: ScratchBertConfig, model_args, checkpoint: str | None):
        return AutoModelForPreTraining.from_config(config, attn_implementation=model_args.attn_implementation)

    def continue_from(self, model, model_args, checkpoint: str | None):
        return model

    def predictions(self, model, inputs: dict, sampling_generator: torch.Generator | None):
        return labelled_predictions(model, inputs)

    def metrics(self, eval_prediction, mask_token_id: int) -> dict[str, float]:
        return compute_pretraining_metrics(eval_prediction, mask_token_id)

    def prepare_output_dir(self, output_dir: Path):
        set_aside_stale_generator(output_dir)

    def save_export(self, trainer, output_dir: str, save_whole_model):
        save_whole_model()

    def describe(self, config: dict, pair: str) -> str:
        return "masked language modelling" + pair

    def write_cards(self, output_dir: Path, results: dict, model_args, data_args, training_args, config_path):
        config = json.loads((output_dir / "config.json").read_text())
        pair = "" if data_args.mlm_only else f" + {PAIR_OBJECTIVES[data_args.pair_objective]}"
        write_pretraining_card(output_dir, results, self.card, self.describe(config, pair), model_args, data_args,
                               training_args, config_path)


class ReplacedTokenDetection(MaskedLanguageModelling):
    """ELECTRA's objective: a small MLM generator fills the masked positions and the encoder, its discriminator,
    learns at every position which tokens were replaced (+ the pair objective). The run saves the discriminator,
    and the generator in generator/. From scratch the discriminator needs far more tokens than a CPU half-hour
    gives; started from an MLM checkpoint (`continue_from`, ELECTRA's two stages) it learns at once."""

    name = "rtd"
    card: CardParts = RTD_CARD
    masked_lm_of = "the generator"

    def check(self, model_args):
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

    def configure(self, config: ScratchBertConfig, model_args) -> ScratchBertConfig:
        if not config.sparse_mlm_prediction:
            raise ConfigError("objective: rtd runs the generator's head at masked positions only; "
                              "sparse_mlm_prediction=false (config_overrides) has no meaning for it")
        add_rtd_fields(config, model_args)
        return config

    def fresh_model(self, config: ScratchBertConfig, model_args, checkpoint: str | None):
        if checkpoint is not None:
            check_resumed_generator(config, checkpoint)
        return ReplacedTokenDetectionModel._from_config(config, attn_implementation=model_args.attn_implementation)

    def continue_from(self, model, model_args, checkpoint: str | None):
        discriminator = discriminator_from_mlm(model, model_args)
        if checkpoint is not None:  # a two-stage run resumed: its rtd stage's options, as from scratch
            check_resumed_generator(discriminator.config, checkpoint)
        return discriminator

    def predictions(self, model, inputs: dict, sampling_generator: torch.Generator | None):
        return rtd_predictions(model, inputs, sampling_generator)

    def metrics(self, eval_prediction, mask_token_id: int) -> dict[str, float]:
        return compute_rtd_metrics(eval_prediction, mask_token_id)

    def prepare_output_dir(self, output_dir: Path):
        pass  # the export writes generator/ anew

    def save_export(self, trainer, output_dir: str, save_whole_model):
        """The discriminator in output_dir, the generator in its generator/ subfolder. Every rank calls this: FSDP
        and DeepSpeed gather the full weights together (DeepSpeed from its engine, as the Trainer's own save does)."""
        state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped if trainer.is_deepspeed_enabled else trainer.model)
        if trainer.args.should_save:
            trainer.accelerator.unwrap_model(trainer.model).save_discriminator_and_generator(
                output_dir, state_dict, trainer.processing_class
            )
            torch.save(trainer.args, os.path.join(output_dir, "training_args.bin"))

    def describe(self, config: dict, pair: str) -> str:
        generator = config["rtd_generator"]
        return (
            f"replaced-token detection (ELECTRA){pair}: a generator MLM ({generator['hidden_size']} hidden, "
            f"{generator['num_hidden_layers']} layers, {generator['num_attention_heads']} heads, sharing the embeddings) "
            f"fills the masked positions, and this encoder learns, at every position, which tokens were replaced (loss "
            f"weight {config['rtd_loss_weight']:g})"
        )

    def write_cards(self, output_dir: Path, results: dict, model_args, data_args, training_args, config_path):
        super().write_cards(output_dir, results, model_args, data_args, training_args, config_path)
        write_generator_card(output_dir / "generator", results, model_args, data_args)


OBJECTIVES = {objective.name: objective for objective in (MaskedLanguageModelling, ReplacedTokenDetection)}


def objective_named(name: str) -> MaskedLanguageModelling:
    """The one place that picks the objective (`--objective`)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    return OBJECTIVES[name]()


# ----------------------------------------------------------------------------------------------------------------
# Replaced-token detection: the pair's config, resuming it, and ELECTRA's second stage
# ----------------------------------------------------------------------------------------------------------------


def add_rtd_fields(config: ScratchBertConfig, model_args):
    """Make `config` a ReplacedTokenDetectionModel's: the objective, the generator's sizes and the loss weight. A
    generator that cannot be built fails now (ValueError)."""
    config.pretraining_objective = "rtd"
    config.rtd_generator = generator_config(config, model_args.generator_width, model_args.generator_layers)
    config.rtd_loss_weight = model_args.rtd_loss_weight
    build_generator_config(config)


def generator_flags(config: ScratchBertConfig, trained: dict) -> list[str] | None:
    """The --generator_layers / --generator_width options that rebuild `trained` (a checkpoint's generator sizes) beside
    this encoder, those that differ from `config`'s: [] if none do, None if no options can (a generator with another
    head count than the encoder's; a width is offered only once it rebuilds both the hidden and the intermediate
    size, which generator_config rounds apart)."""
    current = config.rtd_generator
    if trained["num_attention_heads"] != current["num_attention_heads"]:  # the generator has the encoder's heads
        return None
    layers = trained["num_hidden_layers"]
    flags = [] if layers == current["num_hidden_layers"] else [f"--generator_layers {layers}"]
    if all(trained[key] == current[key] for key in ("hidden_size", "intermediate_size")):
        return flags
    ratios = (trained["hidden_size"] / config.hidden_size, trained["intermediate_size"] / config.intermediate_size)
    for width in (round(ratio, digits) for digits in range(2, 7) for ratio in ratios):
        try:
            if generator_config(config, width, trained["num_hidden_layers"]) == trained:
                return [*flags, f"--generator_width {width:g}"]
        except ValueError:  # not a width generator_config takes
            continue
    return None


def check_resumed_generator(config: ScratchBertConfig, checkpoint: str):
    """A resumed rtd run rebuilds its pair from the options: refuse, by name, options that differ from the checkpoint's
    (another generator would not load its weights; another loss weight would silently change the objective), and a
    checkpoint trained with a retired rtd option on."""
    saved = json.loads((Path(checkpoint) / "config.json").read_text())
    try:
        refuse_retired_fields(saved)
    except ValueError as error:
        raise ConfigError(f"{checkpoint}: {error}") from None
    for name in ("rtd_generator", "rtd_loss_weight", "mlm_loss_weight", "nsp_loss_weight"):
        trained = saved.get(name)
        if trained != getattr(config, name):
            hint = ""
            if name == "rtd_generator" and isinstance(trained, dict):  # runs saved under earlier generator defaults
                flags = generator_flags(config, trained)  # never [] here: the sizes differ
                if flags is None:
                    hint = " (no options rebuild its generator's sizes)"
                else:
                    hint = f" (resume with {' '.join(flags)})"
            elif name in ("mlm_loss_weight", "nsp_loss_weight"):
                hint = f" (config_overrides: {name}={trained})"
            raise ConfigError(
                f"{checkpoint} was trained with {name}={trained!r}, these options give "
                f"{getattr(config, name)!r}: resume with the options it was trained with{hint}"
            )


def discriminator_from_mlm(mlm, model_args) -> ReplacedTokenDetectionModel:
    """ELECTRA's two-stage training: replaced-token detection whose discriminator starts from an MLM-trained
    checkpoint's encoder (and pair head), the replaced-token head and the generator fresh (the generator shares the
    loaded embeddings). The loss weights are the checkpoint's (mlm_loss_weight is the generator's from now on). From
    scratch, the discriminator needs context before it can tell a sampled token from the original, and a short run
    does not give it that (docs/lab-notebook.md#replaced-token-detection-against-mlm--nsp-issue-35); an MLM stage does."""
    try:
        config = ScratchBertConfig(**mlm.config.to_dict())
        add_rtd_fields(config, model_args)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    model = ReplacedTokenDetectionModel._from_config(config, attn_implementation=model_args.attn_implementation)
    weights = mlm.state_dict()
    encoder = {k: v for k, v in weights.items() if k.startswith(("scratchbert.", "nsp_head."))}
    # Copied into the existing parameters: the generator's embeddings, the same module, are the loaded ones.
    missing, unexpected = model.load_state_dict(encoder, strict=False)
    not_loaded = [k for k in missing if not k.startswith(("rtd_head.", "generator."))]  # those two stay fresh
    if not_loaded or unexpected:
        raise ConfigError(f"{model_args.model_name_or_path}'s encoder does not fit a discriminator: missing "
                          f"{not_loaded}, unexpected {unexpected}")
    return model


def set_aside_stale_generator(output_dir: Path):
    """An MLM export lands where an earlier rtd run left its `generator/` (overwritten with delete_old_checkpoints, whose
    final files stay for the new run to replace): no new run replaces that folder, and beside an MLM it would pass for
    this model's generator. Moved into `superseded-<UTC time>/`, never deleted."""
    stale = output_dir / "generator"
    if stale.is_dir():
        keep = superseded_folder(output_dir)
        os.replace(stale, keep / stale.name)
        logger.warning("%s was an earlier rtd run's generator, not this model's: moved to %s", stale, keep)


# ----------------------------------------------------------------------------------------------------------------
# Held-out figures: one batch through the training model, then the figures beside their trivial lines
# ----------------------------------------------------------------------------------------------------------------


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
    labels [B, T] (-100 at padding)."""
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
