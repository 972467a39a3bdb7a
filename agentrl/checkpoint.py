"""Checkpoints: the model in Hugging Face format plus everything needed to resume exactly.

    path = save_checkpoint(run_dir, step, model, tokenizer, optimizer, scheduler, state)
    path = latest_checkpoint(run_dir)            # None when there is none
    state = load_checkpoint(path, model, optimizer, scheduler)

A checkpoint is `checkpoints/step-NNNNNN/` holding `model/` (`from_pretrained` loads
it: the full model, or the LoRA adapter for a peft model), `optimizer.pt` (optimizer,
scheduler, and the torch / numpy / Python RNG states) and `state.json` (step, data
cursor, EPO entropy history, ...). It is written into a temporary folder and renamed
into place, and `COMPLETE` is written last, so a crash mid-save never leaves a
checkpoint that looks complete.

With FSDP the trainer passes the whole model (the engine's copy) and the optimizer
state gathered whole (`optimizer_state`, keyed by parameter name): a sharded run's
checkpoint is one set of files, not one per process.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMPLETE = "COMPLETE"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint for `step` and return its folder.

    `optimizer_state` replaces `optimizer.state_dict()` (the whole state of a sharded
    optimizer)."""
    folder = Path(run_dir) / "checkpoints"
    final = folder / f"step-{step:06d}"
    for stale in folder.glob(".step-*.tmp-*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)
    staging = folder / f".step-{step:06d}.tmp-{os.getpid()}"
    staging.mkdir(parents=True)
    model.save_pretrained(staging / "model", safe_serialization=True)
    tokenizer.save_pretrained(staging / "model")
    torch.save(
        {
            "optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
            "optimizer_format": "by-name" if optimizer_state is not None else "torch",
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        },
        staging / "optimizer.pt",
    )
    (staging / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
    (staging / COMPLETE).write_text(f"step {step}\n")
    if final.exists():  # replace it without a moment where neither copy is complete
        previous = folder / f".step-{step:06d}.tmp-old-{os.getpid()}"
        final.rename(previous)
        staging.rename(final)
        shutil.rmtree(previous, ignore_errors=True)
    else:
        staging.rename(final)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return None
    complete = [p for p in folder.glob("step-*") if (p / COMPLETE).is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[1]), default=None)


def load_checkpoint(
    path: str | Path,
    model: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    load_optimizer: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Restore weights, optimizer, scheduler and RNG states; return the saved state.

    `model` None skips the weights (loaded already, e.g. before sharding);
    `load_optimizer` replaces `optimizer.load_state_dict` (sharded optimizers take the
    state saved by name)."""
    path = Path(path)
    if not (path / COMPLETE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {COMPLETE} marker)")
    if model is not None:
        load_weights(model, path / "model")
    saved = torch.load(path / "optimizer.pt", weights_only=False)
    by_name = saved.get("optimizer_format") == "by-name"
    if by_name != (load_optimizer is not None):
        raise ValueError(
            f"{path} was saved {'with' if by_name else 'without'} FSDP and its optimizer "
            f"state cannot be resumed {'without' if by_name else 'with'} it; keep train.fsdp "
            "as it was for this run"
        )
    (load_optimizer or optimizer.load_state_dict)(saved["optimizer"])
    if scheduler is not None and saved["scheduler"] is not None:
        scheduler.load_state_dict(saved["scheduler"])
    rng = saved["rng"]
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    return json.loads((path / "state.json").read_text())


def load_weights(model: Any, folder: Path) -> None:
    """Load saved weights into `model`: a LoRA adapter for peft models, else the full model."""
    from safetensors.torch import load_file

    if (folder / "adapter_model.safetensors").is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
        return
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(str(folder), dtype=model.dtype)
    model.load_state_dict(saved.state_dict())
