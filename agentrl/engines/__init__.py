"""Inference engines: sample tokens with their logprobs and entropies.

`Engine` is the protocol (`base.py`); `HFEngine` runs transformers in-process with
continuous batching and prefix reuse (the embedded default, CPU or GPU);
`ScriptedEngine` replays fixed outputs for tests and implements the whole protocol.

Backends are registered by name, like envs, and `create_engine` builds the one
`engine.backend` names:

```python
from agentrl.engines import register_engine

@register_engine("echo")
def echo_engine(config, model, tokenizer):       # -> an Engine
    return EchoEngine(tokenizer, max_batch_size=config.engine.max_batch_size)
```

or, without importing the package first, `register_engine("echo", "mypkg.engines:echo")`
or an entry point in the `agentrl.engines` group (loaded on the first lookup). A
backend that talks to a server is registered with `takes_url=True`; `engine.base_url`
is refused for the others. `docs/adding-an-engine.md` walks through one.
"""

from __future__ import annotations

import importlib.metadata
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agentrl.engines.base import Completion, Engine, GenerationRequest, SamplingParams
from agentrl.engines.scripted import ScriptedEngine
from agentrl.errors import ConfigError, RegistrationError
from agentrl.suggest import did_you_mean

if TYPE_CHECKING:
    from agentrl.config import Config

__all__ = [
    "Completion",
    "Engine",
    "EngineBackend",
    "GenerationRequest",
    "SamplingParams",
    "ScriptedEngine",
    "backends",
    "create_engine",
    "get_backend",
    "register_engine",
]

#: Entry-point group of engine plug-ins: each entry is imported once, on the first lookup.
PLUGIN_GROUP = "agentrl.engines"

Factory = Callable[["Config", Any, Any], Engine]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class EngineBackend:
    """A registered engine backend."""

    name: str
    entry_point: str | Factory
    """`factory(config, model, tokenizer) -> Engine`, or its 'module:attribute' path
    (imported on first use, so that registering costs no import)."""
    takes_url: bool = False
    """It serves from a server at `engine.base_url` rather than from `model`."""

    def factory(self) -> Factory:
        if callable(self.entry_point):
            return self.entry_point
        try:
            return pkgutil.resolve_name(self.entry_point)
        except (ImportError, AttributeError, ValueError) as exc:
            raise RegistrationError(
                f"engine backend {self.name!r}: its entry point {self.entry_point!r} cannot be "
                f"loaded ({type(exc).__name__}: {exc}); install the package that provides it "
                "or fix the 'module:attribute' path"
            ) from exc


_BACKENDS: dict[str, EngineBackend] = {}
_plugins_loaded = False
_plugin_errors: list[str] = []


def register_engine(
    name: str, entry_point: str | Factory | None = None, *, takes_url: bool = False
) -> Any:
    """Register an engine backend under `name`: `register_engine(name, "module:factory")`,
    or as a decorator on the factory, `@register_engine(name)`."""
    if not isinstance(name, str) or not name:
        raise RegistrationError(f"An engine backend name must be a non-empty str, got {name!r}.")

    def add(target: str | Factory) -> None:
        if not (callable(target) or (isinstance(target, str) and ":" in target)):
            raise RegistrationError(
                f"engine backend {name!r}: expected a factory(config, model, tokenizer) or "
                f"a 'module:attribute' path, got {target!r}"
            )
        if name in _BACKENDS:
            raise RegistrationError(
                f"An engine backend named {name!r} is already registered "
                f"({_BACKENDS[name].entry_point!r}); pick another name."
            )
        _BACKENDS[name] = EngineBackend(name, target, takes_url)

    if entry_point is not None:
        add(entry_point)
        return entry_point

    def decorator(fn: F) -> F:
        add(fn)
        return fn

    return decorator


def backends() -> dict[str, EngineBackend]:
    """Every registered engine backend by name (plug-ins included)."""
    _load_plugins()
    return dict(sorted(_BACKENDS.items()))


def get_backend(name: str) -> EngineBackend:
    """The backend registered as `name`; ConfigError naming the registered ones."""
    known = backends()
    if name in known:
        return known[name]
    failed = "; ".join(_plugin_errors)
    broken = f" Plug-ins that failed to load: {failed}." if failed else ""
    raise ConfigError(
        [
            f"engine.backend: {name!r} is not available in this version of agentrl "
            f"(available: {', '.join(known)}).{did_you_mean(name, list(known))} A backend of your "
            f"own is registered with agentrl.engines.register_engine.{broken}"
        ]
    )


def create_engine(config: Config, model: Any, tokenizer: Any) -> Engine:
    """The engine `config.engine.backend` names, serving `model`."""
    return get_backend(config.engine.backend).factory()(config, model, tokenizer)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as exc:  # one broken plug-in does not hide the others
            _plugin_errors.append(f"{entry.name} ({entry.value}): {type(exc).__name__}: {exc}")


register_engine("hf", "agentrl.engines.hf:from_config")
