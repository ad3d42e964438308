"""Text sources for pretraining, each turned into a `datasets` dataset of documents with a `text` column.

Sources: a Hub dataset (optionally streamed), local files (BERT-format plain text, json/jsonl/csv/parquet),
the offline default (the Python documentation that ships with every CPython, real English prose needing no
download), and a synthetic generator for smoke tests and speed runs.
"""

import functools
import random
import re
from pathlib import Path

import datasets

LOCAL_FORMATS = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}

# A sentence ends at . ! or ? (optionally closed by a quote or bracket, which stays with it) followed by space and
# a capital, digit, quote or bracket. Only the space is split on: both ends live in lookarounds. Abbreviations
# occasionally split a sentence: harmless for pretraining, as in most BERT reproductions.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+(?=[A-Z0-9\"'(\[])")


class CorpusError(ValueError):
    """A text source that cannot be used; the message says which and why."""


def split_sentences(text: str) -> list[str]:
    """Paragraphs (lines) -> sentences, dropping empty ones. Short title lines stay as their own sentence."""
    sentences = []
    for paragraph in text.split("\n"):
        paragraph = " ".join(paragraph.split())
        if paragraph:
            sentences.extend(s for s in _SENTENCE_END.split(paragraph) if s.strip())
    return sentences


def read_bert_format(path: str | Path) -> list[str]:
    """The original BERT format: one sentence per line, a blank line between documents -> one text per document."""
    documents, current = [], []
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                documents.append("\n".join(current))
                current = []
    if current:
        documents.append("\n".join(current))
    return documents


def prose_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of reST-ish documentation: code, `>>>` sessions, tables and headings are dropped by a
    simple test (enough words, mostly alphabetic, ending like a sentence)."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if not lines or set(lines[-1]) <= set("*=-~^"):
            continue
        paragraph = " ".join(lines)
        words = paragraph.split()
        alphabetic = sum(w.strip(".,;:()\"'").isalpha() for w in words) / len(words)
        if len(words) >= 6 and alphabetic > 0.75 and paragraph[-1] in ".:" and ">>>" not in paragraph:
            paragraphs.append(paragraph)
    return paragraphs


# Standard-library folders left out of the docstring corpus: tests (generated strings, fixtures), and
# packages whose docstrings are mostly code or that other sources already cover.
_SKIPPED_STDLIB_FOLDERS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "turtledemo",
                           "ensurepip", "__pycache__", "config-3"}


def stdlib_docstring_documents() -> list[str]:
    """The standard library's docstrings (module, class and function), a document per module, prose only.

    Read from the .py sources with `ast` (nothing is imported), in sorted path order: the same Python gives the
    same documents. English prose that ships with every CPython. (A document per docstring was tried: more,
    shorter documents, and the offline default learned less from them: docs/lab-notebook.md, o09.)
    """
    import ast
    import os
    import sysconfig

    root = Path(sysconfig.get_paths()["stdlib"])
    documents = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in _SKIPPED_STDLIB_FOLDERS and not d.startswith((".", "config-")))
        for name in sorted(f for f in files if f.endswith(".py")):
            try:
                tree = ast.parse((Path(folder) / name).read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            docstrings, nodes = [], [tree]
            while nodes:  # the module, then its classes and functions, nested ones too (not every node: slow)
                node = nodes.pop(0)
                docstrings.append(ast.get_docstring(node) or "")
                nodes += [n for n in node.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
            paragraphs = [p for docstring in docstrings for p in prose_paragraphs(docstring)]
            if paragraphs:
                documents.append("\n".join(paragraphs))
    return documents


@functools.lru_cache(maxsize=1)
def _offline_documents() -> tuple[str, ...]:
    from pydoc_data.topics import topics  # a 1 MB module: loaded only when the offline corpus is asked for

    help_topics = ["\n".join(prose_paragraphs(topics[name])) for name in sorted(topics)]
    return tuple(d for d in help_topics if d) + tuple(stdlib_docstring_documents())


def offline_documents() -> list[str]:
    """The offline corpus: the Python documentation shipped with CPython, real English prose with no download.

    The help topics (pydoc_data: 78 documents, ~50k words), then the standard library's docstrings (a document
    per module, ~420 documents, ~190k words on CPython 3.11): enough that a held-out tenth scores ~5,000 masked
    tokens and ~450 sentence pairs, where the help topics alone gave 958 and ~60.
    """
    return list(_offline_documents())


SYNTHETIC_DOCUMENTS = 2000  # the synthetic corpus's size when max_documents does not set it


def synthetic_documents(num_documents: int = SYNTHETIC_DOCUMENTS, seed: int = 0) -> list[str]:
    """Random-word documents where sentences of one document share a topic vocabulary.

    So a true next sentence B shares words with A and a random B mostly does not: NSP and MLM are both
    learnable, which makes this a quick smoke test that training works at all.
    """
    rng = random.Random(seed)
    lexicon = [f"w{i}" for i in range(2000)]
    documents = []
    for _ in range(num_documents):
        topic = rng.sample(lexicon, 40)
        sentences = []
        for _ in range(rng.randint(2, 8)):
            words = [rng.choice(topic) for _ in range(rng.randint(5, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        documents.append(" ".join(sentences))
    return documents


def _yield_documents(texts):
    for text in texts:
        yield {"text": text}


def documents_from_texts(texts: list[str], cache_dir: str | None = None) -> datasets.Dataset:
    """An on-disk dataset whose fingerprint depends only on the texts, so later `map`s hit the cache next run."""
    return datasets.Dataset.from_generator(_yield_documents, gen_kwargs={"texts": texts}, cache_dir=cache_dir)


def load_documents(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    train_file: str | None = None,
    corpus: str | None = None,
    text_column: str = "text",
    streaming: bool = False,
    max_documents: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
):
    """Load one source as a dataset (or IterableDataset when streaming) with a single `text` column.

    Exactly one of `dataset_name`, `train_file` or `corpus` ("offline", "synthetic") may be given; none means
    the offline default. The synthetic corpus generates `max_documents` documents (SYNTHETIC_DOCUMENTS when unset).
    Errors (missing file, empty corpus, unknown column) are raised before any work.
    """
    chosen = [name for name, value in (("dataset_name", dataset_name), ("train_file", train_file), ("corpus", corpus)) if value]
    if len(chosen) > 1:
        raise CorpusError(f"give one text source, not {' and '.join(chosen)}")

    if dataset_name:
        try:
            documents = datasets.load_dataset(
                dataset_name, dataset_config_name, split="train", streaming=streaming, cache_dir=cache_dir
            )
        except Exception as error:  # network, unknown name, missing config: say which dataset
            raise CorpusError(f"cannot load Hub dataset {dataset_name!r} ({dataset_config_name}): {error}") from None
    elif train_file:
        documents = _load_local(train_file, text_column, streaming, cache_dir)
    else:
        corpus = corpus or "offline"
        if corpus == "offline":
            texts = offline_documents()
        elif corpus == "synthetic":
            texts = synthetic_documents(SYNTHETIC_DOCUMENTS if max_documents is None else max_documents, seed)
        else:
            raise CorpusError(f"corpus must be 'offline' or 'synthetic', got {corpus!r}")
        documents = documents_from_texts(texts, cache_dir)
        text_column = "text"

    columns = documents.column_names if documents.column_names is not None else list(next(iter(documents)).keys())
    if text_column not in columns:
        raise CorpusError(f"text column {text_column!r} not found; the data has columns {', '.join(columns)}")
    if text_column != "text":
        documents = documents.rename_column(text_column, "text")
    documents = documents.select_columns(["text"])
    if max_documents is not None:
        documents = documents.take(max_documents) if streaming else documents.select(range(min(max_documents, len(documents))))
    if not streaming and len(documents) == 0:
        raise CorpusError("the corpus holds no documents")
    return documents


def _load_local(train_file: str, text_column: str, streaming: bool, cache_dir: str | None):
    path = Path(train_file)
    if not path.is_file():
        raise CorpusError(f"training file {train_file} does not exist")
    if path.stat().st_size == 0:
        raise CorpusError(f"training file {train_file} is empty")
    kind = LOCAL_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise CorpusError(f"unsupported file type {path.suffix!r}; use one of {', '.join(LOCAL_FORMATS)}")
    if kind == "text":  # BERT format: documents separated by blank lines
        texts = read_bert_format(path)
        if not texts:
            raise CorpusError(f"training file {train_file} holds no text")
        dataset = documents_from_texts(texts, cache_dir)
        return dataset.to_iterable_dataset() if streaming else dataset
    kwargs = {"delimiter": "\t", "quoting": 3} if path.suffix.lower() == ".tsv" else {}
    try:
        return datasets.load_dataset(
            kind, data_files=str(path), split="train", streaming=streaming, cache_dir=cache_dir, **kwargs
        )
    except Exception as error:
        raise CorpusError(f"cannot read {train_file} as {kind}: {error}") from None
