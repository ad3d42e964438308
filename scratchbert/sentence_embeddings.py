"""sentence-transformers' own files beside a saved model, so `SentenceTransformer(folder, trust_remote_code=True)`
loads our choice of pooling, the mean of the last hidden states over real tokens, without its "no
sentence-transformers model found" guess.

The library writes them wherever it saves a model: every folder its Trainer saves (runs.trainer: checkpoints and
final models), an rtd export (discriminator and generator) and `python -m scratchbert.convert bert-to-scratchbert`.
They describe how to use the model, not the model, so the model code (copied into every export) does not write them.
"""

import json
import os
from pathlib import Path


def write_sentence_transformers_files(folder: str | os.PathLike) -> None:
    """modules.json, sentence_bert_config.json and 1_Pooling/config.json for the model saved in `folder`, sized by
    its config.json: the encoder, then mean pooling.

    Written by hand, in the long-standing format that every sentence-transformers release reads (2.x to 6.x):
    sentence-transformers' own `save` writes its installed version's format, and importing it costs every final
    save seconds.
    """
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    pooling = {"word_embedding_dimension": config["hidden_size"], "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
               "pooling_mode_lasttoken": False, "include_prompt": True}
    files = {
        "modules.json": modules,
        "sentence_bert_config.json": {"max_seq_length": config["max_position_embeddings"], "do_lower_case": False},
        "1_Pooling/config.json": pooling,
    }
    (folder / "1_Pooling").mkdir(exist_ok=True)
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
