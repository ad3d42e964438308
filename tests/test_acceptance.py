"""The issues' acceptance runs, as shipped: both scripts on their offline defaults must visibly learn.

Minutes each on 2 CPU cores (the slowest tests here); no time is asserted, only what the runs reach.
"""

import pytest

from scratchbert import classification, pretraining


@pytest.mark.slow
def test_offline_pretraining_default_learns(tmp_path):
    results = pretraining.run(["--output_dir", str(tmp_path / "pretrain")])  # configs/pretrain_offline.yaml
    assert results["steps"] == 1500
    assert results["eval_mlm_accuracy"] > 1.5 * results["eval_mlm_baseline_accuracy"]
    assert results["eval_nsp_accuracy"] > 0.52


@pytest.mark.slow
def test_offline_classification_default_beats_the_majority_class(tmp_path):
    results = classification.run(["--output_dir", str(tmp_path / "classify")])  # configs/classify_offline.yaml
    assert results["eval_accuracy"] > results["eval_majority_baseline_accuracy"] + 0.03
    assert results["eval_f1"] > results["eval_majority_baseline_f1"]
