"""Sweeps of crl_core defenses: the recipe (margin_sweep.py), the engine (engine/), configs and a tiny sweep."""
