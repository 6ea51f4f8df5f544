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
