"""Defense methods: each turns one micro-batch's current and frozen passes into a loss.

A method is a function ``(StepInputs) -> (loss, parts)`` registered in ``crl_core.registry.METHODS``;
adding a method is one file here plus its config section in :class:`crl_core.training.TrainConfig`.
"""

from crl_core.methods import circuit_breaker, crl, repbend, sft  # noqa: F401  (registration)
