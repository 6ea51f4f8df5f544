"""Defense training: config, data, the loop (one process or one DDP rank), mining, checkpoints."""

from pathlib import Path

from crl_core.config import ConfigError
from crl_core.training.config import TrainConfig
from crl_core.training.trainer import (
    DefenseTrainer,
    StepInputs,
    TrainingDivergedError,
    complete_checkpoint_step,
    train,
)

PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs" / "train"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        import difflib

        close = difflib.get_close_matches(name, preset_names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown training preset '{name}'{hint}; known: {', '.join(preset_names())}")
    return path


__all__ = ["TrainConfig", "DefenseTrainer", "StepInputs", "TrainingDivergedError", "train", "preset_names",
           "preset_path", "PRESETS_DIR", "complete_checkpoint_step"]
