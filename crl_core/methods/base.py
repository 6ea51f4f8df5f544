"""How a defense method registers: its loss function, its config section and what it supports.

    @register_method("crl", section="triplet", mining=True)
    def crl_loss(inp: StepInputs) -> tuple[Tensor, dict[str, float]]: ...

``section`` names the :class:`~crl_core.training.TrainConfig` field that holds the method's own knobs
(``triplet``, ``circuit_breaker``, ``repbend``; None when it has none); ``mining`` says whether
hard-negative mining (docs/method.md §5) can feed it; ``needs_reference`` whether the step needs the frozen
model's pass; ``early_exit`` that it reads the benign and harmful rows' hidden states only at
``benign_layers`` and ``harmful_layers`` (and the retain rows' logits and states), so their passes may stop
at the deepest of those (docs/method.md, "Early exit"). ``TrainConfig.method`` accepts exactly the
registered names.
"""

from __future__ import annotations

from collections.abc import Callable

from crl_core.registry import METHODS

__all__ = ["register_method"]


def register_method(name: str, *, section: str | None = None, mining: bool = False,
                    needs_reference: bool = True, early_exit: bool = False) -> Callable:
    def deco(fn: Callable) -> Callable:
        fn.method_name, fn.section, fn.supports_mining, fn.needs_reference = name, section, mining, needs_reference
        fn.early_exit = early_exit
        return METHODS.register(name)(fn)
    return deco
