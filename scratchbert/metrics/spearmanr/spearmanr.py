"""Spearman rank correlation coefficient (SciPy's spearmanr), one of GLUE's metrics for STS-B."""

from scipy.stats import spearmanr

from scratchbert.metrics import base  # the module, not the class: evaluate takes the first Metric class it finds


class Spearmanr(base.PairedMetric):
    value_type = "float"
    inputs_description = "predictions, references: lists of floats"

    def _compute(self, predictions, references):
        return {"spearmanr": float(spearmanr(references, predictions)[0])}
