"""benchmarks/profile_step.py: its plumbing at a tiny shape (shares that add up, every part measured); no time asserted."""

import importlib.util
import json

import pytest

from conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("profile_step", REPO_ROOT / "benchmarks" / "profile_step.py")
profile_step = importlib.util.module_from_spec(spec)
spec.loader.exec_module(profile_step)


def test_ops_are_sorted_into_kinds():
    assert profile_step.kind_of("aten::addmm") == "matmul"
    assert profile_step.kind_of("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert profile_step.kind_of("aten::native_layer_norm_backward") == "layer norm"
    assert profile_step.kind_of("aten::_log_softmax") == "loss"
    assert profile_step.kind_of("aten::_log_softmax_backward_data") == "loss"
    assert profile_step.kind_of("aten::logsumexp") == "loss"
    assert profile_step.kind_of("aten::_softmax_backward_data") == "attention"  # the spelled-out attention's
    assert profile_step.kind_of("aten::_fused_adamw_") == "optimizer"
    assert profile_step.kind_of("aten::_to_copy") == "casts and copies"
    assert profile_step.kind_of("aten::embedding_dense_backward") == "embedding and indexing"
    assert profile_step.kind_of("aten::gelu_backward") == "elementwise"
    assert profile_step.kind_of("aten::view") == "other"


@pytest.mark.slow
def test_the_profile_reports_every_share(tmp_path):
    out = tmp_path / "profile.json"
    profile_step.main(["--shapes", "tiny", "--dtypes", "fp32,bf16", "--batch", "4", "--steps", "2", "--rounds", "1",
                       "--attention", "--loss", "--unpad", "--json", str(out)])
    report = json.loads(out.read_text())
    for dtype in ("fp32", "bf16"):
        entry = report["shapes"]["tiny"]["dtypes"][dtype]
        assert entry["ms_per_step"] > 0 and entry["model_flop_utilisation"] > 0
        assert abs(sum(entry["op_kinds"].values()) - 1) < 1e-6
        assert {"matmul", "attention", "optimizer"} <= set(entry["op_kinds"])
        assert all(share > 0 for share in entry["parts"].values()), entry["parts"]
    # The attention comparison is a bf16 one (fp32 has one path) and leaves the model's switch as it found it.
    assert "attention" not in report["shapes"]["tiny"]["dtypes"]["fp32"]
    comparison = report["shapes"]["tiny"]["dtypes"]["bf16"]["attention"]
    assert comparison["sdpa_tokens_per_second"] > 0 and comparison["explicit_tokens_per_second"] > 0
    loss = report["shapes"]["tiny"]["dtypes"]["bf16"]["loss"]
    assert loss["plain_tokens_per_second"] > 0 and loss["blockwise_tokens_per_second"] > 0
    assert "loss" not in report["shapes"]["tiny"]["dtypes"]["fp32"]
    for dtype in ("fp32", "bf16"):  # unpadding is a config switch, compared in both
        unpad = report["shapes"]["tiny"]["dtypes"][dtype]["unpad"]
        assert unpad["padded_tokens_per_second"] > 0 and unpad["unpadded_tokens_per_second"] > 0
        assert 0 < unpad["real_token_share"] <= 1
    from scratchbert.blockwise_cross_entropy import BlockwiseCrossEntropySum
    from scratchbert.modeling_scratchbert import ScratchBertSelfAttention

    assert ScratchBertSelfAttention.explicit_softmax_for_cpu_bf16_training is True
    assert BlockwiseCrossEntropySum.enabled_on_cpu is True


def test_unknown_shapes_are_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        profile_step.main(["--shapes", "huge"])
    assert "unknown shape or dtype ['huge']" in capsys.readouterr().err
