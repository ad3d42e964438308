"""One layer's attention, forward + backward, on CPU: SDPA against the same attention spelled out (two matmuls and
a softmax, what ScratchBertSelfAttention does for bf16 training on CPU), at the 30-minute recipe's shape.

    python benchmarks/attention_cpu_bf16.py

Batch 32, 4 heads, 128 x 64, with ALiBi's [1, heads, T, T] bias, a padding bias [B, 1, 1, T], or none; bf16 and
fp32. Prints milliseconds per call (median of 20 after 3 warm-up calls) and each path's largest bf16 error
against fp32 SDPA. docs/performance.md holds the figures.
"""

import statistics
import time

import torch
import torch.nn.functional as F

from scratchbert.modeling_scratchbert import alibi_bias, attention_bias

B, HEADS, T, D = 32, 4, 128, 64


def alibi(dtype):  # [1, heads, T, T], the model's own ALiBi bias
    return alibi_bias(num_heads=HEADS, seq_len=T, device="cpu", dtype=dtype)


def padding(dtype):  # [B, 1, 1, T], the model's own padding bias: the last 28 positions are padding
    attention_mask = torch.ones(B, T, dtype=torch.long)
    attention_mask[:, 100:] = 0
    return attention_bias(attention_mask, dtype)


def sdpa(q, k, v, bias):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def spelled_out(q, k, v, bias):  # as in ScratchBertSelfAttention.forward
    scores = torch.matmul(q * D**-0.5, k.transpose(-1, -2))
    if bias is not None:
        scores = scores + bias
    return torch.matmul(F.softmax(scores, dim=-1), v)


def milliseconds(fn, dtype, bias):
    q, k, v = (torch.randn(B, HEADS, T, D, dtype=dtype, requires_grad=True) for _ in range(3))
    for _ in range(3):
        fn(q, k, v, bias).float().sum().backward()
    forward, backward = [], []
    for _ in range(20):
        t0 = time.perf_counter()
        out = fn(q, k, v, bias)
        t1 = time.perf_counter()
        out.float().sum().backward()
        forward.append(t1 - t0)
        backward.append(time.perf_counter() - t1)
    return 1000 * statistics.median(forward), 1000 * statistics.median(backward)


def main():
    torch.manual_seed(0)
    print(f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for dtype in (torch.bfloat16, torch.float32):
        for bias_name, make_bias in (("alibi", alibi), ("padding", padding), ("none", lambda dtype: None)):
            for name, fn in (("sdpa", sdpa), ("spelled out", spelled_out)):
                fwd, bwd = milliseconds(fn, dtype, make_bias(dtype))
                print(f"{str(dtype):<15} {bias_name:<8} {name:<12} forward {fwd:6.2f} ms  backward {bwd:6.2f} ms  "
                      f"total {fwd + bwd:6.2f} ms")
    q, k, v = (torch.randn(B, HEADS, T, D) for _ in range(3))
    reference = sdpa(q, k, v, alibi(torch.float32))
    for name, fn in (("sdpa", sdpa), ("spelled out", spelled_out)):
        out = fn(*(x.bfloat16() for x in (q, k, v)), alibi(torch.bfloat16)).float()
        print(f"bf16 {name}: largest difference from fp32 SDPA {(out - reference).abs().max().item():.4f}")


if __name__ == "__main__":
    main()
