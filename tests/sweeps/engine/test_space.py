"""The conditional search space (sweeps/engine/space.py): what a trial samples, decodes and logs, and the
parameter specs it refuses (no Ray needed)."""

import optuna
import pytest

from crl_core.config import ConfigError, load_config, load_yaml
from sweeps.engine import SweepConfig
from sweeps.engine.space import SearchSpace, nest_space, train_config_for
from sweeps.margin_sweep import SEARCH_SPACE

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(path, *overrides) -> SweepConfig:
    return load_config(SweepConfig, None, list(overrides), base=load_yaml(path))


def _space(**extra):
    return SearchSpace.parse(nest_space({**SEARCH_SPACE, **extra}))


def test_mining_knobs_are_sampled_only_where_mining_is_on():
    space = _space()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=4))
    sample = space.define_by_run({"mining": {"enabled": False}})
    seen = {True: 0, False: 0}
    for _ in range(12):
        trial = study.ask()
        sample(trial)
        on = trial.params["mining.enabled"]
        seen[on] += 1
        assert ("mining.probability" in trial.params) is on and ("mining.init_steps" in trial.params) is on
        assert {"triplet.margin_benign", "harmful_layers.start", "optim.lr"} <= set(trial.params)
        study.tell(trial, trial.params["triplet.margin_benign"])
    assert seen[True] and seen[False]  # both branches were drawn


def test_a_condition_on_a_key_the_preset_fixes():
    space = SearchSpace.parse(nest_space({"mining.probability": {"type": "uniform", "low": 0.1, "high": 0.9,
                                                                 "when": {"mining.enabled": True}}}))
    assert space.never_active({"mining": {"enabled": False}}) == ["mining.probability"]
    assert space.never_active({}) == ["mining.probability"]  # TrainConfig's default: mining off
    assert space.never_active({"mining": {"enabled": True}}) == []


def test_decode_gives_typed_values_and_list_choices_once():
    space = SearchSpace.parse(nest_space({"harmful_layers.indices": {"type": "choice", "values": [[1, 2], [2, 3]]},
                                          "mining.enabled": {"type": "choice", "values": [False, True]}}))
    study = optuna.create_study()
    trial = study.ask()
    space.define_by_run({})(trial)
    decoded = space.decode(trial.params)
    assert decoded["harmful_layers.indices"] in ([1, 2], [2, 3]) and isinstance(decoded["mining.enabled"], bool)
    cfg = train_config_for({"eval": {"enabled": False}}, decoded, "/tmp/unused")
    assert cfg.harmful_layers.indices == decoded["harmful_layers.indices"]


def test_corners_switch_conditions_on_and_drop_inactive_keys():
    space = _space()
    corners = space.corners(["mining.init_steps"], {})
    assert {"mining.enabled": True, "mining.init_steps": 10} in corners
    assert {"mining.enabled": True, "mining.init_steps": 60} in corners
    assert {"mining.enabled": False} in corners  # the other branch, without the inactive knob


@pytest.mark.parametrize("extra,message", [
    ({"mining.block_max": {"type": "int", "low": 3, "high": 4, "when": {"lora.rank": 8}}}, None),
    ({"lora.rank": {"type": "int", "low": 4, "high": 8, "when": {"mining.block_max": 3}},
      "mining.block_max": {"type": "int", "low": 3, "high": 4}}, "must be declared before"),
    ({"mining.block_max": {"type": "int", "low": 3, "high": 4, "when": {"mining.enabled": "yes"}}}, "is never 'yes'"),
])
def test_bad_conditions_are_refused(extra, message):
    if message is None:
        _space(**extra)  # a condition on an unsearched key is fine
        return
    with pytest.raises(ConfigError, match=message):
        SearchSpace.parse(nest_space(extra) if "lora.rank" in extra else nest_space({**SEARCH_SPACE, **extra}))


def test_nested_layers_merge_into_the_recipe_and_keep_its_condition():
    from crl_core.config import apply_overrides

    merged = apply_overrides(nest_space(SEARCH_SPACE),
                             nest_space({"mining.probability": {"type": "uniform", "low": 0.1, "high": 0.5}}))
    spec = SearchSpace.parse(merged).params["mining.probability"]
    assert (spec.low, spec.high, spec.when) == (0.1, 0.5, {"mining.enabled": True})


def test_bad_parameter_specs_are_rejected(sweep_yaml):
    with pytest.raises(ConfigError, match="loguniform needs low > 0"):
        _config(sweep_yaml(search_space={"optim.lr": {"type": "loguniform", "low": 0, "high": 1}})).space()
    with pytest.raises(ConfigError, match="choice needs a non-empty 'values'"):
        _config(sweep_yaml(search_space={"mining.enabled": {"type": "choice", "values": []}})).space()
