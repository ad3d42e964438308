"""What every local metric module shares: predictions and references, one number each per example.

A metric module subclasses `PairedMetric`, sets `value_type` ("int64" for labels, "float" for scores) and
`inputs_description`, and computes in `_compute`; its module docstring is its description. evaluate copies each
module script into its cache and imports it, so modules import this one by its absolute name.
"""

import sys

import datasets
import evaluate


class PairedMetric(evaluate.Metric):
    value_type = "int64"
    inputs_description = "predictions, references: lists of int labels"

    def _info(self):
        return evaluate.MetricInfo(
            description=sys.modules[type(self).__module__].__doc__ or "",
            citation="",
            inputs_description=self.inputs_description,
            features=datasets.Features(
                {"predictions": datasets.Value(self.value_type), "references": datasets.Value(self.value_type)}
            ),
        )
