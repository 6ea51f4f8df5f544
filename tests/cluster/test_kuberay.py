"""KubeRay manifests: structure of RayCluster / RayJob (no CRD schema ships offline), GPUs, Secrets."""

import re

import pytest

from .conftest import KUBERAY_YAMLS, find_secrets, load_docs, walk

DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
RAY_KINDS = {"RayCluster", "RayJob"}
CRED_ENV = {"HF_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY"}


def ray_docs():
    out = []
    for path in KUBERAY_YAMLS:
        out += [(path.name, d) for d in load_docs(path) if d.get("kind") in RAY_KINDS]
    return out


def cluster_spec(doc):
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def containers(spec):
    groups = [spec["headGroupSpec"]] + spec["workerGroupSpecs"]
    return [(g.get("groupName", "head"), c, g["template"]["spec"]) for g in groups
            for c in g["template"]["spec"]["containers"]]


def test_every_document_parses_and_is_named():
    kinds = []
    for path in KUBERAY_YAMLS:
        for doc in load_docs(path):
            assert {"apiVersion", "kind", "metadata"} <= doc.keys(), path.name
            assert DNS_1123.match(doc["metadata"]["name"]), doc["metadata"]["name"]
            kinds.append(doc["kind"])
    assert {"RayCluster", "RayJob"} <= set(kinds)


@pytest.mark.parametrize("name,doc", ray_docs(), ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_ray_resource_structure(name, doc):
    assert doc["apiVersion"] == "ray.io/v1"
    spec = cluster_spec(doc)
    assert spec["rayVersion"] == "2.60.0", "must match the ray pinned in pyproject.toml"
    head = spec["headGroupSpec"]
    assert head["template"]["spec"]["containers"], "head group template"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", "no LoadBalancer / NodePort"
    assert head["rayStartParams"]["num-cpus"] == "0", "no trial on the head"
    assert spec["workerGroupSpecs"]
    for g in spec["workerGroupSpecs"]:
        assert DNS_1123.match(g["groupName"])
        for k in ("replicas", "minReplicas", "maxReplicas"):
            assert isinstance(g[k], int), f"{g['groupName']}.{k}"
        assert 0 <= g["minReplicas"] <= g["replicas"] <= g["maxReplicas"]
        pod = g["template"]["spec"]
        tol = pod.get("tolerations", [])
        assert any(t["key"] == "nvidia.com/gpu" for t in tol), "GPU taint toleration"
        for c in pod["containers"]:
            lim = c["resources"]["limits"]
            assert int(lim["nvidia.com/gpu"]) >= 1
            assert lim["nvidia.com/gpu"] == c["resources"]["requests"]["nvidia.com/gpu"]
    if doc["kind"] == "RayJob":
        ep = doc["spec"]["entrypoint"]
        assert ep.startswith("python sweeps/margin_sweep.py --config sweeps/configs/")
        assert "storage_dir=/mnt/crl-shared/" in ep
        assert doc["spec"]["shutdownAfterJobFinishes"] is True
        assert isinstance(doc["spec"]["activeDeadlineSeconds"], int)


@pytest.mark.parametrize("name,doc", ray_docs(), ids=lambda x: x if isinstance(x, str) else x["kind"])
def test_credentials_only_from_secrets(name, doc):
    for group, c, _ in containers(cluster_spec(doc)):
        env = {e["name"]: e for e in c.get("env", [])}
        assert CRED_ENV <= env.keys(), f"{group}: missing {CRED_ENV - env.keys()}"
        for var in CRED_ENV:
            assert "value" not in env[var] and env[var]["valueFrom"]["secretKeyRef"]["name"], f"{group}.{var}"
        assert env["MLFLOW_TRACKING_URI"]["value"].startswith("http://mlflow.crl.svc.cluster.local")


def test_no_literal_credentials_anywhere():
    for path in KUBERAY_YAMLS:
        assert find_secrets(path.read_text()) == [], path.name
        for doc in load_docs(path):
            for key, value in walk(doc):
                if re.search(r"(?i)(password|secret|token)$", key.split(".")[-1]) and isinstance(value, str):
                    pytest.fail(f"{path.name}: literal value at {key}")


def test_network_policy_guards_the_head():
    docs = load_docs(KUBERAY_YAMLS[0])
    pol = next(d for d in docs if d["kind"] == "NetworkPolicy")
    assert pol["spec"]["podSelector"]["matchLabels"]["ray.io/cluster"] == "crl-sweep"
    assert "Ingress" in pol["spec"]["policyTypes"]
    pvc = next(d for d in docs if d["kind"] == "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("planted", [
    "value: hf_AbCdEfGhIjKlMnOpQrStUvWx", "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP",
    "aws_secret_access_key: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "uri: postgresql://mlflow:hunter2hunter2@db:5432/mlflow", "password: correcthorsebattery",
])
def test_the_scanner_catches_planted_credentials(planted):
    text = KUBERAY_YAMLS[1].read_text() + f"\n# {planted}\n"
    assert find_secrets(text), planted
