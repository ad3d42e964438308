"""ScratchBert: a from-scratch BERT encoder as a transformers model.

Importing the package registers ScratchBert with every transformers Auto class it supports, so
`AutoModelForMaskedLM.from_pretrained(folder)` works in-process without trust_remote_code. The heads are listed
once, in `modeling_scratchbert.AUTO_CLASSES`; this file re-exports and registers what that list holds.
"""

import transformers

from . import modeling_scratchbert
from .configuration_scratchbert import ScratchBertConfig
from .modeling_scratchbert import *  # noqa: F403  (the model classes: modeling_scratchbert.__all__)
from .tokenization import train_wordpiece_tokenizer

__version__ = "0.1.0"

transformers.AutoConfig.register(ScratchBertConfig.model_type, ScratchBertConfig, exist_ok=True)
for _auto_name, _model_class in modeling_scratchbert.AUTO_CLASSES.items():
    getattr(transformers, _auto_name).register(ScratchBertConfig, _model_class, exist_ok=True)

__all__ = ["ScratchBertConfig", *modeling_scratchbert.__all__, "train_wordpiece_tokenizer"]
