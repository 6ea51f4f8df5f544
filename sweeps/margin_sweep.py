"""Sweep the CRL defense's margins, layers and mining strength (Ray Tune + Optuna, MLflow).

    python sweeps/margin_sweep.py [--config sweeps/configs/organism.yaml] [--smoke] [--resume]
                                  [--experiment NAME] [--num-samples N] [key=value ...]

Status: the sweep engine (Ray Tune + Optuna + MLflow) lands with the sweep-platform issue. Until
then this recipe validates its config and the model and data it would sweep over, runs the
baseline evaluation that every trial will be compared against when the evaluation harness is
available, and says plainly that no sweep ran.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python sweeps/margin_sweep.py` from a checkout without an install
    sys.path.insert(0, str(ROOT))

from crl_core.config import ConfigBase, ConfigError, config_field, load_config  # noqa: E402
from crl_core.models import ModelSpec  # noqa: E402

DEFAULT_CONFIG = ROOT / "sweeps" / "configs" / "organism.yaml"


@dataclass
class SweepConfig(ConfigBase):
    experiment: str = config_field("crl-organism", help="MLflow experiment name")
    num_samples: int = config_field(8, min=1, help="number of trials")
    model: ModelSpec = field(default_factory=ModelSpec)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="sweep YAML")
    p.add_argument("--smoke", action="store_true", help="tiny budget, for a quick end-to-end check")
    p.add_argument("--resume", action="store_true", help="continue the sweep stored under this experiment")
    p.add_argument("--experiment", default=None, help="MLflow experiment name (overrides the config)")
    p.add_argument("--num-samples", type=int, default=None, help="number of trials (overrides the config)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, dotted for sections")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.experiment:
        overrides.append(f"experiment={args.experiment}")
    if args.num_samples is not None:
        overrides.append(f"num_samples={args.num_samples}")
    try:
        cfg = load_config(SweepConfig, args.config, overrides)
        from crl_core.data import load_prompt_splits, split_hashes
        from crl_core.models import load_model_and_tokenizer

        model, tok = load_model_and_tokenizer(cfg.model)
        harmful = load_prompt_splits("harmful")
    except (ConfigError, ValueError, RuntimeError) as exc:
        print(f"margin_sweep: error: {exc}", file=sys.stderr)
        return 2
    n_layers = model.config.num_hidden_layers
    print(f"config ok: experiment={cfg.experiment} num_samples={cfg.num_samples} model={cfg.model.name} "
          f"({type(model).__name__}, {n_layers} layers, hidden {model.config.hidden_size})")
    print("harmful prompts: " + ", ".join(f"{s}={len(harmful[s])}" for s in harmful)
          + f"; test split sha256 {split_hashes(harmful)['test'][:12]}")
    print("NOTE: the sweep engine is not implemented yet (sweep-platform issue); no trials ran.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
