"""Replaced-token detection (ELECTRA): the generator and discriminator pair, its run end to end, export and refusals."""

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertModel,
    pipeline,
)

from scratchbert import ScratchBertForPreTraining, ScratchBertForReplacedTokenDetection
from scratchbert.convert import convert_scratchbert_to_bert
from scratchbert.objectives import discriminator_from_mlm
from scratchbert.pretraining import DataArguments, ModelArguments, build_model, main, run
from scratchbert.replaced_token_detection import ReplacedTokenDetectionModel, generator_config, replaced_token_metrics
from conftest import REPO_ROOT, make_batch, tiny_config
from test_pretraining import TINY


def rtd_config(width=0.5, **overrides):
    config = tiny_config(hidden_size=64, num_attention_heads=2, intermediate_size=128, **overrides)
    config.pretraining_objective = "rtd"
    config.rtd_generator = generator_config(config, width)
    config.rtd_loss_weight = 50.0
    return config


def masked_batch(config, seed=0):
    """A padded batch with a quarter of its real tokens chosen and replaced by id 4 (our [MASK] stand-in)."""
    batch = make_batch(config, batch_size=4, seq_len=16, seed=seed)
    g = torch.Generator().manual_seed(seed)
    chosen = (torch.rand(batch["input_ids"].shape, generator=g) < 0.25) & (batch["attention_mask"] == 1)
    labels = torch.where(chosen, batch["input_ids"], -100)
    batch["input_ids"] = batch["input_ids"].masked_fill(chosen, 4)
    return {**batch, "labels": labels, "next_sentence_label": torch.tensor([0, 1, 0, 1])}


def test_generator_is_a_share_of_the_discriminator_half_as_deep_with_as_many_heads():
    config = tiny_config(hidden_size=256, num_attention_heads=4, intermediate_size=1024, num_hidden_layers=4)
    # As many heads as the discriminator, so that ALiBi gives the generator the same slopes, local ones included;
    # half the depth, for the step's cost.
    assert generator_config(config, 0.25) == {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                                              "intermediate_size": 256}
    assert generator_config(config, 0.5, num_hidden_layers=4) == {"hidden_size": 128, "num_hidden_layers": 4,
                                                                  "num_attention_heads": 4, "intermediate_size": 512}
    # Half rounds up: an odd depth keeps the larger half, one layer keeps its layer.
    for layers, half in ((3, 2), (1, 1), (12, 6)):
        assert generator_config(tiny_config(num_hidden_layers=layers), 0.5)["num_hidden_layers"] == half
    with pytest.raises(ValueError, match="generator_width=1.5"):
        generator_config(config, 1.5)
    with pytest.raises(ValueError, match="not a multiple of the encoder's 3 heads"):
        generator_config(tiny_config(hidden_size=48, num_attention_heads=3), 0.25)  # 12 hidden, raised to 16
    with pytest.raises(ValueError, match="layers=0 must be at least 1"):
        generator_config(config, 0.25, num_hidden_layers=0)


def test_generator_shares_the_embeddings_and_projects_them_to_its_width():
    model = ReplacedTokenDetectionModel(rtd_config(width=0.25))
    shared = model.scratchbert.embeddings
    assert model.generator.scratchbert.embeddings is shared
    assert model.generator.mlm_head.decoder.weight is shared.word_embeddings.weight
    assert model.generator.config.hidden_size == 16 and model.generator.config.embedding_size == 64
    assert model.generator.scratchbert.embeddings_project.weight.shape == (16, 64)
    # BERT's layout is untouched: no projection where embeddings and layers are as wide
    assert model.scratchbert.embeddings_project is None


def test_a_training_checkpoint_loads_the_discriminators_encoder_into_any_head(tmp_path):
    """checkpoint-N holds the training pair; its weights keep the discriminator's names, so a head loads the encoder
    from it rather than starting from random weights."""
    model = ReplacedTokenDetectionModel(rtd_config())
    model.save_pretrained(tmp_path)
    classifier, loading = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2, output_loading_info=True)
    assert set(loading["missing_keys"]) == {"classifier.weight", "classifier.bias"}
    for name, tensor in model.scratchbert.state_dict().items():
        assert torch.equal(classifier.scratchbert.state_dict()[name], tensor), name
    resumed = ReplacedTokenDetectionModel.from_pretrained(tmp_path)
    assert resumed.generator.scratchbert.embeddings is resumed.scratchbert.embeddings
    for name, tensor in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], tensor), name


def test_losses_labels_and_replacements():
    torch.manual_seed(0)
    config = rtd_config()
    model = ReplacedTokenDetectionModel(config).eval()
    batch = masked_batch(config)
    out = model(**batch, sampling_generator=torch.Generator().manual_seed(1))
    chosen = batch["labels"] != -100
    padding = batch["attention_mask"] == 0
    assert (out.rtd_labels[padding] == -100).all()
    assert (out.rtd_labels[~chosen & ~padding] == 0).all(), "only chosen positions can be replaced"
    assert out.rtd_labels[chosen].sum() > 0, "a random generator replaces most chosen tokens"
    assert torch.allclose(out.loss, out.mlm_loss + 50.0 * out.rtd_loss + out.nsp_loss)
    # The same sampling generator gives the same corruption: evaluation is repeatable.
    again = model(**batch, sampling_generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.rtd_labels, again.rtd_labels) and torch.equal(out.loss, again.loss)


def test_a_config_with_a_retired_rtd_option_on_is_refused_and_one_with_it_off_loads(tmp_path):
    """Issue 44 retired rtd_discriminator_mlm_weight and rtd_masked_share: configs saved before carry them, at 0
    unless they were on; a model trained with one on is not what this code builds."""
    config = rtd_config()
    config.rtd_discriminator_mlm_weight, config.rtd_masked_share = 0.0, 0.0
    ReplacedTokenDetectionModel(config).save_pretrained(tmp_path / "old")
    loaded = ReplacedTokenDetectionModel.from_pretrained(tmp_path / "old")
    assert not hasattr(loaded.generator.config, "rtd_masked_share")
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    for name in ("rtd_discriminator_mlm_weight", "rtd_masked_share"):
        (tmp_path / "old" / "config.json").write_text(json.dumps({**saved, name: 0.5}))
        with pytest.raises(ValueError, match=f"{name}=0.5: {name} was retired: its finding is in "
                                             f"docs/lab-notebook.md#{name} \\(last ran at commit 0162353\\)"):
            ReplacedTokenDetectionModel.from_pretrained(tmp_path / "old")


def test_no_gradient_reaches_the_generator_through_the_sampling():
    config = rtd_config()
    config.mlm_loss_weight = 0.0
    model = ReplacedTokenDetectionModel(config)
    model(**masked_batch(config)).loss.backward()
    generator_layers = [p.grad for p in model.generator.scratchbert.layers.parameters()]
    assert all(g is None or not g.any() for g in generator_layers)
    assert model.rtd_head.classifier.weight.grad.abs().sum() > 0


def test_unpadded_pair_equals_the_padded_one():
    config = rtd_config()
    model = ReplacedTokenDetectionModel(config).eval()
    batch = masked_batch(config)
    padded = model(**batch, sampling_generator=torch.Generator().manual_seed(3))
    model.config.unpad_inputs = model.generator.config.unpad_inputs = True
    unpadded = model(**batch, sampling_generator=torch.Generator().manual_seed(3))
    assert torch.equal(padded.rtd_labels, unpadded.rtd_labels)
    torch.testing.assert_close(unpadded.loss, padded.loss, atol=1e-5, rtol=1e-5)


def test_replaced_token_metrics_by_hand():
    import numpy as np

    probabilities = np.array([[0.9, 0.2, 0.6, -100], [0.1, 0.4, 0.3, 0.8]])
    labels = np.array([[1, 0, 0, -100], [0, 0, 1, 1]])
    metrics = replaced_token_metrics(probabilities, labels)
    assert metrics["rtd_accuracy"] == pytest.approx(5 / 7)  # wrong: the 0.6 original and the 0.3 replaced
    assert metrics["rtd_all_original_accuracy"] == pytest.approx(4 / 7)
    assert metrics["rtd_replaced_share"] == pytest.approx(3 / 7)
    assert metrics["rtd_auc"] == pytest.approx(10 / 12)  # 10 of the 12 (replaced, original) pairs ranked right


def pretrain_rtd(tmp_path, *args, name="rtd"):
    output_dir = tmp_path / name
    results = run(["--output_dir", str(output_dir), *TINY, "--corpus", "synthetic", "--max_documents", "60",
                   "--objective", "rtd", "--generator_width", "0.5", "--hidden_size", "64", *args])
    return output_dir, results


@pytest.mark.slow
def test_a_run_saves_the_discriminator_and_its_generator_and_both_load(tmp_path):
    output_dir, results = pretrain_rtd(tmp_path, "--attention_position_bias", "none")  # BERT-convertible
    for key in ("eval_rtd_accuracy", "eval_rtd_all_original_accuracy", "eval_rtd_auc", "eval_mlm_masked_accuracy",
                "eval_mlm_unigram_accuracy", "eval_nsp_accuracy"):
        assert 0 <= results[key] <= 1, key
    config = json.loads((output_dir / "config.json").read_text())
    assert config["architectures"] == ["ScratchBertForReplacedTokenDetection"] and config["pretraining_objective"] == "rtd"
    assert config["auto_map"]["AutoModel"] == "modeling_scratchbert.ScratchBertModel"
    weights = load_file(output_dir / "model.safetensors")
    assert not any(k.startswith("generator") for k in weights) and "rtd_head.classifier.weight" in weights
    # The training log names each term beside their weighted sum: generator MLM + 50 x replaced-token + NSP.
    logs = [e for e in json.loads((output_dir / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
            if "loss" in e]
    assert len(logs) == 2
    for entry in logs:
        assert entry["loss"] == pytest.approx(entry["mlm_loss"] + 50 * entry["rtd_loss"] + entry["nsp_loss"], abs=5e-3)

    # Every head takes the discriminator's encoder, as from an MLM-trained checkpoint.
    discriminator = ScratchBertForReplacedTokenDetection.from_pretrained(output_dir)
    classifier = AutoModelForSequenceClassification.from_pretrained(output_dir, num_labels=2)
    for name, tensor in discriminator.scratchbert.state_dict().items():
        assert torch.equal(classifier.scratchbert.state_dict()[name], tensor), name
    # No MLM head here: refused by name rather than a random head answering fill-mask.
    with pytest.raises(ValueError, match="generator/ subfolder"):
        AutoModelForMaskedLM.from_pretrained(output_dir)
    # The generator answers fill-mask, and is the model that trained (its shared embeddings included).
    generator = AutoModelForMaskedLM.from_pretrained(output_dir / "generator")
    assert torch.equal(generator.scratchbert.embeddings.word_embeddings.weight,
                       discriminator.scratchbert.embeddings.word_embeddings.weight)
    fill = pipeline("fill-mask", model=str(output_dir / "generator"), device="cpu")
    assert len(fill("document 3 sentence [MASK] talks about topic")) == 5
    card = (output_dir / "README.md").read_text()
    assert (output_dir / "generator" / "README.md").is_file() and (output_dir / "generator" / "modules.json").is_file()
    assert "replaced-token detection" in card and "generator/" in card and "pipeline_tag: feature-extraction" in card

    # Remote code elsewhere, and conversion to BERT's layout: the discriminator's encoder, exactly.
    remote = AutoModel.from_pretrained(output_dir, trust_remote_code=True)
    from sentence_transformers import SentenceTransformer

    embedding = SentenceTransformer(str(output_dir), trust_remote_code=True, device="cpu").encode(["topic 3 again."])
    assert embedding.shape == (1, 64)
    bert_dir = tmp_path / "bert"
    assert convert_scratchbert_to_bert(output_dir, bert_dir)["head"] == "BertModel"
    bert = BertModel.from_pretrained(bert_dir).eval()
    batch = make_batch(discriminator.config, seq_len=10)
    expected = remote.eval()(**batch).last_hidden_state
    torch.testing.assert_close(bert(**batch).last_hidden_state, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.slow
def test_rtd_with_the_recipes_options_and_resume_to_the_same_weights(tmp_path):
    options = ["--bf16", "true", "--attention_position_bias", "alibi", "--linear_bias", "false", "--unpad_inputs",
               "true", "--max_train_minutes", "5", "--max_steps", "4", "--mlm_only", "true", "--save_steps", "2"]
    straight, results = pretrain_rtd(tmp_path, *options, name="straight")
    assert results["steps"] == 4 and "eval_nsp_accuracy" not in results and results["eval_rtd_auc"] >= 0
    # The generator's MLM and the replaced-token terms are logged beside the loss they add up to.
    logs = [e for e in json.loads((straight / "checkpoint-4" / "trainer_state.json").read_text())["log_history"]
            if "loss" in e]
    assert len(logs) == 4 and all("mlm_loss" in entry and "rtd_loss" in entry for entry in logs)
    for entry in logs:  # logged terms are rounded to 4 decimals: 50 x 5e-5 on the replaced-token term alone
        assert entry["loss"] == pytest.approx(entry["mlm_loss"] + 50 * entry["rtd_loss"], abs=5e-3)
    # A run stopped at step 2 leaves what the straight run's checkpoint-2 holds (the generator too): resumed from it,
    # it ends with the same weights as the run that went straight through.
    shutil.copytree(straight / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    pretrain_rtd(tmp_path, *options, "--resume_from_checkpoint", "latest", name="resumed")
    for part in ("model.safetensors", "generator/model.safetensors"):
        expected, weights = load_file(straight / part), load_file(tmp_path / "resumed" / part)
        assert weights.keys() == expected.keys()
        for key in expected:
            assert torch.equal(weights[key], expected[key]), f"{part}: {key} differs after resume"
    # Resumed with another generator (or loss weight), the run is refused by name, not half-loaded.
    from scratchbert.cli import ConfigError

    with pytest.raises(ConfigError, match="was trained with rtd_generator="):
        pretrain_rtd(tmp_path, *options, "--generator_width", "0.25", "--resume_from_checkpoint", "latest", name="resumed")


def fails(tmp_path, capsys, *args):
    code = main(["--output_dir", str(tmp_path / "bad"), *TINY, "--corpus", "synthetic", *args])
    assert code != 0
    return capsys.readouterr().err


def test_bad_rtd_options_are_refused_by_name_before_any_data_work(tmp_path, capsys):
    assert "objective must be one of mlm, rtd, got 'electra'" in fails(tmp_path, capsys, "--objective", "electra")
    (tmp_path / "discriminator").mkdir()
    (tmp_path / "discriminator" / "config.json").write_text(json.dumps({"pretraining_objective": "rtd"}))
    err = fails(tmp_path, capsys, "--objective", "rtd", "--model_name_or_path", str(tmp_path / "discriminator"))
    assert "is already an rtd discriminator" in err and "resume_from_checkpoint" in err
    assert "rtd_loss_weight=0.0 must be positive" in fails(tmp_path, capsys, "--objective", "rtd", "--rtd_loss_weight", "0")
    assert "generator_width=1.5" in fails(tmp_path, capsys, "--objective", "rtd", "--generator_width", "1.5")
    assert "generator_layers must be a positive" in fails(tmp_path, capsys, "--objective", "rtd", "--generator_layers", "0")
    # 0.3 of 64 hidden is 19, not a multiple of the encoder's 2 heads (the generator has as many).
    assert "not a multiple of the encoder's 2 heads" in fails(
        tmp_path, capsys, "--objective", "rtd", "--hidden_size", "64", "--generator_width", "0.3")
    err = fails(tmp_path, capsys, "--objective", "rtd", "--config_overrides", "sparse_mlm_prediction=false")
    assert "sparse_mlm_prediction=false (config_overrides) has no meaning" in err and "Training a WordPiece" not in err
    assert not (tmp_path / "bad" / "config.json").exists()


@pytest.mark.slow
def test_rtd_under_torchrun_on_two_processes(tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "run_pretraining.py",
               "--output_dir", str(tmp_path / "out"), "--output", str(tmp_path / "r.json"), *TINY,
               "--corpus", "synthetic", "--max_documents", "60", "--objective", "rtd", "--hidden_size", "64"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["world_size"] == 2 and results["steps"] == 3 and "eval_rtd_auc" in results
    assert (tmp_path / "out" / "generator" / "model.safetensors").is_file()


def test_sampling_draws_from_the_softmax():
    from scratchbert.replaced_token_detection import sample_from_logits

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0, -30.0]]).repeat(40_000, 1)
    draws = sample_from_logits(logits, torch.Generator().manual_seed(0))
    shares = torch.bincount(draws, minlength=5).double() / len(draws)
    # 40,000 draws: each share within 4 standard errors of its probability; never a token of probability ~1e-14.
    probabilities = torch.softmax(logits[0].double(), -1)
    assert ((shares - probabilities).abs() <= 4 * (probabilities * (1 - probabilities) / len(draws)).sqrt() + 1e-12).all()
    assert draws.max() < 5 and shares[4] == 0
    assert torch.equal(draws, sample_from_logits(logits, torch.Generator().manual_seed(0))), "a seeded draw repeats"


def test_every_head_but_the_masked_lm_ones_loads_the_exported_discriminators_encoder(tmp_path):
    from scratchbert.modeling_scratchbert import AUTO_CLASSES
    import transformers

    model = ReplacedTokenDetectionModel(rtd_config())
    model.save_discriminator_and_generator(tmp_path)
    for auto_name in AUTO_CLASSES:
        auto_class = getattr(transformers, auto_name)
        if auto_name in ("AutoModelForMaskedLM", "AutoModelForPreTraining"):
            with pytest.raises(ValueError, match="generator/ subfolder"):
                auto_class.from_pretrained(tmp_path)
            continue
        head = auto_class.from_pretrained(tmp_path)
        encoder = head if auto_name == "AutoModel" else head.scratchbert
        for name, tensor in encoder.state_dict().items():
            assert torch.equal(tensor, model.scratchbert.state_dict()[name]), (auto_name, name)
    generator = AutoModelForMaskedLM.from_pretrained(tmp_path / "generator")
    for name, tensor in generator.state_dict().items():
        assert torch.equal(tensor, model.generator.state_dict()[name]), name


@pytest.mark.slow
def test_an_mlm_run_over_an_rtd_folder_sets_its_generator_aside(tmp_path):
    # delete_old_checkpoints leaves the earlier run's final files for the new run to replace; an MLM run replaces no
    # generator/, so the earlier one is moved aside rather than left to pass for this model's.
    output_dir, _ = pretrain_rtd(tmp_path, "--max_steps", "1", "--eval_strategy", "no")
    earlier = (output_dir / "generator" / "model.safetensors").read_bytes()
    run(["--output_dir", str(output_dir), *TINY, "--corpus", "synthetic", "--max_documents", "60", "--max_steps",
         "1", "--eval_strategy", "no", "--overwrite_output_dir", "true", "--delete_old_checkpoints", "true"])
    assert not (output_dir / "generator").exists()
    assert json.loads((output_dir / "config.json").read_text())["architectures"] == ["ScratchBertForPreTraining"]
    kept = list(output_dir.glob("superseded-*/generator/model.safetensors"))
    assert len(kept) == 1 and kept[0].read_bytes() == earlier


def test_a_discriminator_from_an_mlm_checkpoint_starts_from_its_encoder_and_pair_head():
    mlm = ScratchBertForPreTraining(tiny_config(hidden_size=64, num_attention_heads=2, intermediate_size=128))
    model_args = ModelArguments(objective="rtd", generator_width=0.5, rtd_loss_weight=20.0)
    model = discriminator_from_mlm(mlm, model_args)
    assert model.config.pretraining_objective == "rtd" and model.config.rtd_loss_weight == 20.0
    assert model.config.rtd_generator["hidden_size"] == 32
    loaded = model.state_dict()
    for name, tensor in mlm.state_dict().items():
        if name.startswith(("scratchbert.", "nsp_head.")):
            assert torch.equal(loaded[name], tensor), name
    # The generator is fresh but shares the loaded embeddings, one module.
    assert model.generator.scratchbert.embeddings is model.scratchbert.embeddings
    assert model.generator.mlm_head.decoder.weight is model.scratchbert.embeddings.word_embeddings.weight
    # The loss weights are the checkpoint's: mlm_loss_weight weighs the generator's MLM from now on.
    mlm.config.mlm_loss_weight, mlm.config.nsp_loss_weight = 0.5, 0.25
    weights = discriminator_from_mlm(mlm, model_args).config
    assert (weights.mlm_loss_weight, weights.nsp_loss_weight) == (0.5, 0.25)


def test_generator_flags_rebuild_a_saved_generator_or_say_none_can():
    from scratchbert.objectives import generator_flags

    config = tiny_config(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=2)
    config.rtd_generator = generator_config(config, 0.25)  # what today's defaults build: 16 hidden, 2 layers, 2 heads
    assert generator_flags(config, dict(config.rtd_generator)) == []
    assert generator_flags(config, generator_config(config, 0.5, 4)) == ["--generator_layers 4", "--generator_width 0.5"]
    # The generator has the encoder's heads: one saved with another head count (generator_heads, retired) has no flags.
    assert generator_flags(config, {**config.rtd_generator, "num_attention_heads": 1}) is None
    # Under the 16-wide floor two widths share a hidden size: the width offered rebuilds the intermediate size too.
    narrow = tiny_config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    narrow.rtd_generator = generator_config(narrow, 0.5)  # 16 hidden, 32 intermediate
    assert generator_flags(narrow, generator_config(narrow, 0.25)) == ["--generator_width 0.25"]
    # A width between the usual ones is found to the digit that rebuilds both sizes ...
    assert generator_flags(config, {**config.rtd_generator, "intermediate_size": 33}) == ["--generator_width 0.2578"]
    # ... and sizes no width gives (a hand-edited config) are said to be so.
    assert generator_flags(config, {**config.rtd_generator, "intermediate_size": 1000}) is None


def test_a_resumed_rtd_run_with_other_options_is_refused_with_a_hint(tmp_path, tokenizer_dir):
    """From scratch and two-stage alike; a run saved under other generator defaults (before it was half as deep) is told
    the flags that rebuild its generator, one whose generator had other heads (generator_heads, retired) that none do."""
    from scratchbert.cli import ConfigError

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    shape = dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128,
                 max_position_embeddings=64)
    data_args = DataArguments(max_seq_length=64)
    checkpoint = tmp_path / "checkpoint-2"
    build_model(ModelArguments(**shape, objective="rtd"), tokenizer, data_args).save_pretrained(checkpoint)
    saved = json.loads((checkpoint / "config.json").read_text())
    one_head = {**saved["rtd_generator"], "num_attention_heads": 1}  # as generator_heads 1 saved it
    (checkpoint / "config.json").write_text(json.dumps({**saved, "rtd_generator": one_head}))
    with pytest.raises(ConfigError, match="no options rebuild its generator's sizes"):
        build_model(ModelArguments(**shape, objective="rtd"), tokenizer, data_args, checkpoint=str(checkpoint))
    for name in ("rtd_discriminator_mlm_weight", "rtd_masked_share"):  # saved with a retired option on
        (checkpoint / "config.json").write_text(json.dumps({**saved, name: 0.5}))
        with pytest.raises(ConfigError, match=f"{name}=0.5: {name} was retired"):
            build_model(ModelArguments(**shape, objective="rtd"), tokenizer, data_args, checkpoint=str(checkpoint))
    deeper = dict(shape, num_hidden_layers=4)  # saved when the generator was as deep as the encoder (4 layers)
    build_model(ModelArguments(**deeper, objective="rtd", generator_layers=4), tokenizer,
                data_args).save_pretrained(checkpoint)
    with pytest.raises(ConfigError, match="resume with --generator_layers 4\\)"):
        build_model(ModelArguments(**deeper, objective="rtd"), tokenizer, data_args, checkpoint=str(checkpoint))
    mlm = tmp_path / "mlm"
    ScratchBertForPreTraining(tiny_config(**shape, vocab_size=len(tokenizer))).save_pretrained(mlm)
    two_stage = ModelArguments(objective="rtd", model_name_or_path=str(mlm))
    build_model(two_stage, tokenizer, data_args).save_pretrained(checkpoint)
    two_stage.rtd_loss_weight = 20.0
    with pytest.raises(ConfigError, match="rtd_loss_weight=50.0, these options give 20.0"):
        build_model(two_stage, tokenizer, data_args, checkpoint=str(checkpoint))


@pytest.mark.slow
def test_two_stage_training_mlm_then_rtd_end_to_end(tmp_path):
    mlm_dir = tmp_path / "mlm"
    run(["--output_dir", str(mlm_dir), *TINY, "--corpus", "synthetic", "--max_documents", "60",
         "--hidden_size", "64", "--eval_strategy", "no"])
    output_dir, results = pretrain_rtd(tmp_path, "--model_name_or_path", str(mlm_dir), "--hidden_size", "999",
                                       name="two-stage")
    assert results["steps"] == 3 and 0 <= results["eval_rtd_auc"] <= 1
    config = json.loads((output_dir / "config.json").read_text())
    assert config["hidden_size"] == 64 and config["pretraining_objective"] == "rtd"  # the checkpoint's shape wins
    assert (output_dir / "generator" / "model.safetensors").is_file()
    assert f"from `{mlm_dir}`" in (output_dir / "README.md").read_text()
