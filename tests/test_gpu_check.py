"""benchmarks/gpu_check.py: its plumbing on the CPU (tiny shapes), and a clean skip where no CUDA device is."""

import importlib.util
import json

import pytest
import torch

from conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("gpu_check", REPO_ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: the check runs for real")
def test_without_cuda_it_skips_with_a_message(capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA device" in json.loads(capsys.readouterr().out)["skipped"]


@pytest.mark.slow
def test_the_plumbing_runs_on_the_cpu(tmp_path, capsys):
    code = gpu_check.main(["--device", "cpu", "--tiny", "--json", str(tmp_path / "report.json")])
    report = json.loads((tmp_path / "report.json").read_text())
    assert code == 0 and report["all_correct"], report["correctness"]
    assert set(report["correctness"]) == {*gpu_check.HEADS, "sdpa_vs_eager_none", "sdpa_vs_eager_alibi"}
    assert all(row["fp32"] <= 1e-5 for row in report["correctness"].values())
    for kind in ("pretraining", "pair_fine_tuning"):
        assert report["speed"][kind]["scratchbert"]["tokens_per_second"] > 0 and report["speed"][kind]["speedup"] > 0
    assert report["recipe"]["steps"] >= 1 and 0 <= report["recipe"]["eval_mlm_masked_accuracy"] <= 1
