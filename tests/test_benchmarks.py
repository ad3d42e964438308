"""The benchmark script runs end to end (at a tiny size) and reports every figure; no time is asserted."""

import argparse
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT


@pytest.mark.slow
def test_benchmark_reports_every_figure(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_vs_transformers.py"), "--hidden", "32", "--layers", "1",
         "--heads", "2", "--vocab", "1000", "--recipe-vocab", "500", "--batch", "4", "--rounds", "1", "--steps", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    figures = {(row["section"], row["figure"]) for row in report["rows"]}
    assert {section for section, _ in figures} == {
        "pretraining", "recipe (ALiBi, bf16)", "recipe as configured", "recipe, unpadded", "recipe, objective rtd", "memory",
        "model FLOP utilisation", "pair fine-tuning", "pair inference",
    }
    for row in report["rows"]:
        assert row["scratchbert"] > 0 and row["transformers"] > 0
        assert abs(row["ratio"] - row["scratchbert"] / row["transformers"]) < 1e-9
    assert report["matmul_peak_flops"]["fp32"] > 0


@pytest.mark.slow
def test_quality_benchmark_trains_both_models_on_one_budget(tmp_path):
    out = tmp_path / "quality.json"
    tiny = ["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
            "--max_position_embeddings", "64", "--max_seq_length", "64", "--vocab_size", "400", "--dupe_factor", "1",
            "--per_device_train_batch_size", "8", "--max_steps", "6", "--bf16", "false", "--use_cpu", "true"]
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "quality_vs_transformers.py"), "--config",
         str(REPO_ROOT / "configs" / "pretrain_offline.yaml"), "--minutes", "5", "--output_dir", str(tmp_path / "out"),
         "--json", str(out), *tiny],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    figures = {row["figure"]: row for row in report["rows"]}
    assert {"train_tokens", "eval_mlm_masked_accuracy", "eval_mlm_loss"} <= set(figures)
    # max_steps ends both runs first here: the same steps, the same tokens, different but comparable scores.
    assert figures["steps"]["scratchbert"] == figures["steps"]["transformers"] == 6
    assert figures["train_tokens"]["ratio"] == 1.0
    for row in report["rows"]:
        assert row["scratchbert"] > 0 and row["transformers"] > 0
    assert "ratio" in done.stdout or "x" in done.stdout
    # Same weights, data, masks and steps: the two implementations must have learned the same function.
    assert abs(figures["eval_mlm_loss"]["ratio"] - 1) < 0.01


def test_glue_transfer_chart_draws_the_committed_suite_results(tmp_path):
    results = sorted((REPO_ROOT / "docs" / "results").glob("glue-*.json"))
    assert results, "docs/results holds the suites the fine-tuning tables come from"
    runs = [f"{path.stem.removeprefix('glue-')}={path}" for path in results]
    out = tmp_path / "chart.png"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "glue_transfer_chart.py"), *runs, "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_trainer_against_bare_step_times_both_sides(tmp_path):
    out = tmp_path / "trainer.json"
    tiny = ["--hidden_size", "32", "--num_hidden_layers", "1", "--num_attention_heads", "2", "--intermediate_size", "64",
            "--max_position_embeddings", "64", "--max_seq_length", "64", "--vocab_size", "400", "--dupe_factor", "1",
            "--per_device_train_batch_size", "8", "--bf16", "true", "--use_cpu", "true", "--max_train_minutes", "5"]
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "trainer_vs_bare_step.py"), str(REPO_ROOT / "configs" / "pretrain_offline.yaml"),
         "--steps", "3", "--warmup", "2", "--rounds", "2", "--json", str(out), *tiny],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["bf16"] is True and report["config"].endswith("pretrain_offline.yaml")
    for side in ("trainer", "bare_step"):
        assert len(report["tokens_per_second"][side]) == 2 and all(rate > 0 for rate in report["tokens_per_second"][side])
    medians = report["median_tokens_per_second"]
    assert abs(report["trainer_over_bare_step"] - medians["trainer"] / medians["bare_step"]) < 1e-9
    assert report["trainer_steps_run"] == [5, 5] and report["bare_step_tokens_per_round"] > 0
    assert "Trainer / bare" in done.stdout
    refused = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "trainer_vs_bare_step.py"), str(REPO_ROOT / "configs" / "pretrain_offline.yaml"),
         *tiny, "--gradient_accumulation_steps", "2"], capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    assert refused.returncode == 2 and "cannot mirror gradient_accumulation_steps > 1" in refused.stderr


def test_transfer_probe_reuses_a_random_side_only_for_the_same_architecture_and_leaves_collapsed_tasks_out(tmp_path):
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import transfer_probe
    from conftest import tiny_config

    def folder(name, vocab="[PAD]\nthe\n", **config):
        path = tmp_path / name
        tiny_config(**config).save_pretrained(path)
        (path / "vocab.txt").write_text(vocab)
        return path

    base = transfer_probe.random_side_key(folder("a"))
    assert transfer_probe.random_side_key(folder("b", pretraining_objective="rtd")) == base  # an rtd discriminator
    assert transfer_probe.random_side_key(folder("c", num_hidden_layers=3)) != base
    assert transfer_probe.random_side_key(folder("d", vocab="[PAD]\na\n")) != base  # another tokenizer

    scores = {"stsb": {"eval_pearsonr": 0.3}, "sst2": {"eval_accuracy": 0.8}, "cola": {"eval_matthews_correlation": 0.1}}
    assert transfer_probe.row("pretrained", None, scores)["average"] == 40.0
    scores["cola"]["eval_constant_predictions"] = True
    collapsed = transfer_probe.row("pretrained", None, scores)
    assert collapsed["diverged"] == ["cola"] and collapsed["average"] is None

    # Finished fine-tuning is reused only under the settings it ran with, and a name only for its own pretraining.
    settings = transfer_probe.fine_tuning_key(argparse.Namespace(learning_rate=1e-4, seed=42, max_train_samples=10_000))
    assert settings == "lr0.0001-seed42-n10000"
    assert transfer_probe.fine_tuning_key(argparse.Namespace(learning_rate=1e-4, seed=43, max_train_samples=10_000)) != settings
    recipe = {"config": "c.yaml", "minutes": 6.0, "flags": ["--objective", "rtd"]}
    transfer_probe.check_reused_checkpoint(folder("e"), recipe)
    transfer_probe.check_reused_checkpoint(tmp_path / "e", recipe)  # the same pretraining: reused
    with pytest.raises(SystemExit, match="give this probe another --name"):
        transfer_probe.check_reused_checkpoint(tmp_path / "e", {**recipe, "flags": []})
