"""The models under transformers' Trainer: label names, kept columns, and exact gradient accumulation."""

import pytest
import torch
from datasets import Dataset
from transformers import Trainer, TrainingArguments, default_data_collator

from scratchbert import ScratchBertForMaskedLM, ScratchBertForPreTraining, ScratchBertForSequenceClassification
from conftest import tiny_config


def eight_examples(with_nsp=False, equal_masks=False):
    """8 sequences of 16 tokens; MLM labels on a varying (or equal) number of positions per sequence."""
    g = torch.Generator().manual_seed(1)
    rows = []
    for i in range(8):
        ids = torch.randint(5, 99, (16,), generator=g)
        labels = torch.full((16,), -100)
        n_masked = 3 if equal_masks else 1 + (i * 3) % 7
        labels[1 : 1 + n_masked] = ids[1 : 1 + n_masked]
        row = {"input_ids": ids.tolist(), "attention_mask": [1] * 16, "token_type_ids": [0] * 8 + [1] * 8,
               "labels": labels.tolist(), "text": f"example {i}"}
        if with_nsp:
            row["next_sentence_label"] = i % 2
        rows.append(row)
    return Dataset.from_list(rows)


def one_step(model_class, dataset, batch_size, accumulation, tmp_path, config=None):
    torch.manual_seed(0)
    model = model_class(config or tiny_config())
    args = TrainingArguments(
        output_dir=str(tmp_path / f"run-{batch_size}x{accumulation}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",  # Adam would normalise away a mis-scaled gradient; SGD shows it
        lr_scheduler_type="constant",
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        seed=0,
        dataloader_drop_last=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator)
    trainer.train()
    logged = next(entry["loss"] for entry in trainer.state.log_history if "loss" in entry)
    return trainer, logged, {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize(
    "model_class, dataset",
    [
        (ScratchBertForMaskedLM, eight_examples()),
        (ScratchBertForPreTraining, eight_examples(with_nsp=True, equal_masks=True)),
    ],
    ids=["masked-lm-unequal-masks", "pretraining"],
)
def test_gradient_accumulation_matches_one_big_batch(model_class, dataset, tmp_path):
    _, loss_big, weights_big = one_step(model_class, dataset, 8, 1, tmp_path)
    _, loss_accumulated, weights_accumulated = one_step(model_class, dataset, 2, 4, tmp_path)
    assert loss_accumulated == pytest.approx(loss_big, rel=1e-5)
    for name in weights_big:
        torch.testing.assert_close(weights_accumulated[name], weights_big[name], atol=1e-6, rtol=1e-5, msg=name)


def test_gradient_accumulation_sequence_classification(tmp_path):
    dataset = eight_examples().remove_columns("labels").add_column("labels", [0, 1, 1, 0, 1, 0, 0, 1])
    _, loss_big, weights_big = one_step(ScratchBertForSequenceClassification, dataset, 8, 1, tmp_path)
    _, loss_accumulated, weights_accumulated = one_step(ScratchBertForSequenceClassification, dataset, 2, 4, tmp_path)
    assert loss_accumulated == pytest.approx(loss_big, rel=1e-5)
    for name in weights_big:
        torch.testing.assert_close(weights_accumulated[name], weights_big[name], atol=1e-6, rtol=1e-5, msg=name)


def test_trainer_finds_both_pretraining_labels_and_keeps_them(tmp_path):
    trainer, _, _ = one_step(ScratchBertForPreTraining, eight_examples(with_nsp=True), 4, 1, tmp_path)
    assert trainer.label_names == ["labels", "next_sentence_label"]
    batch = next(iter(trainer.get_train_dataloader()))
    assert {"labels", "next_sentence_label", "input_ids", "token_type_ids"} <= set(batch)
    assert "text" not in batch  # unused columns are still removed
