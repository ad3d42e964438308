"""The blockwise cross-entropy (bf16 / fp16 logits on CPU) equals the plain one and reaches the models given it."""

import pytest
import torch
import torch.nn.functional as F

from scratchbert import ScratchBertForPreTraining, ScratchBertForSequenceClassification
from scratchbert import modeling_scratchbert
from scratchbert.blockwise_cross_entropy import (
    BlockwiseCrossEntropySum,
    cross_entropy_sum,
    use_blockwise_cross_entropy,
)
from conftest import make_batch, tiny_config

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_blockwise_cross_entropy_equals_the_plain_one(dtype, monkeypatch):
    """The CPU low-precision loss (blocks of rows in fp32) gives F.cross_entropy's loss and gradient, -100 ignored."""
    monkeypatch.setattr(BlockwiseCrossEntropySum, "block_elements", 3 * 1000)  # 3 rows a block: 37 rows, 13 blocks
    torch.manual_seed(0)
    logits = (4 * torch.randn(37, 1000)).to(dtype).requires_grad_()
    labels = torch.randint(0, 1000, (37,))
    labels[[0, 5, 34]] = -100  # row 36, alone in the last block, stays labelled
    loss, count = cross_entropy_sum(logits, labels)
    assert type(loss.grad_fn).__name__ == "BlockwiseCrossEntropySumBackward"  # the blockwise path ran
    (grad,) = torch.autograd.grad(2.5 * loss, logits)
    reference_logits = logits.detach().float().requires_grad_()
    reference = F.cross_entropy(reference_logits, labels, ignore_index=-100, reduction="sum")
    (reference_grad,) = torch.autograd.grad(2.5 * reference, reference_logits)
    assert count == 34
    torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-6)
    assert grad.dtype == dtype and grad[[0, 5, 34]].abs().max() == 0
    # Within one rounding of the low-precision dtype (the plain path casts its fp32 gradient the same way).
    torch.testing.assert_close(grad.float(), reference_grad, atol=1e-6, rtol=torch.finfo(dtype).eps)
    # Nothing labelled: a zero loss with a zero gradient, as the plain loss gives.
    empty, _ = cross_entropy_sum(logits[:4], torch.full((4,), -100))
    assert empty.item() == 0.0 and torch.autograd.grad(empty, logits)[0].abs().max() == 0
    for none_logits in (logits[:0], logits.detach()[:0].float().requires_grad_()):  # blockwise and plain paths
        none, count = cross_entropy_sum(none_logits, labels[:0])  # the sparse path's [0, V]: nothing masked
        assert none.item() == 0.0 and count == 0 and torch.autograd.grad(none, none_logits)[0].shape == (0, 1000)


@pytest.mark.parametrize("sparse", [True, False])
def test_cpu_bf16_pretraining_loss_is_the_same_with_the_blockwise_cross_entropy(sparse, monkeypatch):
    config = tiny_config(attention_probs_dropout_prob=0.0, hidden_dropout_prob=0.0, sparse_mlm_prediction=sparse)
    torch.manual_seed(0)
    model = use_blockwise_cross_entropy(ScratchBertForPreTraining(config).train())
    batch = make_batch(config)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    labels[:, ::2] = -100  # every other position carries an MLM label

    monkeypatch.setattr(BlockwiseCrossEntropySum, "block_elements", 2 * config.vocab_size)  # 2 rows a block
    calls = []
    real_apply = BlockwiseCrossEntropySum.apply
    monkeypatch.setattr(BlockwiseCrossEntropySum, "apply", lambda *a: calls.append(1) or real_apply(*a))

    def loss_and_grads(blockwise: bool):
        monkeypatch.setattr(BlockwiseCrossEntropySum, "enabled_on_cpu", blockwise)
        model.zero_grad()
        calls.clear()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch, labels=labels, next_sentence_label=torch.tensor([0, 1, 0])).loss
        loss.backward()
        assert len(calls) == (1 if blockwise else 0)
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    plain_loss, plain_grads = loss_and_grads(False)
    loss, grads = loss_and_grads(True)
    torch.testing.assert_close(loss, plain_loss, atol=1e-5, rtol=1e-5)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-5, rtol=1e-3, msg=name)


def test_a_model_keeps_the_plain_loss_until_training_hands_it_the_blockwise_one(monkeypatch):
    """Exported checkpoints compute F.cross_entropy; use_blockwise_cross_entropy reaches a model inside a wrapper."""
    calls = []
    real_apply = BlockwiseCrossEntropySum.apply
    monkeypatch.setattr(BlockwiseCrossEntropySum, "apply", lambda *a: calls.append(1) or real_apply(*a))
    model = ScratchBertForSequenceClassification(tiny_config())
    assert model.cross_entropy_sum is modeling_scratchbert.cross_entropy_sum
    batch, labels = make_batch(model.config), torch.tensor([1, 0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain = model(**batch, labels=labels).loss
    assert not calls
    use_blockwise_cross_entropy(torch.nn.ModuleDict({"wrapped": model}))  # as PEFT's PeftModel holds its model
    assert model.cross_entropy_sum is cross_entropy_sum
    with torch.autocast("cpu", dtype=torch.bfloat16):
        blockwise = model(**batch, labels=labels).loss
    assert len(calls) == 1
    torch.testing.assert_close(blockwise, plain, atol=1e-5, rtol=1e-5)
