"""Run metrics: one `metrics.jsonl` line per step, TensorBoard event files, optional wandb.

    logger = MetricsLogger(run_dir, tensorboard=True)
    logger.log(step, {"rollout/reward": 0.4, "loss/policy": 0.01})
    logger.close()

Names are `group/name`. Every line is flushed as written, so a crash loses nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from agentrl.errors import ConfigError


class MetricsLogger:
    """Writes scalar metrics to JSONL, TensorBoard and (when asked) wandb."""

    def __init__(
        self,
        run_dir: str | Path,
        tensorboard: bool = True,
        wandb: bool = False,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._jsonl = (self.run_dir / "metrics.jsonl").open("a", encoding="utf-8")
        self._tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(self.run_dir / "tensorboard"))
        self._wandb = None
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError:
                raise ConfigError(
                    [
                        "log.wandb: the wandb package is not installed; pip install wandb, "
                        "or set log.wandb=false"
                    ]
                ) from None
            self._wandb = wandb_module.init(dir=str(self.run_dir), config=config)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        finite = {k: v for k, v in clean.items() if math.isfinite(v)}
        line = {"step": step, **{k: (v if k in finite else str(v)) for k, v in clean.items()}}
        self._jsonl.write(json.dumps(line) + "\n")
        self._jsonl.flush()
        if self._tensorboard is not None:
            for key, value in finite.items():
                self._tensorboard.add_scalar(key, value, step)
            self._tensorboard.flush()
        if self._wandb is not None:
            self._wandb.log(finite, step=step)

    def close(self) -> None:
        self._jsonl.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lines of a run's metrics.jsonl."""
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(run_dir: str | Path, step: int) -> None:
    """Drop metrics lines after `step` (a resumed run logs those steps again)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) != len(lines):
        path.write_text("".join(f"{line}\n" for line in kept))
