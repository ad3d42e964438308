"""Local `evaluate` metric modules, so metrics load offline: evaluate.load(metric_path("accuracy")).

`evaluate.load("accuracy")` fetches the module from the Hub; these folders hold the same metrics, computed
with scikit-learn and SciPy, and load from the installed package with no network.
"""

from pathlib import Path

import evaluate

METRICS_DIR = Path(__file__).resolve().parent


def metric_path(name: str) -> str:
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        raise ValueError(f"no local metric {name!r}; available: {', '.join(sorted(available_metrics()))}")
    return str(path)


def available_metrics() -> list[str]:
    return [p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file()]


def load_metric(name: str) -> evaluate.EvaluationModule:
    return evaluate.load(metric_path(name))
