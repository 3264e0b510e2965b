from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from rlhf.config import ConfigError, config_to_dict, load_config


@dataclass
class Optim:
    lr: float = 3e-4
    steps: int = 100


@dataclass
class RecipeConfig:
    name: str
    algo: Literal["ppo", "sac", "dqn"] = "ppo"
    seeds: list[int] = field(default_factory=lambda: [0])
    out_dir: Path = Path("runs/x")
    lora: bool = False
    optim: Optim = field(default_factory=Optim)
    note: str | None = None


def write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return str(p)


def test_yaml_with_overrides(tmp_path):
    path = write(tmp_path, "name: demo\nalgo: sac\noptim:\n  lr: 1e-4\n  steps: 10\n")
    cfg = load_config(RecipeConfig, ["--config", path, "--optim.steps", "20", "--seeds=[1, 2]", "--lora", "true"])
    assert cfg == RecipeConfig(name="demo", algo="sac", seeds=[1, 2], lora=True, optim=Optim(lr=1e-4, steps=20))
    assert isinstance(cfg.optim.lr, float) and isinstance(cfg.out_dir, Path)
    assert config_to_dict(cfg)["out_dir"] == "runs/x"


def test_overrides_without_file_and_string_values_stay_strings():
    cfg = load_config(RecipeConfig, ["--name", "123", "--note", "hello world"])
    assert cfg.name == "123" and cfg.note == "hello world"


@pytest.mark.parametrize(
    "text,args,message",
    [
        ("name: a\noptim:\n  lr: 1\n  stepz: 3\n", [], r"cfg.yaml line 4: config key 'optim.stepz' is unknown"),
        ("name: a\nalgo: trpo\n", [], r"line 2: config key 'algo': 'trpo' is not one of \['ppo', 'sac', 'dqn'\]"),
        ("name: a\noptim:\n  steps: ten\n", [], r"line 3: config key 'optim.steps': expected an integer"),
        ("name: a\nseeds: 3\n", [], r"line 2: config key 'seeds': expected a list"),
        ("name: a\nlora: 1\n", [], r"config key 'lora': expected true/false"),
        ("algo: ppo\n", [], r"missing required config key\(s\): name"),
        ("name: a\n", ["--optim.steps", "1.5"], r"config key 'optim.steps' \(command line\): expected an integer"),
        ("name: a\n", ["--bogus", "1"], r"unknown option --bogus"),
        ("- 1\n- 2\n", [], r"top level must be a mapping"),
        ("name: [unclosed\n", [], r"invalid YAML"),
    ],
)
def test_errors_name_the_key_file_and_line(tmp_path, text, args, message):
    with pytest.raises(ConfigError, match=message):
        load_config(RecipeConfig, ["--config", write(tmp_path, text), *args])


def test_missing_file_and_dangling_option(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(RecipeConfig, ["--config", str(tmp_path / "nope.yaml")])
    with pytest.raises(ConfigError, match="--name needs a value"):
        load_config(RecipeConfig, ["--name"])


def test_help_lists_keys(capsys):
    with pytest.raises(SystemExit):
        load_config(RecipeConfig, ["--help"])
    out = capsys.readouterr().out
    assert "--optim.lr" in out and "--algo" in out


@dataclass
class Lora:
    r: int = 16


@dataclass
class Checked:
    """Cross-field checks live in the config; the loader adds where the key was set."""

    low: int = 0
    high: int = 10
    lora: Lora | None = None
    workers: int = field(default=2, metadata={"runtime": True})

    def __post_init__(self):
        if self.low > self.high:
            raise ConfigError(f"must be <= high ({self.high}), got {self.low}", key="low")


def test_cross_field_checks_name_file_line_and_key(tmp_path):
    path = write(tmp_path, "high: 3\nlow: 5\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml line 2: config key 'low': must be <= high \(3\), got 5"):
        load_config(Checked, ["--config", path])
    with pytest.raises(ConfigError, match=r"config key 'low' \(command line\): must be <= high"):
        load_config(Checked, ["--config", path, "--low", "7"])
    with pytest.raises(ConfigError, match=r"config key 'low': must be <= high"):
        Checked(low=11)  # built in Python: still the key


def test_optional_section_can_be_switched_on_from_the_command_line(tmp_path):
    assert load_config(Checked, []).lora is None
    assert load_config(Checked, ["--lora.r", "8"]).lora == Lora(r=8)
    path = write(tmp_path, "lora: null\n")
    assert load_config(Checked, ["--config", path, "--lora.r", "4"]).lora == Lora(r=4)


def test_an_option_is_never_taken_as_the_previous_options_value():
    with pytest.raises(ConfigError, match="option --name needs a value"):
        load_config(RecipeConfig, ["--name", "--out_dir", "x"])
    assert load_config(RecipeConfig, ["--name=--odd", "--out_dir", "x"]).name == "--odd"


def test_unknown_keys_suggest_the_closest_known_one(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'steps'"):
        load_config(RecipeConfig, ["--config", write(tmp_path, "name: a\noptim:\n  stepz: 3\n")])


def test_run_identity_leaves_out_runtime_fields():
    from rlhf.config import run_identity

    assert run_identity(Checked(workers=7)) == {"low": 0, "high": 10, "lora": None}
    assert run_identity(Checked(lora=Lora(2))) == {"low": 0, "high": 10, "lora": {"r": 2}}


def test_config_from_dict_checks_like_the_loader_and_names_the_source():
    from rlhf.config import config_from_dict, run_identity

    saved = run_identity(RecipeConfig(name="demo", optim=Optim(lr=1e-4)))
    assert config_from_dict(RecipeConfig, saved) == RecipeConfig(name="demo", optim=Optim(lr=1e-4))
    with pytest.raises(ConfigError, match=r"run_config.json: config key 'optim.stepz' is unknown for Optim"):
        config_from_dict(RecipeConfig, {"name": "a", "optim": {"stepz": 3}}, source="run_config.json")
    with pytest.raises(ConfigError, match=r"run_config.json: config key 'low': must be <= high"):
        config_from_dict(Checked, {"low": 5, "high": 3}, source="run_config.json")
