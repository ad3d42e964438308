"""YAML + flags configuration: precedence, unknown keys and wrong types named."""

from dataclasses import dataclass
from pathlib import Path

import pytest
from transformers import TrainingArguments

from scratchbert.cli import ConfigError, find_config, packaged_config, parse_config


@dataclass
class Options:
    hidden_size: int = 768
    name: str | None = None
    flag: bool = False


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_yaml_then_flags_override(tmp_path):
    path = write(tmp_path, "hidden_size: 128\nname: from-yaml\noutput_dir: out\nlearning_rate: 1.0e-3\n")
    options, training, used = parse_config((Options, TrainingArguments), [str(path), "--name", "from-flag"])
    assert options.hidden_size == 128 and options.name == "from-flag" and used == str(path)
    assert training.learning_rate == 1e-3 and training.output_dir == "out"
    options, training, _ = parse_config((Options, TrainingArguments), ["--config", str(path), "--hidden_size", "64"])
    assert options.hidden_size == 64
    options, _, _ = parse_config((Options, TrainingArguments), [f"--config={path}", "--flag"])
    assert options.flag is True


def test_default_config_used_without_arguments(tmp_path):
    path = write(tmp_path, "hidden_size: 256\n")
    options, _, used = parse_config((Options, TrainingArguments), [], default_config=path)
    assert options.hidden_size == 256 and used == str(path)


def test_unknown_yaml_keys_are_named(tmp_path):
    path = write(tmp_path, "hidden_size: 128\nhiden_layers: 3\nfoo: 1\n")
    with pytest.raises(ConfigError, match="unknown keys in .*config.yaml: foo, hiden_layers"):
        parse_config((Options, TrainingArguments), [str(path)])


def test_unknown_flags_are_named():
    with pytest.raises(ConfigError, match="--hiden_size"):
        parse_config((Options, TrainingArguments), ["--hiden_size", "3"])


@pytest.mark.parametrize("text, bad", [("hidden_size: big\n", "hidden_size"), ("learning_rate: fast\n", "learning_rate")])
def test_wrong_types_in_yaml_are_named(tmp_path, text, bad):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"invalid value in .*config.yaml: argument --{bad}/.*: invalid"):
        parse_config((Options, TrainingArguments), [str(path)])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_config((Options,), [str(tmp_path / "nope.yaml")])
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_config((Options,), [str(write(tmp_path, "a: [1, 2\n"))])
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config((Options,), [str(write(tmp_path, "- 1\n- 2\n"))])


def test_shipped_configs_are_found_from_any_folder(tmp_path, monkeypatch):
    # Outside a checkout (an installed wheel, another working folder) configs/x.yaml and x.yaml name the
    # config shipped inside the package; a file of that name in the working folder still wins.
    monkeypatch.chdir(tmp_path)
    shipped = packaged_config("pretrain_offline.yaml")
    assert shipped.is_file() and Path(str(shipped)).parent.parent.name == "scratchbert"
    assert find_config("configs/pretrain_offline.yaml") == shipped == find_config("pretrain_offline.yaml")
    assert all(packaged_config(f"accelerate/{name}.yaml").is_file()
               for name in ("single_gpu", "multi_gpu", "multi_node", "fsdp", "deepspeed_zero2"))
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "pretrain_offline.yaml").write_text("hidden_size: 1\n")
    assert find_config("configs/pretrain_offline.yaml") == Path("configs/pretrain_offline.yaml")
    with pytest.raises(ConfigError, match="configs/nope.yaml does not exist .*shipped with scratchbert: .*pretrain_offline.yaml"):
        find_config("configs/nope.yaml")


@pytest.mark.parametrize(
    "module", ["pretraining", "classification", "token_classification", "glue", "convert"]
)
def test_every_entry_point_prints_its_help(module, capsys):
    """--help formats every option's help (argparse %-formats it: a bare % in a help text crashed run_pretraining)."""
    import importlib

    main = importlib.import_module(f"scratchbert.{module}").main
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage:") and "--help" in printed
