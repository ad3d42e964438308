"""F1 score (scikit-learn's f1_score): of `pos_label` for binary tasks, or averaged for more classes."""

import numpy as np
from sklearn.metrics import f1_score

from scratchbert.metrics import base  # the module, not the class: evaluate takes the first Metric class it finds


class F1(base.PairedMetric):
    inputs_description = "predictions, references: lists of int labels; pos_label, average as in scikit-learn"

    def _compute(self, predictions, references, labels=None, pos_label=1, average="binary", sample_weight=None):
        score = f1_score(
            references, predictions, labels=labels, pos_label=pos_label, average=average,
            sample_weight=sample_weight, zero_division=0,
        )
        return {"f1": float(score) if np.ndim(score) == 0 else np.asarray(score).tolist()}
