"""A tiny sweep on a tiny random model (seconds per trial on one CPU), and a local S3-compatible server for
object-store storage, shared by the tests and the benchmarks that run real sweeps (tests/sweeps/conftest.py,
tests/sweeps/engine/test_storage.py, bench/fault_matrix.py)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crl_core.config import apply_overrides
from sweeps.margin_sweep import MARGIN

__all__ = ["make_tiny_model", "tiny_sweep", "write_tiny_sweep", "local_s3"]


def make_tiny_model(folder: Path, num_layers: int = 3) -> Path:
    """A 3-block random Llama with a chatml tokenizer, saved as a model folder."""
    from crl_core.models.tiny import build_tiny_tokenizer, tiny_llama

    tok = build_tiny_tokenizer("chatml")
    tiny_llama(len(tok), hidden_size=32, num_layers=num_layers, seed=0).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_sweep(model_dir: Path, out_dir: Path, **changes: Any) -> dict[str, Any]:
    """The sweep config (as a dict for a YAML file) of a 2-trial, 4-step proxy-evaluated sweep on
    ``model_dir``, results under ``out_dir``; ``changes`` are deep-merged on top."""
    data = {
        "experiment": "tiny", "num_samples": 2, "seed": 0,
        "train": {"preset": "smollm2-crl", "overrides": {
            "model": {"name": str(model_dir)}, "steps": 4, "num_threads": 1,
            "harmful_layers": {"start": 1, "width": 2}, "benign_layers": "all",
            "lora": {"rank": 4, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
            "data": {"preset": "smollm2", "batch_benign": 2, "batch_harmful": 2, "batch_retain": 2,
                     "max_length": 48, "harmful_limit": 16},
            "mining": {"init_steps": 2, "reinit_every": 2}, "log_every": 100}},
        "search_space": {
            "triplet.margin_benign": dict(MARGIN),
            "triplet.margin_harmful": dict(MARGIN),
            "harmful_layers.start": {"type": "int", "low": 1, "high": 2},
            "mining.enabled": {"type": "choice", "values": [False, True]}},
        "objective": {"kind": "single", "metric": "score", "mode": "max", "eval_every": 2},
        "evaluation": {"preset": "proxy", "limit": 4},
        "resources": {"workers": 1, "cpus_per_worker": 1, "max_concurrent_trials": 2, "max_failures": 0},
        "confirm": {"top_k": 0, "default": False},  # the confirmation stage: on in its own tests only
        "storage_dir": str(out_dir / "sweeps"),
        "tracking": {"uri": f"sqlite:///{out_dir / 'mlflow.db'}", "artifact_root": str(out_dir / "mlruns")},
    }
    return apply_overrides(data, changes)


def write_tiny_sweep(out: Path) -> Path:
    """The tiny sweep on a tiny random Llama saved under ``out`` (reused when there); returns its YAML
    (the benchmarks' --tiny settings)."""
    import yaml

    model_dir = out / "tiny-model"
    if not (model_dir / "config.json").is_file():
        make_tiny_model(model_dir)
    path = out / "tiny-sweep.yaml"
    path.write_text(yaml.safe_dump(tiny_sweep(model_dir, out)))
    return path


@contextlib.contextmanager
def local_s3(bucket: str) -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 (a free port) with ``bucket``, for as long as the block runs. This
    process's environment points S3 clients (pyarrow, boto3) at it meanwhile, so drivers started from here
    inherit it; yields that environment. Needs the ``dev`` extra (moto)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=bucket)
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
