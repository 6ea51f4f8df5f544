"""The Ray a sweep runs on: join ``RAY_ADDRESS`` or a running Ray, or start a local one on 127.0.0.1; and the
driver lock that keeps a second driver out of a sweep folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import ray

from crl_core.config import ConfigError
from crl_core.redaction import redact_uri
from sweeps.engine.ray_private import bind_local_ray_to_loopback

__all__ = ["TRAIN_ENV", "REUSE_TRIAL_ACTORS", "local_ray_options", "connect_ray", "DriverLock",
           "bind_local_ray_to_loopback"]

TRAIN_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1"}  # Train V2 throttles reports otherwise (pitfall 7)


# A reused trial actor keeps its imports and (in-trial path) its loaded base model; on the Train-backed path
# it is only the 0.1-CPU driver of the TorchTrainer, and reusing it saves its start-up all the same.
def _reuse_trial_actors(value: str) -> bool:
    if value not in ("0", "1"):
        raise ConfigError(f"CRL_REUSE_TRIAL_ACTORS must be 0 or 1, got {value!r}")
    return value == "1"


REUSE_TRIAL_ACTORS = _reuse_trial_actors(os.environ.get("CRL_REUSE_TRIAL_ACTORS", "1"))


def local_ray_options(num_cpus: int, train_backed: bool) -> dict[str, Any]:
    """``ray.init`` keyword arguments for the Ray a sweep starts itself (the benchmarks use them too); binds it
    to the loopback interface."""
    bind_local_ray_to_loopback()
    for k, v in TRAIN_ENV.items():
        os.environ.setdefault(k, v)
    # Not preloading modules into Ray's workers (``preload_python_modules``): measured slower here, since
    # every per-trial helper actor (Train controller, report queue, placement-group cleaner) then imports
    # torch and crl_core too (bench/sweep_overhead.py: 43.6 s vs 30.4 s per Train-backed trial).
    return {"address": "local", "num_cpus": num_cpus, "include_dashboard": train_backed,
            "logging_level": logging.WARNING, "runtime_env": {"env_vars": dict(TRAIN_ENV)}}


def connect_ray(num_cpus: int, train_backed: bool) -> bool:
    """Use the running Ray, ``RAY_ADDRESS`` (e.g. inside ``ray job submit``), or start a local one; True when
    this call connected (the caller shuts it down)."""
    if ray.is_initialized():
        return False
    if os.environ.get("RAY_ADDRESS"):
        print(f"joining the Ray cluster at {redact_uri(os.environ['RAY_ADDRESS'])}", flush=True)
        ray.init(address=os.environ["RAY_ADDRESS"], logging_level=logging.WARNING)
    else:
        print(f"starting a local Ray ({num_cpus} CPUs, listening on 127.0.0.1 only)", flush=True)
        ray.init(**local_ray_options(num_cpus, train_backed))
    return True


class DriverLock:
    """One driver per sweep folder: an advisory ``flock`` on ``driver.lock``, released when the process
    ends however it ends (a killed driver leaves no stale lock). Kept as a plain ``flock`` rather than the
    ``filelock`` library (which the MLflow schema lock uses): the lock file also carries the holder's pid
    and host, which the error a second driver gets shows, and filelock manages its lock file's content."""

    def __init__(self, sweep_dir: Path) -> None:
        self.path = sweep_dir / "driver.lock"
        self._fh = None

    def __enter__(self) -> DriverLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise ConfigError(f"sweep folder {self.path.parent} is in use by another driver ({holder}); "
                              "wait for it to finish or stop it before --resume") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh:
            self._fh.close()  # closing releases the flock
            self._fh = None
