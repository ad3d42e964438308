"""The model card's front matter: what huggingface_hub.ModelCard (and so the Hub) reads back."""

from huggingface_hub import ModelCard

from scratchbert.model_cards import front_matter, hub_id_or_none
from conftest import REPO_ROOT


def test_front_matter_round_trips_through_huggingface_hub():
    header = front_matter(
        model_name="tiny", pipeline_tag="text-classification", tags=["scratchbert"], task_type="text-classification",
        dataset_name="GLUE rte", dataset_type="nyu-mll/glue", metrics=[("accuracy", "accuracy (validation)", 0.61)],
        datasets=["nyu-mll/glue"], base_model="google-bert/bert-base-uncased",
    )
    data = ModelCard(header + "\n# tiny\n").data.to_dict()
    assert {k: data[k] for k in ("library_name", "license", "pipeline_tag", "tags", "datasets", "base_model")} == {
        "library_name": "transformers", "license": "apache-2.0", "pipeline_tag": "text-classification",
        "tags": ["scratchbert"], "datasets": ["nyu-mll/glue"], "base_model": "google-bert/bert-base-uncased",
    }
    (result,) = data["model-index"][0]["results"]
    assert result["task"]["type"] == "text-classification" and result["dataset"]["type"] == "nyu-mll/glue"
    assert result["metrics"] == [{"type": "accuracy", "value": 0.61, "name": "accuracy (validation)"}]


def test_base_model_is_a_hub_id_only():
    assert hub_id_or_none("google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hub_id_or_none(str(REPO_ROOT)) is None and hub_id_or_none(None) is None
