"""Accuracy: the fraction of predictions equal to the references (scikit-learn's accuracy_score)."""

from sklearn.metrics import accuracy_score

from scratchbert.metrics import base  # the module, not the class: evaluate takes the first Metric class it finds


class Accuracy(base.PairedMetric):
    def _compute(self, predictions, references, sample_weight=None):
        return {"accuracy": float(accuracy_score(references, predictions, sample_weight=sample_weight))}
