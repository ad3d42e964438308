"""runs.script: the shared run preamble (start_run) and a script's end (script_main frees the process group)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from scratchbert.cli import ConfigError
from scratchbert.runs import script
from scratchbert.runs.script import script_main, start_run
from conftest import run_on_ranks


def ddp_script_ranks(rank, world_size, out):
    import torch.distributed as dist

    def run(argv):  # a script's run(): a DDP model whose last collective is an all_gather of Python tensors
        dist.init_process_group("gloo")
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
        model(torch.ones(1, 2)).sum().backward()
        gathered = [torch.zeros(1) for _ in range(world_size)]
        dist.all_gather(gathered, torch.ones(1) * rank)

    code = script_main(run, [], ())
    (Path(out) / f"rank{rank}.json").write_text(json.dumps({"code": code, "initialized": dist.is_initialized()}))


def test_a_script_ends_its_process_group_before_the_interpreter_exits(tmp_path):
    # Left to interpreter exit, a gloo worker can abort the rank (-6) after everything was saved: seen in CI.
    run_on_ranks(ddp_script_ranks, str(tmp_path))
    for rank in (0, 1):
        assert json.loads((tmp_path / f"rank{rank}.json").read_text()) == {"code": 0, "initialized": False}


@dataclass
class ModelArgs:
    model_name_or_path: str | None = None
    layerwise_lr_decay: float = 1.0


@dataclass
class DataArgs:
    max_seq_length: int = 64


def earlier_run(out):
    (out / "checkpoint-2").mkdir(parents=True)
    (out / "checkpoint-2" / "trainer_state.json").write_text(json.dumps({"global_step": 2}))


def test_start_run_parses_checks_and_settles_the_run(tmp_path, monkeypatch):
    out = tmp_path / "out"
    earlier_run(out)
    config = tmp_path / "run.yaml"
    config.write_text(f"output_dir: {out}\nreport_to: none\nuse_cpu: true\nlayerwise_lr_decay: 0.8\n")
    monkeypatch.setenv("WANDB_PROJECT", "")  # unset for the run; restored afterwards
    calls = []
    monkeypatch.setattr(script, "check_run_options", lambda training_args, run_args, decay: calls.append(("options", decay)))
    started = start_run(
        ModelArgs, DataArgs, [str(config), "--resume_from_checkpoint", "latest", "--push_to_hub", "true",
                              "--wandb_project", "scratchbert-test", "--max_seq_length", "32"],
        None, check=lambda model_args, data_args, training_args: calls.append(("check", data_args.max_seq_length)),
        layerwise_lr_decay=lambda model_args: model_args.layerwise_lr_decay,
    )
    assert calls == [("options", 0.8), ("check", 32)]  # the run options first, then the script's own check
    assert started.config_path == str(config) and started.model_args.layerwise_lr_decay == 0.8
    assert started.checkpoint == str(out / "checkpoint-2")
    assert started.push_to_hub is True and started.training_args.push_to_hub is False  # pushed once, at the end
    assert os.environ["WANDB_PROJECT"] == "scratchbert-test"


def test_start_run_refuses_before_the_output_folder_is_touched(tmp_path):
    out = tmp_path / "out"
    earlier_run(out)

    def refuse(model_args, data_args, training_args):
        raise ConfigError("no such model")

    with pytest.raises(ConfigError, match="no such model"):
        start_run(ModelArgs, DataArgs, ["--output_dir", str(out), "--overwrite_output_dir", "true", "--report_to", "none"],
                  None, check=refuse)
    assert (out / "checkpoint-2").is_dir() and not list(out.glob("superseded-*"))  # the earlier run stays where it was
    with pytest.raises(ConfigError, match="lr_scheduler_type=polynomial cannot be laid over a time budget"):
        start_run(ModelArgs, DataArgs, ["--output_dir", str(out), "--max_train_minutes", "5", "--lr_scheduler_type",
                                        "polynomial", "--report_to", "none"], None, check=refuse)  # options first
    for flag, message in (("--log_file", "log_file was retired"), ("--old_option", "old_option is gone")):
        with pytest.raises(ConfigError, match=message):  # refused by name, before anything else
            start_run(ModelArgs, DataArgs, ["--output_dir", str(out), flag, "x"], None, check=refuse,
                      retired={"old_option": "old_option is gone"})
