"""The environment contract: text in, text out, on top of `gymnasium.Env`.

An agentrl environment is a `gymnasium.Env` whose observations and actions are strings:

    obs, info = env.reset(seed=3)              # obs: the task statement
    obs, reward, terminated, truncated, info = env.step("guess[50]")

A subclass of `TextEnv` implements five small methods and gets the rest of the
contract from the base class:

| method                      | returns                                                    |
|-----------------------------|------------------------------------------------------------|
| `num_tasks(split)`          | how many tasks the split holds                             |
| `task_id(split, index)`     | a stable id, unique across all splits (disjointness check) |
| `load_task(split, index)`   | set up that task's state; return the first observation     |
| `act(action)`               | an `Outcome`; raise `InvalidAction` for a malformed action  |
| `valid_actions()` (optional) | some actions that are valid now (checkers, baselines)     |

What the base class does, so that every env behaves the same:

- **Splits**: `split="train" | "valid" | "test"`; `split_sizes()` reports them.
- **Seeding**: `reset(seed=s)` picks the task with the seeded RNG, so the same seed and
  options give the same task; `options={"task_index": i}` picks task `i` directly.
- **Malformed actions**: an `InvalidAction` raised by `act` becomes an observation that
  says what was wrong (`info["invalid_action"] = True`); the episode goes on.
- **Budget**: after `max_turns` steps the episode is `truncated`.
- **End of episode**: `info["success"]` is always present once the episode ends.
- **Fork**: `fork()` returns an independent deep copy whose future equals the
  original's under the same actions. Envs with external state (a process, a Java
  world) override `fork()` or set `supports_fork = False`, and branching then uses
  `replay(env, fresh_env)`: every episode records its seed, options and actions, so
  a fresh env can be brought to the same state.
"""

from __future__ import annotations

import copy
import operator
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agentrl.errors import (
    EnvContractError,
    ForkNotSupported,
    InvalidActionType,
    InvalidArgument,
    InvalidResetOptions,
    InvalidSplit,
    ResetNeeded,
)

SPLITS: tuple[str, ...] = ("train", "valid", "test")
Split = Literal["train", "valid", "test"]

#: Characters `TextSpace.sample()` draws from; `contains()` accepts any character.
PRINTABLE = frozenset(string.printable)


class TextSpace(spaces.Text):
    """A space of strings of any characters, up to `max_length` long.

    gymnasium's `Text` space only contains strings over a fixed character set
    (alphanumeric by default), which rejects ordinary prose. This space accepts any
    string within the length bounds; `sample()` draws printable ASCII.
    """

    def __init__(self, max_length: int = 100_000, min_length: int = 0, seed: int | None = None):
        super().__init__(max_length, min_length=min_length, charset=PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"TextSpace({self.min_length}, {self.max_length})"


class Action(str):
    """An action: its canonical text (`search[red shoes]`, what every env reads), with the
    tool `name` and the `arguments` the parser found: the text inside the brackets or
    tags, or the mapping of a JSON tool call (never flattened for an env that reads it).
    Free text has neither. It is a `str`, so envs that read text need nothing else."""

    name: str | None
    arguments: str | dict[str, Any] | None
    reply: str | None
    """The whole reply the action was parsed from (the rollout sets it), for envs that
    grade how the agent wrote, e.g. a format reward; None for actions made elsewhere."""

    def __new__(
        cls,
        text: str,
        name: str | None = None,
        arguments: str | dict[str, Any] | None = None,
        reply: str | None = None,
    ) -> Action:
        action = super().__new__(cls, text)
        action.name, action.arguments, action.reply = name, arguments, reply
        return action

    def __reduce__(self) -> tuple[Any, ...]:  # pickles and deep-copies with its fields
        return (type(self), (str(self), self.name, self.arguments, self.reply))


class InvalidAction(Exception):
    """Raised inside `TextEnv.act` for a malformed action; becomes an observation.

    The message is what the agent reads, so it should say what was expected, e.g.
    ``"Invalid action 'gues[5]'. Use guess[N] with N a whole number from 1 to 100."``
    """


@dataclass
class Outcome:
    """What `TextEnv.act` returns for one valid action."""

    observation: str
    """The env's reply, shown to the agent next."""
    reward: float = 0.0
    """Reward for this step (most text envs pay only at the end)."""
    terminated: bool = False
    """The task ended (answer given, item bought)."""
    success: bool | None = None
    """Whether the task was solved; required when `terminated` is True."""
    info: dict[str, Any] = field(default_factory=dict)
    """Diagnostics and reward components, merged into the step's `info`."""


class TextEnv(gym.Env[str, str]):
    """Base class for agentrl environments: string observations and actions.

    Args:
        split: which task set episodes are drawn from.
        max_turns: step budget per episode; `None` keeps the class default.
        render_mode: `None` or `"ansi"` (render returns the last observation).
    """

    # render_fps only silences gymnasium's checker: text is rendered on demand.
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"], "render_fps": 4}
    supports_fork: ClassVar[bool] = True
    default_max_turns: ClassVar[int] = 20
    #: What the agent is told before its task: the first part of the system prompt.
    instructions: ClassVar[str] = ""
    #: How a policy writes actions: "bracket", "tags" or "json" (agentrl.rollout.actions).
    action_format: ClassVar[str] = "bracket"
    #: The env's action names, e.g. ("search", "click"); empty accepts any name.
    action_names: ClassVar[tuple[str, ...]] = ()
    #: An example argument per action, e.g. {"search": "capital of France", "answer":
    #: "Paris"}: format hints then show concrete calls, which small models copy better
    #: than a template ("<search>...</search>" gets searched for "...").
    action_examples: ClassVar[dict[str, str]] = {}
    #: The env's tools, an `agentrl.tools.Toolbox` (None: it offers none). The rollout
    #: passes their schemas to chat templates that take tools.
    tools: Any = None
    #: Extra strings that end a policy's turn (e.g. "]" when no action nests brackets),
    #: added to the parser's; the tokens that form them are kept.
    stop_strings: ClassVar[tuple[str, ...]] = ()
    #: Attributes `fork()` shares with the copy instead of copying (read-only task sets,
    #: toolboxes, sandboxes): a branch then costs its episode's state only.
    shared_on_fork: ClassVar[tuple[str, ...]] = ()
    max_observation_chars: ClassVar[int] = 100_000
    max_action_chars: ClassVar[int] = 10_000

    def __init__(
        self,
        split: Split = "train",
        max_turns: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if split not in SPLITS:
            raise InvalidSplit(
                f"split must be one of {', '.join(SPLITS)}; got {split!r}. "
                "Pass split='train' for training and split='test' for held-out evaluation."
            )
        if max_turns is not None:
            max_turns = _positive_int(max_turns, "max_turns")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise InvalidArgument(
                f"render_mode must be None or one of {self.metadata['render_modes']}; "
                f"got {render_mode!r}"
            )
        self.split: Split = split
        self.max_turns: int = max_turns if max_turns is not None else self.default_max_turns
        self.render_mode = render_mode
        self.observation_space = TextSpace(self.max_observation_chars)
        self.action_space = TextSpace(self.max_action_chars)
        self.task_index: int | None = None
        self.episode_seed: int | None = None
        self.episode_options: dict[str, Any] = {}
        self.actions: list[str] = []
        self.turn = 0
        self._done = True
        self._started = False
        self._last_observation = ""

    # ------------------------------------------------------------------ subclass API

    def num_tasks(self, split: Split) -> int:
        """Number of tasks in `split`."""
        raise NotImplementedError(f"{type(self).__name__} must implement num_tasks(split)")

    def task_id(self, split: Split, index: int) -> str:
        """A stable id of task `index` of `split`, unique across all splits."""
        raise NotImplementedError(f"{type(self).__name__} must implement task_id(split, index)")

    def load_task(self, split: Split, index: int) -> str:
        """Set up the state of task `index` of `split`; return the first observation.

        `self.np_random` is seeded by `reset` and may be used for any randomness.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement load_task(split, index)")

    def act(self, action: str) -> Outcome:
        """Apply one action. Raise `InvalidAction(message)` for a malformed one."""
        raise NotImplementedError(f"{type(self).__name__} must implement act(action)")

    def valid_actions(self) -> list[str]:
        """Some actions that are valid in the current state (all of them when few).

        Used by the env checker and by scripted baselines (the random policy).
        """
        return []

    def demonstrations(self) -> list[tuple[str, str]]:
        """Example turns (observation, action) shown to the policy before its task.

        Small models follow an action format far more often after seeing it used; the
        rollout manager renders these as earlier chat turns (never trained on). Take
        them from the train split, never from the task at hand. Default: none.
        """
        return []

    def response_prefix(self) -> str:
        """Text the agent's next reply starts with, written by the env rather than
        sampled: e.g. "search[" on a page where searching is the only action.

        The rollout manager puts it at the start of the model's turn (not trained on:
        loss mask 0) and parses the prefix plus what the model writes after it. Only
        for what the env's state already decides; small models gain most. Default: none.
        """
        return ""

    # ------------------------------------------------------------------ gymnasium API

    def split_sizes(self) -> dict[str, int]:
        """Number of tasks per split, e.g. `{"train": 5000, "valid": 500, "test": 500}`."""
        return {split: self.num_tasks(split) for split in SPLITS}  # type: ignore[arg-type]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Start an episode on a task of `self.split`.

        The task is `options["task_index"]` when given, otherwise drawn with the RNG
        seeded by `seed`, so the same seed and options always give the same task.
        Without a seed, one is drawn from the env's RNG and kept in `episode_seed`, so
        that `replay` can rebuild the episode on a fresh env.
        """
        if seed is not None:
            seed = _integer(seed, "seed")
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**62))
            super().reset(seed=seed)
        if options is not None and not isinstance(options, Mapping):
            raise InvalidResetOptions(
                f"options must be a dict such as {{'task_index': 3}} or None; got {options!r}."
            )
        self.episode_seed = seed
        self.episode_options = dict(options or {})
        options = dict(options or {})
        size = self.num_tasks(self.split)
        index = options.pop("task_index", None)
        if options:
            raise InvalidResetOptions(
                f"Unknown reset option(s) {sorted(options)}; the only option is 'task_index' "
                f"(an integer in [0, {size}))."
            )
        if index is None:
            index = int(self.np_random.integers(size))
        elif isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise InvalidResetOptions(
                f"options['task_index'] must be an integer in [0, {size}); got {index!r}."
            )
        elif not 0 <= index < size:
            raise InvalidResetOptions(
                f"options['task_index'] must be in [0, {size}) for split {self.split!r}; "
                f"got {index}. `env.split_sizes()` lists the size of each split."
            )
        self.task_index = int(index)
        self.actions = []
        self.turn = 0
        self._done = False
        self._started = True
        observation = self.load_task(self.split, self.task_index)
        self._last_observation = observation
        info = {
            "task_id": self.task_id(self.split, self.task_index),
            "task_index": self.task_index,
            "split": self.split,
            "turn": 0,
        }
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        """Apply `action`. A malformed action is answered by an observation, not raised."""
        if not self._started:
            raise ResetNeeded(
                f"{type(self).__name__}.step() was called before reset(); call reset() first."
            )
        if self._done:
            raise ResetNeeded(
                f"{type(self).__name__}.step() was called after the episode ended "
                "(terminated or truncated); call reset() to start a new one."
            )
        if not isinstance(action, str):
            raise InvalidActionType(
                f"An action must be a str; got {type(action).__name__}: {action!r}. "
                "A policy's output is parsed into an action string before step()."
            )
        self.turn += 1
        self.actions.append(action)
        try:
            outcome = self.act(action)
            invalid = False
        except InvalidAction as exc:
            outcome = Outcome(observation=str(exc))
            invalid = True
        if outcome.terminated and outcome.success is None:
            raise EnvContractError(
                f"{type(self).__name__}.act() returned terminated=True without success; "
                "set Outcome.success when the episode ends."
            )
        terminated = bool(outcome.terminated)
        truncated = not terminated and self.turn >= self.max_turns
        info: dict[str, Any] = {**outcome.info, "turn": self.turn, "invalid_action": invalid}
        if terminated or truncated:
            info["success"] = bool(outcome.success) if terminated else False
            self._done = True
        self._last_observation = outcome.observation
        return outcome.observation, float(outcome.reward), terminated, truncated, info

    def fork(self) -> TextEnv:
        """An independent copy whose future equals this env's under the same actions."""
        if not self.supports_fork:
            raise ForkNotSupported(
                f"{type(self).__name__} declares supports_fork = False. Use "
                "agentrl.core.replay(env, fresh_env) to rebuild its state on a fresh env."
            )
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> TextEnv:
        state = self.__dict__
        for name in self.shared_on_fork:
            if name in state:
                memo[id(state[name])] = state[name]
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({name: copy.deepcopy(value, memo) for name, value in state.items()})
        return new

    def render(self) -> str | None:
        """The last observation when `render_mode == "ansi"`, else None."""
        return self._last_observation if self.render_mode == "ansi" else None

    @property
    def done(self) -> bool:
        """True when no episode is running (before the first reset or after it ended)."""
        return self._done


def play(env: TextEnv, policy: Any, task_index: int) -> dict[str, Any]:
    """One episode of `policy` (a function of the env that returns an action) on task
    `task_index` of the env's split: the last step's info, and `return`, the sum of the
    rewards. What scripted baselines are scored with."""
    env.reset(options={"task_index": task_index})
    total, info = 0.0, {}
    while not env.done:
        _, reward, _, _, info = env.step(policy(env))
        total += reward
    return {**info, "return": total}


def replay(env: TextEnv, fresh: TextEnv) -> TextEnv:
    """Bring `fresh` to `env`'s state: same seed and options, then the same actions.

    The fallback of `fork()` for envs with external state (`supports_fork = False`).
    `fresh` must be the same env with the same arguments (split included).
    """
    if env.episode_seed is None:
        raise ResetNeeded("replay() needs an env that has been reset; call reset() first.")
    if type(fresh) is not type(env) or fresh.split != env.split:
        raise InvalidArgument(
            f"replay() needs a fresh {type(env).__name__} on split {env.split!r}; "
            f"got {type(fresh).__name__} on split {fresh.split!r}."
        )
    fresh.reset(seed=env.episode_seed, options=env.episode_options)
    for action in env.actions:
        fresh.step(action)
    return fresh


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise InvalidArgument(f"{name} must be an integer; got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidArgument(f"{name} must be an integer; got {value!r}.") from None


def _positive_int(value: Any, name: str) -> int:
    number = _integer(value, name)
    if number < 1:
        raise InvalidArgument(f"{name} must be a positive integer or None; got {value!r}.")
    return number
