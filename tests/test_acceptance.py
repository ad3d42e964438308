"""The issues' acceptance runs, as shipped: both scripts on their offline defaults must visibly learn.

Minutes each on 2 CPU cores (the slowest tests here); no time is asserted, only what the runs reach.
"""

import pytest

from scratchbert import classification, pretraining


@pytest.mark.slow
def test_offline_pretraining_default_learns(tmp_path):
    results = pretraining.run(["--output_dir", str(tmp_path / "pretrain")])  # configs/pretrain_offline.yaml
    # Issue 10: held-out accuracy at [MASK] at least twice the most-frequent-token line, and over all chosen
    # positions above "copy the input unless it is [MASK]". Issue 18: on ~5,250 held-out masked tokens and a
    # deterministic vocabulary, five empty-cache runs measured 2.49x-2.58x (docs/pretraining.md), not 1.98x-2.4x on 958.
    assert results["eval_mlm_masked_accuracy"] >= 2 * results["eval_mlm_unigram_accuracy"]
    assert results["eval_mlm_accuracy"] > results["eval_mlm_copy_baseline_accuracy"]
    assert results["eval_nsp_accuracy"] > 0.52


@pytest.mark.slow
def test_offline_classification_default_beats_the_majority_class(tmp_path):
    results = classification.run(["--output_dir", str(tmp_path / "classify")])  # configs/classify_offline.yaml
    assert results["eval_accuracy"] > results["eval_majority_baseline_accuracy"] + 0.03
    assert results["eval_f1"] > results["eval_majority_baseline_f1"]
