"""Every per-node-type registry covers every node class of its family (or exempts it with a reason)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import neurocompile
from neurocompile.errors import InternalError
from neurocompile.ir import hw
from neurocompile.ir.registry import Registry


def _import_all() -> None:
    """Registries fill when their modules import: import every module that does not need an optional backend."""
    for mod in pkgutil.walk_packages(neurocompile.__path__, "neurocompile."):
        try:
            importlib.import_module(mod.name)
        except ImportError:  # optional backends (lava, numba) absent on this machine
            continue


_import_all()


@pytest.mark.parametrize("name", sorted(Registry.ALL))
def test_registry_covers_its_family(name: str) -> None:
    reg = Registry.ALL[name]
    assert reg.missing() == [], f"registry '{name}' lacks entries for {reg.missing()}"
    assert reg.stale_exemptions() == [], f"registry '{name}' exempts {reg.stale_exemptions()} needlessly"


def test_removing_an_entry_is_caught() -> None:
    """The check above can fail: a registry missing one class reports it, and lookup raises an InternalError."""
    reg: Registry[int] = Registry("coverage-selftest", family="int", exempt={})
    try:
        for cls in list(hw.INT_NODES.values())[1:]:
            reg.add(cls, 1)
        first = next(iter(hw.INT_NODES))
        assert reg.missing() == [first]
        with pytest.raises(InternalError, match=first):
            reg[hw.INT_NODES[first]]
    finally:
        del Registry.ALL["coverage-selftest"]
