"""runs.distributed: one tokenizer for every rank (rank 0's, or rank 0's error)."""

import json
from pathlib import Path

from scratchbert.cli import ConfigError
from scratchbert.runs.distributed import tokenizer_for_run
from conftest import run_on_ranks


def tokenizer_ranks(rank, world_size, out):
    import torch.distributed as dist

    from scratchbert import train_wordpiece_tokenizer

    dist.init_process_group("gloo")
    # Each rank would train a different vocabulary: the run must use rank 0's everywhere.
    texts = [f"rank{rank} words appear here often {rank}" * 3] * 20
    tokenizer = tokenizer_for_run(lambda: train_wordpiece_tokenizer(texts, vocab_size=60))
    try:
        tokenizer_for_run(lambda: (_ for _ in ()).throw(ConfigError("no tokenizer at /nowhere")))
        error = None
    except ConfigError as raised:
        error = str(raised)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"vocab": tokenizer.get_vocab(), "error": error}))
    dist.destroy_process_group()


def test_every_rank_uses_rank_zeros_tokenizer(tmp_path):
    run_on_ranks(tokenizer_ranks, str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert "rank0" in ranks[0]["vocab"] and ranks[1]["vocab"] == ranks[0]["vocab"]
    # Rank 0's failure reaches every rank as its own error, instead of leaving them waiting.
    assert ranks[0]["error"] == ranks[1]["error"] == "no tokenizer at /nowhere"
