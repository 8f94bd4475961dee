"""A kernel module's numba cache is flushed when a file it inlines helpers from changes (numba itself keys a cached
function by its own file only, so it would load the old machine code)."""

from __future__ import annotations

import hashlib
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("numba")

KERN = '''
from numba import njit
from neurocompile.sim.compiled_ops import refresh_stale_caches

@njit(cache=True)
def f(x):
    return x + 1

refresh_stale_caches(globals(), ("dep.py",))
'''


def _load() -> Any:  # a fresh import of the module, as a new process would do
    sys.modules.pop("kern_cache_probe", None)
    return importlib.import_module("kern_cache_probe")


def test_stale_cache_is_flushed_when_a_dependency_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kern_cache_probe.py").write_text(KERN)
    (tmp_path / "dep.py").write_text("A = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    mod: Any = _load()
    assert mod.f(1) == 2  # compiled and saved to the cache next to the module
    stamp = tmp_path / "__pycache__" / "kern_cache_probe.deps.sha256"
    assert stamp.read_text() == hashlib.sha256(b"A = 1\n").hexdigest()
    assert mod.f._cache._cache_file._load_index()  # an entry was saved
    mod = _load()  # unchanged dependency: the entry stays
    assert mod.f._cache._cache_file._load_index()
    (tmp_path / "dep.py").write_text("A = 2\n")
    mod = _load()  # changed dependency: every entry of the module is dropped
    assert mod.f._cache._cache_file._load_index() == {}
    assert stamp.read_text() == hashlib.sha256(b"A = 2\n").hexdigest()
    sys.modules.pop("kern_cache_probe", None)
