"""LoRA with peft on ScratchBert, with the module names and modules_to_save that docs/model.md gives.

peft has no table entry for a custom model type, so LoraConfig needs ScratchBert's own linear names; these
tests take the LoraConfig from the docs' example itself, so the page and the code cannot drift apart.
"""

import re

import pytest
import torch

peft = pytest.importorskip("peft")

from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora import LoraLayer  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402

from scratchbert import ScratchBertForMaskedLM, ScratchBertForPreTraining, ScratchBertForSequenceClassification  # noqa: E402
from conftest import REPO_ROOT, make_batch, tiny_config  # noqa: E402

ENCODER_LINEARS = {"qkv", "out", "ffn_in", "ffn_out"}  # ScratchBertSelfAttention.qkv/.out, ScratchBertLayer.ffn_in/.ffn_out


def documented_example() -> str:
    page = (REPO_ROOT / "docs" / "model.md").read_text()
    section = re.search(r"\n## LoRA with peft\n(.*?)(\n## |\Z)", page, re.S)
    assert section, "docs/model.md has no 'LoRA with peft' section"
    return re.search(r"```python\n(.*?)```", section.group(1), re.S).group(1)


def documented_lora_config(**changes) -> LoraConfig:
    """A fresh LoraConfig, exactly as docs/model.md's example writes it (peft edits the one it is given)."""
    call = re.search(r"^lora = (LoraConfig\(.*?^\))", documented_example(), re.S | re.M).group(1)
    config = eval(call, {"LoraConfig": LoraConfig})  # noqa: S307  (our own docs)
    for name, value in changes.items():
        setattr(config, name, value)
    return config


@pytest.mark.parametrize("layout", [{}, {"feed_forward_type": "glu"}, {"layer_norm_position": "pre"}])
def test_documented_target_modules_are_every_encoder_linear_and_nothing_else(layout):
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="target_modules"):  # why the docs must name them
        get_peft_model(ScratchBertForSequenceClassification(tiny_config(**layout)), LoraConfig(task_type="SEQ_CLS"))

    model = ScratchBertForSequenceClassification(tiny_config(**layout))
    in_layers = {name.rsplit(".", 1)[-1] for name, m in model.scratchbert.layers.named_modules() if isinstance(m, torch.nn.Linear)}
    assert in_layers == ENCODER_LINEARS  # the model's own names: a rename breaks this test, not users' configs

    config = documented_lora_config()
    assert config.task_type == "SEQ_CLS" and set(config.target_modules) == ENCODER_LINEARS
    peft_model = get_peft_model(model, config)
    adapted = {name.removeprefix("base_model.model.") for name, m in peft_model.named_modules() if isinstance(m, LoraLayer)}
    expected = {f"scratchbert.layers.{i}.{path}" for i in range(2)
                for path in ("attention.qkv", "attention.out", "ffn_in", "ffn_out")}
    assert adapted == expected  # "out" takes the attention output alone; pooler and classifier get no LoRA


def tiny_base(folder, head) -> None:
    """A pretrained base folder: ScratchBertForPreTraining (holds a pooler) or ScratchBertForMaskedLM (none)."""
    torch.manual_seed(0)
    head(tiny_config()).save_pretrained(folder)


@pytest.mark.parametrize("base_head, modules_to_save", [
    (ScratchBertForPreTraining, None),  # the base holds the pooler: peft's default (the classifier) is enough
    (ScratchBertForMaskedLM, ["pooler"]),  # no pooler in the base: it must travel in the adapter, as the docs say
])
def test_lora_fine_tune_saves_and_reloads_onto_a_fresh_base(tmp_path, base_head, modules_to_save):
    tiny_base(tmp_path / "base", base_head)
    torch.manual_seed(1)
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=3)  # new classifier
    peft_model = get_peft_model(model, documented_lora_config(modules_to_save=modules_to_save))

    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    lora = {name for name in trainable if ".lora_A." in name or ".lora_B." in name}
    saved_modules = trainable - lora
    assert len(lora) == 2 * len(ENCODER_LINEARS) * 2  # A and B, four linears, two layers
    assert saved_modules and all(".modules_to_save." in name for name in saved_modules)
    assert {name.split(".modules_to_save.")[0].removeprefix("base_model.model.") for name in saved_modules} == (
        {"classifier"} if modules_to_save is None else {"classifier", "scratchbert.pooler"}
    )
    before = {name: p.detach().clone() for name, p in peft_model.named_parameters()}

    batch = make_batch(model.config, batch_size=8, seq_len=12, seed=0)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    losses = []
    for _ in range(5):
        loss = peft_model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses

    after = dict(peft_model.named_parameters())
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed <= trainable  # the base stayed frozen
    assert any(".lora_B." in name for name in changed)  # B starts at zero: LoRA learned something
    assert any("classifier.modules_to_save" in name for name in changed)

    peft_model.eval()
    eval_batch = make_batch(model.config, batch_size=4, seq_len=10, seed=3)
    with torch.no_grad():
        expected = peft_model(**eval_batch).logits
    peft_model.save_pretrained(tmp_path / "adapter")
    adapter = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert all("lora_" in key or "classifier" in key or "pooler" in key for key in adapter), sorted(adapter)

    torch.manual_seed(2)  # another random classifier (and pooler) than the trained model started from
    fresh = AutoModelForSequenceClassification.from_pretrained(tmp_path / "base", num_labels=3).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh(**eval_batch).logits, expected, atol=1e-3)  # the head is in the adapter only
    reloaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**eval_batch).logits, expected, atol=1e-6, rtol=0)

    merged = reloaded.merge_and_unload()  # a plain ScratchBert model: save_pretrained, ONNX export
    assert type(merged) is ScratchBertForSequenceClassification
    merged.save_pretrained(tmp_path / "merged")
    again, loading = AutoModelForSequenceClassification.from_pretrained(tmp_path / "merged", output_loading_info=True)
    assert not loading["missing_keys"] and not loading["unexpected_keys"], loading
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(**eval_batch).logits, expected, atol=1e-5, rtol=0)


def test_documented_example_runs(tmp_path, monkeypatch):
    """docs/model.md's LoRA example, on a tiny pretraining folder in place of the 30-minute checkpoint."""
    tiny_base(tmp_path / "base", ScratchBertForPreTraining)
    monkeypatch.chdir(tmp_path)
    code = documented_example()
    assert '"outputs/pretrain-wikipedia-30min"' in code
    namespace = {}
    exec(compile(code.replace('"outputs/pretrain-wikipedia-30min"', repr(str(tmp_path / "base"))), "docs/model.md", "exec"), namespace)
    assert (tmp_path / "lora-adapter" / "adapter_model.safetensors").is_file()
    assert type(namespace["merged"]) is ScratchBertForSequenceClassification
