"""The GLUE suite end to end: every task from GLUE-format folders, random-init baseline, seeds, outputs,
submission files; a transformers BERT converted on the fly; bad folders refused before anything trains."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from scratchbert import ScratchBertForPreTraining
from scratchbert.glue import TASK_HYPERPARAMETERS, main, run
from scratchbert.glue_tasks import TASKS
from conftest import SHARED_DATA, requires_shared_data, tiny_config, write_glue_folder

FAST = ["--max_steps", "2", "--per_device_train_batch_size", "8", "--max_seq_length", "32", "--use_cpu", "true"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer_dir):
    folder = tmp_path_factory.mktemp("checkpoint")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    ScratchBertForPreTraining(tiny_config(vocab_size=len(tokenizer))).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return write_glue_folder(tmp_path_factory.mktemp("glue"))


def test_every_task_has_documented_hyperparameters():
    assert set(TASK_HYPERPARAMETERS) == set(TASKS)
    assert all(h.max_seq_length == 128 and h.per_device_train_batch_size in (16, 32) for h in TASK_HYPERPARAMETERS.values())


@pytest.mark.slow
def test_every_task_from_glue_folders_with_random_init_and_submissions(tmp_path, checkpoint, glue_dir):
    out = tmp_path / "glue"
    report = run(["--model_name_or_path", str(checkpoint), "--glue_dir", str(glue_dir), "--output_dir", str(out),
                  "--random_init", "true", "--do_predict", "true", *FAST])
    assert list(report["tasks"]) == list(TASKS)  # every task found, in GLUE's order
    for name, entry in report["tasks"].items():
        task = TASKS[name]
        for start in ("pretrained", "random_init"):
            assert set(entry[start]["mean"]) == set(task.metrics) and entry[start]["steps"] == 2
        assert set(entry["baseline"]) == set(task.metrics)
    assert report["tasks"]["cola"]["baseline"]["matthews_correlation"] == 0.0
    assert report["tasks"]["mnli"]["pretrained"]["mean"]["mismatched_accuracy"] >= 0
    assert report["average_tasks"] == [n for n in TASKS if n != "wnli"]
    saved = json.loads((out / "glue_results.json").read_text())
    assert saved["average"] == report["average"] and set(saved["average"]) == {"pretrained", "random_init", "baseline"}
    table = (out / "glue_results.md").read_text()
    assert "| CoLA | MCC |" in table and "| MNLI | acc / acc-mm |" in table and "average (no WNLI)" in table
    assert (out / "glue_results.png").stat().st_size > 1000
    # Submission files in GLUE's format: 0/1 for the binary tasks, names for the NLI ones, scores for STS-B.
    submission = out / "submission"
    assert sorted(p.name for p in submission.iterdir()) == sorted(f for t in TASKS.values() for f in t.submission)
    for task in TASKS.values():
        for file_name in task.submission:
            lines = (submission / file_name).read_text().splitlines()
            assert lines[0] == "index\tprediction" and [l.split("\t")[0] for l in lines[1:]] == [str(i) for i in range(6)]
            values = {l.split("\t")[1] for l in lines[1:]}
            if task.regression:
                assert all(float(v) == float(v) for v in values)
            elif task.labels_are_names:
                assert values <= set(task.label_names)
            else:
                assert values <= {"0", "1"}


@pytest.mark.slow
def test_seeds_give_mean_and_spread_and_flags_apply_to_every_task(tmp_path, checkpoint, glue_dir):
    report = run(["--model_name_or_path", str(checkpoint), "--glue_dir", str(glue_dir), "--output_dir", str(tmp_path),
                  "--tasks", "RTE,sts-b", "--seeds", "2", "--learning_rate", "1e-4", *FAST])
    assert list(report["tasks"]) == ["stsb", "rte"] and report["seeds"] == [42, 43]
    for entry in report["tasks"].values():
        assert [r["seed"] for r in entry["pretrained"]["runs"]] == [42, 43] and "random_init" not in entry
        assert entry["hyperparameters"]["learning_rate"] == 1e-4 and entry["hyperparameters"]["num_train_epochs"] == 4
        assert entry["pretrained"]["std"].keys() == entry["pretrained"]["mean"].keys()
    assert "±" in (tmp_path / "glue_results.md").read_text()


@pytest.mark.slow
def test_a_transformers_bert_folder_is_converted_on_the_fly(tmp_path, checkpoint, glue_dir):
    from transformers import BertConfig, BertForPreTraining

    bert = tmp_path / "bert"
    config = BertConfig(vocab_size=tiny_config().vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    config.vocab_size = len(tokenizer)
    BertForPreTraining(config).save_pretrained(bert)
    tokenizer.save_pretrained(bert)
    report = run(["--model_name_or_path", str(bert), "--glue_dir", str(glue_dir), "--output_dir", str(tmp_path / "out"),
                  "--tasks", "mrpc", *FAST])
    assert report["checkpoint"] == str(tmp_path / "out" / "converted-checkpoint")
    assert json.loads((tmp_path / "out" / "converted-checkpoint" / "config.json").read_text())["model_type"] == "scratchbert"
    assert set(report["tasks"]["mrpc"]["pretrained"]["mean"]) == {"accuracy", "f1"}


def test_without_glue_dir_the_tasks_come_from_the_hub(tmp_path, checkpoint, glue_dir, monkeypatch):
    import datasets

    from scratchbert.glue_tasks import read_local_task

    local = read_local_task(glue_dir, TASKS["rte"])
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):  # the network boundary: nyu-mll/glue as the Hub serves it
        calls.append((path, name))
        return datasets.DatasetDict({split: local[split] for split in ("train", "validation", "test")})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    report = run(["--model_name_or_path", str(checkpoint), "--tasks", "rte", "--output_dir", str(tmp_path), *FAST])
    assert calls == [("nyu-mll/glue", "rte")] and report["glue_dir"] is None
    assert set(report["tasks"]["rte"]["pretrained"]["mean"]) == {"accuracy"}


def test_bad_folders_are_refused_before_anything_trains(tmp_path, capsys, checkpoint):
    glue_dir = write_glue_folder(tmp_path / "glue", folders=("RTE", "MRPC"))
    (glue_dir / "MRPC" / "dev.tsv").unlink()
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"

    def fails(*args, model=("--model_name_or_path", str(checkpoint))):
        code = main([*model, "--output_dir", str(out), *FAST, *args])
        err = capsys.readouterr().err
        assert code == 2 and "error: " in err and not (out / "runs").exists(), err
        return err

    assert "MRPC lacks dev.tsv" in fails("--glue_dir", str(glue_dir))  # RTE is fine, yet nothing runs at all
    assert "has no CoLA folder" in fails("--glue_dir", str(glue_dir), "--tasks", "rte,cola")
    assert "unknown GLUE task 'rtf'" in fails("--glue_dir", str(glue_dir), "--tasks", "rtf")
    assert "holds no GLUE task folder" in fails("--glue_dir", str(tmp_path / "empty"))
    assert "give --model_name_or_path" in fails("--glue_dir", str(glue_dir), "--tasks", "rte", model=())
    assert "names no task" in fails("--glue_dir", str(glue_dir), "--tasks", ",")


def test_the_suite_refuses_to_run_as_several_processes(tmp_path, capsys, monkeypatch, checkpoint):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["--model_name_or_path", str(checkpoint), "--output_dir", str(tmp_path)]) == 2
    assert "run the GLUE suite as one process" in capsys.readouterr().err


@pytest.mark.slow
@requires_shared_data("qqp", "dev.tsv")
def test_qqp_from_the_shared_data(tmp_path, checkpoint):
    # ../shared/data holds a qqp folder in GLUE's format: --glue_dir finds the task by its folder name.
    report = run(["--model_name_or_path", str(checkpoint), "--glue_dir", str(SHARED_DATA), "--output_dir", str(tmp_path),
                  "--max_train_samples", "512", "--max_steps", "10", "--per_device_train_batch_size", "16",
                  "--max_seq_length", "64", "--use_cpu", "true"])
    assert list(report["tasks"]) == ["qqp"]
    qqp = report["tasks"]["qqp"]
    assert qqp["baseline"]["accuracy"] == pytest.approx(2196 / 3496)  # the whole dev set scored: 2,196 of 3,496 negative
    assert qqp["baseline"]["f1"] == 0.0 and 0 <= qqp["pretrained"]["mean"]["accuracy"] <= 1


@pytest.mark.slow
def test_learning_rate_grid_picks_each_sides_best_rate_on_dev_with_the_first_seed(tmp_path, checkpoint, glue_dir):
    report = run(["--model_name_or_path", str(checkpoint), "--glue_dir", str(glue_dir), "--output_dir", str(tmp_path),
                  "--tasks", "rte", "--seeds", "2", "--random_init", "true", "--learning_rates", "1e-2,1e-4", *FAST])
    assert report["learning_rates"] == [1e-2, 1e-4]
    entry = report["tasks"]["rte"]
    for side in ("pretrained", "random_init"):
        summary = entry[side]
        assert set(summary["grid_scores"]) == {"0.01", "0.0001"}
        best = max(summary["grid_scores"], key=lambda rate: summary["grid_scores"][rate])  # ties: the first given
        assert summary["learning_rate"] == float(best)
        assert [r["seed"] for r in summary["runs"]] == [42, 43]  # the grid's first seed, then the rest at the winner
        assert summary["runs"][0]["metrics"]["accuracy"] == summary["grid_scores"][best]
        assert (tmp_path / "runs" / "rte" / f"{side}-lr{float(best):g}-seed43").is_dir()
        assert all((tmp_path / "runs" / "rte" / f"{side}-lr{rate:g}-seed42").is_dir() for rate in (1e-2, 1e-4))
    assert "learning rate |" in (tmp_path / "glue_results.md").read_text()


def test_a_malformed_learning_rate_grid_is_refused_before_anything_trains(tmp_path, capsys, checkpoint, glue_dir):
    for grid in ("fast,1e-4", "1e-4,1e-4", "0,1e-4"):
        code = main(["--model_name_or_path", str(checkpoint), "--glue_dir", str(glue_dir), "--output_dir", str(tmp_path / "out"),
                     "--learning_rates", grid, *FAST])
        assert code == 2 and "learning_rates must be" in capsys.readouterr().err
    code = main(["--model_name_or_path", str(checkpoint), "--glue_dir", str(glue_dir), "--output_dir", str(tmp_path / "out"),
                 "--learning_rates", "1e-4,3e-5", "--learning_rate", "1e-4", *FAST])
    assert code == 2 and "not both" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


@pytest.mark.slow
def test_pooling_decay_and_warmup_reach_every_run(tmp_path, checkpoint, glue_dir):
    report = run(["--model_name_or_path", str(checkpoint), "--glue_dir", str(glue_dir), "--output_dir", str(tmp_path),
                  "--tasks", "stsb", "--classifier_pooling", "mean", "--layerwise_lr_decay", "0.8", "--warmup_steps", "1",
                  *FAST])
    saved = json.loads((tmp_path / "runs" / "stsb" / "pretrained-seed42" / "config.json").read_text())
    assert saved["classifier_pooling"] == "mean" and report["tasks"]["stsb"]["pretrained"]["steps"] == 2


# --------------------------------------------------------------------------------------------------------------
# Issue 36 item 1: a diverged run never wins the rate grid, is never averaged, never submitted
# --------------------------------------------------------------------------------------------------------------


def scripted_runs(monkeypatch, outcome):
    """classification.run replaced by a script: outcome(task, rate, seed, random_init) -> a score, "nan" (a
    collapsed run as classification.run reports it), or "nan-loss" (the NaN guard stopped training)."""
    from scratchbert import classification
    from scratchbert.runs import TrainingFailure

    def fake_run(argv):
        value = dict(zip(argv[1::2], argv[2::2]))
        task, rate, seed = TASKS[value["--task_name"]], float(value["--learning_rate"]), int(value["--seed"])
        score = outcome(task.name, rate, seed, value["--random_init"] == "true")
        if score == "nan-loss":
            raise TrainingFailure("the loss became nan at step 3; stopped instead of training on it. Newest complete checkpoint: none")
        out = Path(value["--output_dir"])
        out.mkdir(parents=True, exist_ok=True)
        if value["--do_predict"] == "true":
            (out / "predictions.tsv").write_text(f"index\tprediction\n0\t{rate:g}\n")
        collapsed = score == "nan"
        results = {"steps": 2, "runtime_seconds": 1.0, "diverged": collapsed,
                   "diverged_reason": "the same score for every example" if collapsed else None}
        for metric in task.metrics:
            results[f"eval_{metric}"] = float("nan") if collapsed else score
            results[f"eval_constant_baseline_{metric}" if task.regression else f"eval_majority_baseline_{metric}"] = 0.0
        return results

    monkeypatch.setattr(classification, "run", fake_run)


def test_a_collapsed_run_never_wins_the_grid_nor_is_averaged_nor_submitted(tmp_path, monkeypatch):
    # Seen: STS-B grid {3e-4: nan, 1e-4: 0.80, 3e-5: 0.70} chose 3e-4 (max keeps a NaN met first); the other seeds ran
    # at it, the table and average said nan, and --do_predict submitted the collapsed run's predictions.
    def outcome(task, rate, seed, random_init):
        if random_init:
            return "nan-loss" if rate == 3e-4 else {1e-4: 0.3, 3e-5: 0.2}[rate]
        if seed == 44:
            return "nan"  # a later seed collapses at the chosen rate
        return {3e-4: "nan", 1e-4: 0.80, 3e-5: 0.70}[rate] if seed == 42 else 0.78

    scripted_runs(monkeypatch, outcome)
    report = run(["--model_name_or_path", "no-such-model", "--tasks", "stsb", "--output_dir", str(tmp_path),
                  "--seeds", "3", "--random_init", "true", "--do_predict", "true", "--learning_rates", "3e-4,1e-4,3e-5"])
    side = report["tasks"]["stsb"]["pretrained"]
    assert side["learning_rate"] == 1e-4 and side["grid_scores"] == {"0.0003": None, "0.0001": 0.8, "3e-05": 0.7}
    assert side["grid_diverged"]["0.0003"] and side["grid_diverged"]["0.0001"] is None
    assert [(r["seed"], r["diverged"]) for r in side["runs"]] == [(42, False), (43, False), (44, True)]
    assert side["diverged_seeds"] == [44] and side["score"] == pytest.approx(0.79) and side["diverged"] is False
    random = report["tasks"]["stsb"]["random_init"]  # a NaN loss stops that run, not the suite
    assert random["learning_rate"] == 1e-4 and random["grid_scores"]["0.0003"] is None
    assert "the loss became nan" in random["grid_diverged"]["0.0003"]
    assert report["average"]["pretrained"] == pytest.approx(0.79)
    submission = (tmp_path / "submission" / "STS-B.tsv").read_text().splitlines()
    assert submission[1] == "0\t0.0001"  # from the run at the chosen rate
    saved = (tmp_path / "glue_results.json").read_text()
    assert "NaN" not in saved and json.loads(saved)["tasks"]["stsb"]["pretrained"]["diverged_seeds"] == [44]
    assert "| 79.0 ± 1.4 / 79.0 ± 1.4 (1 of 3 seeds diverged) |" in (tmp_path / "glue_results.md").read_text()


def test_when_every_rate_diverges_the_table_says_so_rather_than_a_number(tmp_path, monkeypatch):
    scripted_runs(monkeypatch, lambda task, rate, seed, random_init: "nan" if task == "stsb" else 0.6)
    report = run(["--model_name_or_path", "no-such-model", "--tasks", "stsb,rte", "--output_dir", str(tmp_path),
                  "--seeds", "2", "--do_predict", "true", "--learning_rates", "1e-4,3e-5"])
    stsb = report["tasks"]["stsb"]
    assert stsb["pretrained"]["score"] is None and stsb["pretrained"]["diverged"] is True
    assert stsb["pretrained"]["learning_rate"] is None and stsb["pretrained"]["runs"] == []  # no seed ran at no rate
    assert stsb["submission_files"] == [] and not (tmp_path / "submission" / "STS-B.tsv").exists()
    assert report["average"]["pretrained"] is None and report["average_missing"]["pretrained"] == ["stsb"]
    assert report["tasks"]["rte"]["pretrained"]["score"] == pytest.approx(0.6)
    table = (tmp_path / "glue_results.md").read_text()
    assert "| STS-B | Pearson / Spearman | diverged (every rate) |" in table and "n/a (STS-B diverged)" in table
    assert "nan" not in table.lower().replace("n/a", "")
