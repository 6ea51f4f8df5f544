"""bench/gpu_check.py at tiny size on the CPU, in a process where Ray, MLflow, Optuna and ``datasets`` cannot
be imported (the GPU machine it is written for has none of them)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import runpy, sys
for name in ("ray", "mlflow", "optuna", "datasets"):
    sys.modules[name] = None  # any import of them, however deep, fails
sys.argv = ["gpu_check.py", "--size", "tiny", "--repeats", "2", "--warmup", "1", "--batch", "2",
            "--max-length", "48", "--dtype", "bfloat16", "--device", "cpu"]
runpy.run_path("bench/gpu_check.py", run_name="__main__")
"""


def test_gpu_check_runs_at_tiny_size_on_the_cpu_without_ray_mlflow_or_datasets():
    proc = subprocess.run([sys.executable, "-c", RUN], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # one JSON line
    out = json.loads(lines[0])
    assert out["device"] == "cpu" and out["dtype"] == "bfloat16" and out["path_ok"] is True
    assert set(out["variants"]) == {"sft", "crl", "crl-whole", "crl+mining"}
    for v in out["variants"].values():
        assert v["losses_finite"] and v["lora_moved_max_abs"] > 0 and v["tokens_per_step"] > 0
        assert v["peak_memory_gib"] is None and v["mfu"] is None  # no GPU: not measured, never made up
    sft, crl = out["variants"]["sft"], out["variants"]["crl"]
    assert sft["tokens_per_step"] == crl["tokens_per_step"]  # the same batches in every variant
    assert crl["model_flops_per_step"] == sft["model_flops_per_step"] * 6 / 4  # + the reference forward
    assert out["ratios"]["crl/sft_time_per_token"] > 0 and "crl+mining/sft_time_per_token" in out["ratios"]


def test_the_mfu_peak_is_looked_up_by_gpu_name():
    sys.path.insert(0, str(ROOT))
    from bench.gpu_check import gpu_peak

    assert gpu_peak("NVIDIA H100 80GB HBM3") == ("H100", 989.4)
    assert gpu_peak("NVIDIA H100 PCIe") == ("H100 PCIe", 756.0)
    assert gpu_peak("NVIDIA H200") == ("H200", 989.4)
    assert gpu_peak("Some Future GPU") == (None, None)


def test_bad_arguments_are_one_clear_error_before_any_model_is_built():
    for args, message in ((["--repeats", "0"], "--repeats must be >= 1"), (["--variants", "sft,nope"], "--variants"),
                          (["--device", "tpu"], "--device: 'tpu'"), (["--device", "cuda"], "no CUDA GPU")):
        proc = subprocess.run([sys.executable, "bench/gpu_check.py", "--size", "tiny", *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "CUDA_VISIBLE_DEVICES": ""})
        assert proc.returncode == 2 and message in proc.stderr and proc.stdout == "", (args, proc.stderr[-500:])
