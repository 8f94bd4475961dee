"""The reference runner: docs/semantics.md section 2 as a plain loop, the one place a graph is stepped through time
for reference purposes (quantisation, quantisation reports, Lava comparisons, tests).

Every step t, every node not after a sequence end runs once in ``Graph.order()``: a port's input is the sum of its
in-edges' messages, an edge of delay d carrying its source's output of step t - d (zeros while t < d); graph inputs
are quantised by :func:`kernels.step_input` (or taken as they are with ``quantised``); every other node is advanced
by its kernel from :data:`kernels.KERNELS`. After the last step, sequence-end nodes give their output
(:func:`kernels.finish`) and the nodes after them run once on those values. The vectorised engine
(:mod:`neurocompile.sim.engine`) is a specialisation of this loop, tested bit-equal to it (tests/test_sim_reference.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir.graph import Graph
from neurocompile.sim import kernels

__all__ = ["Run", "run", "run_node", "state_arrays"]

Array = np.ndarray


@dataclass
class Run:
    """``outputs``: output node -> int64 [B, T, n] (per step) or [B, n] (sequence-end nodes and those after them).
    ``trace``: the recorded nodes in the same layout (a sequence-end node: its running value at every step,
    [B, T, n], as the engine's trace). ``final``: sequence-end nodes and those after them -> [B, n].
    ``states``: node -> state variable -> its value after the last step (a delay line stacked as [B, d, n]).
    ``saturations``: node -> values clipped (inputs given ``quantised`` have no entry)."""

    outputs: dict[str, Array]
    trace: dict[str, Array]
    final: dict[str, Array]
    states: dict[str, dict[str, Array]]
    saturations: dict[str, int]


def _inputs(graph: Graph, x: Any) -> dict[str, Array]:
    """One [B, T, d] array per graph input (an array not given per input feeds every input)."""
    xs = dict(x) if isinstance(x, Mapping) else {name: x for name in graph.inputs}
    out: dict[str, Array] = {}
    for name in graph.inputs:
        if name not in xs:
            raise IRError(f"reference run: no data for graph input '{name}' (given: {', '.join(xs) or 'none'})")
        a = np.asarray(xs[name])
        a = a[..., None] if a.ndim == 2 else a
        if a.ndim != 3:
            raise IRError(f"reference run: input '{name}' must be [B, T, d] (or [B, T] tokens), got shape "
                          f"{list(a.shape)}")
        out[name] = a
    shapes = {a.shape[:2] for a in out.values()}
    if len(shapes) != 1:
        raise IRError(f"reference run: inputs disagree on [B, T]: {sorted(shapes)}")
    return out


def state_arrays(st: dict[str, Any]) -> dict[str, Array]:
    """A kernel state as int64 arrays (a delay line, a list of [B, n] oldest first, stacked as [B, d, n])."""
    out: dict[str, Array] = {}
    for k, v in st.items():
        if k == "saturations":
            continue
        if isinstance(v, list):
            v = np.stack(v, axis=1) if v else np.zeros((0,), np.int64)
        out[k] = np.asarray(v, np.int64)
    return out


def run(graph: Graph, x: Any, record: bool = False, nodes: list[str] | None = None, quantised: bool = False,
        steps: int | None = None) -> Run:
    """Step ``graph`` over ``x`` ([B, T, d] floats, [B, T] token ids, or a dict of them per input).

    ``record``: keep the trace of ``nodes`` (all when None); outputs are always kept. ``quantised``: the inputs
    are integers already (no quantisation, no saturation count). ``steps``: run only the first ``steps`` steps.
    """
    xs = _inputs(graph, x)
    b, t_len = next(iter(xs.values())).shape[:2]
    t_len = t_len if steps is None else min(int(steps), t_len)
    order = graph.order()
    late = graph.sequence_end_nodes()
    objs: dict[str, Any] = {n: graph.node(n) for n in order}  # integer nodes: checked just below
    for n, o in objs.items():
        if not o.IS_INPUT and o not in kernels.KERNELS:
            raise IRError(f"reference run: node '{n}' is a {o.op}, which has no integer kernel; quantise the graph "
                          "first")
    srcs = {n: {p: [(s, int(graph.edge(s, n).get("delay", 0))) for s in graph.preds(n, p)] for p in objs[n].PORTS}
            for n in order}
    states: dict[str, Any] = {n: kernels.init_state(o, b) for n, o in objs.items() if not (quantised and o.IS_INPUT)}
    want = (set(order if nodes is None else nodes) if record else set()) | set(graph.outputs)
    rec: dict[str, list[Any]] = {n: [] for n in want if n not in late}
    past: dict[str, list[Array]] = {}  # outputs by step, kept only for the sources of delayed edges
    delayed = {s for n in order for ps in srcs[n].values() for s, d in ps if d > 0}
    vals: dict[str, Array] = {}

    def port_sum(n: str, port: str, t: int) -> Array:
        total: Array | None = None
        for s, d in srcs[n][port]:
            v = vals[s] if d == 0 else (past[s][t - d] if t >= d else np.zeros_like(vals[s]))
            total = v if total is None else total + v
        return np.zeros((b, 0), np.int64) if total is None else total

    main = [n for n in order if n not in late]
    for t in range(t_len):
        for n in main:
            o = objs[n]
            y: Any
            if o.IS_INPUT:
                xt = xs[n][:, t]
                y = np.asarray(xt, np.int64) if quantised else kernels.step_input(o, xt, states[n])
            else:
                y = kernels.step(o, {p: port_sum(n, p, t) for p in o.PORTS}, states[n])
            if y is not None:
                vals[n] = y
                if n in delayed:
                    past.setdefault(n, []).append(y)
            if n in rec:
                rec[n].append(kernels.finish(o, states[n]).copy() if o.SEQUENCE_END else y)
    final: dict[str, Array] = {n: kernels.finish(objs[n], states[n]) for n in main if objs[n].SEQUENCE_END}
    for n in order:
        if n in late:
            o = objs[n]
            ins = {}
            for p in o.PORTS:
                vs = [final[s] if s in final else vals[s] for s, _ in srcs[n][p]]
                ins[p] = sum(vs[1:], vs[0]) if vs else np.zeros((b, 0), np.int64)
            y = kernels.step(o, ins, states[n])
            final[n] = kernels.finish(o, states[n]) if y is None else y
    trace = {n: np.stack(v, axis=1) for n, v in rec.items() if v}
    trace.update({n: final[n] for n in want if n in late})
    outputs = {n: final[n] if n in final else trace[n] for n in graph.outputs}
    return Run(outputs=outputs, trace=trace if record else {}, final=final,
               states={n: s for n, s in ((n, state_arrays(st)) for n, st in states.items()) if s},
               saturations={n: int(st["saturations"]) for n, st in states.items()})


def run_node(node: Any, ins: Mapping[str, Array]) -> Array:
    """One node alone over time: ``ins`` maps each port to int64 [B, T, n]; returns its outputs [B, T, m]."""
    b, t_len = next(iter(ins.values())).shape[:2]
    st = kernels.init_state(node, b)
    ys: list[Any] = [kernels.step(node, {p: v[:, t] for p, v in ins.items()}, st) for t in range(t_len)]
    return np.stack(ys, axis=1)
