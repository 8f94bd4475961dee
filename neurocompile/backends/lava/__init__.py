"""Lava backend: neurocompile's integer graphs as Lava 0.10.0 process networks (``Loihi2SimCfg``, ``fixed_pt``).

Importing this package never imports Lava; the functions that need it raise
:class:`~neurocompile.errors.BackendError` with one clear message when Lava is missing or broken.

- :func:`load` (artifact directory or Graph -> :class:`LavaNetwork`) and :func:`run` (-> per-node outputs
  at every step + final states) run a graph on Lava, bit for bit as neurocompile's simulator;
  :func:`simulate_lava` wraps them into a simulator ``SimResult`` (``neurocompile simulate --backend lava``).
- :func:`from_lava_dense_lif` / :func:`from_lava_layers` turn plain Lava Dense + LIF networks into graphs.
- :func:`write_netx` writes the layers lava-dl's netx can express as a netx HDF5 file.

See docs/lava.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from neurocompile.backends.lava._require import LAVA_VERSION, lava_available, require_lava
from neurocompile.backends.lava.convert import LavaLayer, from_lava_dense_lif, from_lava_layers, lava_weight_mantissa

if TYPE_CHECKING:  # pragma: no cover
    from neurocompile.backends.lava.network import LavaNetwork
    from neurocompile.backends.lava.runner import LavaResult

__all__ = [
    "LAVA_VERSION", "lava_available", "require_lava", "load", "run", "simulate_lava", "LavaNetwork", "LavaResult",
    "from_lava_dense_lif", "from_lava_layers", "LavaLayer", "lava_weight_mantissa", "write_netx",
]


def load(artifact: Any, batch: int | None = None, native: bool = True, tap_buffer: int = 64) -> LavaNetwork:
    """Build the Lava network of an artifact directory or an integer :class:`~neurocompile.ir.graph.Graph`.

    ``batch``: run that many samples side by side (then only neurocompile's Processes are used);
    ``native``: use Lava's own Dense / LIF where their semantics match the node's.
    """
    require_lava()
    from neurocompile.backends.lava.network import load as _load

    return _load(artifact, batch=batch, native=native, tap_buffer=tap_buffer)


def run(network: Any, x: Any, steps: int | None = None, progress: bool = False) -> LavaResult:
    """Run inputs ``x`` [n, T, d] (or [n, T] token ids, or {input: array}) for ``steps`` (default T) steps.

    Returns node -> int64 [n, T, size] outputs, with ``.states`` the final states; always stops Lava.
    """
    require_lava()
    from neurocompile.backends.lava.runner import run as _run

    return _run(network, x, steps, progress=progress)


def simulate_lava(graph: Any, x: Any, **kw: Any) -> Any:
    """Run on Lava and return a ``SimResult`` (Lava's outputs, the simulator's counters; checked equal)."""
    require_lava()
    from neurocompile.backends.lava.runner import simulate_lava as _sim

    return _sim(graph, x, **kw)


def write_netx(graph: Any, path: Any = None) -> Any:
    """Write the netx-expressible layers of ``graph`` to a netx HDF5 file (see :mod:`.netx`)."""
    from neurocompile.backends.lava.netx import write_netx as _write

    return _write(graph, path)


def __getattr__(name: str) -> Any:
    if name in ("LavaNetwork", "LavaResult"):
        require_lava()
        from neurocompile.backends.lava import network, runner

        return getattr(network if name == "LavaNetwork" else runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
