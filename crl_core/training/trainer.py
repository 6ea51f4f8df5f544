"""The defense training loop: one process, or one DDP rank (the Ray Train path sets up the group).

Per optimizer step (and per micro-batch with gradient accumulation):

1. draw benign, harmful and retain rows; pad them into one right-padded batch;
2. reference pass with the LoRA adapter disabled (``no_grad``): the frozen model's hidden states and
   logits -- the same weights, never a second copy of the model;
3. (CRL with mining) train the hard-negative attacker; maybe attach it to the harmful rows;
4. current pass with the adapter; the method in ``crl_core.methods`` turns both passes into a loss;
5. backward, clip, AdamW step, schedule step.

A non-finite loss or gradient stops the run with :class:`TrainingDivergedError`; the last checkpoint
written before it is left untouched. Checkpoints hold the adapter (safetensors), optimizer, schedule,
step, samplers, mining state, running centroid and RNG states; a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from crl_core.config import ConfigError, config_hash, save_resolved_config
from crl_core.models import load_model_and_tokenizer
from crl_core.models.adapters import save_adapter
from crl_core.registry import METHODS
from crl_core.representations import position_mask, stack_hidden
from crl_core.training.config import TrainConfig
from crl_core.training.data import (
    BatchSampler,
    DefenseData,
    build_defense_data,
    check_data_available,
    make_batch,
)
from crl_core.training.mining import HardNegativeMiner
from crl_core.training.reference_cache import (
    FILL,
    CacheKey,
    ReferenceCache,
    row_fingerprint,
    shared_cache,
    weights_fingerprint,
)

__all__ = ["TrainingDivergedError", "DefenseTrainer", "StepInputs", "train"]


class TrainingDivergedError(RuntimeError):
    """The loss or a gradient became NaN/inf."""


@dataclass
class StepInputs:
    """What a method's loss sees for one micro-batch."""

    cfg: TrainConfig
    step: int
    cur_hidden: tuple[torch.Tensor, ...]  # every hidden state of the current pass, [N, T, d]
    ref_hidden: tuple[torch.Tensor, ...]  # same, adapter disabled, no grad
    cur_logits: torch.Tensor | None       # [N_retain, T, V]: logits of the retain rows only
    ref_logits: torch.Tensor | None       # same rows, adapter disabled
    batch: dict[str, torch.Tensor]        # input_ids, attention_mask, response_mask, position_ids
    rows: dict[str, slice]                # benign / harmful / retain row ranges
    harmful_layers: list[int]
    benign_layers: list[int]
    state: dict[str, Any]                 # method state that persists across steps (e.g. running centroid)

    def mask(self, part: str, positions: str | None = None) -> torch.Tensor:
        sl = self.rows[part]
        return position_mask(self.batch["attention_mask"][sl], self.batch["response_mask"][sl],
                              positions or self.cfg.positions)

    def hidden(self, part: str, layers: list[int], reference: bool = False) -> torch.Tensor:
        src = self.ref_hidden if reference else self.cur_hidden
        return stack_hidden(src, layers)[:, self.rows[part]]


def _pass_inputs(batch: dict[str, torch.Tensor], rows=slice(None)) -> dict[str, Any]:
    """A decoder pass over ``rows`` of ``batch`` (a slice or index list), every hidden state returned."""
    return {"input_ids": batch["input_ids"][rows], "attention_mask": batch["attention_mask"][rows],
            "position_ids": batch["position_ids"][rows], "output_hidden_states": True}


def resolve_device(name: str, world_size: int = 1) -> torch.device:
    """``auto``: CUDA when available. A DDP rank on a node with several visible GPUs takes the one of its
    ``LOCAL_RANK`` (set by torchrun and by Ray Train), so ranks never share GPU 0."""
    import os

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device: '{name}' requested but CUDA is not available here")
    if name == "cuda" and world_size > 1 and torch.cuda.device_count() > 1 and "LOCAL_RANK" in os.environ:
        return torch.device(f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}")
    return torch.device(name)


def _set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


CHECKPOINT_MANIFEST = "checkpoint.json"


def write_checkpoint_manifest(folder: Path, step: int) -> None:
    """Write, last, ``checkpoint.json``: the step and every file's size. A copy of the folder (Ray Tune
    persists checkpoints file by file, in no set order) is complete only if that list checks out."""
    files = {str(f.relative_to(folder)): f.stat().st_size for f in sorted(folder.rglob("*"))
             if f.is_file() and f.name != CHECKPOINT_MANIFEST}
    (folder / CHECKPOINT_MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1))


def checkpoint_manifest_step(manifest: dict, size_of: Callable[[str], int | None]) -> int | None:
    """The step a checkpoint manifest records if every file it lists has its recorded size (``size_of``: a
    file name relative to the checkpoint -> its size, or None when missing) and the trainer state is among
    them; else None. Shared by local folders and object stores (sweeps/engine/storage.py)."""
    try:
        files = manifest["files"]
        ok = all(size_of(name) == size for name, size in files.items())
        return int(manifest["step"]) if ok and "trainer_state.pt" in files else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def complete_checkpoint_step(folder: str | Path) -> int | None:
    """The step of the checkpoint in ``folder`` if it is complete (manifest present, every file it lists
    there at its recorded size), else None. Cheap: reads no tensor."""
    folder = Path(folder)

    def size_of(name: str) -> int | None:
        path = folder / name
        return path.stat().st_size if path.is_file() else None

    try:
        manifest = json.loads((folder / CHECKPOINT_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return checkpoint_manifest_step(manifest, size_of)


class DefenseTrainer:
    def __init__(self, cfg: TrainConfig, model=None, tokenizer=None, log: Callable[[str], None] = print,
                 rank: int = 0, world_size: int = 1, data: DefenseData | None = None,
                 reference_cache: ReferenceCache | None = None) -> None:
        """``data``: prebuilt training rows (default: ``build_defense_data`` from ``cfg.data``, which needs the
        ``datasets`` package; bench/gpu_check.py builds its own without it). ``reference_cache``: where the
        frozen states are cached (default: the process's own, bounded by ``cfg.reference_cache_mb``)."""
        self.cfg, self.log, self.rank, self.world_size = cfg, log, rank, world_size
        import crl_core.methods  # noqa: F401  (registers the methods)

        self.method = METHODS.get(cfg.method)
        torch.set_num_threads(cfg.num_threads)
        _set_seed(cfg.seed)
        if data is None:
            check_data_available(cfg.data)  # hub data on an offline machine: refused before any model loads
        if model is None:
            model, tokenizer = load_model_and_tokenizer(cfg.model)
        self.tokenizer = tokenizer
        self.device = resolve_device(cfg.device, world_size)
        n_blocks = model.config.num_hidden_layers
        layout = cfg.layout(n_blocks)  # every layer index checked against the depth (TrainConfig.layout)
        self.harmful_layers, self.benign_layers, self.lora_blocks = (layout.harmful_layers, layout.benign_layers,
                                                                     layout.lora_blocks)
        # all validation done: now the costlier setup
        self.data: DefenseData = data if data is not None else build_defense_data(cfg.data, tokenizer, cfg.model.name)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.ref_cache: ReferenceCache | None = None
        if cfg.reference_cache_mb and getattr(self.method, "early_exit", False) and self.method.needs_reference:
            self.ref_cache = reference_cache if reference_cache is not None else shared_cache(cfg.reference_cache_mb)
            self._retain_logits = getattr(self.method, "retain_reads", "logits") == "logits"
            # the hidden-state indices read of the benign and harmful rows, and of the retain rows
            self._front_layers = sorted(set(self.benign_layers) | set(self.harmful_layers))
            self._retain_layers = [n_blocks] if self._retain_logits else sorted(set(self.harmful_layers))
            self._base_key = weights_fingerprint(model)  # the frozen weights, before LoRA is attached
            self._ref_dtype = str(next(model.parameters()).dtype)
            self._row_keys = {k: [row_fingerprint(e.input_ids) for e in getattr(self.data, k)]
                              for k in ("benign", "harmful", "retain")}
        self._batch_keys: list[str] = []
        self.model = self._wrap_lora(model.to(self.device))
        self.ddp_model = self._maybe_ddp(self.model)
        self.exit_blocks = self._exit_blocks(n_blocks)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda)
        s = cfg.seed * 1000 + rank
        self.samplers = {"benign": BatchSampler(len(self.data.benign), cfg.data.batch_benign, s + 1),
                         "harmful": BatchSampler(len(self.data.harmful), cfg.data.batch_harmful, s + 2),
                         "retain": BatchSampler(len(self.data.retain), cfg.data.batch_retain, s + 3)}
        self.miner = None
        if cfg.mining.enabled:
            self.miner = HardNegativeMiner(cfg.mining, model.config.hidden_size, self.data.harmful,
                                           self.pad_id, seed=s + 4, batch_size=min(8, cfg.data.batch_harmful),
                                           device=self.device)
        self.state: dict[str, Any] = {}
        self.step = 0
        self.history: list[dict[str, float]] = []

    # ---- setup helpers
    def _wrap_lora(self, model):
        from peft import LoraConfig, get_peft_model

        lc = self.cfg.lora
        pcfg = LoraConfig(r=lc.rank, lora_alpha=lc.alpha, lora_dropout=lc.dropout, target_modules=list(lc.target_modules),
                          layers_to_transform=list(self.lora_blocks), bias="none", task_type="CAUSAL_LM")
        if self.cfg.gradient_checkpointing:
            if not getattr(model, "supports_gradient_checkpointing", False):
                raise ConfigError(f"gradient_checkpointing: {type(model).__name__} does not support it")
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        try:
            peft_model = get_peft_model(model, pcfg)
        except ValueError as exc:
            raise ConfigError(f"lora: {exc}") from None
        if lc.init_b_std > 0:
            gen = torch.Generator().manual_seed(self.cfg.seed + 17)
            with torch.no_grad():
                for name, p in peft_model.named_parameters():
                    if "lora_B" in name:
                        p.copy_(torch.randn(p.shape, generator=gen) * lc.init_b_std)
        peft_model.train()
        return peft_model

    def _maybe_ddp(self, model):
        if self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)
        return model

    def _lr_lambda(self, step: int) -> float:
        o = self.cfg.optim
        if o.warmup_steps and step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "constant":
            return 1.0
        t = (step - o.warmup_steps) / max(1, self.cfg.steps - o.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t))) if o.schedule == "cosine" else max(0.0, 1 - t)

    # ---- one step
    def next_batch(self) -> tuple[dict[str, torch.Tensor], dict[str, slice]]:
        """The next micro-batch (benign, harmful, retain rows, right-padded, on the device) and the row range
        of each part: what a step trains on (bench/step_cost.py trains its SFT baseline on the same ones)."""
        return self._micro_batch()

    def _micro_batch(self):
        drawn = {k: self.samplers[k].next() for k in ("benign", "harmful", "retain")}
        parts = {k: [getattr(self.data, k)[i] for i in idx] for k, idx in drawn.items()}
        if self.ref_cache is not None:  # the rows' cache keys, in batch order
            self._batch_keys = [self._row_keys[k][i] for k in ("benign", "harmful", "retain") for i in drawn[k]]
        rows, start = {}, 0
        for k in ("benign", "harmful", "retain"):
            rows[k] = slice(start, start + len(parts[k]))
            start += len(parts[k])
        batch = make_batch(parts["benign"] + parts["harmful"] + parts["retain"], self.pad_id)
        return {k: v.to(self.device) for k, v in batch.items()}, rows

    def _exit_blocks(self, depth: int) -> int | None:
        """How many decoder blocks the benign and harmful rows' passes run (None: all of them; docs/method.md,
        "Early exit"). The deepest hidden state the method reads there is index ``M``; a pass cut after
        ``M + 1`` blocks has states 0..M exactly as the whole pass (its last state is the final norm's)."""
        if not (self.cfg.early_exit and getattr(self.method, "early_exit", False)):
            return None
        deepest = max(self.benign_layers + self.harmful_layers)
        if deepest + 1 >= depth:
            return None
        decoder = self.model.get_base_model().get_decoder()
        layers = getattr(decoder, "layers", None)
        if not isinstance(layers, torch.nn.ModuleList) or len(layers) != depth:
            self.log(f"[train] early exit: {type(decoder).__name__} has no layer list of its {depth} blocks to cut; "
                     "every row runs the whole model")
            return None
        # the first pass of a decoder may set up per-block machinery (transformers installs its hidden-state
        # capturing hooks on the blocks present at the first forward): let it see every block before any cut
        with torch.no_grad(), self.model.disable_adapter():
            whole = decoder(input_ids=torch.zeros(1, 1, dtype=torch.long, device=self.device),
                            output_hidden_states=True).hidden_states
        if len(whole) != depth + 1:
            self.log(f"[train] early exit: {type(decoder).__name__} returns {len(whole)} hidden states for "
                     f"{depth} blocks; every row runs the whole model")
            return None
        return deepest + 1

    @contextlib.contextmanager
    def _cut(self, decoder, blocks: int | None):
        """The decoder runs only its first ``blocks`` blocks inside the block (the same modules)."""
        if blocks is None:
            yield
            return
        whole = decoder.layers
        decoder.layers = torch.nn.ModuleList(list(whole)[:blocks])
        try:
            yield
        finally:
            decoder.layers = whole

    def _forward(self, batch, rows, reference: bool, perturb: torch.Tensor | None = None):
        """Hidden states of every row and logits of the retain rows only (the KL/CE terms need no more).

        Outside DDP the decoder runs on its own and the LM head only on the retain rows, which saves
        most of the head's cost (a large share of a small model's forward). With early exit
        (:meth:`_exit_blocks`) the benign and harmful rows run only the blocks the method reads and the
        retain rows the whole model; a hidden state past the cut is then None for every row. Under DDP the
        current pass goes whole through the DDP wrapper (one forward per backward) so gradients are
        synchronised. ``perturb``: the rows the hard-negative miner's module perturbs.
        """
        def attached(sl=slice(None)):
            if perturb is None or not bool(perturb[sl].any()):
                return contextlib.nullcontext()
            return self.miner.attached(self.model, perturb[sl])

        if not reference and self.ddp_model is not self.model:
            with attached():
                out = self.ddp_model(**_pass_inputs(batch))
            return out.hidden_states, out.logits[rows["retain"]]
        base = self.model.get_base_model()
        decoder, head = base.get_decoder(), base.get_output_embeddings()
        if self.exit_blocks is None:
            with attached():
                out = decoder(**_pass_inputs(batch))
            return out.hidden_states, head(out.last_hidden_state[rows["retain"]])
        front, retain = slice(0, rows["retain"].start), rows["retain"]  # benign + harmful rows, then retain
        with attached(front), self._cut(decoder, self.exit_blocks):
            cut = decoder(**_pass_inputs(batch, front))
        with attached(retain):
            whole = decoder(**_pass_inputs(batch, retain))
        if len(cut.hidden_states) != self.exit_blocks + 1 or len(whole.hidden_states) != len(decoder.layers) + 1:
            raise RuntimeError(f"early exit: {len(cut.hidden_states)} and {len(whole.hidden_states)} hidden states from "
                               f"{self.exit_blocks} and {len(decoder.layers)} blocks; set early_exit: false")
        hidden = tuple(torch.cat([cut.hidden_states[i], whole.hidden_states[i]]) if i < self.exit_blocks else None
                       for i in range(len(whole.hidden_states)))
        return hidden, head(whole.last_hidden_state)

    def _cached_reference(self, batch, rows):
        """The frozen pass's states from the cache (docs/method.md, "Reference-state cache"): rows with an
        entry missing run the frozen pass (cut as :meth:`_forward` cuts it) and fill it; then every row's
        states are laid into a right-padded batch. Returns what :meth:`_forward` returns for the frozen pass:
        hidden states (None at the indices nobody reads) and the retain rows' logits (None for a method
        that reads their layers instead)."""
        depth = self.model.config.num_hidden_layers
        front_layers, retain_layers, logits = self._front_layers, self._retain_layers, self._retain_logits
        n = batch["input_ids"].shape[0]
        wanted = [front_layers if i < rows["retain"].start else retain_layers for i in range(n)]
        keys = [[CacheKey(self._base_key, self._batch_keys[i], layer, self._ref_dtype) for layer in wanted[i]]
                for i in range(n)]
        missing = self.ref_cache.lookup([k for row in keys for k in row])
        todo = [i for i in range(n) if any(k in missing for k in keys[i])]
        if todo:
            decoder = self.model.get_base_model().get_decoder()
            if self.exit_blocks is None:  # nothing to cut: one frozen pass over every row that misses
                groups = ((todo, None),)
            else:
                groups = (([i for i in todo if i < rows["retain"].start], self.exit_blocks),
                          ([i for i in todo if i >= rows["retain"].start], None))
            for group, blocks in groups:
                if not group:
                    continue
                with torch.no_grad(), self.model.disable_adapter(), self._cut(decoder, blocks):
                    hidden = decoder(**_pass_inputs(batch, group)).hidden_states
                lengths = batch["attention_mask"][group].sum(-1).tolist()
                for j, i in enumerate(group):
                    for key in keys[i]:
                        self.ref_cache.put(key, hidden[key.layer][j, : lengths[j]].detach().clone())
        width = batch["input_ids"].shape[1]
        stored = {i: [self.ref_cache.get(k) for k in keys[i]] for i in range(n)}
        sample = stored[0][0]
        out: list[torch.Tensor | None] = [None] * (depth + 1)
        for layer in sorted(set(front_layers) | set(retain_layers)):
            out[layer] = torch.full((n, width, sample.shape[-1]), FILL, dtype=sample.dtype, device=sample.device)
        for i in range(n):
            for layer, states in zip(wanted[i], stored[i]):
                out[layer][i, : states.shape[0]] = states
        ref_logits = None
        if logits:
            head = self.model.get_base_model().get_output_embeddings()
            with torch.no_grad(), self.model.disable_adapter():
                ref_logits = head(out[depth][rows["retain"]])
        return tuple(out), ref_logits

    def _micro_step(self, metrics: dict[str, float]) -> float:
        """Forward passes, loss and backward of one micro-batch; returns its share of the step loss."""
        cfg = self.cfg
        batch, rows = self._micro_batch()
        ref_hidden, ref_logits = (), None
        if self.ref_cache is not None:
            ref_hidden, ref_logits = self._cached_reference(batch, rows)
        elif getattr(self.method, "needs_reference", True):
            with torch.no_grad(), self.model.disable_adapter():
                ref_hidden, ref_logits = self._forward(batch, rows, reference=True)
        use_mined = self.miner is not None and self.miner.use_now()
        row_mask = None
        if use_mined:
            row_mask = torch.zeros(batch["input_ids"].shape[0], dtype=torch.bool)
            row_mask[rows["harmful"]] = True
        cur_hidden, cur_logits = self._forward(batch, rows, reference=False, perturb=row_mask)
        inp = StepInputs(cfg, self.step, cur_hidden, ref_hidden, cur_logits, ref_logits, batch, rows,
                         self.harmful_layers, self.benign_layers, self.state)
        loss, parts = self.method(inp)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"non-finite loss at step {self.step}: {float(loss.detach())} "
                                        f"(parts: {parts}); the last checkpoint is kept")
        (loss / cfg.optim.grad_accum).backward()
        contribution = float(loss.detach()) / cfg.optim.grad_accum
        for k, v in parts.items():
            metrics[k] = metrics.get(k, 0.0) + float(v) / cfg.optim.grad_accum
        metrics["mined"] = metrics.get("mined", 0.0) + float(use_mined) / cfg.optim.grad_accum
        return contribution

    def train_step(self) -> dict[str, float]:
        cfg = self.cfg
        metrics: dict[str, float] = {}
        if self.miner is not None:
            metrics.update(self.miner.before_step(self.model, self.step))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for micro in range(cfg.optim.grad_accum):
            last = micro == cfg.optim.grad_accum - 1
            sync = contextlib.nullcontext() if last or self.ddp_model is self.model else self.ddp_model.no_sync()
            with sync:
                total += self._micro_step(metrics)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optim.grad_clip > 0:
            gnorm = torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
        else:
            gnorm = torch.norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
        if not torch.isfinite(gnorm):
            raise TrainingDivergedError(f"non-finite gradient norm at step {self.step}; the last checkpoint is kept")
        self.optimizer.step()
        self.scheduler.step()
        metrics.update({"loss": total, "grad_norm": float(gnorm), "lr": self.scheduler.get_last_lr()[0]})
        self.step += 1
        return metrics

    # ---- checkpoints
    def save_checkpoint(self, folder: str | Path) -> Path:
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)

        save_adapter(self.model, tmp / "adapter", self.cfg.model.name)
        st = random.getstate()
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                 "samplers": {k: v.state_dict() for k, v in self.samplers.items()},
                 "miner": None if self.miner is None else self.miner.state_dict(),
                 "method_state": {k: (v.state_dict() if hasattr(v, "state_dict") else v) for k, v in self.state.items()},
                 "torch_rng": torch.get_rng_state(), "py_rng": [st[0], list(st[1]), st[2]],
                 "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                 "config_hash": config_hash(self.cfg), "history": self.history}
        torch.save(state, tmp / "trainer_state.pt")
        write_checkpoint_manifest(tmp, self.step)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
        return folder

    def load_checkpoint(self, folder: str | Path) -> None:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = Path(folder)
        state_path = folder / "trainer_state.pt"
        if not state_path.is_file():
            raise FileNotFoundError(f"no checkpoint in {folder} (missing trainer_state.pt)")
        state = torch.load(state_path, weights_only=False)
        if state["config_hash"] != config_hash(self.cfg):
            raise ConfigError(f"checkpoint {folder} was written by a run with another config "
                              f"(hash {state['config_hash']} != {config_hash(self.cfg)})")
        set_peft_model_state_dict(self.model, load_file(str(folder / "adapter" / "adapter_model.safetensors")))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for k, v in self.samplers.items():
            v.load_state_dict(state["samplers"][k])
        if self.miner is not None and state["miner"] is not None:
            self.miner.load_state_dict(state["miner"])
        for k, v in state["method_state"].items():
            if k in self.state and hasattr(self.state[k], "load_state_dict"):
                self.state[k].load_state_dict(v)
            else:
                self.state[k] = v
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        st = state["py_rng"]
        random.setstate((st[0], tuple(st[1]), st[2]))
        self.step = state["step"]
        self.history = list(state["history"])

    # ---- the run
    def fit(self, resume_from: str | Path | None = None,
            on_step: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        cfg = self.cfg
        out = Path(cfg.output_dir)
        if resume_from is not None:
            self.load_checkpoint(resume_from)
            self.log(f"resumed from {resume_from} at step {self.step}")
        t0 = time.time()
        while self.step < cfg.steps:
            m = self.train_step()
            m["step"] = self.step
            self.history.append(m)
            if on_step is not None:
                on_step(self.step, m)
            if self.rank == 0 and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                shown = ", ".join(f"{k}={v:.4g}" for k, v in m.items() if k not in ("step", "lr"))
                self.log(f"step {self.step}/{cfg.steps} {shown} ({time.time() - t0:.1f} s)")
            if self.rank == 0 and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                self.save_checkpoint(out / "checkpoints" / "last")
        return self.history


def train(cfg: TrainConfig, log: Callable[[str], None] = print, resume: bool = False) -> dict[str, Any]:
    """``crl train``: fit, save the adapter + resolved config + training log, then evaluate it."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_resolved_config(cfg, out)
    trainer = DefenseTrainer(cfg, log=log)
    ckpt = out / "checkpoints" / "last"
    t0 = time.time()
    trainer.fit(resume_from=ckpt if resume and (ckpt / "trainer_state.pt").is_file() else None)
    train_s = time.time() - t0

    save_adapter(trainer.model, out / "adapter", cfg.model.name,
                 extra={"method": cfg.method, "config_hash": config_hash(cfg), "steps": trainer.step})
    with open(out / "train_log.jsonl", "w") as fh:
        for row in trainer.history:
            fh.write(json.dumps(row) + "\n")
    summary: dict[str, Any] = {"train_seconds": round(train_s, 1), "steps": trainer.step,
                               "data": trainer.data.description}
    if cfg.eval.enabled:
        # import time: the evaluation package (attacks, judges, the organism's tokenizer code) loads only in a
        # run that evaluates; importing crl_core.training (crl --help, a sweep driver) stays light
        from crl_core.evaluation import format_markdown, run_evaluation

        ecfg = cfg.evaluation_config()
        trainer.model.eval()
        report = run_evaluation(ecfg, model=trainer.model, tokenizer=trainer.tokenizer, log=log)
        report["spec"]["adapter"] = {"path": str((out / "adapter").resolve()), "method": cfg.method,
                                     "train_config_hash": config_hash(cfg)}
        report["training"] = dict(summary)  # a copy: summary gets the report below
        (out / "report.json").write_text(json.dumps(report, indent=2))
        log(format_markdown(report))
        summary["report"] = report
    (out / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "report"}, indent=2))
    return summary
