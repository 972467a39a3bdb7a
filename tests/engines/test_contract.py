"""The engine contract (`agentrl.engines.checker`), checked on every registered backend
and on the scripted twin; and registering backends, from outside the package too.

A backend registered with `agentrl.engines.register_engine` (or an `agentrl.engines`
entry point) joins these tests by name.
"""

from __future__ import annotations

import asyncio

import pytest

import agentrl
from agentrl.engines import (
    GenerationRequest,
    SamplingParams,
    ScriptedEngine,
    backends,
    create_engine,
    register_engine,
)
from agentrl.engines.checker import check_engine
from agentrl.errors import EngineContractError


def _scripted(tokenizer, model):
    # A reply that depends on the prompt and the call, long enough to hit a token limit.
    return ScriptedEngine(tokenizer, lambda prompt, i: f"I think {len(prompt) % 7} [ok] then more")


ENGINES = [
    "scripted",
    *[
        name
        if not backend.takes_url
        else pytest.param(name, marks=pytest.mark.skip(reason="serves from a URL: needs a server"))
        for name, backend in backends().items()
    ],
]


@pytest.fixture(params=ENGINES)
def make(request, tiny, tokenizer):
    """A factory of fresh engines of one kind, serving the tiny model."""

    def build():
        if request.param == "scripted":
            return _scripted(tokenizer, tiny)
        config = agentrl.load_config(None, [f"engine.backend={request.param}"])
        return create_engine(config, tiny, tokenizer)

    return build


def prompt(tokenizer, text="The quick brown fox jumps over"):
    return tokenizer(text, add_special_tokens=False).input_ids


def generate(engine, *requests):
    return asyncio.run(engine.generate(list(requests)))


def test_the_engine_keeps_the_contract(make, tokenizer):
    check_engine(make, tokenizer)


class Forgetful(ScriptedEngine):
    """Breaks three rules: reuses prefixes after new weights, ignores max_new_tokens on
    n > 1, and keeps answering after close()."""

    def weights_updated(self):
        self.weight_updates += 1

    async def close(self):
        pass

    async def generate(self, requests):
        results = await super().generate(requests)
        for request, completions in zip(requests, results, strict=True):
            if request.params.n > 1:
                completions[0].token_ids = completions[0].token_ids * 3
        return results


def test_a_broken_engine_is_named_with_every_broken_rule(tokenizer):
    script = lambda prompt, i: "plenty of words to say here"  # noqa: E731
    with pytest.raises(EngineContractError) as caught:
        check_engine(lambda: Forgetful(tokenizer, script), tokenizer)
    message = str(caught.value)
    assert "Forgetful breaks the engine contract" in message
    assert "limits: AssertionError" in message and "prefix_reuse: AssertionError" in message
    assert "closed: AssertionError: generate() after close() must raise" in message
    assert "seeded" not in message and "protocol" not in message


def test_a_backend_registered_outside_the_package_is_built_from_a_config(
    engine_sandbox, tmp_path, monkeypatch, tiny, tokenizer
):
    # A module of the user's own, registering by "module:attribute" without being imported.
    (tmp_path / "my_engines.py").write_text(
        "from agentrl.engines import ScriptedEngine\n"
        "def echo(config, model, tokenizer):\n"
        "    return ScriptedEngine(tokenizer, lambda prompt, i: 'echo', entropy=0.5)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    register_engine("echo", "my_engines:echo")
    config = agentrl.load_config(None, ["engine.backend=echo"])  # validates against the registry
    engine = create_engine(config, tiny, tokenizer)
    [[completion]] = generate(engine, GenerationRequest(prompt(tokenizer), SamplingParams()))
    assert tokenizer.decode(completion.token_ids, skip_special_tokens=True) == "echo"
    with pytest.raises(agentrl.errors.RegistrationError, match="already registered"):
        register_engine("echo", "my_engines:echo")
    with pytest.raises(agentrl.errors.ConfigError, match=r"'ech' is not available.*'echo'"):
        agentrl.load_config(None, ["engine.backend=ech"])


def test_a_backend_that_takes_a_url_needs_one(engine_sandbox):
    @register_engine("remote", takes_url=True)
    def remote(config, model, tokenizer):  # pragma: no cover - never built here
        raise AssertionError

    with pytest.raises(agentrl.errors.ConfigError, match="base_url: required by the 'remote'"):
        agentrl.load_config(None, ["engine.backend=remote"])
    config = agentrl.load_config(
        None, ["engine.backend=remote", "engine.base_url=http://127.0.0.1:9/v1"]
    )
    assert config.engine.base_url.endswith("/v1")
    with pytest.raises(agentrl.errors.ConfigError, match="only the 'remote' backend uses it"):
        agentrl.load_config(None, ["engine.base_url=http://127.0.0.1:9/v1"])


def test_the_trainer_tells_the_engine_of_every_update(engine_sandbox, tmp_path, tokenizer):
    # A backend registered in the test serves the whole training run.
    from agentrl.train import train
    from tests.helpers import SMALL_TRAIN

    built = []

    @register_engine("counting")
    def counting(config, model, tokenizer):
        built.append(ScriptedEngine(tokenizer, lambda prompt, i: f"guess[{i % 9 + 1}]"))
        return built[-1]

    config = agentrl.load_config(
        None, [*SMALL_TRAIN, "env.name=guess", "engine.backend=counting", "train.steps=2"]
    )
    train(config, tmp_path)
    [engine] = built
    assert engine.weight_updates == 2 and engine.calls > 0  # once per optimizer step
