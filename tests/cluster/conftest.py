"""Offline checks of the cluster deployment files (cluster/**): no cloud SDK, no network, no Kubernetes."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
LAUNCHER_YAMLS = [CLUSTER / "aws.yaml", CLUSTER / "gcp.yaml"]
KUBERAY_YAMLS = [CLUSTER / "kuberay" / "raycluster.yaml", CLUSTER / "kuberay" / "rayjob.yaml"]

# Strings that look like credentials: cloud keys, hub / API tokens, private keys, passwords in URLs.
SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),                                  # AWS access key id
    re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"),  # AWS secret access key shape
    re.compile(r"hf_[A-Za-z0-9]{20,}"),                               # Hugging Face token
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),                           # OpenAI-style keys
    re.compile(r"gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}"),     # GitHub tokens
    re.compile(r"AIza[0-9A-Za-z_-]{35}"),                             # Google API key
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\"type\":\s*\"service_account\""),                   # GCP service-account JSON
    re.compile(r"://[^/\s:@$]+:(?!\$|%s)[^@\s/]+@"),                  # user:password@ in a URL (not $VAR)
    # key: value / key=value with a literal value (not a $VAR, a secret's name or a file path)
    re.compile(r"(?i)\b(password|passwd|secret_key|secret_access_key|token|api_key)\s*[:=]\s*['\"]?(?![$_~/{])[A-Za-z0-9+_-]{12,}"),
]


def load_docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def find_secrets(text: str) -> list[str]:
    return [m.group(0) for p in SECRET_PATTERNS for m in p.finditer(text)]


def walk(node, path=""):
    """Yield (dotted path, value) for every leaf of a parsed YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")
    else:
        yield path, node


@pytest.fixture(scope="session")
def ray_schema() -> dict:
    import json

    import ray

    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
