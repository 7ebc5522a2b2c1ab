# humanparse — make demo | make test | make install | make lint
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch and torchvision must come as a matched pair (their compiled ops are built together)
TORCH_PAIR ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test lint format clean help

help:
	@echo "make demo     train + evaluate DeepLab v3+ on synthetic LIP (CPU, a few minutes)"
	@echo "make test     run the test suite"
	@echo "make install  create $(VENV) with every dependency (done automatically by demo/test)"
	@echo "make lint     ruff check + ruff format --check (CI runs it)"

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PAIR)
	$(PY) -m pip install --quiet -e ".[dev,sweeps]" $(TORCH_PAIR)
	$(PY) -c "import torch, torchvision, torchvision.ops; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m humanparse.train experiment=demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

format: $(STAMP)
	$(PY) -m ruff format src tests scripts

clean:
	rm -rf $(VENV) .cache logs .pytest_cache
