"""neurocompile.sim: the bit-exact integer simulator of hardware graphs.

- :func:`simulate` (``engine``): run an integer graph over a dataset; returns a :class:`SimResult` with outputs,
  predictions, spikes, saturations and activity :class:`~neurocompile.sim.counters.RunCounts`.
- :func:`simulate_distributed` (``distributed``): the same over dask worker processes, identical results.
- placement lives in :mod:`neurocompile.mapping`, energy and latency in :mod:`neurocompile.cost`.
- ``kernels`` / ``fixed``: the executable specification of docs/semantics.md.

Names are imported lazily so that importing ``neurocompile.sim.kernels`` stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["simulate", "SimResult", "merge_results", "simulate_distributed"]

_WHERE = {
    "simulate": "engine", "SimResult": "engine", "merge_results": "engine",
    "simulate_distributed": "distributed",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"neurocompile.sim.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'neurocompile.sim' has no attribute {name!r}")
