from dataclasses import dataclass, field
from typing import Literal

import pytest

from crl_core.config import (
    ConfigBase,
    ConfigError,
    config_field,
    config_hash,
    from_dict,
    load_config,
    parse_overrides,
    save_resolved_config,
    to_dict,
)


@dataclass
class LoraSection(ConfigBase):
    rank: int = config_field(8, min=1, max=256)
    alpha: float = config_field(16.0, min=0.0)
    targets: list[str] = config_field(default_factory=lambda: ["q_proj", "v_proj"])


@dataclass
class DemoConfig(ConfigBase):
    lr: float = config_field(1e-4, min=0.0, max=1.0)
    steps: int = config_field(100, min=1)
    distance: Literal["l2", "cosine"] = config_field("cosine")
    layers: list[int] = config_field(default_factory=lambda: [2, 3])
    use_mining: bool = config_field(False)
    margin: float | None = config_field(None, min=0.0)
    name: str = config_field("demo")
    lora: LoraSection = field(default_factory=LoraSection)

    def validate(self) -> None:
        if len(set(self.layers)) != len(self.layers):
            raise ConfigError("layers: duplicate layer index")


BAD_CONFIGS = [
    ({"lrr": 0.1}, "did you mean 'lr'"),
    ({"lora": {"rnak": 4}}, "lora.rnak"),
    ({"steps": "ten"}, "steps: expected an integer"),
    ({"steps": 0}, "below the minimum"),
    ({"lr": 2.0}, "above the maximum"),
    ({"distance": "cosin"}, "did you mean 'cosine'"),
    ({"layers": 3}, "expected a list"),
    ({"layers": [1, "x"]}, "layers[1]"),
    ({"layers": [1, 1]}, "duplicate layer"),
    ({"use_mining": "yes"}, "expected true/false"),
    ({"lora": 5}, "expected a mapping"),
    ({"lora": {"rank": 0}}, "lora.rank"),
    ({"margin": -1.0}, "below the minimum"),
    ({"steps": True}, "expected an integer"),
    ({"name": 3}, "expected a string"),
]


@pytest.mark.parametrize("data,message", BAD_CONFIGS)
def test_bad_configs_are_rejected_with_a_clear_message(data, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        from_dict(DemoConfig, data)


def test_defaults_and_types_are_coerced():
    cfg = from_dict(DemoConfig, {"lr": "1e-3", "steps": 5.0, "lora": {"alpha": 8}})
    assert cfg.lr == pytest.approx(1e-3) and isinstance(cfg.lr, float)
    assert cfg.steps == 5 and isinstance(cfg.steps, int)
    assert cfg.lora.alpha == 8.0 and isinstance(cfg.lora.alpha, float)
    assert cfg.lora.rank == 8


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match="steps"):
        DemoConfig(steps=-3)


def test_overrides_parse_dotted_keys_and_yaml_values():
    assert parse_overrides(["lora.rank=4", "layers=[1,2]", "use_mining=true", "name=abc"]) == {
        "lora": {"rank": 4}, "layers": [1, 2], "use_mining": True, "name": "abc"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lora.rank"])
    with pytest.raises(ConfigError, match="empty key"):
        parse_overrides(["a..b=1"])


def test_load_config_layers_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.01\nlora:\n  rank: 16\n")
    cfg = load_config(DemoConfig, path, ["lora.rank=32", "steps=7"])
    assert (cfg.lr, cfg.lora.rank, cfg.steps) == (0.01, 32, 7)
    with pytest.raises(ConfigError, match="not found"):
        load_config(DemoConfig, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(DemoConfig, bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(DemoConfig, top)


def test_config_hash_is_stable_and_sensitive():
    a = from_dict(DemoConfig, {"lr": 0.001, "lora": {"rank": 4}})
    b = from_dict(DemoConfig, {"lora": {"rank": 4}, "lr": "1e-3"})
    c = from_dict(DemoConfig, {"lr": 0.001, "lora": {"rank": 5}})
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(c)
    assert len(config_hash(a)) == 12


def test_resolved_config_is_saved_and_reloads_to_the_same_config(tmp_path):
    import yaml

    cfg = from_dict(DemoConfig, {"steps": 3, "layers": [0, 4]})
    path = save_resolved_config(cfg, tmp_path / "out")
    doc = yaml.safe_load(path.read_text())
    assert doc["config_hash"] == config_hash(cfg)
    assert doc["config"] == to_dict(cfg)
    assert from_dict(DemoConfig, doc["config"]) == cfg
