"""ScratchBert against transformers' own BERT, side by side in one process, on the same weights and batches.

    python benchmarks/bench_vs_transformers.py                     # hidden 256, 4 layers, 4 heads, seq 128, batch 32
    python benchmarks/bench_vs_transformers.py --rounds 5 --steps 8 --end-to-end

Prints, for each figure, ScratchBert's value, transformers' value and the ratio:
1. pretraining tokens/s (real tokens) of a full step (forward, backward, fused AdamW) on NSP-shaped batches,
   fp32 and bf16, ScratchBert padded as run_pretraining.py runs it; and the 30-minute recipe's model (ALiBi,
   its 16k vocabulary) in bf16 against transformers' BERT of that shape: in the layout issue 20's "before" was
   measured in (with linear biases), as configured today (no linear biases), with the latter's model FLOP
   utilisation, and as configured but unpadded (unpad_inputs, an option); and the recipe's step with replaced-token
   detection (objective rtd: generator widths 1/4 and 1/2, half the encoder's depth (the default) or all of it
   (ELECTRA's), the encoder's heads or ELECTRA's 1, the discriminator's own MLM term) against its MLM + NSP step
   (ratio: rtd / mlm tokens/s);
2. sentence-pair classification on QQP-shaped batches, real (non-pad) tokens/s for fine-tuning and
   inference, against transformers padded to 128 (run_glue's default) and with dynamic padding;
3. peak memory of a pretraining step (torch profiler memory timeline);
4. model FLOP utilisation: useful FLOPs per second over the measured matmul peak of this machine.
Both models are timed in alternation over several rounds and the median is reported, so load on the
machine affects both alike. Data: ../shared/data when present, else the offline corpus. Results are also
written as JSON (--json).
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers

import scratchbert  # the installed package (pip install -e .), never the source tree by path
from scratchbert.blockwise_cross_entropy import use_blockwise_cross_entropy
from scratchbert.convert import bert_to_scratchbert_state_dict, scratchbert_config_to_bert
from scratchbert.corpus import load_documents
from scratchbert.pretraining_data import DataCollatorForPretraining, build_examples, tokenize_documents
from scratchbert.replaced_token_detection import ReplacedTokenDetectionModel, generator_config

REPO_ROOT = Path(__file__).resolve().parents[1]
# What configs/pretrain_wikipedia_30min.yaml changes from BERT's layout (its vocabulary is --recipe-vocab).
RECIPE_OPTIONS = dict(attention_position_bias="alibi", position_embedding_init="sinusoidal",
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
RECIPE_TODAY_OPTIONS = dict(linear_bias=False)  # since 2026-12-04; BERT has no biasless layout

SHARED = REPO_ROOT.parent / "shared" / "data"


# ----------------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------------


def corpus_and_tokenizer(vocab_size: int, seq_len: int):
    wiki = SHARED / "wikipedia" / "wiki_en_sample.jsonl"
    if wiki.is_file():
        documents, source = load_documents(train_file=str(wiki), max_documents=3000), str(wiki)
    else:
        documents, source = load_documents(corpus="offline"), "offline corpus (Python docs)"
    tokenizer = scratchbert.train_wordpiece_tokenizer(documents["text"], vocab_size=vocab_size, model_max_length=seq_len)
    return documents, tokenizer, source


def pretraining_batches(documents, tokenizer, seq_len, batch_size, count, seed=0):
    sentences = documents.map(tokenize_documents, batched=True, remove_columns=["text"], fn_kwargs={"tokenizer": tokenizer})
    examples = sentences.map(
        build_examples, batched=True, with_indices=True, remove_columns=["sentences"],
        fn_kwargs=dict(cls_token_id=tokenizer.cls_token_id, sep_token_id=tokenizer.sep_token_id, max_seq_length=seq_len, seed=seed),
    ).shuffle(seed=seed)
    collator = DataCollatorForPretraining(tokenizer=tokenizer, seed=seed)
    return [collator([examples[i] for i in range(b * batch_size, (b + 1) * batch_size)]) for b in range(count)]


def pair_texts():
    """QQP dev pairs when present, else sentence pairs from the offline corpus (same shape: two short texts)."""
    qqp = SHARED / "qqp" / "dev.tsv"
    if qqp.is_file():
        import csv

        with open(qqp, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        return [(r["question1"], r["question2"], int(r["is_duplicate"])) for r in rows], str(qqp)
    from scratchbert.corpus import offline_documents, split_sentences

    sentences = [s for d in offline_documents() for s in split_sentences(d)]
    return [(sentences[i], sentences[i + 1], i % 2) for i in range(0, len(sentences) - 1, 2)], "offline corpus sentence pairs"


def pair_batches(pairs, tokenizer, batch_size, count, pad_to=None, seed=0):
    import random

    rng = random.Random(seed)
    order = rng.sample(range(len(pairs)), batch_size * count)
    batches = []
    for b in range(count):
        chunk = [pairs[i] for i in order[b * batch_size : (b + 1) * batch_size]]
        encoded = tokenizer(
            [a for a, _, _ in chunk], [b_ for _, b_, _ in chunk], truncation=True, max_length=128,
            padding="max_length" if pad_to else "longest", return_tensors="pt",
        )
        encoded["labels"] = torch.tensor([y for _, _, y in chunk])
        batches.append(dict(encoded))
    return batches


# ----------------------------------------------------------------------------------------------------------------
# Models and timing
# ----------------------------------------------------------------------------------------------------------------


def in_vocabulary(batch: dict, vocab_size: int) -> dict:
    """The batch with token ids folded into a smaller vocabulary (a step's speed does not depend on which ids)."""
    labels = batch["labels"]
    return {**batch, "input_ids": batch["input_ids"] % vocab_size,
            "labels": torch.where(labels == -100, labels, labels % vocab_size)}


def model_pair(head: str, config, **scratch_options):
    """(ScratchBert, transformers BERT) with identical weights."""
    bert_config = scratchbert_config_to_bert(config)
    bert = getattr(transformers, f"Bert{head}")(bert_config)
    scratch_config = scratchbert.ScratchBertConfig(**{**config.to_dict(), **scratch_options})
    scratch = use_blockwise_cross_entropy(getattr(scratchbert, f"ScratchBert{head}")(scratch_config))  # as training runs it
    state = bert_to_scratchbert_state_dict(bert.state_dict())
    if head == "Model":  # the bare encoder's own keys carry no `scratchbert.` prefix
        state = {k.removeprefix("scratchbert."): v for k, v in state.items()}
    missing, unexpected = scratch.load_state_dict(state, strict=False)
    if set(missing) - {"mlm_head.decoder.weight"} or unexpected:  # the decoder is tied to the word embeddings
        raise RuntimeError(f"{head}: weights not carried over: missing {missing}, unexpected {unexpected}")
    return scratch, bert


def train_step(model, optimizer, batch, bf16):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


@torch.no_grad()
def infer_step(model, batch, bf16):
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        model(**inputs)


def timed_alternation(runners: dict, batches: dict, rounds: int, steps: int) -> dict:
    """runners: name -> fn(batch). Each round runs `steps` batches through every runner in turn."""
    for name, run in runners.items():  # warm-up (allocations, oneDNN kernel selection)
        run(batches[name][0])
    rates = {name: [] for name in runners}
    for r in range(rounds):
        for name, run in runners.items():
            chosen = [batches[name][(r * steps + i) % len(batches[name])] for i in range(steps)]
            tokens = sum(int(b["attention_mask"].sum()) for b in chosen)
            start = time.perf_counter()
            for batch in chosen:
                run(batch)
            rates[name].append(tokens / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def matmul_peak(dtype, n=2048, repeats=10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def step_peak_memory(model, optimizer, batch, bf16) -> float:
    """Peak bytes allocated during one training step, from the profiler's memory timeline (CPU)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import MemoryProfileTimeline

    train_step(model, optimizer, batch, bf16)  # optimizer state exists before the measured step
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        train_step(model, optimizer, batch, bf16)
    _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline("cpu")
    return float(max(sum(row) for row in sizes))


def useful_flops_per_token(config, seq_len, mask_fraction=0.15) -> float:
    """BERT's useful training FLOPs per token: 6 x encoder matmul params, attention scores, MLM head on masked tokens."""
    h, i, layers, v = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    ffn = 3 * h * i if getattr(config, "feed_forward_type", "mlp") == "glu" else 2 * h * i  # a GLU's ffn_in is [H, 2I]
    encoder = layers * (4 * h * h + ffn)  # QKV + output projection + the FFN matrices
    attention = layers * 2 * seq_len * h  # QK^T and AV per token
    mlm = mask_fraction * (h * h + h * v)  # transform + decoder, only where a label is
    return 6 * (encoder + attention + mlm)


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=30522)
    parser.add_argument("--recipe-vocab", type=int, default=16000, help="the recipe row's vocabulary (the 30-minute config's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--end-to-end", action="store_true", help="also time run_pretraining.py on the same shape")
    parser.add_argument("--json", default=str(REPO_ROOT / "benchmarks" / "results" / "latest.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    report = {"hardware": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                           "torch": torch.__version__, "transformers": transformers.__version__}}
    try:
        report["hardware"]["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rows = []

    def row(section, figure, ours, theirs, unit):
        ratio = ours / theirs if theirs else float("nan")
        rows.append({"section": section, "figure": figure, "scratchbert": ours, "transformers": theirs, "ratio": ratio, "unit": unit})
        print(f"{section:<24} {figure:<44} {ours:>12.4g} {theirs:>12.4g} {ratio:>7.2f}x  {unit}", flush=True)

    print("Preparing data and tokenizer...", flush=True)
    documents, tokenizer, source = corpus_and_tokenizer(args.vocab, args.seq)
    report["data"] = source
    config = scratchbert.ScratchBertConfig(  # BERT's vocabulary size even if the sample yields fewer WordPieces
        vocab_size=max(len(tokenizer), args.vocab), hidden_size=args.hidden, num_hidden_layers=args.layers, num_attention_heads=args.heads,
        intermediate_size=4 * args.hidden, max_position_embeddings=max(args.seq, 128), pad_token_id=tokenizer.pad_token_id,
    )
    count = args.rounds * args.steps + 1
    pretrain = pretraining_batches(documents, tokenizer, args.seq, args.batch, count)
    peak = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    report["matmul_peak_flops"] = peak
    print(f"Matmul peak: fp32 {peak['fp32'] / 1e12:.3f} TFLOP/s, bf16 {peak['bf16'] / 1e12:.3f} TFLOP/s on "
          f"{report['hardware']['cpu']} ({torch.get_num_threads()} threads)")
    print(f"{'section':<24} {'figure':<44} {'ScratchBert':>12} {'transformers':>12} {'ratio':>8}")

    # 1. Pretraining step, fp32 and bf16 autocast.
    # ScratchBert as run_pretraining.py runs it: padded (unpad_inputs is an option there, below for the recipe).
    scratch, bert = model_pair("ForPreTraining", config)
    scratch.train(), bert.train()
    opt_s = torch.optim.AdamW(scratch.parameters(), lr=1e-4, fused=True)
    opt_b = torch.optim.AdamW(bert.parameters(), lr=1e-4, fused=True)
    batches = {name: pretrain for name in ("s32", "sbf16", "b32", "bbf16")}
    rates = timed_alternation({
        "s32": lambda b: train_step(scratch, opt_s, b, False),
        "b32": lambda b: train_step(bert, opt_b, b, False),
        "sbf16": lambda b: train_step(scratch, opt_s, b, True),
        "bbf16": lambda b: train_step(bert, opt_b, b, True),
    }, batches, args.rounds, args.steps)
    row("pretraining", "tokens/s, fp32", rates["s32"], rates["b32"], "tokens/s")
    row("pretraining", "tokens/s, bf16 autocast", rates["sbf16"], rates["bbf16"], "tokens/s")
    row("pretraining", "tokens/s, ScratchBert bf16 vs transformers fp32", rates["sbf16"], rates["b32"], "tokens/s")

    # 1b. The 30-minute recipe's model (ALiBi, sin/cos position init, no dropout, its vocabulary) in bf16, against
    # transformers' BERT of the same shape in BERT's layout (it has no ALiBi) in fp32 and in bf16.
    recipe_config = scratchbert.ScratchBertConfig(**{**config.to_dict(), "vocab_size": max(len(tokenizer), args.recipe_vocab)})
    recipe_batches = [in_vocabulary(b, recipe_config.vocab_size) for b in pretrain]
    recipe, bert_recipe = model_pair("ForPreTraining", recipe_config, **RECIPE_OPTIONS)
    # Today's config also drops the layers' linear biases, a layout transformers' BERT has no weights for, so this
    # model keeps its own initial weights (a step's speed does not depend on them).
    recipe_today = use_blockwise_cross_entropy(scratchbert.ScratchBertForPreTraining(
        scratchbert.ScratchBertConfig(**{**recipe_config.to_dict(), **RECIPE_OPTIONS, **RECIPE_TODAY_OPTIONS})))
    for model in (recipe, recipe_today, bert_recipe):
        model.train()
    opt_r = torch.optim.AdamW(recipe.parameters(), lr=1e-4, fused=True)
    opt_rt = torch.optim.AdamW(recipe_today.parameters(), lr=1e-4, fused=True)
    opt_br = torch.optim.AdamW(bert_recipe.parameters(), lr=1e-4, fused=True)

    def unpadded_step(b):  # today's recipe model with unpad_inputs switched on for the step
        recipe_today.config.unpad_inputs = True
        try:
            train_step(recipe_today, opt_rt, b, True)
        finally:
            recipe_today.config.unpad_inputs = False

    recipe_rates = timed_alternation({
        "r": lambda b: train_step(recipe, opt_r, b, True),
        "rt": lambda b: train_step(recipe_today, opt_rt, b, True),
        "ru": unpadded_step,
        "b32": lambda b: train_step(bert_recipe, opt_br, b, False),
        "bbf16": lambda b: train_step(bert_recipe, opt_br, b, True),
    }, {name: recipe_batches for name in ("r", "rt", "ru", "b32", "bbf16")}, args.rounds, args.steps)
    row("recipe (ALiBi, bf16)", "tokens/s vs transformers fp32", recipe_rates["r"], recipe_rates["b32"], "tokens/s")
    row("recipe (ALiBi, bf16)", "tokens/s vs transformers bf16", recipe_rates["r"], recipe_rates["bbf16"], "tokens/s")
    row("recipe as configured", "no linear biases, tokens/s vs transformers fp32", recipe_rates["rt"], recipe_rates["b32"], "tokens/s")
    recipe_flops = useful_flops_per_token(recipe_config, args.seq)
    row("recipe as configured", "useful FLOP/s / bf16 matmul peak (transformers bf16)",
        recipe_rates["rt"] * recipe_flops / peak["bf16"], recipe_rates["bbf16"] * recipe_flops / peak["bf16"], "fraction")
    row("recipe, unpadded", "unpad_inputs, tokens/s vs transformers fp32", recipe_rates["ru"], recipe_rates["b32"], "tokens/s")
    row("recipe, unpadded", "useful FLOP/s / bf16 matmul peak (transformers bf16)",
        recipe_rates["ru"] * recipe_flops / peak["bf16"], recipe_rates["bbf16"] * recipe_flops / peak["bf16"], "fraction")
    # 1c. Replaced-token detection (objective: rtd) on the recipe as configured, against its MLM + NSP step: the
    # generator (a share of the width, its MLM head at masked positions only) and a head over every position.
    rtd_models = {}
    # (width, layers); None: the default (half the encoder's depth). The second row is as deep as the encoder, as
    # ELECTRA's generator.
    depth = recipe_config.num_hidden_layers
    for width, layers in ((0.25, None), (0.25, depth), (0.5, None)):
        rtd_config = scratchbert.ScratchBertConfig(**{**recipe_config.to_dict(), **RECIPE_OPTIONS, **RECIPE_TODAY_OPTIONS})
        rtd_config.pretraining_objective = "rtd"
        rtd_config.rtd_generator = generator_config(rtd_config, width, layers)
        rtd_config.rtd_loss_weight = 50.0
        model = use_blockwise_cross_entropy(ReplacedTokenDetectionModel(rtd_config)).train()
        name = f"generator width {width}" + (f", {layers} layers" if layers else ", half depth")
        rtd_models[name] = (model, torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True))
    rtd_rates = timed_alternation({
        "rt": lambda b: train_step(recipe_today, opt_rt, b, True),
        **{name: (lambda b, name=name: train_step(*rtd_models[name], b, True)) for name in rtd_models},
    }, {name: recipe_batches for name in ("rt", *rtd_models)}, args.rounds, args.steps)
    for name in rtd_models:
        row("recipe, objective rtd", f"{name}: tokens/s vs MLM + NSP (bf16)", rtd_rates[name], rtd_rates["rt"], "tokens/s")
    del recipe, recipe_today, bert_recipe, opt_r, opt_rt, opt_br, rtd_models

    # 3. Peak memory of a training step.
    if not args.skip_memory:
        memory_s = step_peak_memory(scratch, opt_s, pretrain[0], False)
        memory_b = step_peak_memory(bert, opt_b, pretrain[0], False)
        row("memory", "peak bytes of a pretraining step, fp32", memory_s, memory_b, "bytes")

    # 4. Model FLOP utilisation.
    flops = useful_flops_per_token(config, args.seq)
    for dtype, ours, theirs in (("fp32", rates["s32"], rates["b32"]), ("bf16", rates["sbf16"], rates["bbf16"])):
        row("model FLOP utilisation", f"useful FLOP/s / {dtype} matmul peak", ours * flops / peak[dtype], theirs * flops / peak[dtype], "fraction")
    del scratch, bert, opt_s, opt_b

    # 2. Sentence-pair classification on QQP-shaped batches.
    pairs, pair_source = pair_texts()
    report["pair_data"] = pair_source
    dynamic = pair_batches(pairs, tokenizer, args.batch, count)
    padded = pair_batches(pairs, tokenizer, args.batch, count, pad_to=128)
    real = sum(int(b["attention_mask"].sum()) for b in dynamic) / sum(b["attention_mask"].numel() for b in padded)
    print(f"Pair batches: {real:.0%} of 128-token slots hold real tokens ({pair_source})")
    scratch, bert = model_pair("ForSequenceClassification", config, unpad_inputs=True)
    scratch.train(), bert.train()
    opt_s = torch.optim.AdamW(scratch.parameters(), lr=1e-5, fused=True)
    opt_b = torch.optim.AdamW(bert.parameters(), lr=1e-5, fused=True)
    batches = {"s": dynamic, "b128": padded, "bdyn": dynamic}
    rates = timed_alternation({
        "s": lambda b: train_step(scratch, opt_s, b, False),
        "b128": lambda b: train_step(bert, opt_b, b, False),
        "bdyn": lambda b: train_step(bert, opt_b, b, False),
    }, batches, args.rounds, args.steps)
    row("pair fine-tuning", "real tokens/s vs transformers padded to 128", rates["s"], rates["b128"], "tokens/s")
    row("pair fine-tuning", "real tokens/s vs transformers dynamic padding", rates["s"], rates["bdyn"], "tokens/s")
    scratch.eval(), bert.eval()
    rates = timed_alternation({
        "s": lambda b: infer_step(scratch, b, False),
        "b128": lambda b: infer_step(bert, b, False),
        "bdyn": lambda b: infer_step(bert, b, False),
    }, batches, args.rounds, args.steps)
    row("pair inference", "real tokens/s vs transformers padded to 128", rates["s"], rates["b128"], "tokens/s")
    row("pair inference", "real tokens/s vs transformers dynamic padding", rates["s"], rates["bdyn"], "tokens/s")

    if args.end_to_end:
        report["end_to_end"] = end_to_end(args)
    report["rows"] = rows
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"Wrote {args.json}")


def end_to_end(args) -> dict:
    """run_pretraining.py on the same shape: does the whole script keep the model's speed?"""
    import tempfile

    out = Path(tempfile.mkdtemp())
    wiki = SHARED / "wikipedia" / "wiki_en_sample.jsonl"
    source = ["--train_file", str(wiki), "--max_documents", "3000"] if wiki.is_file() else []
    command = [
        sys.executable, str(REPO_ROOT / "run_pretraining.py"), "--output_dir", str(out / "run"), "--output", str(out / "r.json"),
        *source, "--hidden_size", str(args.hidden), "--num_hidden_layers", str(args.layers),
        "--num_attention_heads", str(args.heads), "--intermediate_size", str(4 * args.hidden),
        "--max_position_embeddings", str(max(args.seq, 128)), "--max_seq_length", str(args.seq),
        "--vocab_size", str(args.vocab), "--per_device_train_batch_size", str(args.batch), "--max_steps", "40",
        "--logging_steps", "10", "--save_strategy", "no", "--dupe_factor", "1", "--validation_split_percentage", "1",
    ]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = json.loads((out / "r.json").read_text())
    print(f"run_pretraining.py end to end, same shape, 40 steps: {results['train_tokens_per_second']:.4g} tokens/s "
          "(compare with the pretraining fp32 figure above)")
    return {"train_tokens_per_second": results["train_tokens_per_second"], "steps": results["steps"]}


if __name__ == "__main__":
    main()
