"""A simulated multi-node cluster on this machine (ray.cluster_utils.Cluster): a head with no CPUs for
trials and two worker nodes whose resources come from cluster/aws.yaml's GPU node types, scaled down.
Ray takes declared GPUs at face value, so `num_gpus` stands in for H100s; nothing touches CUDA.

The sweep engine requests only CPU/GPU (no node-type resources), so placement is checked with a task,
an actor and a minimal Tune run using tune.with_resources, and the engine's pre-launch check
(check_resources) is run against the simulated cluster's resources."""

import os
import tempfile
from pathlib import Path

import pytest
import yaml

from crl_core.config import ConfigError
from sweeps.engine import ResourceSettings, check_resources

from .conftest import CLUSTER

RAY_TMP = Path(tempfile.gettempdir()) / "crl-cluster-tests-ray"


def _worker_types():
    types = yaml.safe_load((CLUSTER / "aws.yaml").read_text())["available_node_types"]
    return {n: t["resources"] for n, t in types.items() if t["resources"].get("GPU", 0) > 0}


@pytest.fixture(scope="module")
def sim_cluster():
    import ray
    from ray.cluster_utils import Cluster

    (RAY_TMP / "ray").mkdir(parents=True, exist_ok=True)
    os.environ["RAY_TMPDIR"] = str(RAY_TMP)
    if ray.is_initialized():
        pytest.skip("another Ray is running in this process")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "resources": {"head_node": 1}, "include_dashboard": False})
    nodes = {}
    for name, res in _worker_types().items():
        custom = {k: v for k, v in res.items() if k not in ("CPU", "GPU")}
        # one logical CPU per GPU-node (2 real cores on CI), the declared GPUs, and a per-type marker
        node = cluster.add_node(num_cpus=1, num_gpus=res["GPU"], resources={**custom, f"type_{name}": 1})
        nodes[name] = node.node_id
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        yield ray, nodes
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_tasks_and_actors_land_on_the_declared_node_types(sim_cluster):
    ray, nodes = sim_cluster

    @ray.remote(num_cpus=0.1)
    def where():
        return ray.get_runtime_context().get_node_id()

    @ray.remote(num_cpus=0.1)
    class Probe:
        def node(self):
            return ray.get_runtime_context().get_node_id()

    for name, node_id in nodes.items():
        assert ray.get(where.options(resources={f"type_{name}": 0.5}).remote()) == node_id
        actor = Probe.options(resources={f"type_{name}": 0.5}).remote()
        assert ray.get(actor.node.remote()) == node_id
        ray.kill(actor)
    # 8 GPUs exist only on the 8x node; the crl_gpu_node marker only on GPU nodes (never the head)
    assert ray.get(where.options(num_gpus=8).remote()) == nodes["gpu_8x_h100"]
    assert set(ray.get([where.options(resources={"crl_gpu_node": 0.5}).remote() for _ in range(4)])) <= set(
        nodes.values())


def test_tune_trials_requesting_a_node_type_land_on_it(sim_cluster, tmp_path):
    ray, nodes = sim_cluster
    from ray import tune

    def trial(config):
        tune.report({"node": ray.get_runtime_context().get_node_id(), "gpus": len(ray.get_gpu_ids())})

    fn = tune.with_resources(trial, tune.PlacementGroupFactory([{"CPU": 0.5, "GPU": 1, "type_gpu_1x_h100": 1}]))
    results = tune.Tuner(fn, param_space={"i": tune.grid_search([0, 1])},
                         run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0)).fit()
    assert not results.errors
    assert {r.metrics["node"] for r in results} == {nodes["gpu_1x_h100"]}
    assert {r.metrics["gpus"] for r in results} == {1}


def test_pre_launch_check_against_the_simulated_cluster(sim_cluster):
    ray, _ = sim_cluster
    available = {k: ray.cluster_resources().get(k, 0.0) for k in ("CPU", "GPU")}   # what run_sweep passes
    assert available == {"CPU": 2.0, "GPU": 9.0}
    check_resources(ResourceSettings(workers=1, cpus_per_worker=0.9, gpus_per_worker=1), available, "sim")
    with pytest.raises(ConfigError, match="needs 16 GPU"):
        check_resources(ResourceSettings(workers=2, cpus_per_worker=0.5, gpus_per_worker=8), available, "sim")


def test_pre_launch_check_refuses_8_gpus_per_worker_on_a_1_gpu_cluster():
    with pytest.raises(ConfigError, match=r"needs 8 GPU .* but the Ray cluster has 1"):
        check_resources(ResourceSettings(workers=1, cpus_per_worker=8, gpus_per_worker=8),
                        {"CPU": 16.0, "GPU": 1.0}, "the Ray cluster")
    with pytest.raises(ConfigError, match="CPU"):
        check_resources(ResourceSettings(workers=1, cpus_per_worker=8, gpus_per_worker=1),
                        {"CPU": 4.0, "GPU": 1.0}, "the Ray cluster")


def test_sweep_trials_requesting_a_node_type_resource_run_only_on_that_node_type(sim_cluster, tmp_path):
    """The engine's own trials (not a hand-made Tune run) ask for resources.custom: here the marker only the
    8x node declares, so both trials run there (the trial run's tag crl.ray_node says where)."""
    ray, nodes = sim_cluster
    from mlflow.tracking import MlflowClient

    from sweeps import margin_sweep
    from sweeps.tiny import make_tiny_model, tiny_sweep

    model = make_tiny_model(tmp_path / "model")
    cfg = tiny_sweep(model, tmp_path, resources={"cpus_per_worker": 0.5, "max_concurrent_trials": 1,
                                                 "custom": {"type_gpu_8x_h100": 1}})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert margin_sweep.main(["--config", str(path)]) == 0
    client = MlflowClient(cfg["tracking"]["uri"])
    exp = client.get_experiment_by_name("tiny")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`crl.role` = 'trial'")
    assert len(runs) == 2 and {r.data.tags["crl.ray_node"] for r in runs} == {nodes["gpu_8x_h100"]}


def test_a_resource_no_node_has_is_refused_unless_the_cluster_can_scale_to_it(sim_cluster, tmp_path, capsys):
    ray, _ = sim_cluster
    from crl_core.config import load_config
    from sweeps import margin_sweep
    from sweeps.engine import SweepConfig, validate_before_launch
    from sweeps.margin_sweep import OBJECTIVES
    from sweeps.tiny import make_tiny_model, tiny_sweep

    model = make_tiny_model(tmp_path / "model")
    cfg = tiny_sweep(model, tmp_path, resources={"cpus_per_worker": 0.5, "custom": {"crl_big_node": 1}})
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # joined as it is now: no node declares crl_big_node -> one clear error before any trial
    assert margin_sweep.main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "resources.custom.crl_big_node: one trial needs 1" in err and "the Ray cluster has 0" in err
    assert "cluster_config" in err and not (tmp_path / "sweeps" / "tiny" / "sweep.json").exists()
    # the cluster autoscales from zero nodes of a type that declares it: checked against the node types
    launcher = tmp_path / "cluster.yaml"
    launcher.write_text(yaml.safe_dump({"head_node_type": "head", "available_node_types": {
        "head": {"resources": {"CPU": 0}}, "big": {"min_workers": 0, "max_workers": 2,
                                                   "resources": {"CPU": 4, "crl_big_node": 1}}}}))
    scaled = load_config(SweepConfig, None, [f"resources.cluster_config={launcher}"], base=cfg)
    validate_before_launch(scaled, OBJECTIVES, ray_running=True)
    from sweeps.engine.preflight import check_node_types

    assert "big (up to 2 workers)" in check_node_types(scaled.resources, launcher)
