"""The heads' cross-entropy for bf16 / fp16 logits on CPU, a block of rows at a time: training speed, not the model.

Every head computes its loss through `model.cross_entropy_sum`, by default modeling_scratchbert.cross_entropy_sum
(`F.cross_entropy` on fp32 logits), which exported checkpoints keep. scratchbert's training hands its models this
module's `cross_entropy_sum` instead (`use_blockwise_cross_entropy(model)`): the same loss to fp32 rounding, and
1.10x the tokens per second of the 30-minute recipe's bf16 steps on a CPU (docs/performance.md).
"""

import torch

from . import modeling_scratchbert


class BlockwiseCrossEntropySum(torch.autograd.Function):
    """Summed cross-entropy of bf16 / fp16 logits [N, V] (labels -100 ignored), in fp32 a block of rows at a time.

    `F.cross_entropy(logits.float())` writes an fp32 copy of all N x V logits and their log-softmax, then in
    backward an fp32 gradient of that size, which is cast back to the logits' dtype: at the 30-minute recipe's
    shape (~600 masked positions, 16k words) three 39 MB buffers a step, which on a CPU cost more than the decoder's
    matmul. Here each block of rows is converted, reduced and differentiated while it sits in cache, and the
    gradient is written once, in the logits' dtype. Same maths, equal to fp32 rounding
    (tests/test_blockwise_cross_entropy.py).
    Written by hand: no well-kept library has a CPU one (Liger's fused cross-entropy is a Triton, GPU kernel).
    """

    # Class-wide switch, for benchmarks that time it against F.cross_entropy in one process.
    enabled_on_cpu = True
    block_elements = 2**18  # 1 MB of fp32 per block: in a core's L2 cache

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        rows = max(1, BlockwiseCrossEntropySum.block_elements // logits.shape[-1])
        valid = labels != -100  # [N]
        labels = labels.masked_fill(~valid, 0)  # any valid index for gather; the row is masked out below
        log_normaliser = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)  # [N]
        for start in range(0, logits.shape[0], rows):
            log_normaliser[start : start + rows] = torch.logsumexp(logits[start : start + rows].float(), dim=-1)
        target_logit = logits.gather(1, labels[:, None]).squeeze(1).float()  # [N]
        ctx.save_for_backward(logits, labels, valid, log_normaliser)
        ctx.rows = rows
        return torch.where(valid, log_normaliser - target_logit, 0.0).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable  # a second derivative would miss d(log_normaliser): refuse it
    def backward(ctx, grad_loss: torch.Tensor):
        logits, labels, valid, log_normaliser = ctx.saved_tensors
        scale = torch.where(valid, grad_loss.float(), 0.0)  # [N]: ignored rows get no gradient
        grad_logits = torch.empty_like(logits)  # [N, V], the logits' dtype
        for start in range(0, logits.shape[0], ctx.rows):
            end = min(start + ctx.rows, logits.shape[0])
            block = logits[start:end].float()  # [rows, V], the block's one fp32 buffer, worked on in place
            block.sub_(log_normaliser[start:end, None]).exp_()  # softmax
            block[torch.arange(end - start, device=block.device), labels[start:end]] -= 1.0  # - one-hot(label)
            grad_logits[start:end] = block.mul_(scale[start:end, None])
        return grad_logits, None


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor):
    """modeling_scratchbert.cross_entropy_sum (the summed fp32 cross-entropy over labels other than -100, and their
    number), blockwise where that is faster: bf16 / fp16 logits on CPU. fp32 has no cast to save, a GPU would launch
    two kernels per block, and torch.compile fuses the plain loss itself: they keep the plain one."""
    blockwise = (
        BlockwiseCrossEntropySum.enabled_on_cpu
        and logits.device.type == "cpu"
        and logits.dtype in (torch.bfloat16, torch.float16)
        and not torch.compiler.is_compiling()
    )
    if not blockwise:
        return modeling_scratchbert.cross_entropy_sum(logits, labels)
    labels = labels.reshape(-1)
    logits = logits.reshape(labels.numel(), logits.shape[-1])  # [N, V]; N may be 0 (nothing masked)
    return BlockwiseCrossEntropySum.apply(logits, labels), (labels != -100).sum()


def use_blockwise_cross_entropy(model: torch.nn.Module) -> torch.nn.Module:
    """Give every ScratchBert model in `model` (itself, or inside a wrapper such as PEFT's) this cross-entropy."""
    for module in model.modules():
        if isinstance(module, modeling_scratchbert.ScratchBertPreTrainedModel):
            module.cross_entropy_sum = cross_entropy_sum
    return model
