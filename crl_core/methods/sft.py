"""Plain LoRA supervised finetuning on the retain rows (benign answers and refusals): the baseline of
the step-cost benchmark and a sanity reference."""

from __future__ import annotations

import torch

from crl_core.losses.distances import upcast
from crl_core.methods.base import register_method


@register_method("sft", needs_reference=False)  # no frozen pass: plain finetuning
def sft(inp):
    sl = inp.rows["retain"]
    logits = upcast(inp.cur_logits[:, :-1])
    labels = inp.batch["input_ids"][sl][:, 1:].masked_fill(inp.batch["response_mask"][sl][:, 1:] == 0, -100)
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
    return inp.cfg.retain.sft_weight * ce, {"ce": float(ce.detach())}

