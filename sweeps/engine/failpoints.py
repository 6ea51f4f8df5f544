"""Failpoints: kill the sweep driver on purpose inside one of its state writes (bench/fault_matrix.py).

Off unless ``CRL_FAILPOINT=<name>:<n>`` is set: then the ``n``-th time a process reaches the failpoint
``name``, it SIGKILLs the process group ``CRL_FAILPOINT_PGID`` (the driver and the local Ray it started),
and then itself: Ray starts its worker processes in process groups of their own, so a trial that hit the
failpoint would otherwise outlive the kill and go on writing. The write in progress is cut where a real
kill (of the machine) could cut it. Every hit is a no-op otherwise. Names:

- ``tune_state``: Tune's experiment snapshot copied half-way into the sweep folder (what a kill during
  Ray's in-place rewrite of ``experiment_state``/``searcher-state``/``search_gen_state`` leaves);
- ``mlflow_close``: driver side, a trial's run tagged with its final step but not yet closed;
- ``mlflow_metrics``: trial side, training metrics logged but not the evaluation;
- ``adapter_upload``: trial side, the adapter uploaded into the LoggedModel, not finalized, not yet a
  run artifact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

NAMES = ("tune_state", "mlflow_close", "mlflow_metrics", "adapter_upload")
_hits: dict[str, int] = {}


def _armed() -> tuple[str, int] | None:
    spec = os.environ.get("CRL_FAILPOINT", "")
    if not spec:
        return None
    name, _, count = spec.partition(":")
    if name not in NAMES or not count.isdigit() or int(count) < 1:
        raise ValueError(f"CRL_FAILPOINT must be NAME:N with NAME one of {', '.join(NAMES)}, got {spec!r}")
    return name, int(count)


def _kill() -> None:
    os.killpg(int(os.environ["CRL_FAILPOINT_PGID"]), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)  # a trial process is not in that group (reached only then)


def hit(name: str) -> None:
    """Count a pass through failpoint ``name``; kill the driver's process group on the armed pass."""
    armed = _armed()
    if armed is None or armed[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == armed[1]:
        _kill()


def install_tune_state_failpoint() -> None:
    """Driver side: after Tune wrote its snapshot to the staging folder, copy each file half-way into the
    experiment folder and die on the armed pass, instead of letting Ray's sync copy it whole."""
    armed = _armed()
    if armed is None or armed[0] != "tune_state":
        return
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController.save_to_dir

    def save_to_dir(self) -> None:
        original(self)
        _hits["tune_state"] = _hits.get("tune_state", 0) + 1
        if _hits["tune_state"] != armed[1]:
            return
        staging = Path(self._storage.experiment_driver_staging_path)
        target = Path(self._storage.experiment_fs_path)
        for f in sorted(staging.glob("*")):
            if f.is_file() and not f.name.startswith("."):
                data = f.read_bytes()
                (target / f.name).write_bytes(data[:len(data) // 2])
        _kill()

    TuneController.save_to_dir = save_to_dir
