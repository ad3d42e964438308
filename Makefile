# The quick start in two commands: `make run` (the main job) and `make test` (the tests). Each sets up what it
# needs on first use and nothing on later runs:
#   .venv/                      a virtual environment, made with $(PYTHON) if there is none;
#   torch                       $(TORCH) (the CPU build; a plain `torch` requirement would pull a multi-GB CUDA
#                               build) unless a torch already imports in .venv (install your GPU build there first);
#   pip install -e ".[dev]"     the project; redone only when setup.cfg or pyproject.toml change (a stamp file).
# Both run offline (no Hub, no datasets download, no wandb). ARGS goes to the command:
#   make run ARGS=configs/pretrain_wikipedia_30min.yaml      make test ARGS='-m "not slow"'

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
VENV_PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.scratchbert-installed
# As if .venv were activated (a tool a test starts by name is the venv's), and offline.
OFFLINE := VIRTUAL_ENV="$(CURDIR)/$(VENV)" PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
ARGS ?=

.PHONY: run test setup

run: $(STAMP)
	$(OFFLINE) $(VENV_PYTHON) run_pretraining.py $(ARGS)

test: $(STAMP)
	$(OFFLINE) $(VENV_PYTHON) -m pytest $(ARGS)

setup: $(STAMP)

$(VENV_PYTHON):
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install --quiet --upgrade pip

# Order-only on the interpreter: its timestamp (the system Python's, through the venv's link) says nothing.
$(STAMP): setup.cfg pyproject.toml | $(VENV_PYTHON)
	$(VENV_PYTHON) -c "import torch" 2>/dev/null || $(VENV_PYTHON) -m pip install --quiet "$(TORCH)"
	$(VENV_PYTHON) -m pip install --quiet -e ".[dev]"
	touch $@
