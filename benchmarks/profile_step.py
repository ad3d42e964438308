"""Where a pretraining step's time goes, and what torch.compile buys: torch.profiler over ScratchBert's step.

    python benchmarks/profile_step.py                                # the recipe's shape and BERT-base's, bf16 + fp32
    python benchmarks/profile_step.py --shapes recipe --dtypes bf16 --compile
    python benchmarks/profile_step.py --dtypes bf16 --attention --json benchmarks/results/profile_attention.json
    python benchmarks/profile_step.py --shapes recipe --dtypes bf16 --loss --rounds 5 --steps 8
    python benchmarks/profile_step.py --shapes recipe --dtypes bf16 --unpad --rounds 5 --steps 8

For each shape and dtype, on real batches (the Wikipedia sample when ../shared/data is present, else the offline
corpus), with fused AdamW as every config uses:
1. ms per step, unprofiled (median of --steps steps after warm-up);
2. the step's profiled CPU time split by kind of op (self time of every aten op, so the shares add up to 100 %):
   matmuls, attention (SDPA and its backward), LayerNorm, elementwise ops (activations, residual adds, dropout,
   masks), dtype casts and copies, embedding and indexing (gathers, the sparse MLM gather), the loss
   (log-softmax, NLL), the optimizer, and everything else (autograd bookkeeping, views);
3. the share of the step taken by parts measured on their own: the MLM head's forward and backward on the
   encoder's output, the optimizer step, and the data path (collating and masking one batch, which the
   Trainer's loader does before the step; a share of the step's time, not a part of it);
4. with --compile: the same step with torch.compile(model) against eager, alternated in one process; compile
   time is reported apart and not counted in the throughput;
5. with --attention (bf16 only): the step with attention spelled out as matmuls and a softmax, the model's path for
   bf16 training on CPU, against SDPA everywhere, same weights and batches, alternated in one process;
6. with --loss (bf16 only): the step with the MLM loss computed a block of rows at a time (the model's path on
   CPU, BlockwiseCrossEntropySum) against F.cross_entropy on fp32 logits, alternated the same way;
7. with --unpad: the step with `config.unpad_inputs` (padding dropped before the embeddings, every per-token
   block run on the real tokens only) against the padded step, alternated the same way. Pretraining pairs are
   shorter than the batch's longest in about a fifth of their slots on the Wikipedia sample.
Results go to benchmarks/results/profile.json; docs/performance.md holds the figures and what they say.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scratchbert  # noqa: E402
import scratchbert.blockwise_cross_entropy  # noqa: E402
from bench_vs_transformers import corpus_and_tokenizer, matmul_peak, useful_flops_per_token  # noqa: E402
from scratchbert.pretraining_data import DataCollatorForPretraining, build_examples, tokenize_documents  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

SHAPES = {
    # configs/pretrain_wikipedia_30min.yaml: BERT-mini's shape with ALiBi, sin/cos positions, no dropout.
    "recipe": dict(vocab_size=16000, hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024,
                   attention_position_bias="alibi", position_embedding_init="sinusoidal",
                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, linear_bias=False),
    # BERT-base in BERT's own layout.
    "bert-base": dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    # For the plumbing test only.
    "tiny": dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
}

# Op name (aten::...) -> kind. The first rule whose words occur in the name decides; the rest is "other".
KINDS = (
    # The loss before attention: "aten::_log_softmax_backward_data" holds attention's "softmax_backward" too.
    ("loss", ("log_softmax", "nll_loss", "cross_entropy", "logsumexp")),
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention", "softmax_backward", "aten::_softmax")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm", "mkldnn")),
    ("layer norm", ("layer_norm",)),
    ("optimizer", ("adam", "_foreach")),
    ("casts and copies", ("aten::copy_", "aten::_to_copy", "aten::to", "aten::clone", "aten::contiguous")),
    ("embedding and indexing", ("embedding", "index", "gather", "scatter", "masked_select", "nonzero", "aten::take")),
    ("elementwise", ("aten::add", "aten::mul", "aten::div", "aten::sub", "gelu", "tanh", "dropout", "aten::where",
                     "aten::masked_fill", "aten::fill_", "aten::zero_", "aten::sum", "aten::neg", "aten::exp",
                     "aten::rsub", "aten::eq", "aten::ne", "aten::bernoulli", "aten::threshold", "aten::sqrt", "aten::lerp")),
)


def kind_of(op_name: str) -> str:
    for kind, words in KINDS:
        if any(word in op_name for word in words):
            return kind
    return "other"


def batches_and_collator(documents, tokenizer, seq_len, batch_size, count, seed=0):
    """Collated MLM + NSP batches, and the (examples, collator) to time the data path with."""
    sentences = documents.map(tokenize_documents, batched=True, remove_columns=["text"], fn_kwargs={"tokenizer": tokenizer})
    examples = sentences.map(
        build_examples, batched=True, with_indices=True, remove_columns=["sentences"],
        fn_kwargs=dict(cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id, max_seq_length=seq_len, seed=seed),
    ).shuffle(seed=seed)
    collator = DataCollatorForPretraining(tokenizer=tokenizer, seed=seed)
    rows = [[examples[i] for i in range(b * batch_size, (b + 1) * batch_size)] for b in range(count)]
    return [collator(r) for r in rows], rows, collator


def train_step(model, optimizer, batch, bf16):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def median_seconds(fn, items, repeats=1):
    times = []
    for item in items:
        start = time.perf_counter()
        for _ in range(repeats):
            fn(item)
        times.append((time.perf_counter() - start) / repeats)
    return statistics.median(times)


def op_kind_shares(model, optimizer, batches, bf16) -> dict:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches:
            train_step(model, optimizer, batch, bf16)
    by_kind, by_op = {}, {}
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            kind = "other"  # autograd and profiler bookkeeping, record_function scopes
        else:
            kind = kind_of(event.key)
        by_kind[kind] = by_kind.get(kind, 0.0) + event.self_cpu_time_total
        by_op[event.key] = event.self_cpu_time_total
    total = sum(by_kind.values())
    top = sorted(by_op.items(), key=lambda kv: -kv[1])[:12]
    return {
        "shares": {k: v / total for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "top_ops": {k: v / total for k, v in top},
    }


def mlm_head_seconds(model, batch, bf16) -> float:
    """The MLM head's forward + backward (sparse prediction and loss), on the encoder's output alone."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        hidden = model.scratchbert(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}).last_hidden_state
    hidden = hidden.detach().requires_grad_(True)

    def run(_):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            _, (loss_sum, count) = model.mlm_logits_and_loss(hidden, batch["labels"])
        (loss_sum / count).backward()

    run(None)
    seconds = median_seconds(run, range(5))
    model.zero_grad(set_to_none=True)
    return seconds


def profile_shape(name, options, documents, tokenizer, args) -> dict:
    config = scratchbert.ScratchBertConfig(**options, max_position_embeddings=max(args.seq, 128), pad_token_id=tokenizer.pad_token_id)
    batches, rows, collator = batches_and_collator(documents, tokenizer, args.seq, args.batch, args.steps + 2)
    tokens_per_step = args.batch * args.seq
    real_share = sum(int(b["attention_mask"].sum()) for b in batches[2:]) / (len(batches[2:]) * tokens_per_step)
    result = {"config": options, "batch": args.batch, "seq": args.seq, "real_token_share": real_share, "dtypes": {}}
    data_seconds = median_seconds(collator, rows[:5])
    for dtype in args.dtypes:
        bf16 = dtype == "bf16"
        torch.manual_seed(0)
        model = scratchbert.blockwise_cross_entropy.use_blockwise_cross_entropy(scratchbert.ScratchBertForPreTraining(config).train())
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        for batch in batches[:2]:  # warm-up: allocations, oneDNN kernel choice, optimizer state
            train_step(model, optimizer, batch, bf16)
        step = median_seconds(lambda b: train_step(model, optimizer, b, bf16), batches[2:])
        kinds = op_kind_shares(model, optimizer, batches[2:4], bf16)
        for batch in batches[:1]:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(**batch).loss.backward()
        optimizer_seconds = median_seconds(lambda _: optimizer.step(), range(5))  # on real gradients
        optimizer.zero_grad(set_to_none=True)
        head_seconds = mlm_head_seconds(model, batches[2], bf16)
        entry = {
            "ms_per_step": 1000 * step,
            "tokens_per_second": tokens_per_step / step,
            "op_kinds": kinds["shares"],
            "top_ops": kinds["top_ops"],
            "parts": {
                "mlm_head_forward_backward": head_seconds / step,
                "optimizer_step": optimizer_seconds / step,
                "data_path_collate_and_mask": data_seconds / step,
            },
        }
        if args.compile:
            entry["compile"] = compile_comparison(config, batches, bf16, args)
        if args.attention and bf16:
            entry["attention"] = attention_comparison(model, optimizer, batches, bf16, args)
        if args.loss and bf16:
            entry["loss"] = loss_comparison(model, optimizer, batches, bf16, args)
        if args.unpad:
            entry["unpad"] = unpad_comparison(model, optimizer, batches, bf16, args)
        result["dtypes"][dtype] = entry
        print(f"\n{name}, {dtype}: {entry['ms_per_step']:.1f} ms/step, {entry['tokens_per_second']:.0f} tokens/s", flush=True)
        for kind, share in entry["op_kinds"].items():
            print(f"  {kind:<24} {share:6.1%}")
        for part, share in entry["parts"].items():
            print(f"  [{part}] {share:6.1%} of a step")
        if args.compile:
            c = entry["compile"]
            print(f"  torch.compile: {c['compiled_tokens_per_second']:.0f} vs eager {c['eager_tokens_per_second']:.0f} "
                  f"tokens/s ({c['speedup']:.2f}x), compile time {c['compile_seconds']:.0f} s")
        if "attention" in entry:
            a = entry["attention"]
            print(f"  attention spelled out: {a['explicit_tokens_per_second']:.0f} vs SDPA {a['sdpa_tokens_per_second']:.0f} "
                  f"tokens/s ({a['speedup']:.2f}x)")
        if "loss" in entry:
            c = entry["loss"]
            print(f"  blockwise cross-entropy: {c['blockwise_tokens_per_second']:.0f} vs plain {c['plain_tokens_per_second']:.0f} "
                  f"tokens/s ({c['speedup']:.2f}x)")
        if "unpad" in entry:
            c = entry["unpad"]
            print(f"  unpadded: {c['unpadded_tokens_per_second']:.0f} vs padded {c['padded_tokens_per_second']:.0f} "
                  f"slots/s ({c['speedup']:.2f}x); {c['real_token_share']:.0%} of the batches' slots are real tokens")
    return result


def compile_comparison(config, batches, bf16, args) -> dict:
    """Eager against torch.compile(model) (inductor), same weights and batches, alternated over rounds."""
    torch.manual_seed(0)
    eager = scratchbert.blockwise_cross_entropy.use_blockwise_cross_entropy(scratchbert.ScratchBertForPreTraining(config).train())
    compiled_model = scratchbert.ScratchBertForPreTraining(config).train()
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model)
    opt_e = torch.optim.AdamW(eager.parameters(), lr=1e-4, fused=True)
    opt_c = torch.optim.AdamW(compiled_model.parameters(), lr=1e-4, fused=True)
    start = time.perf_counter()
    for batch in batches[:2]:  # compiles (and recompiles once for dynamic shapes, if it must)
        train_step(compiled, opt_c, batch, bf16)
    compile_seconds = time.perf_counter() - start
    for batch in batches[:2]:
        train_step(eager, opt_e, batch, bf16)
    rates = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        rates["eager"].append(1 / median_seconds(lambda b: train_step(eager, opt_e, b, bf16), batches[2:]))
        rates["compiled"].append(1 / median_seconds(lambda b: train_step(compiled, opt_c, b, bf16), batches[2:]))
    tokens = args.batch * args.seq
    eager_rate, compiled_rate = tokens * statistics.median(rates["eager"]), tokens * statistics.median(rates["compiled"])
    return {"eager_tokens_per_second": eager_rate, "compiled_tokens_per_second": compiled_rate,
            "speedup": compiled_rate / eager_rate, "compile_seconds": compile_seconds}


def switch_comparison(owner, switch: str, paths: tuple[str, str], model, optimizer, batches, bf16, args) -> dict:
    """A class-wide switch of the model off (paths[0]) against on (paths[1], the model's default path).

    One model and optimizer, the switch flipped between rounds: same weights, batches and allocator.
    """
    rates = {path: [] for path in paths}
    before = getattr(owner, switch)
    try:
        for _ in range(args.rounds):
            for path in paths:
                setattr(owner, switch, path == paths[1])
                train_step(model, optimizer, batches[0], bf16)  # warm-up for this path's kernels
                rates[path].append(1 / median_seconds(lambda b: train_step(model, optimizer, b, bf16), batches[2:]))
    finally:
        setattr(owner, switch, before)
    tokens = args.batch * args.seq
    off_rate, on_rate = (tokens * statistics.median(rates[path]) for path in paths)
    return {f"{paths[0]}_tokens_per_second": off_rate, f"{paths[1]}_tokens_per_second": on_rate, "speedup": on_rate / off_rate}


def attention_comparison(model, optimizer, batches, bf16, args) -> dict:
    """The model's own path for bf16 training on CPU (attention as matmuls + softmax) against SDPA everywhere."""
    attention = scratchbert.modeling_scratchbert.ScratchBertSelfAttention
    return switch_comparison(attention, "explicit_softmax_for_cpu_bf16_training", ("sdpa", "explicit"),
                             model, optimizer, batches, bf16, args)


def loss_comparison(model, optimizer, batches, bf16, args) -> dict:
    """The CPU low-precision loss computed a block of rows at a time against F.cross_entropy on fp32 logits."""
    blockwise = scratchbert.blockwise_cross_entropy.BlockwiseCrossEntropySum
    return switch_comparison(blockwise, "enabled_on_cpu", ("plain", "blockwise"), model, optimizer, batches, bf16, args)


def unpad_comparison(model, optimizer, batches, bf16, args) -> dict:
    """The step with padding dropped (config.unpad_inputs) against the padded step: one model, the switch flipped."""
    result = switch_comparison(model.config, "unpad_inputs", ("padded", "unpadded"), model, optimizer, batches, bf16, args)
    real = sum(int(b["attention_mask"].sum()) for b in batches[2:])
    return {**result, "real_token_share": real / sum(b["attention_mask"].numel() for b in batches[2:])}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="recipe,bert-base", help=f"comma-separated, of {', '.join(SHAPES)}")
    parser.add_argument("--dtypes", default="bf16,fp32")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per figure (after 2 warm-up steps)")
    parser.add_argument("--rounds", type=int, default=3, help="eager/compiled alternations with --compile")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(model) against eager")
    parser.add_argument("--attention", action="store_true",
                        help="also time attention spelled out (bf16 training on CPU) against SDPA")
    parser.add_argument("--loss", action="store_true",
                        help="also time the blockwise cross-entropy (bf16 on CPU) against F.cross_entropy on fp32 logits")
    parser.add_argument("--unpad", action="store_true",
                        help="also time the unpadded step (config.unpad_inputs) against the padded one")
    parser.add_argument("--json", default=str(REPO_ROOT / "benchmarks" / "results" / "profile.json"))
    args = parser.parse_args(argv)
    args.dtypes = args.dtypes.split(",")
    shapes = args.shapes.split(",")
    unknown = [s for s in shapes if s not in SHAPES] + [d for d in args.dtypes if d not in ("bf16", "fp32")]
    if unknown:
        parser.error(f"unknown shape or dtype {unknown}: shapes are {list(SHAPES)}, dtypes bf16 and fp32")
    torch.manual_seed(0)
    vocab = min(SHAPES[s]["vocab_size"] for s in shapes)  # one WordPiece vocabulary whose ids fit every shape
    documents, tokenizer, source = corpus_and_tokenizer(vocab, args.seq)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "unknown")
    report = {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__, "data": source,
              "matmul_peak_flops": {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}, "shapes": {}}
    print(f"{cpu}, {torch.get_num_threads()} threads; data: {source}")
    for name in shapes:
        options = dict(SHAPES[name], vocab_size=max(SHAPES[name]["vocab_size"], len(tokenizer)))
        shape = profile_shape(name, options, documents, tokenizer, args)
        flops = useful_flops_per_token(scratchbert.ScratchBertConfig(**options), args.seq)
        for dtype, entry in shape["dtypes"].items():
            # Useful FLOPs are the real tokens' (bench_vs_transformers.py counts the same); tokens/s count slots.
            real_tokens_per_second = entry["tokens_per_second"] * shape["real_token_share"]
            entry["model_flop_utilisation"] = real_tokens_per_second * flops / report["matmul_peak_flops"][dtype]
            print(f"{name}, {dtype}: model FLOP utilisation {entry['model_flop_utilisation']:.2f} of the {dtype} matmul peak")
        report["shapes"][name] = shape
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"Wrote {args.json}")


if __name__ == "__main__":
    main()
