"""The two places the sweep reaches into Ray's private modules, isolated here (Ray is pinned to 2.60.x).

- :func:`bind_local_ray_to_loopback`: the single-machine switch (``ray._private.ray_constants``) that puts
  every listener of a Ray this process starts on 127.0.0.1;
- :func:`drain_train_reports`: waits for Ray Train's report queue (``ray.train._internal.session``) to
  empty before a Train-backed trial returns.

Each fails with one clear error naming the Ray version if the private name has moved.
"""

from __future__ import annotations

import os
import time

__all__ = ["bind_local_ray_to_loopback", "drain_train_reports"]


def _moved(what: str, exc: Exception) -> RuntimeError:
    import ray

    return RuntimeError(f"Ray {ray.__version__}: {what} is not where Ray 2.60 keeps it ({exc}); crl-sweep supports "
                        "ray>=2.60,<2.61 (pyproject.toml)")


def bind_local_ray_to_loopback() -> None:
    """Every listener of a Ray this process starts goes on 127.0.0.1 (tests/sweeps/engine/test_cluster.py checks).

    Ray 2.60 binds its gRPC servers (GCS, raylet, object manager, core workers) and the agents' and metrics
    servers to all interfaces or the node's routable IP; the only switch that moves all of them is its
    single-machine mode (the one it uses on macOS and Windows), where the node IP is the loopback address:
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``. Ray's own processes read that variable when they start; this
    process imported Ray already, so its constant is set too. A Ray started this way cannot take other
    nodes, which is the point: clusters are started with ``ray start``.
    """
    try:
        from ray._private import ray_constants
    except ImportError as exc:
        raise _moved("ray._private.ray_constants", exc) from None
    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):
        raise _moved("ray_constants.ENABLE_RAY_CLUSTER", AttributeError("missing"))
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False


def drain_train_reports(timeout_s: float = 30.0) -> None:
    """Return only once Tune has taken the last result ``TuneReportCallback`` queued: returning earlier can
    leave the trial RUNNING forever (stack-notes pitfall 6). ``fit()`` returns with at most one item left
    in that queue (it holds one), so this waits for it to empty, then briefly for Tune to file it."""
    try:
        from ray.train._internal.session import get_session

        queue = get_session()._inter_actor_queue
    except (ImportError, AttributeError) as exc:
        raise _moved("Ray Train's session report queue", exc) from None
    deadline = time.time() + timeout_s
    while queue is not None and not queue.empty() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.25)
