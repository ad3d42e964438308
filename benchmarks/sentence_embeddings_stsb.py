"""Zero-shot sentence embeddings: STS-B dev correlation of the cosine between two sentences' embeddings, with no
fine-tuning, for a checkpoint and for the same architecture from random weights (issue 19).

    python benchmarks/sentence_embeddings_stsb.py outputs/pretrain-wikipedia-30min --glue_dir ../shared/data/glue

Both models are loaded through sentence-transformers from a saved folder (the files every ScratchBert save writes:
mean of the last hidden states over real tokens), so the figure is what a user of
`SentenceTransformer(folder, trust_remote_code=True)` gets. Prints one JSON: Spearman and Pearson x100 per side.
"""

import argparse
import json
import tempfile

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from sentence_transformers import SentenceTransformer
from transformers import AutoConfig, AutoModel, AutoTokenizer

import scratchbert  # noqa: F401  (registers the Auto classes)
from scratchbert.glue_tasks import read_local_task, task_named
from scratchbert.sentence_embeddings import write_sentence_transformers_files


def correlations(folder: str, pairs) -> dict:
    embedder = SentenceTransformer(folder, trust_remote_code=True, device="cpu")
    first = embedder.encode(pairs["sentence1"], batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    second = embedder.encode(pairs["sentence2"], batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
    cosine = (first * second).sum(axis=1)
    gold = np.asarray(pairs["label"], dtype=np.float64)
    return {"spearman": round(100 * spearmanr(cosine, gold).statistic, 1),
            "pearson": round(100 * pearsonr(cosine, gold).statistic, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="A saved ScratchBert folder (with its tokenizer)")
    parser.add_argument("--glue_dir", default="../shared/data/glue", help="GLUE folders; STS-B/dev.tsv is read")
    parser.add_argument("--seed", type=int, default=42, help="Seed of the random-weights model")
    args = parser.parse_args()

    dev = read_local_task(args.glue_dir, task_named("stsb"))["validation"]
    report = {"checkpoint": args.checkpoint, "pairs": len(dev), "pretrained": correlations(args.checkpoint, dev)}
    with tempfile.TemporaryDirectory() as random_folder:
        torch.manual_seed(args.seed)
        AutoModel.from_config(AutoConfig.from_pretrained(args.checkpoint)).save_pretrained(random_folder)
        AutoTokenizer.from_pretrained(args.checkpoint).save_pretrained(random_folder)
        write_sentence_transformers_files(random_folder)  # mean pooling, as the checkpoint's own files say
        report["random_init"] = correlations(random_folder, dev)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
