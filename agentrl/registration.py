"""The env registry: gymnasium's, with short names, "did you mean" and plug-ins.

Envs are registered in gymnasium's registry under versioned ids with lazy string entry
points, so `gymnasium.make("agentrl/Guess-v0")` works too:

    agentrl.register("agentrl/Guess-v0", entry_point="agentrl.envs.guess:GuessEnv")

`agentrl.make(name)` resolves names case-insensitively, ignoring punctuation:
`"guess"`, `"Guess"`, `"guess-v0"` and `"agentrl/Guess-v0"` all give the latest
version of the same env. A name with no match raises `EnvNotFound` with suggestions.

Third-party packages register their envs when imported. Three ways to get them loaded:
`agentrl.make("my_pkg.envs:echo")` imports `my_pkg.envs` first (from the current
directory too, as `python -m` would); an entry point in the
`agentrl.envs` group (`[project.entry-points."agentrl.envs"] my_pkg = "my_pkg.envs"`)
is imported the first time a name is not found or the registry is listed; or the user
imports the package. See docs/adding-an-env.md.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import parse_env_id

from agentrl.core import TextEnv
from agentrl.errors import EnvNotFound, InvalidArgument, RegistrationError
from agentrl.suggest import close_matches, did_you_mean

PLUGIN_GROUP = "agentrl.envs"
#: gymnasium.make's own keywords, which agentrl envs do not take.
GYMNASIUM_MAKE_KEYWORDS = {"max_episode_steps", "disable_env_checker", "order_enforce"}

_registered: set[str] = set()
_plugins_loaded = False
_plugin_errors: list[str] = []


def register(
    id: str,
    entry_point: str | Callable[..., TextEnv],
    *,
    kwargs: dict[str, Any] | None = None,
    nondeterministic: bool = False,
) -> None:
    """Register an env under a versioned id `namespace/Name-vN`.

    `entry_point` is `"package.module:Class"` (imported only when the env is made) or
    a callable returning a `TextEnv`. The episode budget lives in the env
    (`max_turns`), not in a gymnasium `TimeLimit` wrapper, so that `fork()` copies it.
    Registering the same id again with the same entry point does nothing.
    """
    try:
        namespace, name, version = parse_env_id(id)
    except gym.error.Error as exc:
        raise RegistrationError(
            f"Env id {id!r} is malformed: expected 'namespace/Name-vN', e.g. 'mylab/Echo-v0'."
        ) from exc
    if namespace is None or version is None:
        raise RegistrationError(
            f"Env id {id!r} needs a namespace and a version: expected 'namespace/Name-vN', "
            f"e.g. '{namespace or 'mylab'}/{name}-v{version or 0}'."
        )
    if isinstance(entry_point, str) and not re.fullmatch(r"[\w.]+:[\w.]+", entry_point):
        raise RegistrationError(
            f"entry_point {entry_point!r} is malformed: expected 'package.module:ClassName'."
        )
    if id in gym.registry:
        existing = gym.registry[id]
        if id not in _registered:
            raise RegistrationError(f"{id!r} is already registered by another library.")
        if existing.entry_point == entry_point and existing.kwargs == dict(kwargs or {}):
            return  # a module imported twice, or a plug-in loaded again
        raise RegistrationError(
            f"{id!r} is already registered with entry point {existing.entry_point!r}; "
            f"refusing to replace it with {entry_point!r}. Bump the version (e.g. "
            f"'{namespace}/{name}-v{version + 1}') or pick another namespace."
        )
    gym.register(
        id=id,
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        nondeterministic=nondeterministic,
        max_episode_steps=None,
        order_enforce=False,
        disable_env_checker=True,
    )
    _registered.add(id)


def registered_ids() -> list[str]:
    """Ids of every env registered through `agentrl.register`, plug-ins included."""
    _load_plugins()
    return sorted(_registered)


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def resolve(name: str) -> str:
    """The registered id that `name` selects, or `EnvNotFound` with suggestions.

    `name` is an id (`agentrl/Guess-v0`), a name with or without namespace and version
    (`guess`, `Guess-v0`, `agentrl/guess`), case and punctuation ignored, or
    `module:name` to import `module` first.
    """
    if not isinstance(name, str) or not name.strip():
        raise EnvNotFound(f"An env name must be a non-empty string; got {name!r}.")
    if ":" in name:
        module, _, name = name.partition(":")
        if not module.strip() or not name.strip():
            raise EnvNotFound(
                f"{module}:{name!r} is malformed: expected 'package.module:name', "
                "e.g. 'my_envs:reverse'."
            )
        _import_env_module(module.strip(), name)
    found = _match(name)
    if not found:
        _load_plugins()
        found = _match(name)
    if len(found) == 1:
        return found[0]
    if found:
        raise EnvNotFound(
            f"Env name {name!r} is ambiguous: it matches {', '.join(found)}. Use the full id."
        )
    raise _not_found(name)


def _import_env_module(module: str, name: str) -> None:
    try:
        importlib.import_module(module)
        return
    except ModuleNotFoundError as exc:
        # Console scripts do not put the current directory on sys.path; `python -m`
        # does, and users expect a module next to them to be found.
        if exc.name != module.split(".")[0] or os.getcwd() in sys.path:
            raise EnvNotFound(f"Cannot import {module!r} to find env {name!r}: {exc}.") from exc
    sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(module)
    except ImportError as exc:
        sys.path.remove(os.getcwd())
        raise EnvNotFound(
            f"Cannot import {module!r} to find env {name!r}: {exc}. Check the module path "
            "before the ':' (it is looked up on sys.path and in the current directory)."
        ) from exc


def _match(name: str) -> list[str]:
    """Ids matching `name`; for an unversioned name, only the latest version of each."""
    if name in _registered:
        return [name]
    try:
        namespace, base, version = parse_env_id(name.strip())
    except gym.error.Error:
        namespace, base, version = None, name, None
    hits = []
    for env_id in _registered:
        env_namespace, env_base, env_version = parse_env_id(env_id)
        if _normalise(base) != _normalise(env_base):
            continue
        if namespace is not None and _normalise(namespace) != _normalise(env_namespace or ""):
            continue
        if version is not None and version != env_version:
            continue
        hits.append(env_id)
    latest: dict[tuple[str | None, str], str] = {}
    for env_id in hits:
        env_namespace, env_base, env_version = parse_env_id(env_id)
        current = latest.get((env_namespace, env_base))
        if current is None or (env_version or 0) > (parse_env_id(current)[2] or 0):
            latest[(env_namespace, env_base)] = env_id
    return sorted(latest.values())


def _not_found(name: str) -> EnvNotFound:
    known = sorted(_registered)
    choices = {env_id: parse_env_id(env_id)[1] for env_id in known}
    try:  # compare the name part of an id ("agentrl/Gues-v0" -> "Gues")
        typed = parse_env_id(name.strip())[1]
    except gym.error.Error:
        typed = name
    suggestions = close_matches(typed, choices, n=3)
    hint = f" Did you mean {' or '.join(map(repr, suggestions))}?" if suggestions else ""
    listing = ", ".join(known) if known else "none"
    broken = (
        f" Plug-ins that failed to load: {'; '.join(_plugin_errors)}." if _plugin_errors else ""
    )
    return EnvNotFound(
        f"No env named {name!r}.{hint} Registered envs: {listing}. "
        f"`agentrl envs` lists them; a third-party env loads with 'package.module:name'.{broken}",
        suggestions,
    )


def _load_plugins() -> None:
    """Import the modules of the `agentrl.envs` entry-point group, once.

    A plug-in that fails to import is remembered (and named when a lookup fails),
    so one broken package does not hide the others.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    for entry in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        try:
            entry.load()
        except Exception as exc:
            _plugin_errors.append(f"{entry.name} ({entry.value}): {type(exc).__name__}: {exc}")
    _plugins_loaded = True


def _creator(env_id: str) -> Callable[..., Any]:
    """The class or function behind `env_id`'s entry point (imports its module)."""
    entry = gym.spec(env_id).entry_point
    if callable(entry):
        return entry
    try:
        return gym.envs.registration.load_env_creator(entry)
    except (ImportError, AttributeError) as exc:
        raise RegistrationError(
            f"{env_id}'s entry point {entry!r} cannot be loaded: {type(exc).__name__}: {exc}. "
            "Install the package that provides it, or fix the 'module:Class' path."
        ) from exc


def make(name: str, split: str = "train", **kwargs: Any) -> TextEnv:
    """Create a registered env by name, e.g. `agentrl.make("guess", split="test")`.

    Keyword arguments go to the env's constructor (after the registered defaults);
    one it does not take is an `InvalidArgument` naming those it does.
    """
    env_id = resolve(name)
    creator = _creator(env_id)
    if inspect.isclass(creator) and not issubclass(creator, TextEnv):
        raise RegistrationError(
            f"{env_id} is registered with {creator.__name__}, not an agentrl.TextEnv subclass; "
            "its entry point must return a TextEnv."
        )
    _check_kwargs(env_id, kwargs)
    env = gym.make(env_id, split=split, **kwargs)
    if not isinstance(env, TextEnv):
        raise RegistrationError(
            f"{env_id} made a {type(env).__name__}, not an agentrl.TextEnv; "
            "its entry point must return a TextEnv subclass."
        )
    return env


def _check_kwargs(env_id: str, kwargs: dict[str, Any]) -> None:
    accepted = constructor_parameters(env_id)
    if accepted is None:
        return
    for key in kwargs:
        if key in accepted:
            continue
        if key in GYMNASIUM_MAKE_KEYWORDS:
            raise InvalidArgument(
                f"{env_id} does not take {key!r}: agentrl envs are never wrapped by gymnasium; "
                "the step budget is max_turns."
            )
        hint = did_you_mean(key, sorted(accepted))
        raise InvalidArgument(
            f"{env_id} does not take the argument {key!r}.{hint} "
            f"It takes: {', '.join(sorted(accepted))}."
        )


def constructor_parameters(env_id: str) -> set[str] | None:
    """Keyword arguments the env's constructor accepts; None when it takes **kwargs."""
    params = inspect.signature(_creator(env_id)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL}


@dataclass(frozen=True)
class EnvInfo:
    """One row of `agentrl envs`."""

    id: str
    name: str
    description: str
    split_sizes: dict[str, int]
    max_turns: int
    supports_fork: bool
    entry_point: str


def describe(env_id: str) -> EnvInfo:
    """Id, description, split sizes and budget of a registered env (builds it once)."""
    env = make(env_id)
    try:
        doc = inspect.getdoc(type(env)) or ""
        _, name, _ = parse_env_id(env_id)
        entry = gym.spec(env_id).entry_point
        return EnvInfo(
            id=env_id,
            name=name.lower(),
            description=doc.strip().splitlines()[0] if doc.strip() else "",
            split_sizes=env.split_sizes(),
            max_turns=env.max_turns,
            supports_fork=type(env).supports_fork,
            entry_point=entry if isinstance(entry, str) else repr(entry),
        )
    finally:
        env.close()


def list_envs() -> list[EnvInfo]:
    """Every registered env, sorted by id."""
    return [describe(env_id) for env_id in registered_ids()]
