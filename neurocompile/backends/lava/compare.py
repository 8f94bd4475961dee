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

from neurocompile.ir import hw
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


def _state_arrays(node: hw.QNode, st: dict) -> dict[str, np.ndarray]:
    out = {}
    for k, v in st.items():
        if k == "saturations":
            continue
        if isinstance(v, list):  # QDense delay pipe: list of [B, n], oldest first
            v = np.stack(v, axis=1) if v else np.zeros((0,), np.int64)
        out[k] = np.asarray(v, np.int64)
    return out


def simulate_reference(graph: Graph, x: Any, steps: int | None = None, engine: bool | None = None,
                       arith: str = "auto") -> Reference:
    """Run neurocompile's simulator on ``x`` (same input conventions as :func:`..runner.run`).

    ``engine`` True uses :func:`neurocompile.sim.engine.simulate` (``arith`` its arithmetic path), False a
    plain loop over :func:`neurocompile.sim.kernels.step` in ``graph.order()``; None: the engine when present.
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
    q, n, t_len = quantize_inputs(graph, x, steps)
    t0 = time.perf_counter()
    traces, states, sats = _step_kernels(graph, q, n, t_len)
    return Reference(traces, states, time.perf_counter() - t0, sats)


def _step_kernels(graph: Graph, q: dict[str, np.ndarray], n: int, t_len: int):
    """The simulator's semantics (docs/semantics.md section 2) stepped over ``kernels.step``."""
    from neurocompile.sim import kernels

    order = graph.order()
    post = graph.sequence_end_nodes()
    st = {k: kernels.init_state(graph.node(k), n) for k in order if not isinstance(graph.node(k), hw.QInput)}
    rec: dict[str, list[np.ndarray]] = {k: [] for k in order}
    past: dict[str, list[np.ndarray]] = {}  # outputs of the sources of delayed edges, by step

    def arriving(src: str, dst: str, t: int, out: dict[str, np.ndarray]) -> np.ndarray:
        d = int(graph.edge(src, dst).get("delay", 0))
        if d == 0:
            return out[src]
        return past[src][t - d] if t >= d else np.zeros_like(out[src])

    for t in range(t_len):
        out: dict[str, np.ndarray] = {}
        for k in order:
            if k in post:
                continue
            node = graph.node(k)
            if isinstance(node, hw.QInput):
                y = q[k][:, t]
            else:
                ins = {p: _sum([arriving(s, k, t, out) for s in graph.preds(k, p)], n, node) for p in node.PORTS}
                y = kernels.step(node, ins, st[k])
            if y is not None:
                past.setdefault(k, []).append(y)
            out[k] = y
            if isinstance(node, hw.QAccumulate):
                rec[k].append(st[k]["acc"].copy())  # the running sum, as the engine's trace
            elif y is not None:
                rec[k].append(y)
    final: dict[str, np.ndarray] = {}
    for k in order:
        node = graph.node(k)
        if node.SEQUENCE_END:
            final[k] = kernels.finish(node, st[k])
        elif k in post:
            ins = {p: _sum([final[s] for s in graph.preds(k, p)], n, node) for p in node.PORTS}
            final[k] = kernels.step(node, ins, st[k])
            rec[k] = [final[k]]
    traces = {k: (v[0] if k in post else np.stack(v, axis=1)).astype(np.int64) for k, v in rec.items() if v}
    states = {k: s for k, s in ((k, _state_arrays(graph.node(k), st[k])) for k in st) if s}
    return traces, states, {k: int(s["saturations"]) for k, s in st.items()}


def _sum(arrays: list[np.ndarray], n: int, node: hw.QNode) -> np.ndarray:
    if not arrays:
        return np.zeros((n, 0), np.int64)
    total = arrays[0]
    for a in arrays[1:]:
        total = total + a
    return total


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
