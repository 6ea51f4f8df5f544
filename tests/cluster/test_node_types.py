"""The autoscaling-aware pre-launch check (sweeps/engine/preflight.py: node_types, check_node_types) on the
repository's cluster files, and the custom resources a trial requests (resources.custom)."""

import pytest

from crl_core.config import ConfigError, from_dict
from sweeps.engine.config import ResourceSettings
from sweeps.engine.preflight import check_node_types, check_resources, node_types

from .conftest import CLUSTER, KUBERAY_YAMLS, LAUNCHER_YAMLS


@pytest.mark.parametrize("path", LAUNCHER_YAMLS + KUBERAY_YAMLS, ids=lambda p: p.name)
def test_every_cluster_file_declares_gpu_node_types_with_the_trial_marker(path):
    types = node_types(path)
    assert types["head"]["resources"]["CPU"] == 0  # no trial on the head
    gpu = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert gpu and all(t["resources"]["crl_gpu_node"] == 1 and t["max_workers"] > 0 for t in gpu.values())


@pytest.mark.parametrize("path", LAUNCHER_YAMLS + KUBERAY_YAMLS, ids=lambda p: p.name)
def test_the_llama3_sweep_fits_every_cluster_file_from_zero_nodes(path):
    from sweeps.margin_sweep import load_sweep_config, parse_args

    res = load_sweep_config(parse_args(["--config", "sweeps/configs/llama3-8b.yaml"])).resources
    assert res.custom == {"crl_gpu_node": 0.125}
    assert "fits" in check_node_types(res, path)


def test_a_worker_no_node_type_can_hold_is_refused_with_the_node_types_named():
    res = ResourceSettings(cpus_per_worker=8, gpus_per_worker=16, custom={"crl_gpu_node": 1})
    with pytest.raises(ConfigError, match=r"no node type of .*aws\.yaml can hold .*gpu_8x_h100"):
        check_node_types(res, CLUSTER / "aws.yaml")
    many = ResourceSettings(workers=9, cpus_per_worker=8, gpus_per_worker=1, custom={"crl_gpu_node": 1})
    # crl_gpu_node 1 per worker: one worker per node, 4 + 2 nodes at most
    with pytest.raises(ConfigError, match=r"needs 9 workers .* hold at most 6"):
        check_node_types(many, CLUSTER / "aws.yaml")
    shared = ResourceSettings(workers=9, cpus_per_worker=8, gpus_per_worker=1, custom={"crl_gpu_node": 0.125})
    assert "gpu_8x_h100 (up to 16 workers)" in check_node_types(shared, CLUSTER / "aws.yaml")


def test_an_unreadable_or_empty_cluster_config_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="resources.cluster_config: cannot read"):
        node_types(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("cluster_name: x\n")
    with pytest.raises(ConfigError, match="declares no node types"):
        node_types(tmp_path / "empty.yaml")


def test_custom_resources_are_validated_and_counted_per_trial():
    res = ResourceSettings(workers=2, cpus_per_worker=1, gpus_per_worker=1, custom={"crl_gpu_node": 0.5})
    assert res.per_trial() == {"CPU": 2.1, "GPU": 2.0, "crl_gpu_node": 1.0}
    assert res.worker_bundle() == {"CPU": 1.0, "GPU": 1.0, "crl_gpu_node": 0.5}
    for bad, message in (({"GPU": 1}, "use cpus_per_worker / gpus_per_worker"), ({"x": -1}, "positive"),
                         ({"x": float("nan")}, "")):
        with pytest.raises(ConfigError, match=message):
            from_dict(ResourceSettings, {"custom": bad})
    with pytest.raises(ConfigError, match=r"resources.custom.crl_gpu_node: one trial needs 1 .* has 0"):
        check_resources(res, {"CPU": 8.0, "GPU": 8.0}, "this machine")


def test_function_trials_reserve_the_custom_resources_train_backed_ones_give_them_to_their_workers(tmp_path):
    from sweeps.engine.config import SweepConfig
    from sweeps.engine.tuner import trial_resources

    space = {"optim": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-3}}}
    fn = from_dict(SweepConfig, {"search_space": space,
                                 "resources": {"cpus_per_worker": 2, "custom": {"crl_gpu_node": 0.125}}})
    assert trial_resources(fn) == {"cpu": 2.0, "crl_gpu_node": 0.125}
    tb = from_dict(SweepConfig, {"search_space": space,
                                 "resources": {"gpus_per_worker": 1, "custom": {"crl_gpu_node": 0.125}}})
    assert trial_resources(tb) == {"cpu": 0.1}  # the driver; its Train workers hold GPU + crl_gpu_node
