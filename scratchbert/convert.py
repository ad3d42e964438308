"""Exact two-way conversion between transformers' BERT checkpoints and ScratchBert.

    python -m scratchbert.convert bert-to-scratchbert SRC DST     # a BERT folder -> a ScratchBert folder
    python -m scratchbert.convert scratchbert-to-bert SRC DST     # and back, for everything that serves BERT

The parameters are the same numbers under other names, except that ScratchBert fuses BERT's query, key and value
projections into one `qkv` matrix (concatenated along the output dimension). The state-dict functions below are
the whole mapping; the command line adds reading, checking and writing folders. Nothing is written to DST unless
the conversion succeeds: the folder is built beside it and renamed into place at the end.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file

from .configuration_scratchbert import ScratchBertConfig
from . import modeling_scratchbert
from .sentence_embeddings import write_sentence_transformers_files

# BERT head class -> ScratchBert head class (the same task, the same heads), from the one list of heads.
HEAD_CLASSES = {
    model_class.__name__.replace("ScratchBert", "Bert", 1): model_class.__name__
    for model_class in modeling_scratchbert.AUTO_CLASSES.values()
}

# Config fields that mean the same in both models.
SHARED_CONFIG_KEYS = [
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "hidden_act",
    "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
    "initializer_range", "layer_norm_eps", "pad_token_id", "classifier_dropout", "id2label", "label2id",
    "problem_type",
]

TOKENIZER_FILES = ["vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"]

# Renames inside one encoder layer: BERT suffix -> ScratchBert suffix (query/key/value are fused separately).
LAYER_RENAMES = {
    "attention.output.dense": "attention.out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "ffn_in",
    "output.dense": "ffn_out",
    "output.LayerNorm": "ffn_norm",
}
# Renames outside the layers, BERT -> ScratchBert, on names without the base-model prefix.
BASE_RENAMES = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.LayerNorm": "embeddings.layer_norm",
    "pooler.dense": "pooler.dense",
}
HEAD_RENAMES = {
    "cls.predictions.transform.dense": "mlm_head.dense",
    "cls.predictions.transform.LayerNorm": "mlm_head.layer_norm",
    "cls.predictions.decoder": "mlm_head.decoder",
    "cls.seq_relationship": "nsp_head",
    "classifier": "classifier",
    "qa_outputs": "qa_outputs",
}


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message says what is wrong."""


# ----------------------------------------------------------------------------------------------------------------
# State dicts
# ----------------------------------------------------------------------------------------------------------------


def _split_param(name: str) -> tuple[str, str]:
    module, _, param = name.rpartition(".")
    return module, {"gamma": "weight", "beta": "bias"}.get(param, param)  # TF-era LayerNorm names


def bert_to_scratchbert_state_dict(bert_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename (and fuse QKV of) a transformers BERT state dict, with or without the `bert.` prefix.

    Returns ScratchBert names with the `scratchbert.` prefix on encoder keys. Non-persistent buffers
    (position_ids, token_type_ids) are dropped. Raises ConversionError on keys it does not know.
    """
    out, qkv_parts, unknown = {}, {}, []
    for name, tensor in bert_state.items():
        base = name.removeprefix("bert.")
        if base.endswith(("embeddings.position_ids", "embeddings.token_type_ids")):
            continue
        module, param = _split_param(base)
        if module == "cls.predictions" and param == "bias":  # BERT's separate decoder bias (tied to decoder.bias)
            out["mlm_head.decoder.bias"] = tensor
            continue
        layer = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module)
        if layer:
            index, inner = layer.groups()
            qkv = re.fullmatch(r"attention\.self\.(query|key|value)", inner)
            if qkv:
                qkv_parts.setdefault((index, param), {})[qkv.group(1)] = tensor
            elif inner in LAYER_RENAMES:
                out[f"scratchbert.layers.{index}.{LAYER_RENAMES[inner]}.{param}"] = tensor
            else:
                unknown.append(name)
        elif module in BASE_RENAMES:
            out[f"scratchbert.{BASE_RENAMES[module]}.{param}"] = tensor
        elif module in HEAD_RENAMES:
            out[f"{HEAD_RENAMES[module]}.{param}"] = tensor
        else:
            unknown.append(name)
    for (index, param), parts in sorted(qkv_parts.items()):
        missing = [p for p in ("query", "key", "value") if p not in parts]
        if missing:
            raise ConversionError(f"layer {index} has no attention {'/'.join(missing)} {param}")
        out[f"scratchbert.layers.{index}.attention.qkv.{param}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    if unknown:
        raise ConversionError(f"not BERT parameters: {', '.join(sorted(unknown)[:10])}")
    return out


def scratchbert_to_bert_state_dict(state: dict[str, torch.Tensor], base_model: bool = False) -> dict[str, torch.Tensor]:
    """The inverse of bert_to_scratchbert_state_dict: ScratchBert names -> transformers BERT names.

    Encoder keys get the `bert.` prefix unless `base_model` (a bare BertModel has none). An MLM decoder bias is
    written under both of BERT's names for it (`cls.predictions.bias` and `cls.predictions.decoder.bias`).
    """
    prefix = "" if base_model else "bert."
    layer_renames = {v: k for k, v in LAYER_RENAMES.items()}
    base_renames = {v: k for k, v in BASE_RENAMES.items()}
    head_renames = {v: k for k, v in HEAD_RENAMES.items()}
    out, unknown = {}, []
    for name, tensor in state.items():
        base = name.removeprefix("scratchbert.")
        module, param = _split_param(base)
        layer = re.fullmatch(r"layers\.(\d+)\.(.+)", module)
        if layer:
            index, inner = layer.groups()
            if inner == "attention.qkv":
                for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                    out[f"{prefix}encoder.layer.{index}.attention.self.{part}.{param}"] = chunk.clone()
            elif inner in layer_renames:
                out[f"{prefix}encoder.layer.{index}.{layer_renames[inner]}.{param}"] = tensor
            else:
                unknown.append(name)
        elif module in base_renames:
            out[f"{prefix}{base_renames[module]}.{param}"] = tensor
        elif module in head_renames:
            out[f"{head_renames[module]}.{param}"] = tensor
            if module == "mlm_head.decoder" and param == "bias":
                out["cls.predictions.bias"] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise ConversionError(f"not ScratchBert parameters: {', '.join(sorted(unknown)[:10])}")
    return out


def bert_config_to_scratchbert(bert_config: dict) -> ScratchBertConfig:
    """Translate a BERT config.json dict. Raises ConversionError for BERT variants ScratchBert does not model."""
    if bert_config.get("model_type") != "bert":
        raise ConversionError(f"config.json has model_type {bert_config.get('model_type')!r}, expected 'bert'")
    if bert_config.get("position_embedding_type", "absolute") != "absolute":
        raise ConversionError(
            f"position_embedding_type={bert_config['position_embedding_type']!r}: ScratchBert has absolute positions only"
        )
    if bert_config.get("is_decoder") or bert_config.get("add_cross_attention"):
        raise ConversionError("a decoder BERT (is_decoder / add_cross_attention) cannot become a ScratchBert encoder")
    kwargs = {k: bert_config[k] for k in SHARED_CONFIG_KEYS if bert_config.get(k) is not None}
    try:
        return ScratchBertConfig(**kwargs)
    except ValueError as error:
        raise ConversionError(f"BERT config cannot build a ScratchBert: {error}") from None


# ScratchBert options whose only BERT layout is one value: (that value, why another value has none).
BERT_LAYOUT = {
    "layer_norm_position": ("post", "BERT has post-LayerNorm layers only"),
    "attention_position_bias": ("none", "BERT's attention has no position bias"),
    "classifier_pooling": ("cls", "BERT's classifier reads the pooled [CLS] vector"),
    "feed_forward_type": ("mlp", "BERT's feed-forward block is an ungated MLP"),
    "linear_bias": (True, "every linear layer of BERT has a bias"),
    "embedding_size": (None, "BERT's embeddings are as wide as its layers"),
}


def check_bert_layout(config: ScratchBertConfig, source="this model"):
    """Refuse the architecture options BERT has no layout for (BERT_LAYOUT: pre-LayerNorm, ALiBi, GLU, ...)."""
    for option, (bert_value, reason) in BERT_LAYOUT.items():
        value = getattr(config, option)
        if value != bert_value:
            raise ConversionError(
                f"{source} uses {option}={value!r}: {reason}, so there is no BERT layout to convert to"
            )


def scratchbert_config_to_bert(config: ScratchBertConfig):
    check_bert_layout(config)
    kwargs = {k: getattr(config, k) for k in SHARED_CONFIG_KEYS if getattr(config, k, None) is not None}
    return transformers.BertConfig(**kwargs)


# ----------------------------------------------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------------------------------------------


def read_checkpoint(folder: str | os.PathLike) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config.json as a dict, state dict) of a transformers checkpoint folder.

    Weights come from model.safetensors (single or sharded); a legacy pytorch_model.bin is read only with
    torch.load(weights_only=True), which refuses pickled code.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(f"{folder} is not a folder")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ConversionError(f"{folder} has no config.json: is it a transformers checkpoint?")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ConversionError(f"{config_file} is not valid JSON: {error}") from None

    try:
        if (folder / "model.safetensors").is_file():
            state = load_file(folder / "model.safetensors")
        elif (folder / "model.safetensors.index.json").is_file():
            index = json.loads((folder / "model.safetensors.index.json").read_text())
            state = {}
            for shard in sorted(set(index["weight_map"].values())):
                state.update(load_file(folder / shard))
        elif (folder / "pytorch_model.bin").is_file():
            state = torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        else:
            raise ConversionError(f"{folder} has no model.safetensors or pytorch_model.bin")
    except ConversionError:
        raise
    except Exception as error:  # corrupt file, or a pickle that weights_only refuses
        raise ConversionError(f"cannot read the weights in {folder}: {type(error).__name__}: {error}") from None
    return config, state


def _head_from_weights(state: dict) -> str:
    """The BERT head class whose heads are exactly the ones these weights hold."""
    names = {name.removeprefix("bert.") for name in state}
    has = lambda prefix: any(n.startswith(prefix) for n in names)  # noqa: E731
    if has("cls.predictions"):
        return "BertForPreTraining" if has("cls.seq_relationship") or has("pooler.") else "BertForMaskedLM"
    if has("cls.seq_relationship"):
        return "BertForNextSentencePrediction"
    if has("qa_outputs"):
        return "BertForQuestionAnswering"
    if has("classifier"):
        return "BertForSequenceClassification"
    return "BertModel"


def _holds_every_weight(bert_head: str, config: ScratchBertConfig, state: dict) -> bool:
    """Whether the ScratchBert class for `bert_head` has a place for every converted weight (built on the meta
    device: names only, no memory)."""
    with torch.device("meta"):
        model = getattr(modeling_scratchbert, HEAD_CLASSES[bert_head])(config)
    own = set(model.state_dict())
    if isinstance(model, modeling_scratchbert.ScratchBertModel):
        own = {f"scratchbert.{k}" for k in own}
    return set(state) <= own


def _infer_bert_head(config: dict, state: dict, scratch_config: ScratchBertConfig, scratch_state: dict) -> str:
    """The declared architecture when it holds every weight; else the head the weights themselves call for.

    Google's checkpoints (bert-base-uncased and its siblings) declare BertForMaskedLM but store the pooler and
    the NSP head too: trusting the declaration would refuse weights that a richer head keeps.
    """
    declared = (config.get("architectures") or [None])[0]
    if declared in HEAD_CLASSES and _holds_every_weight(declared, scratch_config, scratch_state):
        return declared
    inferred = _head_from_weights(state)
    if declared in HEAD_CLASSES:
        print(f"note: the weights hold more than {declared} keeps; converting as {inferred}", file=sys.stderr)
    return inferred


def _check_encoder_keys(state: dict, num_layers: int, prefix: str):
    required = [f"{prefix}embeddings.word_embeddings.weight", f"{prefix}embeddings.position_embeddings.weight"]
    for i in range(num_layers):
        required += [f"{prefix}layers.{i}.attention.qkv.weight", f"{prefix}layers.{i}.ffn_in.weight"]
    missing = [k for k in required if k not in state]
    if missing:
        raise ConversionError(
            f"the checkpoint lacks encoder weights its config promises ({num_layers} layers): {', '.join(missing[:8])}"
        )


def _load_into(model: torch.nn.Module, state: dict) -> list[str]:
    """Load `state` into `model`, checking shapes; return the model's keys the state did not provide."""
    own = model.state_dict()
    bad_shapes = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)} expected" for k, v in state.items() if k in own and v.shape != own[k].shape
    ]
    if bad_shapes:
        raise ConversionError(f"weights disagree with the config's shapes: {'; '.join(bad_shapes[:5])}")
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise ConversionError(f"weights the {type(model).__name__} has no place for: {', '.join(unexpected[:8])}")
    result = model.load_state_dict(state, strict=False)
    return list(result.missing_keys)


def _prepare_destination(dst: Path) -> Path:
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise ConversionError(f"{dst} exists and is not an empty folder; choose a new output folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(dst.parent, os.W_OK):
        raise ConversionError(f"cannot write into {dst.parent}")
    return Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))


def _vocab_is_lowercase(vocab_file: Path) -> bool:
    """An uncased vocabulary has no word starting with a capital letter ([CLS] and other specials aside)."""
    words = (line.strip() for line in vocab_file.read_text(encoding="utf-8").splitlines())
    return not any(w[:1].isupper() for w in words if w and not w.startswith("["))


def _copy_tokenizer(src: Path, staging: Path):
    """The source's tokenizer files, made loadable by AutoTokenizer from the converted folder.

    The converted config says model_type "scratchbert", which AutoTokenizer maps to no tokenizer, so the folder
    must name its tokenizer class. A BERT folder that ships only vocab.txt (as Google's did) gets a WordPiece
    BertTokenizer built from it, lowercasing when the vocabulary is uncased (or as its tokenizer_config says).
    """
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, staging / name)
    try:
        transformers.AutoTokenizer.from_pretrained(staging)
        return
    except Exception:
        if not (staging / "vocab.txt").is_file():
            return  # no vocabulary to build from: the folder has no tokenizer, as its source had none
    saved = {}
    if (staging / "tokenizer_config.json").is_file():
        saved = json.loads((staging / "tokenizer_config.json").read_text())
    lowercase = saved.get("do_lower_case", _vocab_is_lowercase(staging / "vocab.txt"))
    config = json.loads((staging / "config.json").read_text())
    lines = (staging / "vocab.txt").read_text(encoding="utf-8").splitlines()
    tokenizer = transformers.BertTokenizer(
        vocab={token.rstrip("\n"): index for index, token in enumerate(lines)}, do_lower_case=lowercase,
        model_max_length=saved.get("model_max_length", config.get("max_position_embeddings", 512)),
    )
    tokenizer.save_pretrained(staging)


def _finish_destination(staging: Path, dst: Path, src: Path):
    _copy_tokenizer(src, staging)
    if dst.exists():
        dst.rmdir()
    os.replace(staging, dst)


def convert_bert_to_scratchbert(src: str | os.PathLike, dst: str | os.PathLike, head: str | None = None) -> dict:
    """Convert a transformers BERT folder into a ScratchBert folder (config, weights, tokenizer, remote code,
    sentence-transformers' files).

    Returns {"head": ScratchBert class name, "newly_initialized": [keys the source lacked]}.
    """
    src, dst = Path(src), Path(dst)
    bert_config, bert_state = read_checkpoint(src)
    config = bert_config_to_scratchbert(bert_config)
    if head is not None and head not in HEAD_CLASSES:
        raise ConversionError(f"unknown head {head!r}; choose one of {', '.join(HEAD_CLASSES)}")
    state = bert_to_scratchbert_state_dict(bert_state)
    _check_encoder_keys(state, config.num_hidden_layers, "scratchbert.")
    bert_head = head or _infer_bert_head(bert_config, bert_state, config, state)

    model_class = getattr(modeling_scratchbert, HEAD_CLASSES[bert_head])
    config.architectures = [model_class.__name__]
    model = model_class(config)
    if model_class is modeling_scratchbert.ScratchBertModel:
        state = {k.removeprefix("scratchbert."): v for k, v in state.items() if k.startswith("scratchbert.")}
    missing = [k for k in _load_into(model, state) if k != "mlm_head.decoder.weight"]  # tied to the embeddings
    if missing:
        print(
            f"warning: {src} has no weights for {', '.join(missing)}: they are newly initialised; "
            f"train them before use",
            file=sys.stderr,
        )
    staging = _prepare_destination(dst)
    try:
        model.save_pretrained(staging)
        write_sentence_transformers_files(staging)
        _finish_destination(staging, dst, src)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"head": model_class.__name__, "newly_initialized": missing}


def convert_scratchbert_to_bert(src: str | os.PathLike, dst: str | os.PathLike) -> dict:
    """Convert a ScratchBert folder into a transformers BERT folder that BertFor* load with no missing keys."""
    src, dst = Path(src), Path(dst)
    config_dict, state = read_checkpoint(src)
    if config_dict.get("model_type") != "scratchbert":
        raise ConversionError(f"config.json has model_type {config_dict.get('model_type')!r}, expected 'scratchbert'")
    try:
        config = ScratchBertConfig.from_dict(config_dict)
    except ValueError as error:
        raise ConversionError(f"invalid ScratchBert config: {error}") from None
    check_bert_layout(config, src)
    scratch_head = (config_dict.get("architectures") or ["ScratchBertModel"])[0]
    if scratch_head == "ScratchBertForReplacedTokenDetection":
        # An ELECTRA-style discriminator: BERT has no replaced-token head, so it converts as its encoder (with the
        # pooler), which every BERT head loads; the replaced-token and pair heads are left out.
        print("note: BERT has no replaced-token head; converting the discriminator's encoder as BertModel", file=sys.stderr)
        state = {k.removeprefix("scratchbert."): v for k, v in state.items() if k.startswith("scratchbert.")}
        scratch_head = "ScratchBertModel"
    bert_head = {v: k for k, v in HEAD_CLASSES.items()}.get(scratch_head)
    if bert_head is None:
        raise ConversionError(f"unknown ScratchBert architecture {scratch_head!r}")
    base_model = bert_head == "BertModel"
    if base_model:
        state = {f"scratchbert.{k}": v for k, v in state.items()}
    _check_encoder_keys(state, config.num_hidden_layers, "scratchbert.")
    if "mlm_head.dense.weight" in state and "mlm_head.decoder.weight" not in state:
        state["mlm_head.decoder.weight"] = state["scratchbert.embeddings.word_embeddings.weight"]  # the tie
    bert_state = scratchbert_to_bert_state_dict(state, base_model=base_model)

    bert_config = scratchbert_config_to_bert(config)
    bert_config.architectures = [bert_head]
    model = getattr(transformers, bert_head)(bert_config)
    missing = _load_into(model, bert_state)
    if missing:
        raise ConversionError(f"{src} lacks weights that {bert_head} needs: {', '.join(missing[:8])}")
    staging = _prepare_destination(dst)
    try:
        model.save_pretrained(staging)
        _finish_destination(staging, dst, src)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {"head": bert_head, "newly_initialized": []}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scratchbert.convert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="direction", required=True)
    to_scratch = sub.add_parser("bert-to-scratchbert", help="a transformers BERT folder -> a ScratchBert folder")
    to_scratch.add_argument("src")
    to_scratch.add_argument("dst")
    to_scratch.add_argument("--head", choices=sorted(HEAD_CLASSES), help="BERT class to read SRC as (default: its config)")
    to_bert = sub.add_parser("scratchbert-to-bert", help="a ScratchBert folder -> a transformers BERT folder")
    to_bert.add_argument("src")
    to_bert.add_argument("dst")
    args = parser.parse_args(argv)
    try:
        if args.direction == "bert-to-scratchbert":
            result = convert_bert_to_scratchbert(args.src, args.dst, head=args.head)
        else:
            result = convert_scratchbert_to_bert(args.src, args.dst)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {result['head']} to {args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
