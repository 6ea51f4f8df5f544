"""Defense methods: each turns one micro-batch's current and frozen passes into a loss.

A method is a function ``(StepInputs) -> (loss, parts)`` registered with
:func:`crl_core.methods.base.register_method` (``crl_core.registry.METHODS``); docs/extending.md shows
how to add one.
"""

from crl_core.methods import circuit_breaker, crl, repbend, sft  # noqa: F401  (registration)
