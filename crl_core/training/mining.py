"""Adversarial hard-negative mining (docs/method.md §5), with every knob in :class:`MiningSettings`.

A :class:`~crl_core.perturbation.LayerPerturbation` is inserted after a decoder block drawn from
``[block_min, block_max)`` and trained (Adam, model and LoRA frozen) to make the *current* defended
model produce harmful completions (teacher-forced CE on the completion tokens). It is re-initialised
every ``reinit_every`` training steps (``init_steps`` attacker steps, stopping early once the mean of
the last 10 losses is below ``early_stop_loss``) and trained ``steps_per_step`` more steps on every
training step. On a step, with probability ``probability`` and only if the recent attacker CE is
below ``gate_loss``, the harmful rows of the training forward run with the module attached; their
states become the harmful anchors and the harmful centroid (the frozen reference never sees it).

Differences from the published code (deliberate): the module starts as the identity map (zero
``W``, ``b``) instead of doubling the hidden state; counters count optimizer steps, not micro-batches;
the attacker trains on mini-batches of harmful training rows instead of one sample, for CPU speed.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import torch

from crl_core.chat import ChatEncoding, collate
from crl_core.losses.distances import upcast
from crl_core.perturbation import LayerPerturbation, attach_perturbation, frozen_parameters
from crl_core.training.config import MiningSettings

__all__ = ["HardNegativeMiner"]


class HardNegativeMiner:
    def __init__(self, cfg: MiningSettings, hidden_size: int, harmful: list[ChatEncoding],
                 pad_id: int, seed: int, batch_size: int = 8, device: torch.device | str = "cpu") -> None:
        self.cfg, self.hidden_size, self.harmful, self.pad_id = cfg, hidden_size, harmful, pad_id
        self.device = torch.device(device)
        self.batch_size = min(batch_size, len(harmful))
        self.rng = random.Random(seed)
        self.module: LayerPerturbation | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.block = cfg.block_min
        self.recent: deque[float] = deque(maxlen=10)
        self.attack_steps_total = 0
        self.reinits = 0
        self.used = 0

    # ---- attacker
    def _attack_step(self, model) -> float:
        idx = [self.rng.randrange(len(self.harmful)) for _ in range(self.batch_size)]
        device = next(model.parameters()).device
        batch = {k: v.to(device) for k, v in collate([self.harmful[i] for i in idx], self.pad_id, "right").items()}
        # the CE reads the logits of the completion tokens only: the LM head runs on those positions alone
        # (a full-vocabulary head at every position was about a third of an SFT step on SmolLM2)
        targets = batch["input_ids"][:, 1:]
        keep = batch["response_mask"][:, 1:] == 1
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        with frozen_parameters(model), attach_perturbation(model, self.block, self.module):
            hidden = base.get_decoder()(input_ids=batch["input_ids"],
                                        attention_mask=batch["attention_mask"]).last_hidden_state
            logits = upcast(base.get_output_embeddings()(hidden[:, :-1][keep]))
            loss = torch.nn.functional.cross_entropy(logits, targets[keep])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
        self.optimizer.step()
        self.module.project_()
        val = float(loss.detach())
        self.recent.append(val)
        self.attack_steps_total += 1
        return val

    def reinit(self) -> None:
        self.block = self.rng.randrange(self.cfg.block_min, self.cfg.block_max)
        self.module = LayerPerturbation(self.hidden_size, self.cfg.kind, rows=1, init="zero",
                                        max_norm=self.cfg.max_norm).to(self.device)
        self.optimizer = torch.optim.Adam(self.module.parameters(), lr=self.cfg.lr)
        self.recent.clear()
        self.reinits += 1

    def before_step(self, model, step: int) -> dict[str, float]:
        """Re-initialise / train the attacker; returns attacker metrics for logging."""
        was_training = model.training
        model.eval()  # no LoRA dropout while attacking
        try:
            if self.module is None or step % self.cfg.reinit_every == 0:
                self.reinit()
                for _ in range(self.cfg.init_steps):
                    self._attack_step(model)
                    if len(self.recent) == self.recent.maxlen and self.recent_loss() < self.cfg.early_stop_loss:
                        break
            for _ in range(self.cfg.steps_per_step):
                self._attack_step(model)
        finally:
            model.train(was_training)
        return {"mining/attack_loss": self.recent_loss(), "mining/block": float(self.block)}

    def recent_loss(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else float("inf")

    def use_now(self) -> bool:
        draw = self.rng.random()
        ok = self.module is not None and draw < self.cfg.probability and self.recent_loss() < self.cfg.gate_loss
        self.used += int(ok)
        return ok

    def attached(self, model, row_mask: torch.Tensor):
        return attach_perturbation(model, self.block, self.module, row_mask=row_mask)

    # ---- checkpointing
    def state_dict(self) -> dict[str, Any]:
        st = self.rng.getstate()
        return {"rng": [st[0], list(st[1]), st[2]], "block": self.block, "recent": list(self.recent),
                "module": None if self.module is None else self.module.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "attack_steps_total": self.attack_steps_total, "reinits": self.reinits, "used": self.used}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        st = state["rng"]
        self.rng.setstate((st[0], tuple(st[1]), st[2]))
        self.block = state["block"]
        self.recent = deque(state["recent"], maxlen=10)
        if state["module"] is not None:
            self.module = LayerPerturbation(self.hidden_size, self.cfg.kind, rows=1, init="zero",
                                            max_norm=self.cfg.max_norm).to(self.device)
            self.module.load_state_dict(state["module"])
            self.optimizer = torch.optim.Adam(self.module.parameters(), lr=self.cfg.lr)
            self.optimizer.load_state_dict(state["optimizer"])
        self.attack_steps_total, self.reinits, self.used = state["attack_steps_total"], state["reinits"], state["used"]
