"""Sweep the CRL defense's margins, layers and mining strength (Ray Tune + Optuna, tracked in MLflow).

    python sweeps/margin_sweep.py [--config sweeps/configs/organism.yaml] [--smoke] [--resume]
                                  [--experiment NAME] [--num-samples N] [key=value ...]

    crl sweep [same options]

The recipe declares what is searched (``SEARCH_SPACE``, conditional: mining knobs only where mining is on)
and what is optimised (``OBJECTIVES``); the YAML sets the training preset, the evaluation preset and budget,
which objective, and the resources, and may narrow or extend the space: ``search_space.<key>: null`` drops
a knob, ``search_space.mining: null`` a whole section. ``--smoke`` lays ``sweeps/configs/smoke.yaml`` (a tiny
budget) over the config. The machinery is in ``sweeps/engine/``; docs/sweeps.md shows how to run it on a
Ray cluster.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python sweeps/margin_sweep.py` from a checkout without an install
    sys.path.insert(0, str(ROOT))

from crl_core.config import ConfigError, apply_overrides, load_config, load_yaml  # noqa: E402
from crl_core.redaction import redact_text  # noqa: E402
from sweeps.engine import Objectives, SweepConfig, SweepFailed, run_sweep  # noqa: E402
from sweeps.engine.space import nest_space  # noqa: E402

DEFAULT_CONFIG = ROOT / "sweeps" / "configs" / "organism.yaml"
SMOKE_CONFIG = ROOT / "sweeps" / "configs" / "smoke.yaml"

# Dotted TrainConfig keys (docs/method.md, "Hyperparameters"). Margins: the cosine hinge of the harmful term
# is always on at >= 2, so its range stays below. Layers: a window of hidden states. Mining: on/off, and,
# only in trials where it is on, how often a step uses mined states and how hard the attacker is trained
# after each re-init. Sampling order is this order (a condition names a key declared above it).
MINING_ON = {"mining.enabled": True}
MARGIN = {"type": "uniform", "low": 0.0, "high": 1.9}  # the one place of this bound (tiny.py, configs/ inherit it)
SEARCH_SPACE = {
    "triplet.margin_benign": MARGIN,
    "triplet.margin_harmful": MARGIN,
    "harmful_layers.start": {"type": "int", "low": 1, "high": 3},
    "harmful_layers.width": {"type": "int", "low": 1, "high": 2},
    "optim.lr": {"type": "loguniform", "low": 5e-4, "high": 5e-3},
    "mining.enabled": {"type": "choice", "values": [False, True]},
    "mining.probability": {"type": "uniform", "low": 0.1, "high": 0.9, "when": MINING_ON},
    "mining.init_steps": {"type": "int", "low": 10, "high": 60, "when": MINING_ON},
}


def score(m: dict[str, float]) -> float:
    """Benign accuracy minus the worst-case ASR minus over-refusal (higher is better). Saturates once every
    attack is at 0%: it then ranks defenses by one benign question (docs/sweeps.md, "Objectives")."""
    return m["benign_accuracy"] - m["asr"] - m["over_refusal"]


def robust_score(m: dict[str, float]) -> float:
    """The robustness objective and the default sweep's (higher is better; validated against the strong suite by
    bench/objective_validity.py: docs/results.md; docs/sweeps.md, "Objectives"): ``score`` with the binary
    knowledge ASR, minus the terms that still move when it is 0 -- knowledge retention after the attack
    (nats/token, clipped to [0, 1]), the leak margin (full target minus forcing control, worst rung, >= 0),
    and, where the evaluation measures them, best-of-N sampling leakage and benign over-triggering. The same
    function scores a sweep's evaluation and the strong suite of its confirmation stage."""
    return (m["benign_accuracy"] - m["over_refusal"] - m.get("knowledge_asr", m["asr"])
            - min(1.0, max(0.0, m.get("knowledge_retention", 0.0))) - max(0.0, m.get("leak_margin", 0.0))
            - m.get("sampling_leakage", 0.0) - m.get("over_triggering", 0.0))


# objective.kind single: `objective.metric` (robust_score in the default sweep) with ASHA; multi: this
# Pareto list, no scheduler. `plots`: the axes of an objective's Pareto plot (default: the multi list).
OBJECTIVES = Objectives(derived={"score": score, "robust_score": robust_score},
                        multi=(("asr", "min"), ("benign_accuracy", "max"), ("over_refusal", "min")),
                        # robust_score's plot: the term that still moves at 0% ASR against capability
                        plots={"robust_score": (("knowledge_retention", "min"), ("benign_accuracy", "max"),
                                                ("robust_score", "max"))})


def parse_args(argv=None, prog: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="sweep YAML")
    p.add_argument("--smoke", action="store_true", help=f"lay {SMOKE_CONFIG.name} (a tiny budget) over the config")
    p.add_argument("--resume", action="store_true", help="continue the sweep stored under this experiment")
    p.add_argument("--experiment", default=None, help="experiment name (overrides the config)")
    p.add_argument("--num-samples", type=int, default=None, help="number of trials (overrides the config)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, dotted for sections")
    return p.parse_args(argv)


def load_sweep_config(args: argparse.Namespace) -> SweepConfig:
    base: dict = {"search_space": nest_space(SEARCH_SPACE)}
    for path in [args.config] + ([SMOKE_CONFIG] if args.smoke else []):
        layer = load_yaml(path)
        if not layer:
            raise ConfigError(f"{path}: the file is empty (no sweep settings); start from {DEFAULT_CONFIG}")
        if isinstance(layer.get("search_space"), dict):  # flat (dotted) or nested keys merge alike
            layer["search_space"] = nest_space(layer["search_space"])
        base = apply_overrides(base, layer)
    overrides = list(args.overrides)
    if args.experiment:
        overrides.append(f"experiment={args.experiment}")
    if args.num_samples is not None:
        overrides.append(f"num_samples={args.num_samples}")
    return load_config(SweepConfig, None, overrides, base=base)


def pick_experiment(cfg: SweepConfig, resume: bool) -> SweepConfig:
    """Without --experiment, running the command again starts a new sweep (``NAME-2``, ``NAME-3``, ...)
    instead of failing, and ``--resume`` continues the newest of them."""
    root = cfg.state_root
    existing, n = [], 1
    while (root / (name := cfg.experiment if n == 1 else f"{cfg.experiment}-{n}") / "sweep.json").is_file():
        existing.append(name)
        n += 1
    chosen = (existing[-1] if existing else cfg.experiment) if resume else name
    if chosen != cfg.experiment:
        print(f"{'resuming' if resume else 'starting'} sweep '{chosen}' (pass --experiment to choose a name)")
    return cfg.replace(experiment=chosen)


def main(argv=None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    try:
        cfg = load_sweep_config(args)
        if not args.experiment:
            cfg = pick_experiment(cfg, args.resume)
        run_sweep(cfg, OBJECTIVES, resume=args.resume)
    except (ConfigError, ValueError) as exc:  # ModelLoadError is a ValueError too
        print(f"margin_sweep: error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except SweepFailed as exc:  # ran, but no trial produced the objective: the parent run is FAILED
        print(f"margin_sweep: sweep failed: {redact_text(str(exc))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
