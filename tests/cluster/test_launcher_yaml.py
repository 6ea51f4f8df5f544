"""cluster/aws.yaml and cluster/gcp.yaml against the schema `ray up` uses, plus the security rules."""

import copy
import re

import jsonschema
import pytest
import yaml

from .conftest import CLUSTER, LAUNCHER_YAMLS, find_secrets, walk

pytestmark = pytest.mark.parametrize("path", LAUNCHER_YAMLS, ids=lambda p: p.name)
SHA_OR_PLACEHOLDER = re.compile(r"CRL_COMMIT=(__CRL_COMMIT__|[0-9a-f]{40})\b")


def _load(path):
    return yaml.safe_load(path.read_text())


def test_validates_against_ray_schema(path, ray_schema):
    jsonschema.Draft7Validator.check_schema(ray_schema)
    jsonschema.Draft7Validator(ray_schema).validate(_load(path))


@pytest.mark.parametrize("mutate", [
    lambda c: c.update(avaliable_node_types=c.pop("available_node_types")),          # typo at the top
    lambda c: c["available_node_types"]["gpu_1x_h100"].update(min_worker=1),         # typo in a node type
    lambda c: c.update(max_workers="six"),                                           # wrong type
    lambda c: c["available_node_types"]["gpu_8x_h100"]["resources"].update(GPU=-8),  # negative resource
    lambda c: c.pop("provider"),                                                     # required key
], ids=["top-typo", "nodetype-typo", "type", "negative", "missing-provider"])
def test_broken_copy_is_rejected(path, ray_schema, mutate):
    cfg = copy.deepcopy(_load(path))
    mutate(cfg)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, ray_schema, cls=jsonschema.Draft7Validator)


def test_cluster_shape(path):
    cfg = _load(path)
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["resources"].get("CPU") == 0, "CPU-only head, no trials"
    gpu_types = {n: t for n, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert sorted(t["resources"]["GPU"] for t in gpu_types.values()) == [1, 8]
    for name, t in gpu_types.items():
        assert 0 <= t["min_workers"] <= t["max_workers"], name
        assert t["resources"].get("crl_gpu_node") == 1, f"{name}: node-type resource for placement"
    assert sum(t["max_workers"] for t in gpu_types.values()) <= cfg["max_workers"]


def test_no_port_open_to_the_world(path):
    cfg = _load(path)
    text = yaml.safe_dump(cfg)  # the parsed config: comments may explain the rule
    assert "0.0.0.0/0" not in text and "::/0" not in text
    cmds = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in cmds, "dashboard/job API only through `ray dashboard` (SSH tunnel)"
    if cfg["provider"]["type"] == "aws":
        # Without SecurityGroupIds on every node type, `ray up` creates a group with SSH from 0.0.0.0/0.
        assert "security_group" not in cfg["provider"]
        for name, t in cfg["available_node_types"].items():
            assert t["node_config"].get("SecurityGroupIds"), f"{name}: needs the pre-made security group"
    else:
        for name, t in cfg["available_node_types"].items():
            nets = [n["network"] for n in t["node_config"]["networkInterfaces"]]
            assert all(n.endswith("/networks/crl-sweep") for n in nets), f"{name}: not the default network"


def test_network_scripts_open_nothing_to_the_world(path):
    for script in (CLUSTER / "network").glob("*.sh"):
        code = [ln for ln in script.read_text().splitlines() if not ln.lstrip().startswith("#")]
        ingress = [ln for ln in code if "CidrIp=" in ln or "--source-ranges" in ln]
        assert ingress and all("$ADMIN_CIDR" in ln for ln in ingress), script.name
        assert any("refusing ADMIN_CIDR" in ln for ln in code), f"{script.name}: must refuse 0.0.0.0/0"


def test_setup_installs_the_project_at_a_pinned_commit(path):
    cfg = _load(path)
    setup = "\n".join(cfg["setup_commands"])
    assert SHA_OR_PLACEHOLDER.search(setup), "CRL_COMMIT must be a 40-hex sha or the obvious placeholder"
    assert 'git checkout --quiet --detach "$CRL_COMMIT"' in setup
    assert "exit 1" in setup.split("CRL_COMMIT=")[1], "an unset placeholder must stop the setup"
    assert "CRL_VENV=" in setup and "scripts/setup.sh" in setup
    assert "/mnt/crl-shared" in setup, "shared storage for Tune/Train state"
    for cmd in cfg["head_start_ray_commands"] + cfg["worker_start_ray_commands"]:
        assert cmd.startswith("~/crl-venv/bin/ray") or "~/crl-venv/bin/ray start" in cmd


def test_no_literal_credentials(path):
    assert find_secrets(path.read_text()) == []
    for key, value in walk(_load(path)):
        if re.search(r"(?i)(secret|password|token|access_key)$", key) and isinstance(value, str):
            assert value.startswith(("~/", "/", "__")), f"literal credential at {key}"
