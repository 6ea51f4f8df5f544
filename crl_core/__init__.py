"""crl_core: contrastive representation learning defenses for LLMs, their attacks, judges and evaluation.

This package never imports Ray: it runs in one process, as one DDP rank, or inside a sweep trial.
"""

__version__ = "0.1.0"
