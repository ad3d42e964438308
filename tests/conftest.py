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
    # As the scripts do (runs.script_main): free the process group and the DDP wrapper's hold on it before the
    # interpreter exits, or a gloo worker thread can abort the rank with -6 after its work is done.
    from scratchbert.runs import end_process_group

    end_process_group()


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


# --------------------------------------------------------------------------------------------------------------
# GLUE folders in download_glue_data.py's layout, written row by row in each task's exact format
# --------------------------------------------------------------------------------------------------------------

MNLI_COLUMNS = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2"
GLUE_LABELS = {  # what the files hold, per task (the Hub's ids are checked against these in the tests)
    "CoLA": ["0", "1"], "SST-2": ["0", "1"], "MRPC": ["0", "1"], "QQP": ["0", "1"], "WNLI": ["0", "1"],
    "MNLI": ["entailment", "neutral", "contradiction"], "QNLI": ["entailment", "not_entailment"],
    "RTE": ["entailment", "not_entailment"], "STS-B": None,
}


def glue_texts(i: int, label) -> tuple[str, str]:
    """A pair whose words depend on the label (learnable), with a stray quote mark in some rows."""
    topic = f"topic{label}" if label is not None else "topic"
    quote = '"' if i % 5 == 0 else ""
    return f"{quote}The {topic} sentence number {i} is here.", f"And its {topic} partner {i} follows."


def write_glue_folder(root, folders=tuple(GLUE_LABELS), n_train=24, n_dev=12, n_test=6):
    """GLUE task folders with train, dev and test files exactly as download_glue_data.py leaves them."""
    root = Path(root)
    for folder in folders:
        labels = GLUE_LABELS[folder]
        (root / folder).mkdir(parents=True, exist_ok=True)

        def label_of(i):
            return f"{(i % 26) / 5:.3f}" if labels is None else labels[i % len(labels)]

        def write(name, header, rows, bom=False):
            text = ("\ufeff" if bom else "") + "".join(line + "\n" for line in ([header] if header else []) + rows)
            (root / folder / name).write_text(text, encoding="utf-8")

        def labelled_rows(n, offset):
            rows = []
            for i in range(offset, offset + n):
                label = label_of(i)
                a, b = glue_texts(i, label)
                rows.append({"CoLA": f"src{i}\t{label}\t\t{a}", "SST-2": f"{a}\t{label}",
                             "MRPC": f"{label}\t{i}\t{i + 1}\t{a}\t{b}",
                             "STS-B": f"{i}\tmain-news\tfile\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{label}",
                             "QQP": f"{i}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\t{label}",
                             "MNLI": f"{i}\t{i}\t{i}n\tfiction\t( {a} )\t( {b} )\t(ROOT {a})\t(ROOT {b})\t{a}\t{b}\t{label}" + ("\t{0}\t{0}\t{0}\t{0}\t{0}".format(label) if offset else "\t" + label),
                             "QNLI": f"{i}\t{a}\t{b}\t{label}", "RTE": f"{i}\t{a}\t{b}\t{label}",
                             "WNLI": f"{i}\t{a}\t{b}\t{label}"}[folder])
            return rows

        def test_rows(n):
            rows = []
            for i in range(n):
                a, b = glue_texts(1000 + i, None)
                rows.append({"CoLA": f"{i}\t{a}", "SST-2": f"{i}\t{a}", "MRPC": f"{i}\t{i}\t{i + 1}\t{a}\t{b}",
                             "STS-B": f"{i}\tmain-news\tfile\t2012\t{i}\tnone\tnone\t{a}\t{b}", "QQP": f"{i}\t{a}\t{b}",
                             "MNLI": f"{i}\t{i}\t{i}n\tfiction\t( {a} )\t( {b} )\t(ROOT {a})\t(ROOT {b})\t{a}\t{b}",
                             "QNLI": f"{i}\t{a}\t{b}", "RTE": f"{i}\t{a}\t{b}", "WNLI": f"{i}\t{a}\t{b}"}[folder])
            return rows

        headers = {
            "CoLA": (None, "index\tsentence"), "SST-2": ("sentence\tlabel", "index\tsentence"),
            "MRPC": ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "index\t#1 ID\t#2 ID\t#1 String\t#2 String"),
            "STS-B": ("index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
                      "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"),
            "QQP": ("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "id\tquestion1\tquestion2"),
            "MNLI": (MNLI_COLUMNS + "\tlabel1\tgold_label", MNLI_COLUMNS),
            "QNLI": ("index\tquestion\tsentence\tlabel", "index\tquestion\tsentence"),
            "RTE": ("index\tsentence1\tsentence2\tlabel", "index\tsentence1\tsentence2"),
            "WNLI": ("index\tsentence1\tsentence2\tlabel", "index\tsentence1\tsentence2"),
        }
        train_header, test_header = headers[folder]
        bom = folder == "MRPC"
        write("train.tsv", train_header, labelled_rows(n_train, 0), bom)
        if folder == "MNLI":
            dev_header = MNLI_COLUMNS + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
            for kind in ("matched", "mismatched"):
                write(f"dev_{kind}.tsv", dev_header, labelled_rows(n_dev, 500))
                write(f"test_{kind}.tsv", test_header, test_rows(n_test))
        else:
            write("dev.tsv", train_header, labelled_rows(n_dev, 500), bom)
            write("test.tsv", test_header, test_rows(n_test), bom)
    return root
