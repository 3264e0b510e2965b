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
