"""The GPU check: everything a CPU machine cannot show, in at most 8 minutes on one CUDA GPU, as one JSON.

    python benchmarks/gpu_check.py                      # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --device cpu --tiny  # the plumbing, on any machine (what the CPU test runs)

(a) correctness: every head against transformers' BERT on the same weights, fp32 (TF32 off) to 1e-5 and bf16
    autocast within bf16's tolerance; SDPA against eager attention, the unpadded path against the padded one,
    ALiBi's SDPA path against its eager one (ALiBi has no BERT to compare with);
(b) speed: pretraining (MLM + NSP) and pair fine-tuning tokens/s and peak memory, ScratchBert against
    transformers' BERT with SDPA, side by side in this process, at BERT-base's shape, bf16 autocast;
(c) 60 seconds of the 30-minute recipe on the GPU (configs/pretrain_wikipedia_30min.yaml; the offline
    default when ../shared/data is absent) with its held-out figures.
Without a CUDA device it prints {"skipped": "..."} and exits 0.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scratchbert  # noqa: E402
from bench_vs_transformers import model_pair  # noqa: E402  (identical weights through the conversion mapping)
from scratchbert.export import padded_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HEADS = {  # head -> the outputs compared
    "Model": ("last_hidden_state", "pooler_output"),
    "ForPreTraining": ("prediction_logits", "seq_relationship_logits"),
    "ForMaskedLM": ("logits",),
    "ForNextSentencePrediction": ("logits",),
    "ForSequenceClassification": ("logits",),
    "ForTokenClassification": ("logits",),
    "ForQuestionAnswering": ("start_logits", "end_logits"),
    "ForMultipleChoice": ("logits",),
}
BF16_TOLERANCE = 0.1  # largest |difference| allowed under bf16 autocast, on outputs of order 1


def padded_inputs(config, batch_size, seq_len, device, choices=None):
    """scratchbert.export's padded batch (rows padded by different amounts), repeated over `choices` when given."""
    batch = padded_batch(config, batch_size, seq_len)
    if choices:
        batch = {k: v.unsqueeze(1).expand(-1, choices, -1).contiguous() for k, v in batch.items()}  # [B, C, T]
    return {k: v.to(device) for k, v in batch.items()}


def largest_difference(a, b, mask) -> float:
    """Over real tokens for per-token outputs ([..., T, X] or [..., T]), everywhere else."""
    a, b = a.float(), b.float()
    if a.dim() >= 2 and a.shape[:mask.dim()] == mask.shape:
        a, b = a[mask.bool()], b[mask.bool()]
    return float((a - b).abs().max())


@torch.no_grad()
def compare_heads(config, device, batch_size, seq_len) -> dict:
    results = {}
    for head, names in HEADS.items():
        scratch, bert = model_pair(head, config)
        scratch, bert = scratch.to(device).eval(), bert.to(device).eval()
        choices = 2 if head == "ForMultipleChoice" else None
        inputs = padded_inputs(config, batch_size, seq_len, device, choices)
        row = {}
        for precision, enabled in (("fp32", False), ("bf16", True)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled):
                ours, theirs = scratch(**inputs), bert(**inputs)
            row[precision] = max(largest_difference(ours[n], theirs[n], inputs["attention_mask"]) for n in names)
        scratch.config.unpad_inputs = True
        unpadded = scratch(**inputs)
        scratch.config.unpad_inputs = False
        padded = scratch(**inputs)
        row["unpadded_vs_padded"] = max(largest_difference(unpadded[n], padded[n], inputs["attention_mask"]) for n in names)
        row["ok"] = row["fp32"] <= 1e-5 and row["bf16"] <= BF16_TOLERANCE and row["unpadded_vs_padded"] <= 1e-5
        results[head] = row
    for bias in ("none", "alibi"):  # SDPA against eager attention, in ScratchBert alone
        sdpa_config = scratchbert.ScratchBertConfig(**{**config.to_dict(), "attention_position_bias": bias})
        model = scratchbert.ScratchBertModel(sdpa_config).to(device).eval()
        inputs = padded_inputs(sdpa_config, batch_size, seq_len, device)
        model.set_attn_implementation("sdpa")
        sdpa = model(**inputs).last_hidden_state
        model.set_attn_implementation("eager")
        eager = model(**inputs).last_hidden_state
        difference = largest_difference(sdpa, eager, inputs["attention_mask"])
        results[f"sdpa_vs_eager_{bias}"] = {"fp32": difference, "ok": difference <= 1e-5}
    return results


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def speed(config, device, batch_size, seq_len, steps) -> dict:
    """Tokens/s and peak memory of a bf16 training step, ScratchBert against transformers' BERT (SDPA)."""
    report = {}
    for head in ("ForPreTraining", "ForSequenceClassification"):
        scratch, bert = model_pair(head, config)
        rows = {}
        for name, model in (("scratchbert", scratch), ("transformers", bert)):
            model.to(device).train()
            if name == "transformers":
                model.set_attn_implementation("sdpa")
            optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
            inputs = padded_inputs(config, batch_size, seq_len, device)
            labels = ({"labels": inputs["input_ids"].masked_fill(torch.rand(inputs["input_ids"].shape, device=device) > 0.15, -100),
                       "next_sentence_label": torch.zeros(batch_size, dtype=torch.long, device=device)}
                      if head == "ForPreTraining" else {"labels": torch.zeros(batch_size, dtype=torch.long, device=device)})

            def step():
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    loss = model(**inputs, **labels).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            step()  # warm-up: allocations, kernel selection
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                step()
            synchronize(device)
            seconds = time.perf_counter() - start
            rows[name] = {"tokens_per_second": int(inputs["attention_mask"].sum()) * steps / seconds,
                          "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None}
            model.to("cpu")
        rows["speedup"] = rows["scratchbert"]["tokens_per_second"] / rows["transformers"]["tokens_per_second"]
        report["pretraining" if head == "ForPreTraining" else "pair_fine_tuning"] = rows
    return report


def recipe_minute(device, minutes, tiny) -> dict:
    """The 30-minute recipe for `minutes` on this device, and its held-out figures."""
    from scratchbert import pretraining

    wiki = REPO.parent / "shared" / "data" / "wikipedia" / "wiki_en_sample.jsonl"
    config = "configs/pretrain_wikipedia_30min.yaml" if wiki.is_file() and not tiny else "configs/pretrain_offline.yaml"
    with tempfile.TemporaryDirectory() as out:
        argv = [str(REPO / config), "--output_dir", out, "--max_train_minutes", str(minutes), "--eval_strategy", "no",
                "--save_strategy", "no", "--report_to", "none", "--use_cpu", str(device.type == "cpu").lower()]
        if wiki.is_file() and not tiny:
            argv += ["--train_file", str(wiki)]
        if tiny:
            argv += ["--hidden_size", "64", "--num_hidden_layers", "1", "--num_attention_heads", "2",
                     "--intermediate_size", "128", "--max_steps", "5", "--bf16", "false"]
        results = pretraining.run(argv)
    keys = ("eval_mlm_masked_accuracy", "eval_mlm_unigram_accuracy", "eval_mlm_loss", "eval_nsp_accuracy",
            "train_tokens", "train_tokens_per_second", "steps")
    return {"config": config, **{k: results.get(k) for k in keys}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes and a few steps: the plumbing only")
    parser.add_argument("--recipe_minutes", type=float, default=1.0)
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device: this check needs one GPU (run with --device cpu --tiny for the plumbing)"}))
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 comparisons at fp32's precision
    torch.backends.cudnn.allow_tf32 = False
    base = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
    if args.tiny:
        base = dict(vocab_size=200, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    config = scratchbert.ScratchBertConfig(**base, max_position_embeddings=128, hidden_dropout_prob=0.0,
                                           attention_probs_dropout_prob=0.0)
    start = time.time()
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "transformers": transformers.__version__,
              "shape": {**base, "batch": 4 if args.tiny else 32, "sequence": 16 if args.tiny else 128}}
    report["correctness"] = compare_heads(config, device, 3, 16 if args.tiny else 128)
    report["speed"] = speed(config, device, 4 if args.tiny else 32, 16 if args.tiny else 128, 2 if args.tiny else 20)
    report["recipe"] = recipe_minute(device, 0.05 if args.tiny else args.recipe_minutes, args.tiny)
    report["all_correct"] = all(row["ok"] for row in report["correctness"].values())
    report["seconds"] = round(time.time() - start, 1)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0 if report["all_correct"] else 1


if __name__ == "__main__":
    sys.exit(main())
