"""Where a sweep's Optuna study lives: SQLite in the sweep's local folder (the default), or an RDB named by
``study_storage`` (PostgreSQL, MySQL, another SQLite file), e.g. when ``storage_dir`` is an object store and
the study must outlive the machine that ran the driver (docs/sweeps.md, "Object-store storage")."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from crl_core.config import ConfigError
from crl_core.redaction import redact_text, redact_uri

__all__ = ["StudyRef", "check_study_url", "probe_study_url"]

# SQLAlchemy dialects Optuna's RDBStorage is tested with
_DIALECTS = ("sqlite", "postgresql", "mysql")


def check_study_url(url: str) -> None:
    """An RDB URL Optuna can use: parsed by SQLAlchemy, one of its tested dialects. Nothing is opened."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact_uri(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"study_storage: '{shown}' is not an RDB URL (e.g. postgresql://USER@HOST/DB, "
                          "sqlite:////abs/optuna.db)") from None
    if parsed.get_backend_name() not in _DIALECTS:
        raise ConfigError(f"study_storage: '{shown}': the dialect '{parsed.get_backend_name()}' is not one Optuna "
                          f"supports ({', '.join(_DIALECTS)})")
    if parsed.get_backend_name() == "sqlite" and not parsed.database:
        raise ConfigError(f"study_storage: '{shown}' is an in-memory SQLite database; a sweep's study must "
                          "survive the driver (sqlite:///path/optuna.db)")


def probe_study_url(url: str) -> str:
    """Before anything starts: the database answers (driver installed, host reachable, credentials right).
    Opening it creates Optuna's tables if they are missing, and nothing else."""
    import optuna

    try:
        storage = optuna.storages.RDBStorage(url, skip_table_creation=False)
        storage.get_all_studies()
        storage.engine.dispose()
    except Exception as exc:  # ImportError (no DB driver), OperationalError, ...
        raise ConfigError(f"study_storage: {redact_uri(url)} cannot be opened: "
                          f"{redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:300]}") from None
    return f"the Optuna study is kept in {redact_uri(url)}"


@dataclass(frozen=True)
class StudyRef:
    """One sweep's study: the storage URL and the study's name; ``local_file`` is the SQLite file of the
    default storage, so an absent file means "no study yet" without creating one."""

    url: str
    name: str
    local_file: Path | None = None

    def storage(self):
        import optuna

        return optuna.storages.RDBStorage(self.url)

    def load(self):
        """The study, or None before its first trial."""
        import optuna

        if self.local_file is not None and not self.local_file.is_file():
            return None
        try:
            return optuna.load_study(study_name=self.name, storage=self.storage())
        except KeyError:
            return None
