"""Training curves from the Trainer's log history: loss, and held-out masked accuracy, against tokens seen.

Tokens (not steps) on the x axis, so runs with other batch sizes or sequence lengths line up. The masked
accuracy panel draws the unigram line beside it: the moment the model leaves that line is when it starts to
read context rather than word frequencies.
"""

from pathlib import Path


def curve_points(log_history: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(tokens seen, value) pairs per curve; falls back to steps when tokens were not counted."""
    points = {"loss": [], "eval_mlm_masked_accuracy": [], "eval_mlm_unigram_accuracy": [], "eval_mlm_loss": []}
    for entry in log_history:
        x = entry.get("num_input_tokens_seen", entry.get("step"))
        if x is None:
            continue
        for key in points:
            if key in entry:
                points[key].append((float(x), float(entry[key])))
    return points


def write_training_curves(log_history: list[dict], path: str | Path, title: str = "", masked_lm_of: str = "") -> Path | None:
    """Write a PNG of the curves to `path`; None (and no file) when the history holds no loss to draw.

    `masked_lm_of` names whose masked-LM figures the held-out curves are when they are not the saved model's own
    (replaced-token detection: "the generator")."""
    points = curve_points(log_history)
    if not points["loss"] and not points["eval_mlm_loss"]:
        return None
    import matplotlib  # imported here: only runs that write curves pay for it

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    tokens_counted = any("num_input_tokens_seen" in entry for entry in log_history)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4))
    whose = f" ({masked_lm_of})" if masked_lm_of else ""
    for key, label, style in (("loss", "training loss (the objective's weighted sum)", "-"),
                              ("eval_mlm_loss", f"held-out MLM loss{whose}", "o-")):
        if points[key]:
            loss_axis.plot(*zip(*points[key]), style, label=label, markersize=3)
    loss_axis.set_ylabel("loss")
    loss_axis.legend()
    if points["eval_mlm_masked_accuracy"]:
        accuracy_axis.plot(*zip(*points["eval_mlm_masked_accuracy"]), "o-", label=f"masked accuracy{whose}", markersize=3)
        accuracy_axis.plot(*zip(*points["eval_mlm_unigram_accuracy"]), "--", label="unigram (most frequent token)")
        accuracy_axis.legend()
    else:
        accuracy_axis.text(0.5, 0.5, "no evaluation during training\n(set eval_strategy: steps)",
                           ha="center", va="center", transform=accuracy_axis.transAxes)
    accuracy_axis.set_ylabel(f"held-out accuracy at [MASK]{whose}")
    for axis in (loss_axis, accuracy_axis):
        axis.set_xlabel("tokens seen" if tokens_counted else "step")
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
