"""Shared fixtures: tiny configs, a tiny WordPiece tokenizer and batches with padding and token types, all local."""

import os
import socket
import time
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import scratchbert  # noqa: E402  (registers the Auto classes)
from scratchbert import ScratchBertConfig  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

SAMPLE_TEXTS = [
    "The cat sat on the mat. It was a sunny day.",
    "Transformers learn contextual representations of words.",
    "BERT is pretrained with masked language modelling and next sentence prediction.",
    "A quick brown fox jumps over the lazy dog while the dog sleeps.",
    "Tokenizers split unbelievably long words into word pieces.",
] * 20


def tiny_config(**overrides) -> ScratchBertConfig:
    values = dict(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    values.update(overrides)
    return ScratchBertConfig(**values)


def make_batch(config, batch_size=3, seq_len=12, seed=0, pad_last=True):
    """Random ids with [CLS]/[SEP]-free content, two segments, and right padding on some rows."""
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, config.vocab_size, (batch_size, seq_len), generator=g)
    token_type_ids = torch.zeros_like(input_ids)
    token_type_ids[:, seq_len // 2 :] = 1
    attention_mask = torch.ones_like(input_ids)
    if pad_last:
        for row in range(1, batch_size):
            attention_mask[row, seq_len - 2 * row :] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, config.pad_token_id)
    token_type_ids = token_type_ids.masked_fill(attention_mask == 0, 0)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}


@pytest.fixture
def config():
    return tiny_config()


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    scratchbert.train_wordpiece_tokenizer(SAMPLE_TEXTS, vocab_size=120, model_max_length=64, save_directory=str(folder))
    return folder


def requires_shared_data(*parts):
    path = SHARED_DATA.joinpath(*parts)
    return pytest.mark.skipif(not path.exists(), reason=f"shared data {path} is absent")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(target, rank, world_size, port, args):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    target(rank, world_size, *args)


def run_on_ranks(target, *args, world_size=2, timeout=300):
    """Run target(rank, world_size, *args) in `world_size` fresh processes with torchrun's environment.

    `target` must be a module-level function of a test module (it is imported in each process). Results go
    through files the target writes; a process that fails or hangs fails the test.
    """
    context = torch.multiprocessing.get_context("spawn")
    port = free_port()
    processes = [context.Process(target=_rank_main, args=(target, rank, world_size, port, args)) for rank in range(world_size)]
    for process in processes:
        process.start()
    deadline = time.monotonic() + timeout
    for process in processes:
        process.join(max(deadline - time.monotonic(), 1))
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [p.exitcode for p in processes] == [0] * world_size, f"rank exit codes {[p.exitcode for p in processes]}"
