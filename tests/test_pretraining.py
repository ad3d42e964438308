"""run_pretraining.py end to end: every data source, results.json, export, resume, errors, two processes."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from datasets import Dataset
from transformers import AutoModel, AutoModelForPreTraining, AutoTokenizer, TrainingArguments

from scratchbert import ScratchBertForPreTraining, train_wordpiece_tokenizer
from scratchbert.cli import ConfigError
from scratchbert.pretraining_data import DataCollatorForPretraining, build_dataset
from scratchbert.pretraining import (
    DataArguments,
    ModelArguments,
    PretrainingTrainer,
    build_datasets,
    build_model,
    main,
    run,
)
from scratchbert.objectives import compute_pretraining_metrics
from conftest import REPO_ROOT, make_batch, requires_shared_data, tiny_config

# A tiny model and a handful of steps: seconds per run.
TINY = [
    "--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
    "--max_position_embeddings", "64", "--max_seq_length", "64", "--vocab_size", "400", "--dupe_factor", "1",
    "--max_steps", "3", "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "8",
    "--logging_steps", "1", "--save_steps", "2", "--report_to", "none", "--warmup_steps", "0",
    "--use_cpu", "true", "--optim", "adamw_torch",
]
RESULT_KEYS = {
    "train_loss", "eval_mlm_masked_accuracy", "eval_mlm_unigram_accuracy", "eval_mlm_accuracy",
    "eval_mlm_copy_baseline_accuracy", "eval_mlm_loss", "eval_mlm_unigram_loss", "eval_nsp_loss",
    "eval_nsp_accuracy", "steps", "train_tokens", "train_tokens_per_second", "runtime_seconds",
}


def pretrain(tmp_path, *args, name="run"):
    output_dir = tmp_path / name
    results = run(["--output_dir", str(output_dir), "--output", str(tmp_path / f"{name}.json"), *TINY, *args])
    return output_dir, results


def corpus_texts(n=40):
    return [
        " ".join(f"Document {d} sentence {s} talks about topic {d % 7} and things." for s in range(4))
        for d in range(n)
    ]


@pytest.mark.slow
def test_offline_default_few_steps_exports_a_loadable_folder(tmp_path):
    output_dir, results = pretrain(tmp_path)
    assert RESULT_KEYS <= set(results)
    assert results["steps"] == 3 and results["train_tokens_per_second"] > 0
    assert json.loads((tmp_path / "run.json").read_text()) == json.loads((output_dir / "results.json").read_text())
    assert {"config.json", "model.safetensors", "modeling_scratchbert.py", "configuration_scratchbert.py",
            "tokenizer.json", "README.md"} <= {p.name for p in output_dir.iterdir()}
    for folder in (output_dir, output_dir / "checkpoint-2"):  # every saved folder loads in sentence-transformers
        assert {"modules.json", "sentence_bert_config.json"} <= {p.name for p in folder.iterdir()}, folder
    card = (output_dir / "README.md").read_text()
    assert "offline" in card and "eval_mlm_accuracy" in card and "trust_remote_code=True" in card
    assert (output_dir / "training_curves.png").read_bytes()[:4] == b"\x89PNG" and "training_curves.png" in card
    assert "eval_mlm_masked_accuracy" in card and "eval_mlm_unigram_accuracy" in card
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForPreTraining.from_pretrained(output_dir)
    assert model.config.vocab_size == len(tokenizer) and tokenizer.model_max_length == 64
    assert (output_dir / "checkpoint-2").is_dir()
    # The training log names the two terms beside their sum.
    logs = [e for e in json.loads((output_dir / "checkpoint-2" / "trainer_state.json").read_text())["log_history"]
            if "loss" in e]
    assert len(logs) == 2
    for entry in logs:
        assert entry["loss"] == pytest.approx(entry["mlm_loss"] + entry["nsp_loss"], abs=2e-3)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "parquet", "synthetic", "hub", "streaming"])
def test_each_data_source_trains(tmp_path, kind, monkeypatch):
    import datasets

    texts = corpus_texts()
    args = []
    if kind == "txt":
        path = tmp_path / "corpus.txt"
        path.write_text("\n\n".join("\n".join(t.split(". ")) for t in texts))
        args = ["--train_file", str(path)]
    elif kind in ("jsonl", "streaming"):
        path = tmp_path / "corpus.jsonl"
        path.write_text("\n".join(json.dumps({"body": t}) for t in texts))
        args = ["--train_file", str(path), "--text_column", "body"]
        if kind == "streaming":
            args += ["--streaming", "true", "--max_eval_documents", "5"]
    elif kind == "csv":
        path = tmp_path / "corpus.csv"
        datasets.Dataset.from_dict({"text": texts}).to_csv(str(path), index=False)
        args = ["--train_file", str(path)]
    elif kind == "parquet":
        path = tmp_path / "corpus.parquet"
        datasets.Dataset.from_dict({"text": texts}).to_parquet(str(path))
        args = ["--train_file", str(path)]
    elif kind == "synthetic":
        args = ["--corpus", "synthetic", "--max_documents", "60"]
    elif kind == "hub":
        calls = []

        def fake_load_dataset(name, config=None, **kwargs):  # the network boundary
            calls.append((name, config))
            return datasets.Dataset.from_dict({"id": [str(i) for i in range(40)], "url": ["u"] * 40, "title": ["t"] * 40, "text": texts})

        monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
        args = ["--dataset_name", "wikimedia/wikipedia", "--dataset_config_name", "20231101.en"]
    output_dir, results = pretrain(tmp_path, *args)
    assert results["steps"] == 3 and RESULT_KEYS <= set(results)
    assert 0 <= results["eval_nsp_accuracy"] <= 1
    if kind == "hub":
        assert calls == [("wikimedia/wikipedia", "20231101.en")]


@pytest.mark.slow
def test_mlm_only(tmp_path):
    _, results = pretrain(tmp_path, "--mlm_only", "true", "--corpus", "synthetic", "--max_documents", "60")
    assert "eval_mlm_accuracy" in results and "eval_nsp_accuracy" not in results


@pytest.mark.slow
def test_sentence_order_prediction_trains_the_pair_head_on_swapped_segments(tmp_path):
    output_dir, results = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "60", "--pair_objective", "sop")
    assert results["steps"] == 3 and RESULT_KEYS <= set(results) and 0 <= results["eval_nsp_accuracy"] <= 1
    assert "sentence-order prediction" in (output_dir / "README.md").read_text()


@pytest.mark.slow
def test_recipe_options_gated_feed_forward_and_no_biases(tmp_path):
    output_dir, results = pretrain(
        tmp_path, "--corpus", "synthetic", "--max_documents", "60", "--feed_forward_type", "glu",
        "--linear_bias", "false",
    )
    assert results["steps"] == 3 and RESULT_KEYS <= set(results)
    model = AutoModelForPreTraining.from_pretrained(output_dir)
    assert model.config.feed_forward_type == "glu" and model.config.linear_bias is False
    layer = model.scratchbert.layers[0]
    assert layer.ffn_in.bias is None and layer.ffn_in.out_features == 2 * model.config.intermediate_size


@pytest.mark.slow
def test_whole_word_masking_and_continued_pretraining(tmp_path):
    first, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "60", name="first")
    second, results = pretrain(
        tmp_path, "--corpus", "synthetic", "--max_documents", "60", "--whole_word_mask", "true",
        "--model_name_or_path", str(first), "--unpad_inputs", "true", name="second",
    )
    assert results["steps"] == 3
    # Unpadding is off by default (it did not pay end to end) and is the run's choice, also for a loaded checkpoint.
    assert AutoModel.from_pretrained(first).config.unpad_inputs is False
    assert AutoModel.from_pretrained(second).config.unpad_inputs is True
    a = AutoModel.from_pretrained(first).state_dict()
    b = AutoModel.from_pretrained(second).state_dict()
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_resume_from_latest_checkpoint(tmp_path):
    output_dir, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "60")
    _, results = pretrain(
        tmp_path, "--corpus", "synthetic", "--max_documents", "60", "--max_steps", "5",
        "--resume_from_checkpoint", "latest",
    )
    assert results["steps"] == 5
    state = json.loads((output_dir / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # The resumed run started from step 2's checkpoint: it logged steps 3-5 only.
    logged_steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged_steps[:2] == [1, 2]


@pytest.mark.slow
def test_resumed_run_takes_the_checkpoints_tokenizer(tmp_path, monkeypatch):
    output_dir, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "60")
    first_vocabulary = AutoTokenizer.from_pretrained(output_dir).get_vocab()
    import scratchbert.pretraining_data

    def must_not_train(*args, **kwargs):
        raise AssertionError("a resumed run trained a new tokenizer")

    monkeypatch.setattr(scratchbert.pretraining_data, "train_wordpiece_tokenizer", must_not_train)
    # A fresh cache_dir: no cached tokenizer to fall back on, so only the checkpoint can supply it.
    _, results = pretrain(
        tmp_path, "--corpus", "synthetic", "--max_documents", "60", "--max_steps", "4",
        "--resume_from_checkpoint", "latest", "--cache_dir", str(tmp_path / "fresh-cache"),
    )
    assert results["steps"] == 4
    assert AutoTokenizer.from_pretrained(output_dir).get_vocab() == first_vocabulary


@pytest.mark.slow
def test_evaluation_is_the_same_whatever_the_training(tmp_path):
    """Fixed held-out masks: other training seeds, mask rates, dupe factors and lengths are scored on the same positions."""
    common = ["--corpus", "synthetic", "--max_documents", "80"]
    _, a = pretrain(tmp_path, *common, name="a")
    _, b = pretrain(tmp_path, *common, "--seed", "5", "--mlm_probability", "0.4", "--dupe_factor", "3",
                    "--max_steps", "5", name="b")
    for key in ("eval_masked_tokens", "eval_mlm_unigram_accuracy", "eval_mlm_copy_baseline_accuracy", "eval_mlm_unigram_loss"):
        assert a[key] == b[key], key
    assert 0 < a["eval_mlm_unigram_accuracy"] < 1


def test_evaluation_never_builds_dense_logits(tmp_path, tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = ScratchBertForPreTraining(tiny_config(vocab_size=120))
    shapes = []
    model.mlm_head.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape)))
    rows = [{"input_ids": [2, 4, 9 + i % 50, 4, 3, 11, 3], "token_type_ids": [0, 0, 0, 0, 0, 1, 1],
             "labels": [-100, 7, -100, 8 + i % 30, -100, 12, -100], "next_sentence_label": i % 2} for i in range(10)]
    trainer = PretrainingTrainer(
        model=model, args=TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none",
                                            use_cpu=True, label_names=["labels", "next_sentence_label"],
                                            remove_unused_columns=False),
        eval_dataset=Dataset.from_list(rows), data_collator=DataCollatorForPretraining(tokenizer=tokenizer, seed=0),
        compute_metrics=lambda p: compute_pretraining_metrics(p, mask_token_id=4),
    )
    metrics = trainer.evaluate()
    assert shapes and all(len(shape) == 2 for shape in shapes), "the MLM head ran on [N, H] labelled positions only"
    assert sum(shape[0] for shape in shapes) == 30 and metrics["eval_masked_tokens"] == 30
    # The figures equal the dense path's: score the same batch with the model's own (dense) forward.
    model.eval()
    batch = DataCollatorForPretraining(tokenizer=tokenizer, seed=0)(rows)
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")}).prediction_logits
    chosen = batch["labels"] != -100
    dense_loss = torch.nn.functional.cross_entropy(logits[chosen], batch["labels"][chosen])
    assert metrics["eval_mlm_loss"] == pytest.approx(dense_loss.item(), rel=1e-5)
    assert metrics["eval_mlm_accuracy"] == pytest.approx((logits[chosen].argmax(-1) == batch["labels"][chosen]).float().mean().item())


@pytest.mark.slow
def test_preprocessing_is_cached(tmp_path):

    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in corpus_texts()))
    cache = tmp_path / "cache"
    args = ["--train_file", str(path), "--cache_dir", str(cache)]
    pretrain(tmp_path, *args, name="a")
    before = {p.name: p.stat().st_mtime_ns for p in cache.rglob("cache-*.arrow")}
    pretrain(tmp_path, *args, name="b")
    after = {p.name: p.stat().st_mtime_ns for p in cache.rglob("cache-*.arrow")}
    assert before and before == after, "the second run reused every cached map result"


def test_metrics_by_hand():
    import numpy as np
    from transformers import EvalPrediction

    M = 4  # [MASK]
    labels = np.array([[-100, 5, 7, -100, 9], [5, -100, -100, 5, 8]])
    inputs = np.array([[10, M, 7, 11, M], [M, 12, 13, 6, M]])  # chosen: 5@[MASK], 7 kept, 9@[MASK]; 5@[MASK], 5->6 random, 8@[MASK]
    predictions = np.array([[-100, 5, 7, -100, 5], [5, -100, -100, 6, 8]])
    token_loss = np.array([[0, 1.0, 2.0, 0, 3.0], [0.5, 0, 0, 0.5, 1.0]])
    nsp_logits = np.array([[2.0, 0.0], [0.0, 1.0]])
    prediction = EvalPrediction((predictions, token_loss, inputs, nsp_logits), (labels, np.array([0, 0])))
    metrics = compute_pretraining_metrics(prediction, mask_token_id=M)
    # [MASK] positions hold 5, 9, 5, 8: the model gets 5, 5, 8 right; always-5 gets 2 of 4.
    assert metrics["mlm_masked_accuracy"] == pytest.approx(3 / 4)
    assert metrics["mlm_unigram_accuracy"] == pytest.approx(2 / 4)
    # All six chosen positions: the model is right at 5, 7, 5, 8 (not 9, not the random 6 -> 5).
    assert metrics["mlm_accuracy"] == pytest.approx(4 / 6)
    # Copy unless [MASK] (else 5): right at 5, 7 (kept), 5; wrong at 9, 6 (random), 8.
    assert metrics["mlm_copy_baseline_accuracy"] == pytest.approx(3 / 6)
    assert metrics["mlm_loss"] == pytest.approx(8.0 / 6)
    frequencies = np.array([3, 1, 1, 1]) / 6
    assert metrics["mlm_unigram_loss"] == pytest.approx(-(frequencies * np.log(frequencies)).sum())
    assert metrics["masked_tokens"] == 6
    assert metrics["nsp_accuracy"] == pytest.approx(0.5)
    expected_nsp = -(np.log(np.exp(2) / (np.exp(2) + 1)) + np.log(1 / (1 + np.e))) / 2
    assert metrics["nsp_loss"] == pytest.approx(expected_nsp)


# --------------------------------------------------------------------------------------------------------------
# Bad input: a clear error before training, exit code 2, nothing half-written
# --------------------------------------------------------------------------------------------------------------


def fails(tmp_path, capsys, *args):
    code = main(["--output_dir", str(tmp_path / "out"), *TINY, *args])
    err = capsys.readouterr().err
    assert code == 2 and "\nerror: " in "\n" + err and "Traceback" not in err
    assert not (tmp_path / "out" / "config.json").exists()
    return err


def test_bad_inputs_fail_before_training(tmp_path, capsys, tokenizer_dir):
    assert "does not exist" in fails(tmp_path, capsys, "--train_file", str(tmp_path / "missing.txt"))
    (tmp_path / "empty.txt").write_text("")
    assert "is empty" in fails(tmp_path, capsys, "--train_file", str(tmp_path / "empty.txt"))
    (tmp_path / "c.jsonl").write_text("\n".join(json.dumps({"body": t}) for t in corpus_texts()))
    assert "text column 'text' not found" in fails(tmp_path, capsys, "--train_file", str(tmp_path / "c.jsonl"))
    assert "max_seq_length=128 exceeds max_position_embeddings=64" in fails(tmp_path, capsys, "--max_seq_length", "128")
    first, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", name="first")
    err = fails(tmp_path, capsys, "--model_name_or_path", str(first), "--tokenizer_name", str(tokenizer_dir))
    assert "does not match its tokenizer's (120 tokens)" in err
    (tmp_path / "one.txt").write_text("\n\n".join(f"Only sentence {i} here." for i in range(30)))
    err = fails(tmp_path, capsys, "--train_file", str(tmp_path / "one.txt"))
    assert "no document has two or more sentences" in err and "--mlm_only" in err
    assert "mlm_probability=1.5 must be a share of tokens in (0, 1)" in fails(tmp_path, capsys, "--mlm_probability", "1.5")
    err = fails(tmp_path, capsys, "--feed_forward_type", "swiglu", "--train_file", str(tmp_path / "one.txt"))
    assert "feed_forward_type" in err and "Training a WordPiece" not in err, "refused before any data work"
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("hidden_size: 32\nhiden_layers: 3\n")
    assert "unknown keys in" in fails(tmp_path, capsys, "--config", str(bad_config))


RETIRED = ("deepnorm", "generator_heads", "rtd_discriminator_mlm_weight", "rtd_masked_share", "rtd_head_at_prior",
           "tokenizer_training_documents", "synthetic_documents", "short_seq_prob", "mlm_probability_start",
           "batch_size_ramp_start", "batch_size_ramp_fraction", "shuffle_buffer_documents", "shuffle_buffer_examples",
           "log_file")
MOVED = ("hidden_act", "initializer_range", "hidden_dropout_prob", "attention_probs_dropout_prob",
         "sparse_mlm_prediction", "mlm_loss_weight", "nsp_loss_weight")


@pytest.mark.parametrize("name", RETIRED + MOVED)
def test_a_retired_or_moved_option_is_refused_by_name_from_a_config_file_or_a_flag(name, tmp_path, capsys):
    """Issue 44: an option that is gone names where its finding is (retired) or how to set it now (moved)."""
    if name in RETIRED:
        message = f"{name} was retired: its finding is in docs/lab-notebook.md#{name} (last ran at commit 0162353)"
    else:
        message = f"{name} is set through config_overrides now, e.g. config_overrides: {name}="
    config = tmp_path / "old.yaml"
    config.write_text(f"hidden_size: 32\n{name}: 1\n")
    for spelling in (["--config", str(config)], [f"--{name}", "1"]):  # the script: exit 2, the message on stderr
        err = fails(tmp_path, capsys, *spelling)
        assert message in err and "Training a WordPiece" not in err, spelling
    dashed = "--" + name.replace("_", "-")
    for spelling in ([f"--{name}=1"], [dashed, "1"], [f"{dashed}=1"]):  # every spelling argparse would take
        with pytest.raises(ConfigError, match=re.escape(message)):
            run(["--output_dir", str(tmp_path / "out"), *spelling])


def test_config_overrides_set_a_fresh_models_config_fields(tmp_path, capsys):
    out, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no",
                      "--max_steps", "1", "--config_overrides",
                      "hidden_dropout_prob=0.0, initializer_range=0.05,hidden_act=gelu_new,layer_norm_eps=1e-6")
    saved = json.loads((out / "config.json").read_text())
    assert (saved["hidden_dropout_prob"], saved["initializer_range"], saved["hidden_act"], saved["layer_norm_eps"]) == (
        0.0, 0.05, "gelu_new", 1e-6)
    assert saved["attention_probs_dropout_prob"] == 0.1  # the rest keep their defaults
    for overrides, message in (
        ("hiden_act=gelu", "config_overrides: hiden_act is not a ScratchBertConfig field"),
        ("hidden_act", "config_overrides: 'hidden_act' is not key=value"),
        ("hidden_dropout_prob=lots", "config_overrides: hidden_dropout_prob=lots is not a float"),
        ("sparse_mlm_prediction=maybe", "config_overrides: sparse_mlm_prediction=maybe is not a bool"),
        ("hidden_size=64", "config_overrides: hidden_size is set by hidden_size, not through config_overrides"),
        ("hidden_dropout_prob=1.5", "hidden_dropout_prob must be a probability"),  # ScratchBertConfig's own check
    ):
        err = fails(tmp_path, capsys, "--config_overrides", overrides)
        assert message in err and "Training a WordPiece" not in err, overrides
    err = fails(tmp_path, capsys, "--model_name_or_path", str(out), "--config_overrides", "hidden_dropout_prob=0.0")
    assert "config_overrides sets a fresh model's config; model_name_or_path" in err


def test_unwritable_output_dir(tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/scratchbert-cannot-write"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "out")
    code = main(["--output_dir", target, *TINY])
    assert code == 2 and "cannot be written" in capsys.readouterr().err


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    code = main(["--output_dir", str(out), *TINY, "--overwrite_output_dir", "false"])
    assert code == 2 and "already holds a run" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{}"


def test_overwrite_output_dir_keeps_the_earlier_runs_checkpoints(tmp_path):
    # A shipped config sets overwrite_output_dir; a rerun after a pre-emption must not destroy checkpoints.
    out, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no")
    earlier = {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")}
    assert earlier
    pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no",
             "--overwrite_output_dir", "true", "--seed", "5")
    kept = list(out.glob("superseded-*"))
    assert len(kept) == 1
    assert {p.name: (p / "model.safetensors").read_bytes() for p in kept[0].glob("checkpoint-*")} == earlier
    assert sorted(p.name for p in out.glob("checkpoint-*")) == sorted(earlier)  # the new run's own


def test_the_logged_terms_add_up_to_the_loss_over_accumulated_micro_batches(tmp_path):
    out, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no",
                      "--max_steps", "2", "--gradient_accumulation_steps", "2", "--logging_steps", "2")
    logs = [e for e in json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(logs) == 1 and logs[0]["mlm_loss"] > 1 and logs[0]["nsp_loss"] > 0.1
    assert logs[0]["loss"] == pytest.approx(logs[0]["mlm_loss"] + logs[0]["nsp_loss"], abs=2e-3)


def logged_terms(output_dir, checkpoint):
    state = json.loads((output_dir / checkpoint / "trainer_state.json").read_text())
    return {e["step"]: e for e in state["log_history"] if "loss" in e}


def test_the_logged_terms_after_a_resume_are_means_over_the_resumed_steps(tmp_path):
    # Issue 43 item 1: the first log after a resume divided its window's sums by every step since step 0.
    args = ("--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no", "--max_steps", "8",
            "--save_steps", "4", "--logging_steps", "4")
    whole, _ = pretrain(tmp_path, *args, name="whole")
    resumed, _ = pretrain(tmp_path, *args, "--resume_from_checkpoint", str(whole / "checkpoint-4"), name="resumed")
    expected, got = logged_terms(whole, "checkpoint-8")[8], logged_terms(resumed, "checkpoint-8")[8]
    assert got["loss"] == pytest.approx(expected["loss"], abs=1e-4)  # resuming is exact: the same steps
    for name in ("mlm_loss", "nsp_loss"):
        assert expected[name] > 0.1 and got[name] == pytest.approx(expected[name], abs=2e-4)


def test_a_skipped_step_adds_nothing_to_the_logged_terms(tmp_path, monkeypatch):
    # Issue 43 item 6: a step dropped by on_nonfinite_loss: skip added its NaN terms to the window's sums.
    forward, calls = ScratchBertForPreTraining.forward, {"n": 0}

    def nan_at_second_training_step(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 2:
                output.loss, output.mlm_loss = output.loss * float("nan"), output.mlm_loss * float("nan")
        return output

    monkeypatch.setattr(ScratchBertForPreTraining, "forward", nan_at_second_training_step)
    args = ("--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no", "--save_steps", "2")
    skipping, _ = pretrain(tmp_path, *args, "--max_steps", "2", "--logging_steps", "2",
                           "--on_nonfinite_loss", "skip", name="skipping")
    calls["n"] = -100  # no NaN in the reference run: its first step, logged alone
    reference, _ = pretrain(tmp_path, *args, "--max_steps", "2", "--logging_steps", "1", name="reference")
    window, first = logged_terms(skipping, "checkpoint-2")[2], logged_terms(reference, "checkpoint-2")[1]
    for name in ("mlm_loss", "nsp_loss"):  # the window's one step taken: step 1
        assert window[name] == pytest.approx(first[name], abs=1e-4)


def test_delete_old_checkpoints_deletes_only_when_asked(tmp_path):
    out, _ = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no",
                      "--max_steps", "2")
    stale = out / "checkpoint-2"
    assert stale.is_dir()
    (stale / "marker").write_text("from the earlier run")
    pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40", "--eval_strategy", "no", "--max_steps", "1",
             "--overwrite_output_dir", "true", "--delete_old_checkpoints", "true")
    assert not stale.exists() and not list(out.glob("superseded-*"))


# --------------------------------------------------------------------------------------------------------------
# Several processes, logging, the script itself
# --------------------------------------------------------------------------------------------------------------


def torchrun(*args, timeout=600):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=timeout)


@pytest.mark.slow
def test_two_processes_train_one_model(tmp_path):
    done = torchrun(str(REPO_ROOT / "tests" / "helpers" / "ddp_probe.py"), str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert all(r["world_size"] == 2 and r["args_world_size"] == 2 and r["backend"] == "gloo" for r in ranks)
    assert ranks[0]["first_batch"] != ranks[1]["first_batch"], "each rank sees different data"
    assert ranks[0]["weights"] == ranks[1]["weights"], "gradients were averaged: identical weights after a step"


@pytest.mark.slow
def test_run_pretraining_script_under_torchrun(tmp_path):
    done = torchrun(
        "run_pretraining.py", "--output_dir", str(tmp_path / "out"), "--output", str(tmp_path / "r.json"),
        "--corpus", "synthetic", "--max_documents", "60", *TINY,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["world_size"] == 2 and results["steps"] == 3


@pytest.mark.slow
def test_wandb_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "60", "--report_to", "wandb",
             "--wandb_project", "scratchbert-test")
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs, "wandb wrote an offline run and sent nothing"
    assert os.environ["WANDB_PROJECT"] == "scratchbert-test"


def test_push_to_hub_uploads_the_exported_folder(tmp_path, monkeypatch):
    import huggingface_hub

    from scratchbert.runs import push_folder_to_hub

    calls = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}"))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **kw: calls.update(kw))
    (tmp_path / "out").mkdir()
    from transformers import TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path / "out"), hub_model_id="me/tiny-scratchbert", report_to="none")
    assert push_folder_to_hub(tmp_path / "out", args) == "me/tiny-scratchbert"
    assert calls["repo_id"] == "me/tiny-scratchbert" and calls["folder_path"] == str(tmp_path / "out")
    assert "checkpoint-*" in calls["ignore_patterns"]


@pytest.mark.slow
@requires_shared_data("wikipedia", "wiki_en_sample.jsonl")
def test_shared_wikipedia_config_runs(tmp_path):
    output_dir, results = pretrain(
        tmp_path, "--config", str(REPO_ROOT / "configs" / "pretrain_wikipedia_sample.yaml"), "--max_documents", "200",
        "--max_eval_documents", "20",
    )
    assert results["steps"] == 3 and results["eval_masked_tokens"] > 0


@pytest.mark.slow
def test_accelerate_launch(tmp_path):
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "run_pretraining.py", "--output_dir", str(tmp_path / "out"),
        "--output", str(tmp_path / "r.json"), "--corpus", "synthetic", "--max_documents", "60", *TINY,
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "r.json").read_text())["steps"] == 3


@pytest.mark.parametrize("config", sorted(p.name for p in (REPO_ROOT / "configs").glob("pretrain_*.yaml")))
def test_shipped_pretraining_configs_parse(config, tmp_path, monkeypatch):
    from scratchbert.cli import parse_config
    from scratchbert.pretraining import DataArguments, ModelArguments, fresh_model_config
    from scratchbert.runs import RunArguments

    monkeypatch.chdir(tmp_path)  # output_dir is only parsed, never created
    # --use_cpu: a GPU config's bf16 parses on this CPU-only machine too (transformers refuses bf16 on CPU without it).
    model_args, data_args, run_args, training_args, _ = parse_config(
        (ModelArguments, DataArguments, RunArguments, TrainingArguments),
        [str(REPO_ROOT / "configs" / config), "--use_cpu", "true"],
    )
    assert data_args.max_seq_length <= model_args.max_position_embeddings
    config_fields = fresh_model_config(model_args, data_args, vocab_size=1000, pad_token_id=0)  # config_overrides too
    if config == "pretrain_wikipedia_30min.yaml":
        assert run_args.max_train_minutes == 30 and model_args.attention_position_bias == "alibi"
        assert model_args.linear_bias is False  # the 6-minute probes' winner (docs/lab-notebook.md)
        assert config_fields.hidden_dropout_prob == config_fields.attention_probs_dropout_prob == 0.0


def test_mlm_only_model_leaves_no_trainable_parameter_without_a_gradient(tokenizer_dir):
    # DDP with ddp_find_unused_parameters false fails on exactly these: trainable, yet no gradient.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    model_args = ModelArguments(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                                max_position_embeddings=64)
    model = build_model(model_args, tokenizer, DataArguments(mlm_only=True, max_seq_length=64))
    batch = make_batch(model.config)
    model(**batch, labels=batch["input_ids"]).loss.backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    assert model.config.nsp_loss_weight == 0.0


def test_streamed_training_data_is_split_between_ranks_and_shuffled(tmp_path):
    import contextlib
    import types

    import datasets

    texts = corpus_texts(60)
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size=300, model_max_length=64)
    stream = datasets.Dataset.from_dict({"text": texts}).to_iterable_dataset()
    data_args = DataArguments(streaming=True, max_seq_length=64)
    examples = []
    for rank in (0, 1):
        training_args = types.SimpleNamespace(
            process_index=rank, world_size=2, seed=0, max_steps=10, main_process_first=lambda **_: contextlib.nullcontext()
        )
        train, _ = build_datasets(stream, stream.take(2), tokenizer, data_args, training_args)
        examples.append([tuple(e["input_ids"]) for e in train])
    single = build_dataset(stream, tokenizer, max_seq_length=64, seed=0)
    assert set(examples[0]).isdisjoint(examples[1])
    assert 0.8 < (len(examples[0]) + len(examples[1])) / len(list(single)) < 1.2
    assert examples[0][:10] != [tuple(e["input_ids"]) for e in single][:10]


def test_model_card_front_matter_is_what_the_hub_reads(tmp_path):
    from huggingface_hub import ModelCard

    out, results = pretrain(tmp_path, "--corpus", "synthetic", "--max_documents", "40")
    data = ModelCard.load(out / "README.md").data.to_dict()
    assert data["library_name"] == "transformers" and data["license"] == "apache-2.0" and data["pipeline_tag"] == "fill-mask"
    result = data["model-index"][0]["results"][0]
    assert result["task"]["type"] == "fill-mask" and "held-out" in result["dataset"]["name"]
    metrics = {m["name"]: m["value"] for m in result["metrics"]}
    assert metrics["held-out accuracy at [MASK]"] == pytest.approx(results["eval_mlm_masked_accuracy"])
    assert metrics["held-out next-sentence accuracy"] == pytest.approx(results["eval_nsp_accuracy"])
