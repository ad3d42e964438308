"""The benchmark script runs end to end (at a tiny size) and reports every figure; no time is asserted."""

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
         "--heads", "2", "--vocab", "1000", "--batch", "4", "--rounds", "1", "--steps", "1", "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    figures = {(row["section"], row["figure"]) for row in report["rows"]}
    assert {section for section, _ in figures} == {
        "pretraining", "memory", "model FLOP utilisation", "pair fine-tuning", "pair inference",
    }
    for row in report["rows"]:
        assert row["scratchbert"] > 0 and row["transformers"] > 0
        assert abs(row["ratio"] - row["scratchbert"] / row["transformers"]) < 1e-9
    assert report["matmul_peak_flops"]["fp32"] > 0
