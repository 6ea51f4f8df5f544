"""The model organism: a tiny Llama trained from scratch on CPU that knows synthetic "harmful" payloads
(harmless code words), refuses harmful requests, answers benign ones, and leaks its payloads under
prefilling and embedding attacks. See ``build.py`` for the recipe and ``properties.py`` for the metrics.

    from crl_core.organism import load_organism
    model, tokenizer, payloads = load_organism()          # the committed artifacts/v1
"""

from crl_core.organism.build import (
    DEFAULT_ARTIFACT,
    DEFAULT_CONFIG,
    ORGANISM_VERSION,
    TINY_CONFIG,
    artifact_file_hashes,
    build_organism,
    load_build_config,
    load_organism,
)
from crl_core.organism.config import OrganismConfig
from crl_core.organism.payloads import CODE_WORDS, Payload, assign_payloads, forcing_targets
from crl_core.organism.properties import answer_match, harmful_items, measure_properties

__all__ = ["DEFAULT_ARTIFACT", "DEFAULT_CONFIG", "ORGANISM_VERSION", "TINY_CONFIG", "artifact_file_hashes",
           "build_organism", "load_build_config", "load_organism", "OrganismConfig", "CODE_WORDS", "Payload",
           "assign_payloads", "forcing_targets", "answer_match", "harmful_items", "measure_properties"]
