"""Benchmark smoke tests: each script at its cheapest setting, as a subprocess with one torch thread (on a
2-core machine a second OpenMP thread competing with another job makes a tiny model's steps ~10x slower),
and a tiny random Llama saved once per session for the scripts that take a model folder."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
              "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture
def run_bench():
    """Run ``bench/<script>`` with ``args`` (cwd: the repository, or ``cwd``); returns the CompletedProcess."""

    def run(script: str, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        env = {**os.environ, **ONE_THREAD}
        env.pop("RAY_ADDRESS", None)
        return subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=cwd or ROOT, env=env,
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from sweeps.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))
