"""The model card's front matter: what huggingface_hub.ModelCard (and so the Hub) reads back."""

import json

from huggingface_hub import ModelCard

from scratchbert.model_cards import front_matter, hub_id_or_none, write_token_classification_card
from scratchbert.token_classification import DataArguments, ModelArguments
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


def test_the_model_card_names_a_hub_datasets_config_and_split(tmp_path):
    results = {"eval_f1": 0.9, "eval_precision": 0.9, "eval_recall": 0.9, "eval_accuracy": 0.95, "tags": ["O", "B-PER"]}
    data_args = DataArguments(dataset_name="eriktks/conll2003", dataset_config_name="conll2003")
    write_token_classification_card(tmp_path, results, ModelArguments(model_name_or_path="some/base"), data_args, None)
    entry = ModelCard.load(tmp_path / "README.md").data.to_dict()["model-index"][0]["results"][0]["dataset"]
    assert entry == {"name": "eriktks/conll2003", "type": "eriktks/conll2003", "config": "conll2003", "split": "validation"}


RTD_RESULTS = {"eval_rtd_accuracy": 0.88, "eval_rtd_all_original_accuracy": 0.87, "eval_rtd_auc": 0.61,
               "eval_mlm_masked_accuracy": 0.14, "eval_mlm_unigram_accuracy": 0.05, "eval_mlm_accuracy": 0.2,
               "eval_mlm_loss": 5.6, "eval_nsp_accuracy": 0.55, "steps": 10}


def test_an_rtd_cards_model_index_holds_the_discriminators_scores_and_the_generator_has_its_own(tmp_path):
    # Issue 43 item 3: the discriminator's model-index listed the generator's masked-LM accuracy and loss as its own.
    from types import SimpleNamespace

    from scratchbert.model_cards import RTD_CARD, write_generator_card, write_pretraining_card
    from scratchbert.pretraining import DataArguments as PretrainingData, ModelArguments as PretrainingModel

    sizes = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    (tmp_path / "run" / "generator").mkdir(parents=True)
    (tmp_path / "run" / "config.json").write_text(json.dumps(sizes))
    (tmp_path / "run" / "generator" / "config.json").write_text(json.dumps({**sizes, "hidden_size": 16}))
    model_args, data_args = PretrainingModel(objective="rtd"), PretrainingData(corpus="synthetic")
    training_args = SimpleNamespace(per_device_train_batch_size=8, gradient_accumulation_steps=1, learning_rate=1e-3)
    write_pretraining_card(tmp_path / "run", RTD_RESULTS, RTD_CARD, "replaced-token detection", model_args, data_args,
                           training_args, None)
    write_generator_card(tmp_path / "run" / "generator", RTD_RESULTS, model_args, data_args)

    discriminator = ModelCard.load(tmp_path / "run" / "README.md")
    (result,) = discriminator.data.to_dict()["model-index"][0]["results"]
    assert {m["name"]: m["value"] for m in result["metrics"]} == {
        "held-out replaced-token accuracy": 0.88, "held-out replaced-token ROC AUC": 0.61,
        "held-out next-sentence accuracy": 0.55}
    assert "eval_mlm_masked_accuracy | 0.14" in discriminator.text and "figures are the generator's" in discriminator.text

    generator = ModelCard.load(tmp_path / "run" / "generator" / "README.md")
    data = generator.data.to_dict()
    assert data["pipeline_tag"] == "fill-mask" and data["model-index"][0]["name"] == "run-generator"
    (result,) = data["model-index"][0]["results"]
    assert {m["name"]: m["value"] for m in result["metrics"]} == {
        "held-out accuracy at [MASK]": 0.14, "held-out masked-LM accuracy (all chosen positions)": 0.2,
        "held-out masked-LM loss": 5.6}
    assert "eval_rtd_auc" not in generator.text and "16 hidden" in generator.text
