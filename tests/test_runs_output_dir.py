"""runs.output_dir: a new run in a folder that holds one sets the earlier run aside (or deletes its checkpoints)."""

import json
import logging

from scratchbert.runs.checkpoints import latest_complete_checkpoint
from scratchbert.runs.options import RunArguments, ScratchBertTrainingArguments
from scratchbert.runs.output_dir import check_output_dir


def complete_checkpoint(folder, step):
    folder.mkdir(parents=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def overwrite(out, **run_args):
    check_output_dir(ScratchBertTrainingArguments(output_dir=str(out), report_to="none"),
                     RunArguments(overwrite_output_dir=True, **run_args))


def test_overwrite_names_the_newest_checkpoint_by_step_not_by_text(tmp_path, caplog):
    out = tmp_path / "out"
    for step in (500, 9000, 10000):  # as text, checkpoint-10000 sorts before checkpoint-9000
        complete_checkpoint(out / f"checkpoint-{step}", step)
    assert latest_complete_checkpoint(out) == str(out / "checkpoint-10000")
    with caplog.at_level(logging.WARNING, logger="scratchbert.runs.output_dir"):
        overwrite(out)
    kept = next(out.glob("superseded-*"))
    assert f"--resume_from_checkpoint {kept / 'checkpoint-10000'}" in caplog.text
    assert latest_complete_checkpoint(kept) == str(kept / "checkpoint-10000")


def test_overwrite_keeps_the_earlier_runs_final_model_and_results(tmp_path, caplog):
    out = tmp_path / "out"
    complete_checkpoint(out / "checkpoint-2", 2)
    earlier = {"config.json": "{}", "model.safetensors": "weights", "results.json": '{"eval_f1": 0.8}', "README.md": "card"}
    for name, text in earlier.items():
        (out / name).write_text(text)
    (out / "1_Pooling").mkdir()
    with caplog.at_level(logging.WARNING, logger="scratchbert.runs.output_dir"):
        overwrite(out)
    kept = next(out.glob("superseded-*"))
    assert {name: (kept / name).read_text() for name in earlier} == earlier
    assert (kept / "1_Pooling").is_dir() and (kept / "checkpoint-2").is_dir()
    assert [p.name for p in out.iterdir()] == [kept.name]  # the new run starts clean
    assert "5 final file(s)" in caplog.text and "1 checkpoint(s)" in caplog.text

    # A second overwrite in the same second sets the second run aside beside the first, never over it.
    (out / "config.json").write_text('{"second": true}')
    overwrite(out)
    assert sorted(p.name for p in out.glob("superseded-*"))[-1] != kept.name
    assert (kept / "config.json").read_text() == "{}"
    assert {(p / "config.json").read_text() for p in out.glob("superseded-*")} == {"{}", '{"second": true}'}


def test_delete_old_checkpoints_deletes_checkpoints_and_leaves_final_files_to_be_replaced(tmp_path):
    out = tmp_path / "out"
    complete_checkpoint(out / "checkpoint-2", 2)
    (out / "config.json").write_text("{}")
    overwrite(out, delete_old_checkpoints=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
