"""Where the Optuna study lives (sweeps/engine/study.py): the study database probed before launch, its
password never shown."""

import pytest

from crl_core.config import ConfigError
from sweeps.engine.study import probe_study_url

SECRET = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY"


def test_the_study_database_is_probed_and_its_password_never_shown(tmp_path):
    assert "optuna.db" in probe_study_url(f"sqlite:///{tmp_path / 'optuna.db'}")
    with pytest.raises(ConfigError, match=r"study_storage: postgresql://crl:\*\*\*@127.0.0.1:1/optuna cannot be opened") as err:
        probe_study_url(f"postgresql://crl:{SECRET}@127.0.0.1:1/optuna")
    assert SECRET not in str(err.value)
