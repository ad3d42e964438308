"""benchmarks/attention_cpu_bf16.py: the attention it times spelled out is SDPA's function (fp32, every bias)."""

import importlib.util
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("attention_cpu_bf16", REPO_ROOT / "benchmarks" / "attention_cpu_bf16.py")
attention_cpu_bf16 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(attention_cpu_bf16)


@pytest.mark.parametrize("bias", ["alibi", "padding", "none"])
def test_spelled_out_attention_equals_sdpa(bias):
    torch.manual_seed(0)
    m = attention_cpu_bf16
    make = {"alibi": m.alibi, "padding": m.padding, "none": lambda dtype: None}[bias]
    q, k, v = (torch.randn(m.B, m.HEADS, m.T, m.D) for _ in range(3))
    torch.testing.assert_close(m.spelled_out(q, k, v, make(torch.float32)), m.sdpa(q, k, v, make(torch.float32)),
                               atol=1e-5, rtol=1e-5)
