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


def test_the_model_index_holds_the_models_own_scores_with_config_and_split():
    # Issue 36 item 8: majority-class and all-O lines went into the model-index under the model's metric types,
    # with no dataset config or split, so a leaderboard would list a trivial line as this model's result.
    header = front_matter(
        model_name="tiny", pipeline_tag="token-classification", tags=["scratchbert"], task_type="token-classification",
        dataset_name="conll2003", dataset_type="conll2003", dataset_config="conll2003",
        metrics=[("f1", "entity F1 (validation, seqeval)", 0.7), ("accuracy", "tag accuracy (validation)", 0.9),
                 ("accuracy", "tag accuracy (validation, all O: the baseline)", 0.83)],
    )
    (result,) = ModelCard(header + "\n# tiny\n").data.to_dict()["model-index"][0]["results"]
    assert result["dataset"] == {"name": "conll2003", "type": "conll2003", "config": "conll2003", "split": "validation"}
    assert [m["name"] for m in result["metrics"]] == ["entity F1 (validation, seqeval)", "tag accuracy (validation)"]
    # A score on another split (MNLI's mismatched dev set) is its own result, under its own split.
    header = front_matter(
        model_name="tiny", pipeline_tag="text-classification", tags=["scratchbert"], task_type="text-classification",
        dataset_name="GLUE mnli", dataset_type="nyu-mll/glue", dataset_config="mnli", dataset_split="validation_matched",
        metrics=[("accuracy", "accuracy (validation)", 0.6), ("accuracy", "accuracy (validation_mismatched)", 0.61, "validation_mismatched")],
    )
    results = ModelCard(header + "\n# tiny\n").data.to_dict()["model-index"][0]["results"]
    assert {r["dataset"]["split"]: r["metrics"][0]["value"] for r in results} == {"validation_matched": 0.6, "validation_mismatched": 0.61}
