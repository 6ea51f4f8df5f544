"""Is the Hugging Face hub reachable by policy? The offline switches every hub-facing loader checks.

The lowest layer of the library: data sets, models and judges all ask here before they would download.
"""

from __future__ import annotations

import os

__all__ = ["hub_offline", "datasets_offline"]

_TRUE = ("1", "true", "yes")


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set: no model or file comes from the hub."""
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in _TRUE or \
        os.environ.get("TRANSFORMERS_OFFLINE", "0").lower() in _TRUE


def datasets_offline() -> bool:
    """No hub data set can be read: the hub is offline, or ``HF_DATASETS_OFFLINE=1``."""
    return hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "0") == "1"
