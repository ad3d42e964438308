"""The machine-readable head of every saved folder's README.md: front matter that the Hub (and
`huggingface_hub.ModelCard`) parses, built with huggingface_hub's own `ModelCardData` and `EvalResult`."""

import logging
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

logger = logging.getLogger(__name__)

LICENSE = "apache-2.0"  # ScratchBert's licence; the weights' terms also follow the data they were trained on


def is_baseline(name: str) -> bool:
    """A metric line that scores a trivial predictor (majority class, all O, most frequent token), not the model."""
    return "baseline" in name.lower()


def front_matter(
    model_name: str,
    pipeline_tag: str,
    tags: list[str],
    task_type: str,
    dataset_name: str,
    dataset_type: str,
    metrics: list[tuple],
    datasets: list[str] | None = None,
    base_model: str | None = None,
    dataset_config: str | None = None,
    dataset_split: str = "validation",
) -> str:
    """`---` YAML `---`: library, licence, pipeline tag, tags, datasets, base model and a model-index whose
    results are `metrics`, (metric type, readable name, value) each, or (metric type, readable name, value, split)
    for a score on another split (MNLI's validation_mismatched), measured on `dataset_name` (`dataset_type`, its
    config `dataset_config`, split `dataset_split`: every ScratchBert script scores on a validation split).

    The model-index holds the model's own scores only: the Hub and leaderboards read every entry as this model's
    result, so a line that scores a trivial predictor (a name with "baseline" in it) is left out; it belongs in
    the card's text and results.json."""
    own = [metric for metric in metrics if not is_baseline(metric[1])]
    if len(own) < len(metrics):
        logger.info("Model card: %d baseline line(s) kept out of the model-index", len(metrics) - len(own))
    data = ModelCardData(
        library_name="transformers",
        license=LICENSE,
        pipeline_tag=pipeline_tag,
        tags=tags,
        datasets=datasets or None,
        base_model=base_model,
        model_name=model_name,
        eval_results=[
            EvalResult(task_type=task_type, dataset_type=dataset_type, dataset_name=dataset_name,
                       dataset_config=dataset_config, dataset_split=split[0] if split else dataset_split,
                       metric_type=metric_type, metric_name=name, metric_value=float(value))
            for metric_type, name, value, *split in own
        ] or None,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def hub_id_or_none(name_or_path: str | None) -> str | None:
    """A model's Hub id, for `base_model`; None for a local folder (the Hub takes ids only)."""
    if not name_or_path or Path(name_or_path).exists():
        return None
    return name_or_path
