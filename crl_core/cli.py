"""The ``crl`` command line: ``crl model prepare smollm2``, ``crl data info``, ``crl organism build``, ..."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from crl_core.config import ConfigError

__all__ = ["main", "build_parser"]


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    if args.name not in ("smollm2", "smollm2-135m-instruct"):
        raise ConfigError(f"crl model prepare: unknown model '{args.name}'; preparable: smollm2 "
                          "(the organism is committed; other models load from a folder or the hub)")
    from crl_core.models.smollm2 import prepare_smollm2

    path = prepare_smollm2(force=args.force)
    print(path)
    return 0


def _cmd_model_info(args: argparse.Namespace) -> int:
    from crl_core.models import ModelSpec, load_model_and_tokenizer

    t0 = time.time()
    model, tok = load_model_and_tokenizer(ModelSpec(name=args.name, trust_remote_code=args.trust_remote_code))
    cfg = model.config
    info = {"name": args.name, "class": type(model).__name__, "layers": cfg.num_hidden_layers,
            "hidden_size": cfg.hidden_size, "vocab_size": len(tok),
            "parameters": sum(p.numel() for p in model.parameters()), "dtype": str(model.dtype),
            "hidden_state_indices": f"0..{cfg.num_hidden_layers} (0 = embeddings, {cfg.num_hidden_layers} = after final norm)",
            "load_seconds": round(time.time() - t0, 2)}
    print(json.dumps(info, indent=2))
    return 0


def _cmd_data_info(args: argparse.Namespace) -> int:
    from crl_core.data import SplitConfig, describe_sets

    rows = describe_sets(SplitConfig(seed=args.seed))
    print(f"{'set':<16}{'train':>7}{'val':>6}{'test':>6}  {'sha256 train/val/test (12)':<42} description")
    for r in rows:
        hashes = f"{r['sha_train']}/{r['sha_val']}/{r['sha_test']}"
        print(f"{r['name']:<16}{r['n_train']:>7}{r['n_val']:>6}{r['n_test']:>6}  {hashes:<42} {r['description']}")
    print("\nhub sets (connected machines only): " + ", ".join("hub:" + k for k in __import__(
        "crl_core.data", fromlist=["HUB_SETS"]).HUB_SETS))
    print("licenses and attribution: crl_core/data/files/ATTRIBUTION.md")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crl", description="crl-sweep: contrastive representation learning "
                                "defenses for LLMs, their evaluation, and hyperparameter sweeps.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    model = sub.add_parser("model", help="prepare or inspect models").add_subparsers(dest="action", metavar="ACTION")
    prep = model.add_parser("prepare", help="build a local cache of a packaged model (smollm2)")
    prep.add_argument("name", help="smollm2")
    prep.add_argument("--force", action="store_true", help="rebuild even if cached")
    prep.set_defaults(func=_cmd_model_prepare)
    info = model.add_parser("info", help="load a model and print its shape")
    info.add_argument("name", help="organism, smollm2, a local folder, or a hub id")
    info.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub repo")
    info.set_defaults(func=_cmd_model_info)

    data = sub.add_parser("data", help="prompt sets").add_subparsers(dest="action", metavar="ACTION")
    dinfo = data.add_parser("info", help="list the prompt sets, split sizes and content hashes")
    dinfo.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    dinfo.set_defaults(func=_cmd_data_info)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        # a group without an action: print that group's help
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
        return 2
    try:
        return func(args)
    except (ConfigError, ValueError, RuntimeError, FileNotFoundError) as exc:
        kind = type(exc).__name__
        print(f"crl: error: {exc}" if kind in ("ConfigError", "DataError", "ModelLoadError")
              else f"crl: error ({kind}): {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
