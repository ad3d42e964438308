"""ScratchBert: a from-scratch BERT encoder as a transformers model.

Importing the package registers ScratchBert with every transformers Auto class it supports, so
`AutoModelForMaskedLM.from_pretrained(folder)` works in-process without trust_remote_code.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForNextSentencePrediction,
    AutoModelForPreTraining,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from .configuration_scratchbert import ScratchBertConfig
from .modeling_scratchbert import (
    ScratchBertForMaskedLM,
    ScratchBertForMultipleChoice,
    ScratchBertForNextSentencePrediction,
    ScratchBertForPreTraining,
    ScratchBertForPreTrainingOutput,
    ScratchBertForQuestionAnswering,
    ScratchBertForSequenceClassification,
    ScratchBertForTokenClassification,
    ScratchBertModel,
    ScratchBertPreTrainedModel,
)
from .tokenization import train_wordpiece_tokenizer

__version__ = "0.1.0"

AutoConfig.register(ScratchBertConfig.model_type, ScratchBertConfig, exist_ok=True)
for _auto_class, _model_class in [
    (AutoModel, ScratchBertModel),
    (AutoModelForPreTraining, ScratchBertForPreTraining),
    (AutoModelForMaskedLM, ScratchBertForMaskedLM),
    (AutoModelForNextSentencePrediction, ScratchBertForNextSentencePrediction),
    (AutoModelForSequenceClassification, ScratchBertForSequenceClassification),
    (AutoModelForTokenClassification, ScratchBertForTokenClassification),
    (AutoModelForQuestionAnswering, ScratchBertForQuestionAnswering),
    (AutoModelForMultipleChoice, ScratchBertForMultipleChoice),
]:
    _auto_class.register(ScratchBertConfig, _model_class, exist_ok=True)

__all__ = [
    "ScratchBertConfig",
    "ScratchBertForMaskedLM",
    "ScratchBertForMultipleChoice",
    "ScratchBertForNextSentencePrediction",
    "ScratchBertForPreTraining",
    "ScratchBertForPreTrainingOutput",
    "ScratchBertForQuestionAnswering",
    "ScratchBertForSequenceClassification",
    "ScratchBertForTokenClassification",
    "ScratchBertModel",
    "ScratchBertPreTrainedModel",
    "train_wordpiece_tokenizer",
]
