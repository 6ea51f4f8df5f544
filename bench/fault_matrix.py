"""Fault matrix: kill the sweep driver at random moments and inside each state write, resume every time.

    python bench/fault_matrix.py [--random 20] [--per-window 5] [--seed 0] [--out outputs/bench/fault_matrix.json]
                                 [--storage folder|s3]

Each case is a fresh tiny sweep (a tiny random Llama saved to disk, 3 trials of 8 steps, evaluated every 2
steps, 2 trials at a time, no ASHA stop) started as ``python sweeps/margin_sweep.py`` in its own process
group, so a SIGKILL takes the driver and the local Ray it started, as a real crash does. Then
``--resume`` runs once, unharmed, and the case is checked from the durable state (MLflow + Optuna):

- ``random``: SIGKILL at a uniformly drawn moment of the sweep's life: from the appearance of its
  ``sweep.json`` (before that, pre-flight checks only: nothing exists to resume) to 95% of the rest of the
  unharmed run's wall time;
- ``tune_state``, ``mlflow_close``, ``mlflow_metrics``, ``adapter_upload``: a failpoint
  (``sweeps/failpoints.py``) kills it inside that write on a drawn pass (``PASSES``), so the window is
  reached on purpose instead of by luck (the Tune snapshot window is ~0.07% of the time).

A kill before the sweep wrote ``sweep.json`` (during the pre-flight checks) leaves nothing to resume:
``--resume`` then says so (exit 2) and the case reruns the original command, counted apart.
Per case it logs the phase of the kill (the failpoint, or for random kills what the durable state held at
that moment: finished / running trial runs) and whether the resume exited 0. Totals: resumed,
finished-not-rerun (every trial run that was FINISHED at the kill keeps its run id, status and evaluation
history), duplicate MLflow runs (a trial id with more than one run), and the Optuna trial states at the
end (all ``num_samples`` COMPLETE, none RUNNING). Wall time: ~1 minute per case on 2 cores.

``--storage s3``: every case's Tune state and checkpoints go to a bucket of a local S3-compatible server
(moto on 127.0.0.1, started here; ``storage_dir=s3://...``) and its durable state to the case's local state
folder (docs/sweeps.md, "Object-store storage"); a case also fails if anything of Tune's landed in the
state folder. The ``tune_state`` window is the folder's only (it tears Tune's files on the local disk).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WINDOWS = ("tune_state", "mlflow_close", "mlflow_metrics", "adapter_upload")
# which pass of a failpoint kills, drawn in this range: Tune snapshots often (every result), a driver closes
# 3 runs, a trial process evaluates 4 times per trial (and may run two trials)
PASSES = {"tune_state": (1, 10), "mlflow_close": (1, 3), "mlflow_metrics": (1, 5), "adapter_upload": (1, 5)}
NUM_SAMPLES = 3
BUCKET = "crl-fault-matrix"  # --storage s3

from sweeps.tiny import make_tiny_model  # noqa: E402  (after the sys.path line)


def write_sweep_yaml(case_dir: Path, model_dir: Path, storage: str = "folder") -> Path:
    import yaml

    from sweeps.tiny import tiny_sweep

    where = {} if storage == "folder" else {"storage_dir": f"s3://{BUCKET}/{case_dir.name}",
                                             "state_dir": str(case_dir / "sweeps")}
    data = tiny_sweep(model_dir, case_dir, experiment="fault", num_samples=NUM_SAMPLES,
                      train={"overrides": {"steps": 8}}, objective={"grace_rungs": 4}, resources={"num_cpus": 2},
                      **where)
    path = case_dir / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def trial_runs(db: Path) -> list[tuple[str, str, str]]:
    """(run id, status, trial id) of every trial run, read-only (the store may be mid-write)."""
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT r.run_uuid, r.status, t.value FROM runs r JOIN tags t ON t.run_uuid = "
                               "r.run_uuid WHERE t.key = 'crl.trial_id'").fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def eval_history(db: Path, run_id: str) -> list[tuple[int, float]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return sorted(con.execute("SELECT step, value FROM metrics WHERE run_uuid = ? AND key = 'eval/score'",
                                  (run_id,)).fetchall())
    finally:
        con.close()


def run_driver(cfg: Path, case_dir: Path, log_name: str, resume: bool, kill_after: float | None,
               failpoint: str | None, timeout: float, clock_from: Path | None = None,
               seen: dict | None = None) -> tuple[int | None, float, bool]:
    """Run the driver in its own process group; returns (exit code or None if killed, wall, killed).
    ``kill_after`` counts from the moment ``clock_from`` exists (from the start without it); ``seen`` gets
    the second at which it appeared."""
    ray_tmp = tempfile.mkdtemp(prefix="crl-fm-")  # short: Ray's socket paths must fit in 107 bytes
    env = dict(os.environ, RAY_TMPDIR=ray_tmp, HF_HUB_OFFLINE="1")
    env.pop("RAY_ADDRESS", None)
    env.pop("CRL_FAILPOINT", None)
    cmd = [sys.executable, str(ROOT / "sweeps" / "margin_sweep.py"), "--config", str(cfg)] + (["--resume"] if resume else [])
    t0 = time.time()
    with open(case_dir / log_name, "w") as out:
        if failpoint:  # the child learns its own process group (it leads one) before the sweep starts
            env["CRL_FAILPOINT"] = failpoint
            cmd = [sys.executable, "-c", _FAILPOINT_LAUNCHER, *cmd[1:]]
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        killed = False
        clock = None if clock_from is not None else t0
        try:
            while proc.poll() is None:
                elapsed = time.time() - t0
                if clock is None and clock_from.exists():
                    clock = time.time()
                    if seen is not None:
                        seen["at_s"] = clock - t0
                if kill_after is not None and clock is not None and time.time() - clock >= kill_after:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                    break
                if elapsed > timeout:
                    os.killpg(proc.pid, signal.SIGKILL)
                    raise TimeoutError(f"{cmd} ran past {timeout:.0f} s")
                time.sleep(0.05)
            proc.wait(timeout=60)
        finally:
            try:  # whatever the driver left of its local Ray
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            shutil.rmtree(ray_tmp, ignore_errors=True)
    code = None if killed or proc.returncode == -signal.SIGKILL else proc.returncode
    return code, time.time() - t0, killed or proc.returncode == -signal.SIGKILL


# the child sets CRL_FAILPOINT_PGID to its own process group (it leads one: start_new_session), then runs
# the sweep script as __main__
_FAILPOINT_LAUNCHER = (
    "import os, runpy, sys; os.environ['CRL_FAILPOINT_PGID'] = str(os.getpgid(0)); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def study_states(case_dir: Path) -> Counter:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = case_dir / "sweeps" / "fault" / "optuna.db"
    if not db.exists():
        return Counter()
    study = optuna.load_study(study_name="fault", storage=f"sqlite:///{db}")
    return Counter(t.state.name for t in study.trials)


def run_case(kind: str, case_dir: Path, model_dir: Path, rng: random.Random, clean_wall: float,
             storage: str = "folder") -> dict:
    case_dir.mkdir(parents=True)
    cfg = write_sweep_yaml(case_dir, model_dir, storage)
    db = case_dir / "mlflow.db"
    if kind == "random":  # a moment while the sweep exists (from its sweep.json on) and runs
        delay = rng.uniform(0.0, 0.95) * clean_wall
        code, wall, killed = run_driver(cfg, case_dir, "driver.log", False, delay, None, timeout=900,
                                        clock_from=case_dir / "sweeps" / "fault" / "sweep.json")
        phase = {"kill_after_sweep_json_s": round(delay, 2)}
    else:
        nth = rng.randint(*PASSES[kind])
        code, wall, killed = run_driver(cfg, case_dir, "driver.log", False, None, f"{kind}:{nth}", timeout=900)
        phase = {"failpoint": kind, "pass": nth}
    at_kill = trial_runs(db)
    finished = {trial: run_id for run_id, status, trial in at_kill if status == "FINISHED"}
    histories = {run_id: eval_history(db, run_id) for run_id in finished.values()}
    phase.update({"finished_runs": len(finished), "running_runs": sum(s == "RUNNING" for _, s, _ in at_kill),
                  "driver_killed": killed, "driver_exit": code, "first_wall_s": round(wall, 1)})
    row = {"kind": kind, "case": case_dir.name, "phase": phase}
    if not killed:  # the sweep finished before the kill came (a late random draw, or too few passes)
        row["resume_exit"] = None
    else:
        row["resume_exit"], row["resume_wall_s"], _ = run_driver(cfg, case_dir, "resume.log", True, None, None, timeout=900)
        row["resume_wall_s"] = round(row["resume_wall_s"], 1)
        row["restarted"] = row["resume_exit"] == 2 and "nothing to resume" in (case_dir / "resume.log").read_text()
        if row["restarted"]:  # killed before the sweep existed (sweep.json): nothing durable, so run it again
            row["resume_exit"], _, _ = run_driver(cfg, case_dir, "rerun.log", False, None, None, timeout=900)
    runs = trial_runs(db)
    per_trial = Counter(trial for _, _, trial in runs)
    row["duplicate_runs"] = sum(n - 1 for n in per_trial.values() if n > 1)
    by_trial = {trial: (run_id, status) for run_id, status, trial in runs}
    row["finished_rerun"] = sorted(
        trial for trial, run_id in finished.items()
        if by_trial.get(trial, (None, None))[0] != run_id or by_trial[trial][1] != "FINISHED"
        or eval_history(db, run_id) != histories[run_id])
    row["optuna"] = dict(study_states(case_dir))
    row["tune_state_in_state_folder"] = storage != "folder" and (case_dir / "sweeps" / "fault" / "ray").exists()
    row["ok"] = (row["resume_exit"] in (0, None) and row["duplicate_runs"] == 0 and not row["finished_rerun"]
                 and row["optuna"].get("COMPLETE", 0) + row["optuna"].get("PRUNED", 0) == NUM_SAMPLES
                 and "RUNNING" not in row["optuna"] and not row["tune_state_in_state_folder"])
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--random", type=int, default=20, help="kills at random moments")
    p.add_argument("--per-window", type=int, default=5, help="failpoint kills per state write")
    p.add_argument("--windows", default=",".join(WINDOWS), help="which failpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "outputs" / "bench" / "fault_matrix.json"))
    p.add_argument("--keep", action="store_true", help="keep the case folders")
    p.add_argument("--storage", choices=("folder", "s3"), default="folder",
                   help="where Tune's state and checkpoints go: the sweep folder, or a local S3 server's bucket")
    args = p.parse_args(argv)
    windows = [w for w in args.windows.split(",") if w]
    unknown = [w for w in windows if w not in WINDOWS]
    if unknown:
        p.error(f"--windows: unknown {', '.join(unknown)}; known: {', '.join(WINDOWS)}")
    if args.storage == "s3" and "tune_state" in windows and args.per_window:
        p.error("--windows: tune_state tears Tune's files on the local disk; with --storage s3 leave it out")
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="crl-fault-matrix-"))
    t0 = time.time()
    stack = contextlib.ExitStack()
    if args.storage == "s3":
        from sweeps.tiny import local_s3

        stack.enter_context(local_s3(BUCKET))  # the drivers started below inherit its environment
    try:
        model_dir = make_tiny_model(work / "tiny-model")
        clean = work / "clean"
        clean.mkdir()
        seen: dict = {}
        code, clean_total, _ = run_driver(write_sweep_yaml(clean, model_dir, args.storage), clean, "driver.log", False, None, None,
                                          900, clock_from=clean / "sweeps" / "fault" / "sweep.json", seen=seen)
        clean_wall = clean_total - seen.get("at_s", 0.0)  # the part of the run after the sweep exists
        if code != 0:
            print((clean / "driver.log").read_text()[-3000:], file=sys.stderr)
            raise SystemExit("fault_matrix: the unharmed sweep failed; nothing to measure")
        print(f"unharmed sweep: {clean_total:.1f} s wall, {clean_wall:.1f} s of it after sweep.json appeared "
              "(random kills are drawn within that part)", flush=True)
        kinds = ["random"] * args.random + [w for w in windows for _ in range(args.per_window)]
        rows = []
        for i, kind in enumerate(kinds):
            row = run_case(kind, work / f"case-{i:02d}-{kind}", model_dir, rng, clean_wall, args.storage)
            rows.append(row)
            print(f"[{i + 1}/{len(kinds)}] {kind:14s} {json.dumps(row['phase'])} resume_exit={row['resume_exit']} "
                  f"dup={row['duplicate_runs']} rerun={row['finished_rerun']} optuna={row['optuna']} "
                  f"{'OK' if row['ok'] else 'FAILED'}", flush=True)
    finally:
        stack.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    killed = [r for r in rows if r["phase"]["driver_killed"]]
    summary = {
        "cases": len(rows), "killed": len(killed),
        "resumed": sum(r["resume_exit"] == 0 and not r.get("restarted") for r in killed),
        "restarted_nothing_durable": sum(bool(r.get("restarted")) and r["resume_exit"] == 0 for r in killed),
        "finished_not_rerun": sum(not r["finished_rerun"] for r in killed),
        "duplicate_mlflow_runs": sum(r["duplicate_runs"] for r in rows),
        "optuna_complete_cases": sum(r["optuna"].get("COMPLETE", 0) + r["optuna"].get("PRUNED", 0) == NUM_SAMPLES
                                     and "RUNNING" not in r["optuna"] for r in rows),
        "by_kind": {k: {"cases": sum(r["kind"] == k for r in rows), "killed": sum(r["kind"] == k for r in killed),
                        "ok": sum(r["kind"] == k and r["ok"] for r in rows)} for k in dict.fromkeys(kinds)},
        "unharmed_sweep_s": round(clean_wall, 1), "wall_s": round(time.time() - t0, 1),
        "load_avg": os.getloadavg(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "cases": rows}, indent=2))
    print(f"killed {summary['killed']} of {summary['cases']} cases; resumed {summary['resumed']}/{summary['killed']} "
          f"(+{summary['restarted_nothing_durable']} killed before the sweep existed, rerun from scratch); "
          f"finished trials not rerun in {summary['finished_not_rerun']}/{summary['killed']}; duplicate MLflow "
          f"runs {summary['duplicate_mlflow_runs']}; Optuna ended with {NUM_SAMPLES} finished trials and none "
          f"RUNNING in {summary['optuna_complete_cases']}/{summary['cases']}")
    for k, v in summary["by_kind"].items():
        print(f"  {k:14s} {v['killed']}/{v['cases']} killed, {v['ok']} ok")
    print(f"wrote {out} ({summary['wall_s']:.0f} s)")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
