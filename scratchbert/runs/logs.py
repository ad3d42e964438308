"""Logging of a run: to the current stdout, replacing only what an earlier run installed."""

import logging
import sys

import datasets
import transformers
from transformers import TrainingArguments


class CurrentStdoutHandler(logging.StreamHandler):
    """Logs to whatever sys.stdout is when a record is written (test runners and notebooks swap it)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):  # StreamHandler assigns it; the current sys.stdout always wins
        pass


_run_handlers: list[logging.Handler] = []  # installed by the last setup_logging, replaced by the next


def setup_logging(training_args: TrainingArguments):
    """Log to stdout, replacing only the handlers an earlier run installed."""
    root = logging.getLogger()
    for handler in _run_handlers:
        root.removeHandler(handler)
        logging.getLogger("transformers").removeHandler(handler)
        handler.close()
    _run_handlers[:] = [CurrentStdoutHandler()]
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in _run_handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("scratchbert").setLevel(logging.INFO if training_args.should_log else logging.WARNING)
    level = training_args.get_process_log_level()
    datasets.utils.logging.set_verbosity(max(level, logging.WARNING))
    transformers.utils.logging.set_verbosity(level)
