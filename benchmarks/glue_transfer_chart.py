"""What CPU time buys on GLUE: one chart of several GLUE suite runs (docs/images/glue-transfer.png).

    python benchmarks/glue_transfer_chart.py "30 min=docs/results/glue-30min.json" \
        "60 min=docs/results/glue-60min.json" --out docs/images/glue-transfer.png

Each file is a suite's glue_results.json (docs/results/ keeps the ones the docs' tables come from; see the
"note" of a file for where it came from).

Per task (and the average without WNLI): the same model from random weights (from the first run that has it),
each labelled pretrained checkpoint, and the majority / constant line; bars are task scores (the mean of the
task's metrics, x100), with the standard deviation over seeds.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scratchbert.glue_tasks import TASKS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="LABEL=path/to/glue_results.json")
    parser.add_argument("--out", default="docs/images/glue-transfer.png")
    args = parser.parse_args()
    runs = [(label, json.loads(Path(path).read_text())) for label, path in (r.split("=", 1) for r in args.runs)]
    tasks = [t for t in runs[0][1]["tasks"] if all(t in report["tasks"] for _, report in runs)]
    averaged = [t for t in tasks if t in runs[0][1].get("average_tasks", tasks)]
    random_source = next((report for _, report in runs if "random_init" in report["tasks"][tasks[0]]), None)

    def score(report, key, task):
        entry = report["tasks"][task]
        if key == "baseline":
            return 100 * np.mean([entry["baseline"][m] for m in TASKS[task].metrics]), 0.0
        return 100 * entry[key]["score"], 100 * entry[key]["score_std"]

    bars = ([("random weights", random_source, "random_init")] if random_source else [])
    bars += [(f"pretrained {label}", report, "pretrained") for label, report in runs]
    bars += [("majority / constant", runs[0][1], "baseline")]
    names = [TASKS[t].folder for t in tasks] + ["average"]
    width = 0.8 / len(bars)
    figure, axes = plt.subplots(figsize=(1.4 * len(names) + 2, 3.8))
    for i, (label, report, key) in enumerate(bars):
        values = [score(report, key, t) for t in tasks]
        heights = [v for v, _ in values] + [np.mean([score(report, key, t)[0] for t in averaged])]
        errors = [e for _, e in values] + [0.0]
        axes.bar(np.arange(len(names)) + (i - (len(bars) - 1) / 2) * width, heights, width, yerr=errors, label=label)
    axes.set_xticks(np.arange(len(names)), names)
    axes.set_ylabel("dev task score (x100)")
    axes.set_title("GLUE dev: what pretraining on 2 CPU cores buys (average without WNLI)", fontsize=10)
    axes.axhline(0, color="black", linewidth=0.5)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
