"""Shared fixtures: registry sandboxes, so tests that register envs, algorithms or engine
backends leave no trace; the tokenizer and a tiny model."""

from __future__ import annotations

import gymnasium as gym
import pytest

import agentrl
from agentrl import registration


@pytest.fixture
def registry_sandbox():
    """Undo every registration (and plug-in loading) a test makes."""
    saved_gym = dict(gym.registry)
    saved_ours = set(registration._registered)
    saved_plugins = registration._plugins_loaded
    saved_errors = list(registration._plugin_errors)
    yield
    gym.registry.clear()
    gym.registry.update(saved_gym)
    registration._registered.clear()
    registration._registered.update(saved_ours)
    registration._plugins_loaded = saved_plugins
    registration._plugin_errors[:] = saved_errors


@pytest.fixture
def algo_sandbox():
    """Undo every advantage, loss and regularizer a test registers."""
    from agentrl.algos import registry

    tables = (registry.ADVANTAGES, registry.LOSSES, registry.REGULARIZERS, registry._TRAITS)
    saved = [dict(table) for table in tables]
    yield
    for table, before in zip(tables, saved, strict=True):
        table.clear()
        table.update(before)


@pytest.fixture
def engine_sandbox():
    """Undo every engine backend a test registers."""
    from agentrl import engines

    saved = dict(engines._BACKENDS)
    yield
    engines._BACKENDS.clear()
    engines._BACKENDS.update(saved)


@pytest.fixture(scope="session")
def tokenizer():
    """The default model's tokenizer (SmolLM2), converted once and cached."""
    from agentrl.models import load_tokenizer

    return load_tokenizer("default")


@pytest.fixture(scope="session")
def tiny(tokenizer):
    """A tiny random-init model over the default tokenizer."""
    from agentrl.models import tiny_model

    return tiny_model(tokenizer, seed=0)


@pytest.fixture
def title_env(registry_sandbox):
    """`titlecase`: an env whose rewards differ within a group, so updates move weights."""
    agentrl.register("test/TitleCase-v0", entry_point="tests.helpers:TitleCase")
