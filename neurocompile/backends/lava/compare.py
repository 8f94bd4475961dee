"""Bit-for-bit comparison of the Lava backend with neurocompile's simulator.

:func:`simulate_reference` runs the simulator and returns its per-node traces and final states in the
layout of :class:`~neurocompile.backends.lava.runner.LavaResult`; :func:`compare` lists every node (and
state) where the two differ. Used by the tests and by ``benchmarks/sim_vs_lava.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.ir.graph import Graph


@dataclass
class Reference:
    """Simulator output: node -> int64 [n, T, size] (sequence-end nodes [n, 1, size]) and final states."""

    traces: dict[str, np.ndarray]
    states: dict[str, dict[str, np.ndarray]]
    wall_s: float = 0.0
    saturations: dict[str, int] = field(default_factory=dict)  # values clipped per node (simulator's count)


@dataclass
class Comparison:
    """Where Lava and the simulator differ (empty ``mismatches``: identical at every step)."""

    mismatches: list[str] = field(default_factory=list)
    values: int = 0  # integers compared

    @property
    def equal(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        if self.equal:
            return f"identical ({self.values} integers compared)"
        return f"{len(self.mismatches)} mismatch(es): " + "; ".join(self.mismatches[:8])


def simulate_reference(graph: Graph, x: Any, steps: int | None = None, engine: bool | None = None,
                       arith: str = "auto") -> Reference:
    """Run neurocompile's simulator on ``x`` (same input conventions as :func:`..runner.run`).

    ``engine`` True uses :func:`neurocompile.sim.engine.simulate` (``arith`` its arithmetic path), False the
    reference runner (:func:`neurocompile.sim.reference.run`); None: the engine when present.
    """
    from neurocompile.backends.lava.network import quantize_inputs

    if engine is None or engine:
        try:
            from neurocompile.sim.engine import simulate
        except ImportError:
            if engine:
                raise
            simulate = None
        if simulate is not None:
            xs = x
            if steps is not None:
                if isinstance(x, dict):
                    xs = {k: np.asarray(v)[:, :steps] for k, v in x.items()}
                else:
                    xs = np.asarray(x)[:, :steps]
            t0 = time.perf_counter()
            r = simulate(graph, xs, record=True, counters=False, arith=arith)
            wall = time.perf_counter() - t0
            return Reference(dict(r.trace or {}), dict(r.final_states or {}), wall, dict(r.saturations))
    from neurocompile.sim import reference

    q, _, _ = quantize_inputs(graph, x, steps)
    t0 = time.perf_counter()
    r = reference.run(graph, q, record=True, quantised=True)
    return Reference(r.trace, r.states, time.perf_counter() - t0, r.saturations)


def compare(graph: Graph, lava: Any, ref: Reference) -> Comparison:
    """Compare a :class:`LavaResult` with a :class:`Reference`, node by node, state by state."""
    cmp = Comparison()
    for k, want in ref.traces.items():
        got = lava.get(k)
        if got is None:
            cmp.mismatches.append(f"{k}: missing from the Lava result")
            continue
        if got.shape != want.shape:
            cmp.mismatches.append(f"{k}: shape {list(got.shape)} vs simulator {list(want.shape)}")
            continue
        cmp.values += want.size
        if not np.array_equal(got, want):
            idx = tuple(int(i) for i in np.argwhere(got != want)[0])
            cmp.mismatches.append(f"{k}: {int(np.count_nonzero(got != want))} values differ, first at index "
                                  f"{list(idx)}: lava {int(got[idx])} vs simulator {int(want[idx])}")
    plan = getattr(lava, "plan", {}) or {}
    lava_sats = getattr(lava, "saturations", None)
    if lava_sats is not None:
        for k, want in ref.saturations.items():
            if plan.get(k, "").startswith("lava."):
                continue  # Lava's own Dense / LIF do not count their clipping
            if int(lava_sats.get(k, 0)) != int(want):
                cmp.mismatches.append(f"{k}: {lava_sats.get(k, 0)} saturations in Lava vs {want} in the simulator")
    for k, sts in ref.states.items():
        for var, want in sts.items():
            got = lava.states.get(k, {}).get(var)
            if got is None:
                cmp.mismatches.append(f"{k}.{var}: final state missing from the Lava result")
                continue
            got = np.asarray(got).reshape(want.shape) if got.size == want.size else got
            cmp.values += want.size
            if got.shape != want.shape or not np.array_equal(got, want):
                cmp.mismatches.append(f"{k}.{var}: final state differs")
    return cmp
