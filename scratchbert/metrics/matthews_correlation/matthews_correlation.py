"""Matthews correlation coefficient (scikit-learn's matthews_corrcoef), GLUE's metric for CoLA."""

from sklearn.metrics import matthews_corrcoef

from scratchbert.metrics import base  # the module, not the class: evaluate takes the first Metric class it finds


class MatthewsCorrelation(base.PairedMetric):
    def _compute(self, predictions, references, sample_weight=None):
        return {"matthews_correlation": float(matthews_corrcoef(references, predictions, sample_weight=sample_weight))}
