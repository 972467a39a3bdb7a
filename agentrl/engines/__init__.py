"""Inference engines: sample tokens with their logprobs and entropies.

`Engine` is the protocol (`base.py`); `HFEngine` runs transformers in-process with
continuous batching and prefix reuse (the embedded default, CPU or GPU);
`ScriptedEngine` replays fixed outputs for tests. `create_engine` builds the one a
config asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentrl.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from agentrl.engines.scripted import ScriptedEngine
from agentrl.errors import ConfigError

if TYPE_CHECKING:
    from agentrl.config import Config

__all__ = [
    "BACKENDS",
    "Completion",
    "Engine",
    "GenerationRequest",
    "SamplingParams",
    "ScriptedEngine",
    "create_engine",
]


#: The engine backends this version provides (what `engine.backend` may name).
BACKENDS = ("hf",)


def create_engine(config: Config, model: Any, tokenizer: Any) -> Engine:
    """The engine `config.engine.backend` names, serving `model`."""
    backend = config.engine.backend
    if backend == "hf":
        from agentrl.engines.hf import HFEngine

        return HFEngine(
            model, tokenizer, max_batch_size=config.engine.max_batch_size, seed=config.train.seed
        )
    raise ConfigError(
        [
            f"engine.backend: {backend!r} is not available in this version of agentrl "
            f"(available: {', '.join(BACKENDS)}); use engine.backend=hf"
        ]
    )
