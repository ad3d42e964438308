"""runs.options: ScratchBertTrainingArguments sets use_cpu and pinned memory for the machine it runs on."""

import pytest
from transformers import TrainingArguments

from scratchbert.cli import parse_config
from scratchbert.pretraining import DataArguments, ModelArguments
from scratchbert.runs import options
from scratchbert.runs.options import RunArguments, ScratchBertTrainingArguments


def test_pin_memory_only_where_there_is_an_accelerator(tmp_path, monkeypatch):
    # transformers' default (true) makes torch warn on every CPU run: "no accelerator is found".
    monkeypatch.setattr(options, "has_accelerator", lambda: False)
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path)).dataloader_pin_memory is False
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path), dataloader_pin_memory=True).dataloader_pin_memory is True
    (_, _, _, flags, _) = parse_config((ModelArguments, DataArguments, RunArguments, ScratchBertTrainingArguments),
                                       ["--output_dir", str(tmp_path), "--dataloader_pin_memory", "true"])
    assert flags.dataloader_pin_memory is True  # the user's choice stands
    config = tmp_path / "c.yaml"
    config.write_text(f"output_dir: {tmp_path}\n")
    (_, _, _, resolved, _) = parse_config((ModelArguments, DataArguments, RunArguments, ScratchBertTrainingArguments), [str(config)])
    assert resolved.dataloader_pin_memory is False
    monkeypatch.setattr(options, "has_accelerator", lambda: True)
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path)).dataloader_pin_memory is True
    assert ScratchBertTrainingArguments(output_dir=str(tmp_path), use_cpu=True).dataloader_pin_memory is False


def test_bf16_without_a_gpu_trains_on_the_cpu(tmp_path):
    # transformers alone refuses bf16 here; several processes without a GPU are covered by the two-node test.
    with pytest.raises(ValueError, match="use_cpu"):
        TrainingArguments(output_dir=str(tmp_path), bf16=True)
    arguments = ScratchBertTrainingArguments(output_dir=str(tmp_path), bf16=True)
    assert arguments.use_cpu and arguments.bf16
    assert not ScratchBertTrainingArguments(output_dir=str(tmp_path)).use_cpu
