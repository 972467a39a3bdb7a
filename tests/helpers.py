"""Small envs for tests of the base class, the registry, the checker and the trainer."""

from __future__ import annotations

from agentrl.core import InvalidAction, Outcome, TextEnv

#: Overrides for a quick training run: the tiny model, full fine-tuning, 2 tasks x 2
#: samples of 2 short turns.
SMALL_TRAIN = [
    "model.name=tiny",
    "model.lora=false",
    "rollout.tasks_per_step=2",
    "rollout.samples_per_task=2",
    "rollout.max_new_tokens=6",
    "env.max_turns=2",
    "log.tensorboard=false",
    "optim.lr=1e-3",
]


class CountEnv(TextEnv):
    """Say the next number: reply count[N+1] until the target; `add` ends early with success."""

    default_max_turns = 6

    def __init__(self, split="train", max_turns=None, render_mode=None, target: int = 3):
        super().__init__(split=split, max_turns=max_turns, render_mode=render_mode)
        self.target = target
        self.value = 0
        self.history: list[str] = []

    def num_tasks(self, split):
        return {"train": 8, "valid": 2, "test": 2}[split]

    def task_id(self, split, index):
        return f"{split}-{index}"

    def load_task(self, split, index):
        self.value = index
        self.history = []
        return f"Start at {index}; count up {self.target} times."

    def act(self, action):
        if action == "stop":
            return Outcome("Stopped.", terminated=True, success=False)
        if action != f"count[{self.value + 1}]":
            raise InvalidAction(f"Expected count[{self.value + 1}].")
        self.value += 1
        self.history.append(action)
        done = len(self.history) >= self.target
        return Outcome(
            str(self.value), reward=float(done), terminated=done, success=done if done else None
        )

    def valid_actions(self):
        return [f"count[{self.value + 1}]", "stop"]


class TitleCase(TextEnv):
    """Reply with words that start with a capital letter (reward: that share, squared)."""

    action_format = "text"
    default_max_turns = 1

    def num_tasks(self, split):
        return {"train": 64, "valid": 8, "test": 8}[split]

    def task_id(self, split, index):
        return f"{split}-{index}"

    def load_task(self, split, index):
        return f"Task {index}: write a few words, each starting with a capital letter."

    def act(self, action):
        words = action.split()
        share = sum(w[:1].isupper() for w in words) / max(len(words), 1)
        return Outcome("Done.", reward=share**2, terminated=True, success=share == 1.0)
