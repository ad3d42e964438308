"""Pearson correlation coefficient (SciPy's pearsonr), one of GLUE's metrics for STS-B."""

from scipy.stats import pearsonr

from scratchbert.metrics import base  # the module, not the class: evaluate takes the first Metric class it finds


class Pearsonr(base.PairedMetric):
    value_type = "float"
    inputs_description = "predictions, references: lists of floats"

    def _compute(self, predictions, references):
        return {"pearsonr": float(pearsonr(references, predictions)[0])}
