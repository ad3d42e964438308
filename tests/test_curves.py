"""Training curves: a PNG from the Trainer's log history, against tokens seen."""

from scratchbert.curves import curve_points, write_training_curves

HISTORY = [
    {"loss": 9.0, "step": 10, "num_input_tokens_seen": 1000},
    {"loss": 8.0, "step": 20, "num_input_tokens_seen": 2000},
    {"eval_mlm_masked_accuracy": 0.05, "eval_mlm_unigram_accuracy": 0.06, "eval_mlm_loss": 7.5, "step": 20,
     "num_input_tokens_seen": 2000},
    {"loss": 6.0, "step": 30, "num_input_tokens_seen": 3000},
    {"eval_mlm_masked_accuracy": 0.15, "eval_mlm_unigram_accuracy": 0.06, "eval_mlm_loss": 6.1, "step": 30,
     "num_input_tokens_seen": 3000},
    {"train_runtime": 12.0, "step": 30},  # the Trainer's closing summary: no curve value
]


def test_points_are_taken_against_tokens_seen():
    points = curve_points(HISTORY)
    assert points["loss"] == [(1000, 9.0), (2000, 8.0), (3000, 6.0)]
    assert points["eval_mlm_masked_accuracy"] == [(2000, 0.05), (3000, 0.15)]
    assert points["eval_mlm_unigram_accuracy"] == [(2000, 0.06), (3000, 0.06)]


def test_writes_a_png(tmp_path):
    path = write_training_curves(HISTORY, tmp_path / "curves.png", title="tiny")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_evaluation_it_still_draws_the_loss(tmp_path):
    path = write_training_curves(HISTORY[:2], tmp_path / "curves.png")
    assert path.is_file()


def test_nothing_to_draw_writes_nothing(tmp_path):
    assert write_training_curves([{"train_runtime": 1.0, "step": 0}], tmp_path / "curves.png") is None
    assert not (tmp_path / "curves.png").exists()


def test_the_curves_say_whose_masked_lm_figures_they_are(tmp_path, monkeypatch):
    # Issue 43 item 4: an rtd run's held-out masked-LM figures are the generator's, not the saved discriminator's.
    import matplotlib.figure

    labels, save = [], matplotlib.figure.Figure.savefig

    def record(figure, *args, **kwargs):  # every legend entry and axis label of the figure being saved
        legends = [text.get_text() for axis in figure.axes if axis.get_legend() for text in axis.get_legend().get_texts()]
        labels.append(legends + [axis.get_ylabel() for axis in figure.axes])
        return save(figure, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    write_training_curves(HISTORY, tmp_path / "mlm.png")
    write_training_curves(HISTORY, tmp_path / "rtd.png", masked_lm_of="the generator")
    mlm, rtd = labels
    assert "held-out MLM loss" in mlm and "masked accuracy" in mlm and not any("generator" in t for t in mlm)
    assert {"held-out MLM loss (the generator)", "masked accuracy (the generator)",
            "held-out accuracy at [MASK] (the generator)"} <= set(rtd)
