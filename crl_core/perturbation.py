"""Learned perturbations of the residual stream at one decoder block: the latent attack's machinery,
reused by adversarial hard-negative mining.

Indexing: ``block`` is a 0-based decoder-block index; the perturbation edits that block's output, i.e.
``hidden_states[block + 1]`` in Hugging Face's ``output_hidden_states`` convention (index 0 is the
embeddings, the last index is after the final norm).

Kinds:

- ``additive``: ``h <- h + delta`` with one ``delta`` per batch row (``rows``) or shared (``rows=1``);
- ``affine``: ``h <- h + (W h + b)``, shared by all rows (the published mining module). ``W`` and ``b``
  start at zero here, so the module starts as the identity map; the published code starts ``W`` at the
  identity, which doubles the hidden state on the first forward (docs/method.md §4) -- set
  ``init="identity"`` to reproduce that.

An optional ``max_norm`` bounds each row's perturbation (L2 over the hidden size, per position) after
every optimiser step (:meth:`LayerPerturbation.project_`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from torch import nn

__all__ = ["LayerPerturbation", "decoder_layers", "attach_perturbation", "frozen_parameters"]


class LayerPerturbation(nn.Module):
    def __init__(self, hidden_size: int, kind: Literal["additive", "affine"] = "additive", rows: int = 1,
                 init: Literal["zero", "identity", "random"] = "zero", init_scale: float = 1e-3,
                 max_norm: float | None = None, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if kind not in ("additive", "affine"):
            raise ValueError(f"perturbation kind must be 'additive' or 'affine', got {kind!r}")
        if rows < 1:
            raise ValueError("rows must be >= 1")
        self.kind, self.rows, self.max_norm = kind, rows, max_norm
        # optional [B, T] bool mask of the positions to edit in a full-length forward; a forward over
        # fewer positions (cached generation, one new token at a time) is edited everywhere
        self.position_mask: torch.Tensor | None = None
        self.edit_new_tokens = True
        if kind == "additive":
            delta = torch.zeros(rows, 1, hidden_size)
            if init == "random":
                delta = torch.randn(rows, 1, hidden_size, generator=generator) * init_scale
            self.delta = nn.Parameter(delta)
        else:
            weight = torch.eye(hidden_size) if init == "identity" else torch.zeros(hidden_size, hidden_size)
            if init == "random":
                weight = torch.randn(hidden_size, hidden_size, generator=generator) * init_scale
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.kind == "additive":
            delta = self.delta.to(hidden.dtype)
            if self.rows != 1 and delta.shape[0] != hidden.shape[0]:
                raise ValueError(f"perturbation has {self.rows} rows but the batch has {hidden.shape[0]}")
            edited = hidden + delta
        else:
            edited = hidden + nn.functional.linear(hidden, self.weight.to(hidden.dtype), self.bias.to(hidden.dtype))
        m = self.position_mask
        if m is not None:
            if m.shape == hidden.shape[:2]:
                return torch.where(m[..., None], edited, hidden)
            if not self.edit_new_tokens:
                return hidden
        return edited

    @torch.no_grad()
    def project_(self) -> None:
        if self.max_norm is None or self.kind != "additive":
            return
        norms = self.delta.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        self.delta.mul_(torch.clamp(self.max_norm / norms, max=1.0))


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of a causal LM (plain or wrapped by peft)."""
    get_decoder = getattr(model, "get_decoder", None)
    if callable(get_decoder):
        dec = get_decoder()
        if isinstance(getattr(dec, "layers", None), nn.ModuleList):
            return dec.layers
    best = None
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith("layers") and len(module) > 0:
            if best is None or len(module) > len(best):
                best = module
    if best is None:
        raise ValueError(f"cannot find the decoder layers of {type(model).__name__}")
    return best


@contextmanager
def attach_perturbation(model: nn.Module, block: int, module: nn.Module,
                        row_mask: torch.Tensor | None = None) -> Iterator[nn.Module]:
    """Apply ``module`` to the output of decoder block ``block`` while the context is open.

    ``row_mask`` ([B] bool) limits the edit to some batch rows (e.g. only the harmful rows of a mixed
    batch, so one forward pass serves clean and perturbed rows alike).
    """
    layers = decoder_layers(model)
    if not 0 <= block < len(layers):
        raise ValueError(f"perturbation block {block} is out of range: the model has {len(layers)} decoder "
                         f"blocks (0..{len(layers) - 1})")

    def edit(h: torch.Tensor) -> torch.Tensor:
        if row_mask is None:
            return module(h)
        return torch.where(row_mask.to(h.device)[:, None, None], module(h), h)

    def hook(_mod, _inp, output):
        if isinstance(output, tuple):
            return (edit(output[0]),) + tuple(output[1:])
        return edit(output)

    # prepend: run before transformers' own output-capturing hook, so output_hidden_states sees the edit
    handle = layers[block].register_forward_hook(hook, prepend=True)
    try:
        yield module
    finally:
        handle.remove()


@contextmanager
def frozen_parameters(model: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients to every parameter of ``model`` (restored afterwards)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
