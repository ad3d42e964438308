"""Command-line + YAML configuration for the scripts, on top of transformers' HfArgumentParser.

    python run_pretraining.py                         # configs/<default>.yaml
    python run_pretraining.py configs/x.yaml --max_steps 10
    python run_pretraining.py --config configs/x.yaml --max_steps 10

The YAML file sets defaults for the dataclass fields and flags override them. Unknown keys in the file and
unknown flags are errors that name them; so is a retired option, with where it went (a script's `retired` table).
The configs ship inside the package (scratchbert/configs, which a checkout also shows as configs/), so an installed
wheel finds them by name from any folder:

    scratchbert-pretrain pretrain_wikipedia_30min.yaml     # = configs/pretrain_wikipedia_30min.yaml
"""

import contextlib
import dataclasses
import importlib.resources
import io
import sys
from pathlib import Path

import yaml
from transformers import HfArgumentParser


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the file, key or value."""


def packaged_config(name: str):
    """A config shipped with the package (scratchbert/configs/NAME), found through importlib.resources."""
    return importlib.resources.files("scratchbert") / "configs" / name


def find_config(path: str | Path):
    """`path` if it is a file; else the packaged config of that name (so `configs/x.yaml` works outside a checkout)."""
    if Path(path).is_file():
        return Path(path)
    parts = Path(path).parts
    relative = Path(*parts[1:]) if len(parts) > 1 and parts[0] == "configs" else Path(path)
    packaged = packaged_config(relative.as_posix())
    if not Path(path).is_absolute() and packaged.is_file():
        return packaged
    shipped = sorted(p.name for p in packaged_config("").iterdir() if p.name.endswith(".yaml"))
    raise ConfigError(f"config file {path} does not exist (configs shipped with scratchbert: {', '.join(shipped)})")


def split_config_path(argv: list[str]) -> tuple[str | None, list[str]]:
    """Take the YAML path from argv (first positional argument or --config PATH / --config=PATH)."""
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a path to a YAML file")
            return argv[i + 1], argv[:i] + argv[i + 2 :]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1], argv[:i] + argv[i + 1 :]
    return None, argv


def moved_option(name: str, example: str) -> str:
    """The refusal of an option that is now set through config_overrides (`example`: a value to show)."""
    return f"{name} is set through config_overrides now, e.g. config_overrides: {name}={example}"


def refuse_retired(names, retired: dict[str, str] | None):
    """A ConfigError with the first of `names` (YAML keys, or flags without their dashes) that `retired` lists."""
    for name in names if retired else ():
        if name in retired:
            raise ConfigError(retired[name])


def flag_names(argv: list[str]):
    """The option names argv's flags spell: `--name`, `--name=value` and `--name-with-dashes` alike."""
    for arg in argv:
        if arg.startswith("--") and len(arg) > 2:
            yield arg[2:].split("=", 1)[0].replace("-", "_")


def read_yaml_config(path: str | Path, dataclass_types, retired: dict[str, str] | None = None) -> dict:
    path = find_config(path)
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must be a mapping of key: value, got {type(values).__name__}")
    refuse_retired(values, retired)
    known = {f.name for cls in dataclass_types for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown keys in {path}: {', '.join(unknown)}")
    return values


def parse_config(dataclass_types, argv: list[str] | None = None, default_config: str | Path | None = None,
                 retired: dict[str, str] | None = None):
    """Parse YAML + flags into instances of `dataclass_types`; the file is `default_config` when none is given.

    `retired` maps options that are gone (retired, or moved into another option) to the message that refuses them,
    from a YAML key or a flag, before anything else is parsed.
    Returns (instances..., the path of the YAML file used or None).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    config_path, argv = split_config_path(argv)
    refuse_retired(flag_names(argv), retired)
    config_path = find_config(config_path) if config_path else default_config
    parser = HfArgumentParser(dataclass_types)
    if config_path is not None:
        values = read_yaml_config(config_path, dataclass_types, retired)
        # argparse converts string defaults with the field's type, so a wrong type in YAML gets argparse's message.
        parser.set_defaults(**{k: (str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v) for k, v in values.items()})
        for action in parser._actions:  # a field required by its dataclass is satisfied by the file
            if action.dest in values:
                action.required = False
    argparse_output = io.StringIO()
    try:
        with contextlib.redirect_stderr(argparse_output):
            instances = parser.parse_args_into_dataclasses(argv, look_for_args_file=False)
    except SystemExit as exit_:
        if exit_.code == 0:  # --help (printed to stdout) exits 0
            raise
        # argparse ends with "prog: error: <what is wrong>"; keep that line, not the usage screen.
        reason = argparse_output.getvalue().strip().splitlines()[-1].split(" error: ", 1)[-1]
        where = f" in {config_path}" if config_path else ""
        raise ConfigError(f"invalid value{where}: {reason}") from None
    except (ValueError, TypeError) as error:
        raise ConfigError(f"invalid configuration{f' in {config_path}' if config_path else ''}: {error}") from None
    return (*instances, str(config_path) if config_path else None)
