"""Every error agentrl raises on purpose, in one hierarchy.

```
AgentRLError                      base class: catch this to catch any of ours
├── ConfigError (ValueError)      a config file or override is wrong; lists every problem
├── EnvNotFound (LookupError)     no registered env matches a name; suggests near misses
├── RegistrationError (ValueError)  an env id or entry point cannot be registered
├── InvalidArgument (ValueError)  a constructor or function argument out of its allowed set
│   └── InvalidSplit              a split name that is not train / valid / test
├── InvalidActionType (TypeError)  `step()` given something other than a str
├── InvalidResetOptions (ValueError)  `reset(options=...)` has an unknown key or bad value
├── ResetNeeded (RuntimeError)    `step()` before `reset()` or after the episode ended
├── ForkNotSupported (RuntimeError)  `fork()` on an env that declares `supports_fork = False`
├── ModelNotFound (LookupError)   a model name that is neither 'default' nor a local model dir
├── TemplateError (ValueError)    a chat template that would break token-exact rollouts
└── EnvContractError (AssertionError)  an env breaks the contract (found by `check_env`)
```

A malformed *action* is never an exception: the env answers it with an observation
that says what was wrong (see `agentrl.core.InvalidAction`). The errors here are for
programming and configuration mistakes. Every message says what was expected, what
came, and the likely fix.
"""

from __future__ import annotations

from collections.abc import Sequence


class AgentRLError(Exception):
    """Base class of every error agentrl raises on purpose."""


class ConfigError(AgentRLError, ValueError):
    """A config file or override is invalid; `problems` holds one line per problem."""

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f" in {source}" if source else ""
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"Invalid config{where} ({count} {noun}):\n{lines}")


class EnvNotFound(AgentRLError, LookupError):
    """No registered environment matches the requested name."""

    def __init__(self, message: str, suggestions: Sequence[str] = ()) -> None:
        self.suggestions = list(suggestions)
        super().__init__(message)

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class RegistrationError(AgentRLError, ValueError):
    """An environment id or entry point cannot be registered."""


class InvalidArgument(AgentRLError, ValueError):
    """An argument outside its allowed set (an env keyword it does not take, a bad budget)."""


class InvalidActionType(AgentRLError, TypeError):
    """`step()` was given something other than a str (a malformed *string* is not an error)."""


class InvalidSplit(InvalidArgument):
    """A task split name other than `train`, `valid` or `test`."""


class InvalidResetOptions(AgentRLError, ValueError):
    """`reset(options=...)` holds an unknown key or a value out of range."""


class ResetNeeded(AgentRLError, RuntimeError):
    """`step()` was called before `reset()` or after the episode ended."""


class ForkNotSupported(AgentRLError, RuntimeError):
    """`fork()` was called on an env that declares `supports_fork = False`."""


class ModelNotFound(AgentRLError, LookupError):
    """A model name that is neither 'default' nor a local Hugging Face model directory."""

    def __str__(self) -> str:  # LookupError would otherwise repr() the message
        return str(self.args[0])


class TemplateError(AgentRLError, ValueError):
    """A chat template that is not prefix-preserving for the model in use."""


class EnvContractError(AgentRLError, AssertionError):
    """An environment breaks the agentrl env contract (raised by `check_env`)."""


class EngineContractError(AgentRLError, AssertionError):
    """An inference engine breaks the engine contract (raised by `check_engine`)."""
