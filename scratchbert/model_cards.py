"""The machine-readable head of every saved folder's README.md: front matter that the Hub (and
`huggingface_hub.ModelCard`) parses, built with huggingface_hub's own `ModelCardData` and `EvalResult`."""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData

LICENSE = "apache-2.0"  # ScratchBert's licence; the weights' terms also follow the data they were trained on


def front_matter(
    model_name: str,
    pipeline_tag: str,
    tags: list[str],
    task_type: str,
    dataset_name: str,
    dataset_type: str,
    metrics: list[tuple[str, str, float]],
    datasets: list[str] | None = None,
    base_model: str | None = None,
) -> str:
    """`---` YAML `---`: library, licence, pipeline tag, tags, datasets, base model and a model-index whose
    results are `metrics`, (metric type, readable name, value) each, measured on `dataset_name`."""
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
                       metric_type=metric_type, metric_name=name, metric_value=float(value))
            for metric_type, name, value in metrics
        ] or None,
    )
    return f"---\n{data.to_yaml()}\n---\n"


def hub_id_or_none(name_or_path: str | None) -> str | None:
    """A model's Hub id, for `base_model`; None for a local folder (the Hub takes ids only)."""
    if not name_or_path or Path(name_or_path).exists():
        return None
    return name_or_path
