"""The Ray a sweep runs on (sweeps/engine/cluster.py): the Ray a sweep starts for itself listens on the
loopback interface only (issue 11, part B); the trial-actor reuse switch; the one-driver lock."""

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from crl_core.config import ConfigError
from sweeps.engine import DriverLock

ROOT = Path(__file__).resolve().parents[3]

# Listeners allowed on every interface, each with the reason it cannot be moved. Empty today: the
# single-machine mode of sweeps.engine.bind_local_ray_to_loopback moves every one of them.
ALLOWED_WILDCARD: dict[str, str] = {}

PROBE = r"""
import json, sys, time
import psutil, ray
sys.path.insert(0, sys.argv[1])
from sweeps.engine import local_ray_options
ray.init(**local_ray_options(1, train_backed=True), _temp_dir=sys.argv[2])  # dashboard on: the widest case

@ray.remote
def ping():
    return 1

ray.get(ping.remote())  # a worker process with its own gRPC server
time.sleep(2)
rows = []
me = psutil.Process()
for p in [me] + me.children(recursive=True):
    try:
        for c in p.net_connections(kind="inet"):
            if c.status == psutil.CONN_LISTEN:
                rows.append({"process": p.name(), "cmd": " ".join(p.cmdline())[:160], "ip": c.laddr.ip,
                             "port": c.laddr.port})
    except psutil.Error:
        pass
ray.shutdown()
print(json.dumps(rows))
"""


def _loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_the_local_ray_of_a_sweep_listens_on_loopback_only():
    ray_tmp = tempfile.mkdtemp(prefix="crl-net-")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")}
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), ray_tmp], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    names = {r["process"] for r in rows}
    assert {"gcs_server", "raylet"} <= names, f"the probe did not see Ray's own servers: {sorted(names)}"
    exposed = [r for r in rows if not _loopback(r["ip"]) and r["process"] not in ALLOWED_WILDCARD]
    assert not exposed, "listening beyond 127.0.0.1:\n" + "\n".join(
        f"  {r['ip']}:{r['port']}  {r['process']}  {r['cmd']}" for r in exposed)


def test_a_malformed_actor_reuse_switch_is_rejected():
    from sweeps.engine.cluster import _reuse_trial_actors

    assert _reuse_trial_actors("1") is True and _reuse_trial_actors("0") is False
    with pytest.raises(ConfigError, match="CRL_REUSE_TRIAL_ACTORS must be 0 or 1, got 'false'"):
        _reuse_trial_actors("false")


def test_a_second_driver_on_the_same_sweep_is_refused(tmp_path):
    with DriverLock(tmp_path / "sweep"):
        with pytest.raises(ConfigError, match=r"in use by another driver \(pid \d+"):
            with DriverLock(tmp_path / "sweep"):
                pass
    with DriverLock(tmp_path / "sweep"):  # released on exit
        pass
