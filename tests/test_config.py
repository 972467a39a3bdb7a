"""The typed config: defaults, YAML, overrides, and errors that list every problem."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest
import yaml

from agentrl.config import Config, bundled_configs, check_config, load_config
from agentrl.errors import ConfigError


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_are_valid():
    config = load_config()
    assert config.rollout.samples_per_task == 4 and config.env.name == "calculator"


def test_every_field_has_a_description():
    for section_name, section in Config.model_fields.items():
        model = section.annotation
        for name, field in model.model_fields.items():
            assert field.description, f"{section_name}.{name} has no docstring"


@pytest.mark.parametrize("name", sorted(bundled_configs()))
def test_bundled_recipes_validate(name):
    load_config(name)


def test_unknown_key_wrong_type_and_unknown_env_in_one_message(tmp_path):
    path = write(
        tmp_path, "env:\n  name: gues\nrollout:\n  temprature: 0.7\ntrain:\n  steps: many\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "(3 problems)" in message
    assert "rollout.temprature: unknown key; did you mean 'temperature'?" in message
    assert "train.steps: Input should be a valid integer" in message and "'many'" in message
    assert "env.name: No env named 'gues'. Did you mean 'agentrl/Guess-v0'?" in message
    assert len(caught.value.problems) == 3


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="trainer: unknown key; did you mean 'train'"):
        load_config(write(tmp_path, "trainer:\n  steps: 3\n"))


def test_overrides_are_parsed_as_yaml():
    config = load_config(
        None,
        [
            "rollout.temperature=0.5",
            "algorithm.regularizers=[epo]",
            "model.lora=false",
            "env.name=guess",
        ],
    )
    assert config.rollout.temperature == 0.5
    assert config.algorithm.regularizers == ["epo"]
    assert config.model.lora is False and config.env.name == "guess"


@pytest.mark.parametrize("override", ["temperature=0.5", "rollout.temperature", "a.b.c=1", ".x=1"])
def test_malformed_override_says_the_expected_form(override):
    with pytest.raises(ConfigError, match="expected section.field=value"):
        load_config(None, [override])


def test_env_arguments_are_checked_against_the_constructor():
    config = load_config(None, ["env.name=calculator", "env.num_operands=2", "env.max_turns=3"])
    assert config.env.env_kwargs() == {"num_operands": 2, "max_turns": 3}
    with pytest.raises(
        ConfigError, match="env.num_operand: unknown key; did you mean 'num_operands'"
    ):
        load_config(None, ["env.num_operand=2"])
    with pytest.raises(ConfigError, match="env.split: unknown key"):
        load_config(None, ["env.split=test"])


def test_range_checks():
    with pytest.raises(ConfigError, match="rollout.top_p: Input should be less than or equal to 1"):
        load_config(None, ["rollout.top_p=1.5"])
    with pytest.raises(
        ConfigError, match="rollout.branching: Input should be 'none', 'arpo' or 'aepo'"
    ):
        load_config(None, ["rollout.branching=tree"])


def test_knobs_the_active_backend_ignores_are_errors():
    # This version has no 'openai' backend: it is refused, and never asks for a base_url.
    with pytest.raises(ConfigError, match="'openai' is not available") as caught:
        load_config(None, ["engine.backend=openai"])
    assert len(caught.value.problems) == 1
    with pytest.raises(ConfigError, match="engine.base_url: only the 'openai' backend uses it"):
        load_config(None, ["engine.base_url=http://127.0.0.1:8000/v1"])
    with pytest.raises(ConfigError, match="model.lora_rank: only used with LoRA"):
        load_config(None, ["model.lora=false", "model.lora_rank=8"])


def test_top_level_must_be_a_mapping_and_valid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load_config(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "env: [unclosed\n"))


def test_missing_file_suggests_bundled_recipes():
    with pytest.raises(ConfigError, match="Did you mean calculator_grpo"):
        load_config("calculator_grp")


def test_resolved_config_round_trips_through_the_saved_file(tmp_path):
    config = load_config("guess_grpo", ["train.steps=7"])
    path = config.save(tmp_path / "run")
    saved = yaml.safe_load(path.read_text())
    assert saved["train"]["steps"] == 7 and saved["env"]["max_turns"] == 8
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.steps='20'", "train.steps: Input should be a valid integer"),
        ("train.steps=20.0", "train.steps: Input should be a valid integer"),
        ("model.lora=1", "model.lora: Input should be a valid boolean"),
        ("rollout.top_k=true", "rollout.top_k: Input should be a valid integer"),
        ("rollout.temperature=.inf", "rollout.temperature: Input should be a finite number"),
    ],
)
def test_no_silent_type_conversions(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_exponent_floats_read_as_numbers(tmp_path):
    assert load_config(write(tmp_path, "optim:\n  lr: 1e-4\n")).optim.lr == 1e-4
    assert load_config(None, ["optim.lr=3e-5"]).optim.lr == 3e-5
    assert load_config(None, ["rollout.temperature=1"]).rollout.temperature == 1.0


def test_env_argument_values_are_checked_by_building_the_env():
    with pytest.raises(
        ConfigError, match="env: agentrl/Calculator-v0 cannot be created with num_operands='abc'"
    ):
        load_config(None, ["env.num_operands=abc"])
    with pytest.raises(ConfigError, match="allow only 12 expressions"):
        load_config(None, ["env.num_operands=2", "env.max_operand=2"])


def test_a_missing_path_never_falls_back_to_a_bundled_recipe(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "guess_grpo.yaml")
    with pytest.raises(ConfigError, match="no config file 'guess_grpo.yaml'"):
        load_config("guess_grpo.yaml")


def test_a_saved_resolved_config_loads_back(tmp_path):
    config = load_config(None, ["model.lora=false", "env.name=guess"])
    assert load_config(config.save(tmp_path)) == config


def test_what_training_refuses_is_refused_at_load_time_all_at_once():
    overrides = [
        "engine.backend=vllm",
        "rollout.top_p=0.9",
        "algorithm.loss_kwargs={foo: 1}",
        "algorithm.regularizers=[epo, entrpy]",
        "algorithm.regularizer_kwargs={kl: {coef: 1}}",
    ]
    with pytest.raises(ConfigError) as caught:
        load_config("webshop_grpo", overrides)
    problems = caught.value.problems
    expected = [
        "engine.backend: 'vllm' is not available",
        "rollout.top_p / rollout.top_k: training needs the full sampling distribution",
        "algorithm.loss_kwargs: ppo_clip has no hyper-parameter 'foo'",
        "algorithm.regularizers: unknown regularizer 'entrpy'",
        "algorithm.regularizer_kwargs: ['kl'] are not in algorithm.regularizers",
    ]
    assert len(problems) == len(expected), problems
    for start in expected:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)


def test_the_purpose_decides_what_sampling_is_allowed():
    for purpose in ("rollout", "eval"):
        assert load_config(None, ["rollout.top_p=0.9"], purpose=purpose).rollout.top_p == 0.9
    with pytest.raises(ConfigError, match="keep top_p=1"):
        load_config(None, ["rollout.top_k=5"])
    with pytest.raises(ConfigError, match="purpose must be one of train, rollout, eval"):
        load_config(None, [], purpose="serve")


def test_algorithm_hyper_parameter_values_are_checked_at_load_time():
    cases = [
        ("algorithm.clip_eps_low=1.0", "algorithm.clip_eps_low: Input should be less than 1"),
        ("algorithm.loss_kwargs={dual_clip_c: 0.5}", "dual_clip_c: must be > 1"),
        ("algorithm.advantage_kwargs={agg: token-mean}", "grpo has no hyper-parameter 'agg'"),
        ("algorithm.advantage_kwargs={clip_eps_high: 0.3}", "has no hyper-parameter"),
        ("log.wandb=true", "log.wandb: the wandb package is not installed"),
    ]
    for override, message in cases:
        if override == "log.wandb=true" and importlib.util.find_spec("wandb") is not None:
            continue
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(None, [override])
    with pytest.raises(ConfigError, match="kappa_l must be <= kappa_r"):
        load_config(
            None,
            ["algorithm.regularizers=[epo]", "algorithm.regularizer_kwargs={epo: {kappa_l: 3}}"],
        )


def test_check_config_refuses_a_config_built_in_code():
    config = Config()
    config.algorithm.loss = "ppo_clip"
    config.algorithm.loss_kwargs = {"clip_eps_high": 0.3}
    with pytest.raises(ConfigError, match="loss_kwargs.clip_eps_high: set algorithm.clip_eps_high"):
        check_config(config)
    check_config(Config())


def test_validate_loads_no_model_and_prints_every_problem():
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from agentrl.cli import app\n"
        "args = ['validate', 'webshop_grpo', 'engine.backend=vllm', 'rollout.top_p=0.9',\n"
        "        'algorithm.loss_kwargs={foo: 1}']\n"
        "result = CliRunner().invoke(app, args)\n"
        "print(result.exit_code, '(3 problems)' in result.output, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.split() == ["2", "True", "False"], done.stdout + done.stderr
