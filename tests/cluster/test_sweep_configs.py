"""sweeps/configs/llama3-8b.yaml and smollm2.yaml through the recipe's own loader and the engine's checks."""

from types import SimpleNamespace

import pytest

from crl_core.config import ConfigError
from sweeps import engine, margin_sweep
from sweeps.engine import preflight
from sweeps.margin_sweep import load_sweep_config, parse_args

from .conftest import ROOT

LLAMA = ROOT / "sweeps" / "configs" / "llama3-8b.yaml"
SMOLLM2 = ROOT / "sweeps" / "configs" / "smollm2.yaml"
LLAMA3_8B_BLOCKS = 32  # num_hidden_layers of meta-llama/Meta-Llama-3-8B-Instruct's config.json


def _load(path, *overrides):
    return load_sweep_config(parse_args(["--config", str(path), *overrides]))


@pytest.fixture
def offline_llama(monkeypatch, tmp_path):
    """validate_before_launch without the hub, a GPU or a cluster: the shape is the published one (32 blocks), and
    RAY_ADDRESS skips the check against this machine (the cluster check runs in test_simulated_cluster)."""
    llama = SimpleNamespace(num_hidden_layers=LLAMA3_8B_BLOCKS, hidden_size=4096, vocab_size=128256)
    monkeypatch.setattr(preflight, "model_config", lambda name: llama)
    monkeypatch.setenv("RAY_ADDRESS", "ray://not-contacted:10001")
    return lambda *o: _load(LLAMA, f"storage_dir={tmp_path / 'sweeps'}",
                            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}", *o)


def test_llama3_8b_structure():
    cfg = _load(LLAMA)
    tc = engine.train_config_for(cfg.base_train_dict(), {}, "/tmp/probe")
    assert tc.model.name == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert tc.model.dtype == "bfloat16" and tc.model.trust_remote_code is False and tc.device == "cuda"
    assert (tc.harmful_layers.start, tc.harmful_layers.width) == (20, 11)          # published T_u = 20..30
    assert tc.lora.rank == 16 and len(tc.lora.target_modules) == 7
    assert tc.data.batch_benign * tc.optim.grad_accum == 16                          # published rows per step
    res = cfg.resources
    assert res.train_backed and res.per_trial() == {"CPU": 8.1, "GPU": 1.0, "crl_gpu_node": 0.125}
    assert cfg.evaluation["preset"] == "proxy"   # cheap: no generation (the header shows the classifier route)
    assert cfg.objective.eval_every * 4 == tc.steps
    space = cfg.space().params
    assert space["optim.lr"].bounds() == [2e-5, 3e-4]                                 # docs/method.md §10.3
    assert space["triplet.margin_harmful"].bounds() == [0.0, 2.0]
    assert space["lora.rank"].bounds() == [8, 16, 32]


def test_llama3_8b_every_corner_fits_32_blocks(offline_llama):
    cfg = offline_llama()
    engine.validate_before_launch(cfg, margin_sweep.OBJECTIVES)   # search keys, all layer corners vs 32 blocks, tracking URI
    space = cfg.space().params
    deepest = space["harmful_layers.start"].bounds()[1] + space["harmful_layers.width"].bounds()[1] - 1
    assert deepest <= LLAMA3_8B_BLOCKS


def test_llama3_8b_the_unnarrowed_window_of_method_md_is_refused(offline_llama):
    cfg = offline_llama("search_space.harmful_layers.start.high=24", "search_space.harmful_layers.width.high=16")
    with pytest.raises(ConfigError, match="past the model's depth"):
        engine.validate_before_launch(cfg, margin_sweep.OBJECTIVES)


def test_smollm2_validates_before_launch(tmp_path):
    from crl_core.models.smollm2 import cached_smollm2_dir

    cfg = _load(SMOLLM2, f"storage_dir={tmp_path / 'sweeps'}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}")
    assert cfg.resources.per_trial() == {"CPU": 1.0, "GPU": 0.0} and not cfg.resources.train_backed
    if cached_smollm2_dir() is None:
        pytest.skip("SmolLM2 is not prepared on this machine (`crl model prepare smollm2`); "
                    "validate_before_launch reads its config.json")
    engine.validate_before_launch(cfg, margin_sweep.OBJECTIVES)


def test_an_object_store_storage_dir_is_accepted_with_a_local_state_folder():
    # Tune state and checkpoints go to the bucket; sweep.json, optuna.db and the driver lock stay on a file
    # system (state_dir), or the study goes to an RDB (study_storage); docs/sweeps.md "Object-store storage"
    cfg = _load(SMOLLM2, "storage_dir=s3://bucket/crl-sweeps", "state_dir=/mnt/crl-shared/state",
                "study_storage=postgresql://crl@optuna-db/optuna")
    assert cfg.ray_storage == f"s3://bucket/crl-sweeps/{cfg.experiment}/ray"
    assert str(cfg.sweep_dir) == f"/mnt/crl-shared/state/{cfg.experiment}"
    with pytest.raises(ConfigError, match="credentials and options do not belong"):
        _load(SMOLLM2, "storage_dir=s3://key:secret@bucket/crl-sweeps")
