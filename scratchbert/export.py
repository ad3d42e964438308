"""ONNX export of a ScratchBert checkpoint, checked in onnxruntime before it is kept.

    python -m scratchbert.export onnx CKPT OUT                                # the head CKPT was saved with
    python -m scratchbert.export onnx CKPT OUT --task feature-extraction      # the encoder alone (any checkpoint)

Tasks: feature-extraction, fill-mask, next-sentence-prediction, text-classification, token-classification,
question-answering, multiple-choice; by default the one of the head CKPT was saved with (`architectures[0]`).
Built on torch.onnx.export (the dynamo exporter, which torch recommends; optimum has no exporter for a custom
model type without a hand-written ONNX config, and the model is plain torch) with dynamic batch and sequence axes.
Inputs are `input_ids`, `attention_mask`, `token_type_ids` ([batch, sequence], int64; [batch, choices, sequence]
for multiple-choice); outputs `last_hidden_state` (+ `pooler_output` when the checkpoint holds a pooler), `logits`,
or `start_logits` and `end_logits`. Every output comes from weights the checkpoint holds: a weight the head needs
and the checkpoint lacks (which transformers would initialise at random) stops the export, naming it, and a task
the saved head was not trained for is refused. Every layout exports (BERT's, ALiBi, pre-LN): the unpadded path is
switched off (its shapes depend on the data), the padded path computes the same numbers. Before anything lands in
OUT, onnxruntime runs the graph on padded batches of several shapes and its outputs must match PyTorch's to
`--tolerance` (1e-4 in fp32); OUT gets `model.onnx`, the config and the tokenizer.
Needs the `onnx` extra: pip install "scratchbert[onnx]" (onnx, onnxscript, onnxruntime).
"""

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from . import modeling_scratchbert  # noqa: F401  (the Auto classes)

# task -> (Auto class, output names, the outputs that are per token: [batch, sequence, ...], padding free).
TASKS = {
    "feature-extraction": (AutoModel, ("last_hidden_state", "pooler_output"), {"last_hidden_state"}),
    "fill-mask": (AutoModelForMaskedLM, ("logits",), {"logits"}),
    "next-sentence-prediction": (AutoModelForNextSentencePrediction, ("logits",), set()),
    "text-classification": (AutoModelForSequenceClassification, ("logits",), set()),
    "token-classification": (AutoModelForTokenClassification, ("logits",), {"logits"}),
    "question-answering": (AutoModelForQuestionAnswering, ("start_logits", "end_logits"), {"start_logits", "end_logits"}),
    "multiple-choice": (AutoModelForMultipleChoice, ("logits",), set()),
}
# The head a checkpoint was saved with (`architectures[0]`) -> the tasks its weights export, its own first (the
# default). The encoder (feature-extraction) is in every checkpoint; fill-mask and next-sentence prediction share
# ScratchBertForPreTraining's heads. Another head's task is refused: its weights would be the wrong head's or random.
HEAD_TASKS = {
    "ScratchBertModel": ("feature-extraction",),
    "ScratchBertForPreTraining": ("fill-mask", "next-sentence-prediction", "feature-extraction"),
    "ScratchBertForMaskedLM": ("fill-mask", "feature-extraction"),
    "ScratchBertForNextSentencePrediction": ("next-sentence-prediction", "feature-extraction"),
    "ScratchBertForSequenceClassification": ("text-classification", "feature-extraction"),
    "ScratchBertForTokenClassification": ("token-classification", "feature-extraction"),
    "ScratchBertForQuestionAnswering": ("question-answering", "feature-extraction"),
    "ScratchBertForMultipleChoice": ("multiple-choice", "feature-extraction"),
    # A replaced-token-detection discriminator: its encoder (ONNX has no task for the per-token replaced score).
    "ScratchBertForReplacedTokenDetection": ("feature-extraction",),
}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
CHECK_SHAPES = ((1, 7), (3, 16), (2, 48))  # (batch, sequence) of the onnxruntime check, each with padding
CHECK_CHOICES = (2, 4, 3)  # multiple-choice: the number of choices at each of CHECK_SHAPES


class ExportError(ValueError):
    """An export that cannot be made or does not match PyTorch; the message says which."""


def saved_head(config) -> str | None:
    """The head class a checkpoint was saved with, as `architectures[0]` names it (None when the config has none)."""
    return config.architectures[0] if config.architectures else None


def task_of(config) -> str:
    """The task a checkpoint was saved for: its head's, as `architectures[0]` names it; an unknown head is refused."""
    head = saved_head(config) or "ScratchBertModel"
    if head not in HEAD_TASKS:
        raise ExportError(f"no ONNX export for a {head} head (pass --task feature-extraction for its encoder); the heads "
                          f"that export are {', '.join(HEAD_TASKS)}")
    return HEAD_TASKS[head][0]


def pair_head_untrained(config) -> bool:
    """A pretraining checkpoint whose pooler and next-sentence head no loss reached: an MLM-only run (or an rtd run
    without a pair objective) keeps them as they were initialised, and its config records that as nsp_loss_weight 0.
    A fine-tuned head's config inherits that weight, but its pooler did train: only the pretraining heads count."""
    pretraining_heads = ("ScratchBertForPreTraining", "ScratchBertForReplacedTokenDetection")
    return saved_head(config) in pretraining_heads and getattr(config, "nsp_loss_weight", 1.0) == 0


class OnnxInterface(torch.nn.Module):
    """The model with positional tensor inputs and a tuple of named outputs: the signature the graph gets."""

    def __init__(self, model: torch.nn.Module, output_names: tuple[str, ...]):
        super().__init__()
        self.model, self.output_names = model, output_names

    def forward(self, input_ids, attention_mask, token_type_ids):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return tuple(outputs[name] for name in self.output_names)


def padded_batch(config, batch_size: int, seq_len: int, seed: int = 0, choices: int | None = None) -> dict[str, torch.Tensor]:
    """Random ids with two segments; every row after the first is right-padded by a different amount.

    [batch, sequence] tensors, or [batch, choices, sequence] with `choices` (multiple-choice).
    """
    rows = batch_size * (choices or 1)
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, config.vocab_size, (rows, seq_len), generator=g)
    attention_mask = torch.ones_like(input_ids)
    for row in range(1, rows):
        attention_mask[row, max(1, seq_len - 3 * row):] = 0
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, seq_len // 2:] = 1
    batch = {"input_ids": input_ids.masked_fill(attention_mask == 0, config.pad_token_id or 0),
             "attention_mask": attention_mask, "token_type_ids": token_type_ids * attention_mask}
    return batch if choices is None else {name: t.view(batch_size, choices, seq_len) for name, t in batch.items()}


def load_for_export(checkpoint: str, task: str | None):
    """The model for `task` (default: the saved head's), in fp32 eval mode, every weight from the checkpoint.

    Returns (model, task, output names). Refuses a task the saved head was not trained for and any weight the
    checkpoint lacks (transformers would initialise it at random, differently on every export), naming them;
    feature-extraction of a checkpoint without a pooler (token classification, mean-pooled classifiers, masked
    LM) drops `pooler_output` instead.
    """
    try:
        config = AutoConfig.from_pretrained(checkpoint, trust_remote_code=True)
    except Exception as error:
        raise ExportError(f"cannot load the config of {checkpoint}: {error}") from None
    if config.model_type != "scratchbert":
        raise ExportError(f"{checkpoint} holds a {config.model_type!r} model, not a ScratchBert")
    if task is not None and task not in TASKS:
        raise ExportError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    task = task or task_of(config)
    head = saved_head(config)
    if head in HEAD_TASKS and task not in HEAD_TASKS[head]:
        raise ExportError(f"{checkpoint} was saved as {head}, which has no {task} head; it exports as "
                          f"{' or '.join(HEAD_TASKS[head])}")
    pair_untrained = pair_head_untrained(config)
    if pair_untrained and task == "next-sentence-prediction":
        raise ExportError(f"{checkpoint} was pretrained without a pair objective (nsp_loss_weight 0: MLM only), so its "
                          "next-sentence head never trained; export fill-mask or feature-extraction")
    auto_class, output_names, _ = TASKS[task]
    config.unpad_inputs = False  # data-dependent shapes; the padded path gives the same outputs
    try:
        model, loading = auto_class.from_pretrained(checkpoint, config=config, trust_remote_code=True,
                                                    output_loading_info=True)
    except Exception as error:
        raise ExportError(f"cannot load the weights of {checkpoint} for {task}: {error}") from None
    missing = set(loading["missing_keys"]) | {entry[0] if isinstance(entry, tuple) else entry
                                              for entry in loading.get("mismatched_keys", ())}
    if task == "feature-extraction" and model.pooler is not None:
        pooler = {key for key in missing if key.startswith("pooler.")}
        # No pooler saved (token classification, mean pooling, masked LM), or one no loss ever reached: no pooler_output
        if pooler or pair_untrained:
            model.pooler, output_names, missing = None, ("last_hidden_state",), missing - pooler
    if missing:
        raise ExportError(f"{checkpoint} lacks weights that the {task} export needs: {', '.join(sorted(missing))} "
                          "(they would be initialised at random); nothing was written")
    return model.eval().float(), task, output_names


def check_in_onnxruntime(path: Path, model, output_names, tolerance: float, task: str = "feature-extraction") -> float:
    """The largest difference from PyTorch over real tokens of several padded shapes; raises past `tolerance`."""
    import onnxruntime

    per_token = TASKS[task][2]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for (batch_size, seq_len), choices in zip(CHECK_SHAPES, CHECK_CHOICES):
        batch = padded_batch(model.config, batch_size, seq_len, seed=seq_len,
                             choices=choices if task == "multiple-choice" else None)
        with torch.no_grad():
            expected = OnnxInterface(model, output_names)(*(batch[n] for n in INPUT_NAMES))
        got = session.run(list(output_names), {n: batch[n].numpy() for n in INPUT_NAMES})
        real = batch["attention_mask"].numpy().astype(bool)
        for name, want, have in zip(output_names, expected, got):
            want = want.numpy()
            diff = np.abs(have - want)[real] if name in per_token else np.abs(have - want)  # padding positions are free
            worst = max(worst, float(diff.max()))
            if not worst <= tolerance:
                raise ExportError(f"onnxruntime's {name} differs from PyTorch's by {worst:.2e} at batch {batch_size}, "
                                  f"sequence {seq_len} (tolerance {tolerance:.0e}); nothing was written")
    return worst


def export_onnx(checkpoint: str, out: str | Path, task: str | None = None, opset: int = 18, tolerance: float = 1e-4,
                overwrite: bool = False) -> dict:
    """Export `checkpoint` to `out`/model.onnx (with its config and tokenizer); returns what was checked."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise ExportError(f"ONNX export needs onnx, onnxscript and onnxruntime ({error.name} is missing): "
                          'pip install "scratchbert[onnx]"') from None
    out = Path(out)
    if out.exists() and (out / "model.onnx").exists() and not overwrite:
        raise ExportError(f"{out} already holds a model.onnx; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file, not a folder")
    model, task, output_names = load_for_export(checkpoint, task)
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    if task == "multiple-choice":  # [batch, choices, sequence] inputs
        example = padded_batch(model.config, 2, 16, choices=3)
        axes = {0: batch, 1: torch.export.Dim("choices"), 2: sequence}
    else:
        example, axes = padded_batch(model.config, 2, 16), {0: batch, 1: sequence}
    with tempfile.TemporaryDirectory() as staging:
        path = Path(staging) / "model.onnx"
        program = torch.onnx.export(
            OnnxInterface(model, output_names).eval(), tuple(example[n] for n in INPUT_NAMES), input_names=list(INPUT_NAMES),
            output_names=list(output_names), dynamic_shapes=tuple(dict(axes) for _ in INPUT_NAMES),
            opset_version=opset, dynamo=True,
        )
        program.save(str(path))
        difference = check_in_onnxruntime(path, model, output_names, tolerance, task)
        out.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), out / "model.onnx")
    model.config.save_pretrained(out)
    try:
        AutoTokenizer.from_pretrained(checkpoint).save_pretrained(out)
    except (OSError, ValueError):
        pass  # a checkpoint without a tokenizer: the graph alone
    report = {"task": task, "head": saved_head(model.config), "inputs": list(INPUT_NAMES), "outputs": list(output_names), "opset": opset,
              "max_difference_vs_pytorch": difference, "checked_shapes": [list(s) for s in CHECK_SHAPES]}
    if task == "multiple-choice":
        report["checked_shapes"] = [[b, c, t] for (b, t), c in zip(CHECK_SHAPES, CHECK_CHOICES)]
    (out / "onnx_export.json").write_text(json.dumps(report, indent=2))
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scratchbert.export", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="format", required=True)
    onnx_parser = sub.add_parser("onnx", help="CKPT -> OUT/model.onnx, checked in onnxruntime")
    onnx_parser.add_argument("checkpoint")
    onnx_parser.add_argument("out")
    onnx_parser.add_argument("--task", choices=list(TASKS), help="default: the head the checkpoint was saved with")
    onnx_parser.add_argument("--opset", type=int, default=18)
    onnx_parser.add_argument("--tolerance", type=float, default=1e-4, help="largest difference from PyTorch allowed")
    onnx_parser.add_argument("--overwrite", action="store_true", help="replace an existing OUT/model.onnx")
    args = parser.parse_args(argv)
    try:
        report = export_onnx(args.checkpoint, args.out, args.task, args.opset, args.tolerance, args.overwrite)
    except ExportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/model.onnx ({report['task']}; outputs {', '.join(report['outputs'])}; "
          f"largest difference from PyTorch in onnxruntime {report['max_difference_vs_pytorch']:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
