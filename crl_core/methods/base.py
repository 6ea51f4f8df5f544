"""How a defense method registers: its loss function, its config section and what it supports.

    @register_method("crl", section="triplet", mining=True)
    def crl_loss(inp: StepInputs) -> tuple[Tensor, dict[str, float]]: ...

``section`` names the :class:`~crl_core.training.TrainConfig` field that holds the method's own knobs
(``triplet``, ``circuit_breaker``, ``repbend``; None when it has none); ``mining`` says whether
hard-negative mining (docs/method.md §5) can feed it; ``needs_reference`` whether the step needs the frozen
model's pass; ``early_exit`` that it reads the benign and harmful rows' hidden states only at
``benign_layers`` and ``harmful_layers`` (and the retain rows' logits and states), so their passes may stop
at the deepest of those (docs/method.md, "Early exit"), and then ``retain_reads`` what it reads of the retain
rows' frozen pass: ``logits`` (the KL retain term) or ``harmful_layers`` (circuit breakers' retain term); the
frozen states it reads are then cached per row (docs/method.md, "Reference-state cache").
``TrainConfig.method`` accepts exactly the registered names.
"""

from __future__ import annotations

from collections.abc import Callable

from crl_core.registry import METHODS

__all__ = ["register_method"]


def register_method(name: str, *, section: str | None = None, mining: bool = False,
                    needs_reference: bool = True, early_exit: bool = False, retain_reads: str = "logits") -> Callable:
    if retain_reads not in ("logits", "harmful_layers"):
        raise ValueError(f"retain_reads: '{retain_reads}' is not logits or harmful_layers")

    def deco(fn: Callable) -> Callable:
        fn.method_name, fn.section, fn.supports_mining, fn.needs_reference = name, section, mining, needs_reference
        fn.early_exit, fn.retain_reads = early_exit, retain_reads
        return METHODS.register(name)(fn)
    return deco
