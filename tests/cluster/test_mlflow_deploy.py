"""cluster/mlflow: the compose file and the Kubernetes manifest of the team MLflow server."""

import re
from pathlib import Path

import pytest
import yaml

from .conftest import CLUSTER, find_secrets, load_docs

MLFLOW = CLUSTER / "mlflow"


def _server_command(cmd) -> str:
    text = " ".join(cmd) if isinstance(cmd, list) else cmd
    assert "mlflow server" in text
    return text


def _check_server_flags(text: str) -> None:
    assert "--app-name basic-auth" in text
    assert re.search(r'--backend-store-uri "postgresql://', text)
    assert re.search(r'--artifacts-destination "s3://', text)
    assert "--serve-artifacts" in text and "--no-serve-artifacts" not in text
    assert "--default-artifact-root" not in text, "artifacts go through the server (--serve-artifacts)"
    assert "database_uri = postgresql://" in text, "auth users live in PostgreSQL too"
    # credentials only through variables expanded by the container's shell
    for uri in re.findall(r"postgresql://[^\s\"']+", text):
        assert re.match(r"postgresql://mlflow:(\$\$?POSTGRES_PASSWORD|%s)@", uri), uri


def test_compose():
    path = MLFLOW / "docker-compose.yaml"
    doc = yaml.safe_load(path.read_text())
    svc = doc["services"]
    assert svc["postgres"]["image"].startswith("postgres:")
    assert "ports" not in svc["postgres"], "the database publishes no port"
    for port in svc["mlflow"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), f"published beyond loopback: {port}"
    _check_server_flags(_server_command(svc["mlflow"]["command"]))
    for name, s in svc.items():
        for key, value in s.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|KEY", key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*|:-[a-z]+)?\}", str(value)), f"{name}.{key}={value}"
    env = dict(ln.split("=", 1) for ln in (MLFLOW / "env.example").read_text().splitlines()
               if ln and not ln.startswith("#"))
    assert all(env[k] == "" for k in env if re.search(r"PASSWORD|SECRET|KEY_ID|ACCESS_KEY", k))
    assert find_secrets(path.read_text()) == []


def test_k8s_manifest():
    docs = load_docs(MLFLOW / "k8s.yaml")
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Service", "mlflow"), ("Deployment", "mlflow"), ("StatefulSet", "mlflow-postgres"),
            ("Service", "mlflow-postgres")} <= kinds
    for d in docs:
        if d["kind"] == "Service":
            assert d["spec"].get("type", "ClusterIP") == "ClusterIP", d["metadata"]["name"]
        assert d["kind"] not in ("Ingress", "Route"), "no exposure outside the cluster"
    dep = next(d for d in docs if d["kind"] == "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    _check_server_flags(_server_command(c["command"]))
    env = {e["name"]: e for e in c["env"]}
    for var in ("POSTGRES_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD",
                "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[var]["valueFrom"]["secretKeyRef"]["name"], var
    pg = next(d for d in docs if d["kind"] == "StatefulSet")
    pg_env = {e["name"]: e for e in pg["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "secretKeyRef" in pg_env["POSTGRES_PASSWORD"]["valueFrom"]
    assert find_secrets((MLFLOW / "k8s.yaml").read_text()) == []


@pytest.mark.parametrize("ini_password", ["s3cr3t-Pa55"])
def test_generated_auth_config_is_read_by_mlflow(tmp_path, monkeypatch, ini_password):
    """The printf in the server command produces an INI that MLflow 3.17's auth app accepts."""
    import importlib.util

    import mlflow

    # load auth/config.py alone: importing the package would need Flask-WTF (mlflow[auth]), which only
    # the server image installs
    spec = importlib.util.spec_from_file_location(
        "crl_mlflow_auth_config", Path(mlflow.__file__).parent / "server" / "auth" / "config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    read_auth_config = module.read_auth_config

    doc = yaml.safe_load((MLFLOW / "docker-compose.yaml").read_text())
    fmt = re.search(r"printf '([^']*)'", " ".join(doc["services"]["mlflow"]["command"])).group(1)
    ini = tmp_path / "basic_auth.ini"
    ini.write_text(fmt.replace("\\n", "\n") % ini_password)
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(ini))
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", "from-the-secret")
    cfg = read_auth_config()
    assert cfg.database_uri == f"postgresql://mlflow:{ini_password}@postgres:5432/mlflow_auth"
    assert cfg.admin_password == "from-the-secret" and cfg.default_permission == "READ"
