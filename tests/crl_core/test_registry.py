import pytest

from crl_core.config import ConfigError
from crl_core.registry import Registry


def test_registry_registers_and_suggests():
    reg = Registry("attack")

    @reg.register("prefill")
    def prefill():
        return 1

    assert reg.get("prefill") is prefill and "prefill" in reg and reg.names() == ["prefill"]
    with pytest.raises(ConfigError, match="did you mean 'prefill'"):
        reg.get("prefil")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("prefill")(lambda: 2)
