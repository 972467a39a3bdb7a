"""The run config: typed, two levels deep, every field documented.

    config = load_config("configs/calculator_grpo.yaml", ["rollout.temperature=0.7"])

A config is a YAML mapping of sections (`env`, `model`, `engine`, `rollout`,
`algorithm`, `optim`, `train`, `log`) to fields; any field left out takes the default
below. Overrides are `section.field=value` strings whose value is parsed as YAML
(`algorithm.regularizers=[epo]`, `model.lora=false`). Unknown keys, wrong types and
an unknown env name are all errors, reported together in one `ConfigError`.

`env` is the one open section: keys other than `name` and `max_turns` are passed to
the env's constructor (`env.num_operands=2`), and are checked against its signature.

Validation is one pass: `load_config` (and so `agentrl validate`) refuses everything
the command would refuse on the config alone, before any model loads; `purpose` names
the command ("train" by default; "rollout" and "eval" allow what only training cannot
honour, such as nucleus sampling). `check_config` is that pass on a `Config` built in
code (`config_problems` lists the problems instead); `agentrl.train.train` runs it too,
with the checks that depend on how the processes were launched.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from agentrl.errors import ConfigError, EnvNotFound
from agentrl.suggest import close_matches


class Section(BaseModel):
    """A config section: unknown keys are errors, field docstrings are descriptions."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # no silent conversions: "20" is not an int, 1 is not a bool
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        validate_assignment=True,
    )


class EnvConfig(Section):
    """Which environment to train and evaluate on."""

    model_config = ConfigDict(
        extra="allow",
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
        validate_assignment=True,
    )

    name: str = "calculator"
    """Registered env name or id (`agentrl envs` lists them), or 'module:name' for a plug-in."""
    max_turns: int | None = Field(default=None, ge=1)
    """Step budget per episode; None keeps the env's own default."""

    def env_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `agentrl.make`: `max_turns` when set, plus the extra keys."""
        kwargs = dict(self.model_extra or {})
        if self.max_turns is not None:
            kwargs["max_turns"] = self.max_turns
        return kwargs


class ModelConfig(Section):
    """The policy model and how its parameters are trained."""

    name: str = "default"
    """'default' (bundled SmolLM2-135M-Instruct), 'tiny' (random-init, tests) or a local HF dir."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Parameter dtype; 'auto' picks bfloat16 on a GPU that supports it, float32 on CPU."""
    lora: bool = True
    """Train LoRA adapters (peft) instead of all parameters."""
    lora_rank: int = Field(default=16, ge=1)
    """LoRA rank r."""
    lora_alpha: float = Field(default=32.0, gt=0)
    """LoRA scaling alpha (the update is scaled by alpha / r)."""
    lora_dropout: float = Field(default=0.0, ge=0, lt=1)
    """Dropout on the LoRA input."""
    lora_targets: list[str] | Literal["all-linear"] = "all-linear"
    """Modules that get LoRA adapters: 'all-linear' or names such as [q_proj, v_proj]."""


class EngineConfig(Section):
    """The inference engine that samples rollouts."""

    backend: str = "hf"
    """A registered engine backend: 'hf' (in-process transformers) in this version; your
    own with agentrl.engines.register_engine."""
    base_url: str | None = None
    """Server URL, for a backend that serves from one (registered with takes_url=True)."""
    max_batch_size: int = Field(default=32, ge=1)
    """Most sequences decoded together in one batch."""
    device: str = "auto"
    """'auto', 'cpu' or a torch device such as 'cuda:0'."""


class RolloutConfig(Section):
    """How episodes are sampled."""

    tasks_per_step: int = Field(default=4, ge=1)
    """Tasks (prompts) per training step."""
    samples_per_task: int = Field(default=4, ge=1)
    """Episodes per task (the group size G; M for branching rollouts)."""
    max_new_tokens: int = Field(default=128, ge=1)
    """Most tokens the policy generates in one turn."""
    max_context_tokens: int = Field(default=2048, ge=16)
    """Most tokens in an episode's context; an episode that reaches it is truncated."""
    temperature: float = Field(default=1.0, gt=0)
    """Sampling temperature."""
    top_p: float = Field(default=1.0, gt=0, le=1)
    """Nucleus sampling mass."""
    top_k: int = Field(default=0, ge=0)
    """Sample from the k most likely tokens; 0 disables."""
    action_format: Literal["bracket", "tags", "json", "fenced", "text"] | None = None
    """How the policy writes actions (agentrl.rollout.actions); None: the env's own
    (`tags` for search and code, `bracket` for WebShop)."""
    branching: Literal["none", "arpo", "aepo"] = "none"
    """Entropy-based branching after env observations ('arpo', 'aepo'; see docs/algorithms.md),
    or 'none' (independent samples)."""
    initial_samples: int = Field(default=0, ge=0)
    """Branching: N, the samples that start from the prompt; 0 means half of
    samples_per_task (ARPO: 8 of 16). The rest come from branches or top-ups."""
    branch_probe_tokens: int = Field(default=20, ge=1)
    """Branching: k, the first tokens of a turn whose mean entropy decides."""
    branch_alpha: float = 0.5
    """Branching: alpha in P = clip(alpha + beta·ΔH, 0, 1)."""
    branch_beta: float = 0.35
    """Branching: beta in P = clip(alpha + beta·ΔH, 0, 1)."""
    branch_threshold: float | None = None
    """Branching: deterministic variant, branch iff alpha + beta·ΔH > threshold; None draws."""
    branch_copies: int = Field(default=1, ge=1)
    """Branching: new paths per branch decision (ARPO's beam size minus one)."""
    branch_penalty: float = Field(default=0.05, ge=0)
    """AEPO: P is scaled by max(0, 1 − penalty·c), c the path's consecutive branches."""
    premonitor: bool = False
    """AEPO: entropy pre-monitoring sets N from one probe episode (off, as in AEPO's scripts)."""
    workers: int = Field(default=4, ge=1)
    """Env worker threads stepping environments."""

    @model_validator(mode="after")
    def _branching_fits(self) -> RolloutConfig:
        if self.initial_samples > self.samples_per_task:
            raise ValueError(
                f"initial_samples ({self.initial_samples}) cannot exceed samples_per_task "
                f"({self.samples_per_task}), the paths per task"
            )
        if self.premonitor and self.branching != "aepo":
            raise ValueError("premonitor is AEPO's option; set rollout.branching=aepo")
        return self


class AlgorithmConfig(Section):
    """Advantage, loss and regularisers (see docs/algorithms.md for the maths)."""

    advantage: str = "grpo"
    """Advantage estimator by registered name."""
    loss: str = "ppo_clip"
    """Policy loss by registered name."""
    regularizers: list[str] = Field(default_factory=list)
    """Extra loss terms by registered name, e.g. [epo]."""
    advantage_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Hyper-parameters of the advantage estimator, e.g. {zeta: 0.1} for empg."""
    loss_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Hyper-parameters of the loss besides the clip ranges, e.g. {dual_clip_c: 3.0}."""
    regularizer_kwargs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Hyper-parameters per regularizer, e.g. {epo: {alpha: 0.05}}."""
    entropy_advantage: float = Field(default=0.0, ge=0)
    """AEPO's entropy-aware advantage weight a (A·(1 + a·z_H)); 0 disables it."""
    dynamic_sampling: bool = False
    """DAPO: drop task groups whose rewards are all equal and sample more tasks instead."""
    dynamic_sampling_rounds: int = Field(default=3, ge=1)
    """Most extra sampling rounds per step when dynamic sampling drops groups."""
    overlong_buffer: float = Field(default=0.0, ge=0, le=1)
    """DAPO's soft overlong punishment: the buffer as a share of rollout.max_new_tokens
    (DAPO: 4096 of 20480 = 0.2); an episode whose longest turn runs into it loses up to
    algorithm.overlong_penalty reward. 0 disables it."""
    overlong_penalty: float = Field(default=1.0, ge=0)
    """Most reward the overlong punishment takes away (at rollout.max_new_tokens)."""
    clip_eps_low: float = Field(default=0.2, ge=0, lt=1)
    """Lower PPO clip range epsilon_low."""
    clip_eps_high: float = Field(default=0.2, ge=0)
    """Upper PPO clip range epsilon_high (DAPO uses 0.28)."""
    attribution: Literal["soft", "hard"] = "soft"
    """ARPO advantage attribution over a branching tree: 'soft' trains every leaf's whole
    sequence with its own advantage; 'hard' trains a prefix shared by several leaves once,
    with their mean advantage. Same thing without branching."""
    kl_coef: float = Field(default=0.0, ge=0)
    """KL-to-reference coefficient; 0 loads no reference model."""
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"] = "token-mean"
    """How per-token losses are aggregated."""


class OptimConfig(Section):
    """The optimiser."""

    lr: float = Field(default=1e-5, gt=0)
    """AdamW learning rate."""
    weight_decay: float = Field(default=0.0, ge=0)
    """AdamW weight decay."""
    max_grad_norm: float = Field(default=1.0, gt=0)
    """Gradient clipping norm."""
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up over this many optimizer updates (a step whose groups were all dropped
    makes no update)."""


class TrainConfig(Section):
    """The training loop."""

    steps: int = Field(default=20, ge=1)
    """Training steps (one rollout batch and its updates each)."""
    micro_batch_tokens: int = Field(default=4096, ge=1)
    """Tokens per forward/backward micro-batch; sequences are packed up to it."""
    ppo_epochs: int = Field(default=1, ge=1)
    """Passes over each rollout batch."""
    seed: int = 0
    """Seed of every random number generator."""
    out_dir: str = "runs"
    """Folder under which each run gets its own directory."""
    eval_tasks: int = Field(default=0, ge=0)
    """Held-out test tasks evaluated before and after training (eval-before/, eval-after/
    in the run directory); 0 skips the evaluation."""
    eval_every: int = Field(default=0, ge=0)
    """Evaluate on the valid split every this many steps (eval/valid_* metrics, reports in
    eval-valid/step-N/); 0 never."""
    valid_tasks: int = Field(default=16, ge=1)
    """Valid-split tasks (one episode each) in each periodic evaluation."""
    save_every: int = Field(default=10, ge=0)
    """Save a checkpoint every this many steps (and at the end); 0 only at the end."""
    fsdp: bool = False
    """With several processes (torchrun / accelerate launch), shard parameters, gradients
    and optimizer state over them (FSDP2) instead of replicating them; each process's
    engine then samples from its own whole copy of the weights."""


class LogConfig(Section):
    """Where metrics and trajectories go."""

    tensorboard: bool = True
    """Write TensorBoard event files."""
    wandb: bool = False
    """Also log to Weights & Biases (needs the `wandb` package)."""
    trajectories: bool = True
    """Save every episode to trajectories.jsonl."""


class Config(Section):
    """A whole run: every section, with defaults for what a file leaves out."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    """Environment."""
    model: ModelConfig = Field(default_factory=ModelConfig)
    """Policy model."""
    engine: EngineConfig = Field(default_factory=EngineConfig)
    """Inference engine."""
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    """Rollout sampling."""
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    """RL algorithm."""
    optim: OptimConfig = Field(default_factory=OptimConfig)
    """Optimiser."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Training loop."""
    log: LogConfig = Field(default_factory=LogConfig)
    """Logging."""

    def to_yaml(self) -> str:
        """The resolved config as YAML, every field included."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def save(self, run_dir: str | Path) -> Path:
        """Write the resolved config to `run_dir/config.yaml` and return the path."""
        path = Path(run_dir) / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_yaml())
        return path


#: `agentrl train --algo NAME`: the config overrides each preset stands for. DAPO is
#: its clip range, token-mean loss, dynamic sampling and soft overlong punishment (on
#: each episode's longest turn, against rollout.max_new_tokens). ARPO is its branching
#: rollout with soft attribution; AEPO is its branching rollout (consecutive-branch
#: penalty), EBPO loss and entropy-aware advantage.
PRESETS: dict[str, list[str]] = {
    "grpo": ["algorithm.advantage=grpo", "algorithm.loss=ppo_clip"],
    "dapo": [
        "algorithm.advantage=grpo",
        "algorithm.loss=ppo_clip",
        "algorithm.clip_eps_high=0.28",
        "algorithm.dynamic_sampling=true",
        "algorithm.loss_agg=token-mean",
        "algorithm.overlong_buffer=0.2",
    ],
    "epo": ["algorithm.advantage=grpo", "algorithm.loss=ppo_clip", "algorithm.regularizers=[epo]"],
    "empg": ["algorithm.advantage=empg", "algorithm.loss=ppo_clip"],
    "gigpo": ["algorithm.advantage=gigpo", "algorithm.loss=ppo_clip"],
    "arpo": [
        "rollout.branching=arpo",
        "algorithm.advantage=grpo",
        "algorithm.loss=ppo_clip",
        "algorithm.attribution=soft",
    ],
    "aepo": [
        "rollout.branching=aepo",
        "algorithm.advantage=grpo",
        "algorithm.loss=aepo",
        "algorithm.clip_eps_high=0.28",
        "algorithm.entropy_advantage=0.2",
    ],
}


def bundled_configs() -> dict[str, Path]:
    """The recipes shipped with agentrl, by name (file name without `.yaml`)."""
    from importlib.resources import files

    folder = files("agentrl.configs")
    return {
        entry.name.removesuffix(".yaml"): Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def find_config(name_or_path: str | Path) -> Path:
    """A config file path: an existing path, or the bare name of a bundled recipe."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if len(path.parts) > 1 or path.suffix in (".yaml", ".yml"):
        raise ConfigError([f"no config file {str(name_or_path)!r}"])
    bundled = bundled_configs()
    key = path.name
    if key in bundled:
        return bundled[key]
    close = close_matches(key, sorted(bundled), n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        [
            f"no config file {str(name_or_path)!r} and no bundled recipe of that name.{hint} "
            f"Bundled recipes: {', '.join(sorted(bundled)) or 'none'}."
        ]
    )


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads `1e-4` as a string (it wants `1.0e-4`); this loader reads a float."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.VERBOSE,
    ),
    list("-+0123456789."),
)


Purpose = Literal["train", "rollout", "eval"]
PURPOSES: tuple[Purpose, ...] = ("train", "rollout", "eval")


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    purpose: Purpose = "train",
) -> Config:
    """Read a YAML config (or start from the defaults), apply overrides, validate.

    Raises `ConfigError` listing every problem: unreadable YAML, malformed overrides,
    unknown keys (with the closest known key), wrong types, an unknown env name, env
    arguments its constructor does not take, and whatever `check_config` finds for
    `purpose` (the command that will run the config).
    """
    if purpose not in PURPOSES:
        raise ConfigError([f"purpose must be one of {', '.join(PURPOSES)}; got {purpose!r}"])
    source = str(path) if path is not None else "the defaults"
    data: dict[str, Any] = {}
    if path is not None:
        file = find_config(path)
        source = str(file)
        try:
            loaded = yaml.load(file.read_text(), Loader=_Loader)  # _Loader is a SafeLoader
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {exc}"], source) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(
                [f"expected a mapping of sections at the top; got {type(loaded).__name__}"], source
            )
        data = loaded or {}
    problems: list[str] = []
    for override in overrides:
        problems += _apply_override(data, override)
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += [_describe(error) for error in exc.errors()]
    problems += _check_env(data.get("env"))
    if config is not None:
        problems += config_problems(config, purpose)
    if problems:
        raise ConfigError(problems, source)
    assert config is not None
    return config


def check_config(config: Config, purpose: Purpose = "train") -> None:
    """Raise `ConfigError` listing what `purpose` would refuse in `config` (see
    `config_problems`); env names and arguments are checked by `load_config`."""
    problems = config_problems(config, purpose)
    if problems:
        raise ConfigError(problems)


def config_problems(config: Config, purpose: Purpose = "train") -> list[str]:
    """Every setting that contradicts another, names what does not exist, or that the
    chosen backend, algorithm or `purpose` would ignore or refuse."""
    problems = _cross_checks(config) + _engine_checks(config)
    if purpose == "train":
        problems += _training_checks(config)
    return problems


def _apply_override(data: dict[str, Any], override: str) -> list[str]:
    key, sep, raw = override.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        return [
            f"override {override!r} is malformed: expected section.field=value, "
            "e.g. rollout.temperature=0.7"
        ]
    section, field = parts
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    target = data.setdefault(section, {})
    if not isinstance(target, dict):
        return [f"{section}: expected a mapping of fields; got {type(target).__name__}"]
    target[field] = value
    return []


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return _unknown_key(error["loc"])
    given = error.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{location}: {error['msg']}{shown}"


def _unknown_key(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = Config
    if len(loc) == 2 and loc[0] in Config.model_fields:
        annotation = Config.model_fields[loc[0]].annotation
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else Config
        )
    known = list(model.model_fields)
    close = close_matches(loc[-1], known)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
    return f"{'.'.join(str(p) for p in loc)}: unknown key{hint}"


def _check_env(env: Any) -> list[str]:
    """An unknown env name, or constructor arguments the env does not take."""
    from agentrl.registration import constructor_parameters, resolve

    if not isinstance(env, dict):
        env = {}
    name = env.get("name", EnvConfig.model_fields["name"].default)
    if not isinstance(name, str):
        return []  # the type error is already reported
    try:
        env_id = resolve(name)
    except EnvNotFound as exc:
        return [f"env.name: {exc}"]
    accepted = constructor_parameters(env_id)
    extra = [key for key in env if key not in EnvConfig.model_fields]
    if accepted is None:
        return _try_make(env_id, env)
    allowed = sorted(accepted - {"split", "render_mode", "max_turns"})
    problems = []
    for key in extra:
        if key not in accepted or key in ("split", "render_mode"):
            close = close_matches(key, allowed)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                f"env.{key}: unknown key; {hint}{env_id} takes "
                f"{', '.join(allowed) or 'no arguments'} "
                "besides name and max_turns"
            )
    return problems or _try_make(env_id, env)


def _try_make(env_id: str, env: dict[str, Any]) -> list[str]:
    """Build the env once (cheap, no model) so that bad argument values show up now."""
    from agentrl.registration import make

    kwargs = {k: v for k, v in env.items() if k != "name"}
    try:
        make(env_id, **kwargs).close()
    except Exception as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "no arguments"
        return [f"env: {env_id} cannot be created with {shown}: {type(exc).__name__}: {exc}"]
    return []


def _engine_checks(config: Config) -> list[str]:
    from agentrl.engines import get_backend

    try:
        get_backend(config.engine.backend)
    except ConfigError as exc:
        return exc.problems
    return []


def _training_checks(config: Config) -> list[str]:
    """What training refuses: sampling it cannot score, and algorithm settings that
    name nothing or that the chosen algorithm would ignore."""
    from agentrl.algos.registry import (
        get_advantage,
        get_loss,
        get_regularizer,
        hyperparameters,
        traits,
    )

    problems = []
    if config.rollout.top_p < 1 or config.rollout.top_k > 0:
        problems.append(
            "rollout.top_p / rollout.top_k: training needs the full sampling distribution "
            "(old logprobs are taken over all tokens); keep top_p=1 and top_k=0 "
            "(`agentrl rollout` and `agentrl eval` allow them; check such a config with "
            "`agentrl validate CONFIG --for rollout`)"
        )
    if config.model.lora and config.model.lora_dropout > 0:
        problems.append(
            "model.lora_dropout: updates run without dropout so that trainer logprobs match "
            "the engine's; set it to 0"
        )
    algo = config.algorithm
    if "kl" in algo.regularizers and algo.kl_coef > 0:
        problems.append(
            "algorithm.kl_coef: it is the coefficient of the kl regularizer, which "
            "algorithm.regularizers names too; keep one (regularizer_kwargs.kl.coef sets it there)"
        )
    for key in ("agg", "clip_eps_low", "clip_eps_high"):
        if key in algo.loss_kwargs:
            problems.append(
                f"algorithm.loss_kwargs.{key}: set algorithm."
                f"{'loss_agg' if key == 'agg' else key} instead"
            )
    checks = []
    for field_name, getter, name, kwargs in [
        ("advantage", get_advantage, algo.advantage, algo.advantage_kwargs),
        ("loss", get_loss, algo.loss, algo.loss_kwargs),
        *[
            (f"regularizers.{name}", get_regularizer, name, algo.regularizer_kwargs.get(name, {}))
            for name in algo.regularizers
        ],
    ]:
        try:
            checks.append((field_name, getter(name), kwargs))
        except ConfigError as exc:
            where = field_name.split(".")[0]  # "regularizers", not "regularizers.<name>"
            problems += [f"algorithm.{where}: {problem}" for problem in exc.problems]
    for field_name, fn, kwargs in checks:
        allowed = hyperparameters(fn)
        where = field_name.replace("regularizers.", "regularizer_kwargs.")
        where = where if "." in where else f"{where}_kwargs"
        # The loss's own agg and clip ranges are reported above (they have their fields).
        reported = ("agg", "clip_eps_low", "clip_eps_high") if field_name == "loss" else ()
        for key in kwargs:
            if key not in allowed and key not in reported:
                problems.append(
                    f"algorithm.{where}: {fn.__name__} has no hyper-parameter {key!r}; "
                    f"it takes {', '.join(sorted(allowed)) or 'none'}"
                )
    unused = set(algo.regularizer_kwargs) - set(algo.regularizers)
    if unused:
        problems.append(
            f"algorithm.regularizer_kwargs: {sorted(unused)} are not in algorithm.regularizers"
        )
    dual = algo.loss_kwargs.get("dual_clip_c")
    if dual is not None and (not isinstance(dual, int | float) or dual <= 1):
        problems.append(
            "algorithm.loss_kwargs.dual_clip_c: must be > 1 (or null for no dual clip); "
            f"got {dual!r}"
        )
    epo = algo.regularizer_kwargs.get("epo", {}) if "epo" in algo.regularizers else {}
    if epo.get("kappa_l", 0.0) > epo.get("kappa_r", 2.0):
        problems.append(
            "algorithm.regularizer_kwargs.epo: kappa_l must be <= kappa_r; got "
            f"{epo.get('kappa_l', 0.0)} > {epo.get('kappa_r', 2.0)}"
        )
    if config.log.wandb and importlib.util.find_spec("wandb") is None:
        problems.append("log.wandb: the wandb package is not installed; pip install wandb")
    loss = next((fn for name, fn, _ in checks if name == "loss"), None)
    clip_set = algo.model_fields_set & {"clip_eps_low", "clip_eps_high"}
    if loss is not None and clip_set and not getattr(traits(loss), "clip_range", False):
        problems.append(f"algorithm.clip_eps_*: loss {algo.loss!r} has no clip range")
    return problems


def _cross_checks(config: Config) -> list[str]:
    from agentrl.engines import backends

    problems = []
    registered = backends()
    takers = [name for name, backend in registered.items() if backend.takes_url]
    chosen = registered.get(config.engine.backend)
    if chosen is not None and chosen.takes_url and not config.engine.base_url:
        problems.append(
            f"engine.base_url: required by the {chosen.name!r} backend "
            "(e.g. http://127.0.0.1:8000/v1)"
        )
    if config.engine.base_url and (chosen is None or not chosen.takes_url):
        if takers:
            users = " or ".join(repr(name) for name in takers)
            fix = f"remove it or set engine.backend={takers[0]}"
            problems.append(
                f"engine.base_url: only the {users} backend uses it, but engine.backend is "
                f"{config.engine.backend!r}; {fix}"
            )
        else:
            problems.append(
                "engine.base_url: only the 'openai' backend uses it, which this version does "
                "not have (no registered backend serves from a URL); remove it"
            )
    if not config.model.lora:
        # Values left at their defaults are fine: a saved resolved config lists them all.
        lora_keys = {"lora_rank", "lora_alpha", "lora_dropout", "lora_targets"}
        changed = {
            key
            for key in config.model.model_fields_set & lora_keys
            if getattr(config.model, key)
            != ModelConfig.model_fields[key].get_default(call_default_factory=True)
        }
        for key in sorted(changed):
            problems.append(
                f"model.{key}: only used with LoRA, but model.lora is false; "
                "remove it or set model.lora=true"
            )
    default_valid = TrainConfig.model_fields["valid_tasks"].default
    if not config.train.eval_every and config.train.valid_tasks != default_valid:
        problems.append(
            "train.valid_tasks: only used by periodic evaluation, but train.eval_every is 0; "
            "set train.eval_every=N (steps) or remove it"
        )
    return problems
