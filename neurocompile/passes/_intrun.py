"""Run an integer graph on a batch with the kernels of :mod:`neurocompile.sim.kernels` (for the passes' own use).

The quantiser needs per-node integer traces and saturation counts on calibration data, and the quantisation
report needs them on evaluation data. This is the plain loop of docs/semantics.md section 2 (every node once
per step in ``Graph.order()``, port inputs summed, sequence-end nodes finished after the last step); the
project's simulator (``neurocompile.sim.engine``) adds counters, placement and progress on top of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import kernels

__all__ = ["IntRun", "run_int"]


@dataclass
class IntRun:
    """``outputs``: output name -> int64 [B, n] (sequence end) or [B, T, n]; ``trace``: every node's output
    (``record``), [B, T, n] ([B, 1, n] at the sequence end); ``saturations``: node -> clipped values."""

    outputs: dict[str, np.ndarray]
    trace: dict[str, np.ndarray] | None
    saturations: dict[str, int]


def run_int(graph: Graph, x: np.ndarray, record: bool = False, nodes: list[str] | None = None) -> IntRun:
    """Step ``graph`` over ``x`` ([B, T, d] floats or [B, T] token ids). ``nodes``: record only these."""
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise IRError(f"integer run: input must be [B, T, d] (or [B, T] tokens), got shape {list(x.shape)}")
    b, t_len = x.shape[:2]
    order = graph.order()
    late = graph.sequence_end_nodes()
    objs = {n: graph.node(n) for n in order}
    for n, o in objs.items():
        if not isinstance(o, hw.QNode):
            raise IRError(f"integer run: node '{n}' is a float {o.op}; quantise the graph first")
    preds = {n: [(p, graph.edge(p, n)["port"], int(graph.edge(p, n).get("delay", 0))) for p in graph.preds(n)]
             for n in order}
    if any(d for ps in preds.values() for _, _, d in ps):
        raise IRError("integer run: edge delays are not supported here (use QDense.delay)")
    states = {n: kernels.init_state(o, b) for n, o in objs.items()}
    want = (set(order if nodes is None else nodes) if record else set()) | set(graph.outputs)
    rec: dict[str, list[np.ndarray]] = {n: [] for n in want}
    vals: dict[str, np.ndarray] = {}

    def inputs(n: str) -> dict[str, np.ndarray]:
        ins: dict[str, np.ndarray] = {}
        for p, port, _ in preds[n]:
            v = vals[p]
            ins[port] = ins[port] + v if port in ins else v
        return ins

    main = [n for n in order if n not in late]
    for t in range(t_len):
        for n in main:
            o = objs[n]
            if isinstance(o, hw.QInput):
                v = kernels.step_input(o, x[:, t], states[n])
            else:
                v = kernels.step(o, inputs(n), states[n])
            if v is not None:
                vals[n] = v
                if n in want:
                    rec[n].append(v)
    for n in main:
        if objs[n].SEQUENCE_END:
            vals[n] = kernels.finish(objs[n], states[n])
            if n in want:
                rec[n].append(vals[n])
    for n in order:
        if n in late:
            vals[n] = kernels.step(objs[n], inputs(n), states[n])
            if n in want:
                rec[n].append(vals[n])
    stacked = {n: np.stack(v, axis=1) for n, v in rec.items() if v}
    outputs = {n: vals[n] if (n in late or objs[n].SEQUENCE_END) else stacked[n] for n in graph.outputs}
    trace = stacked if record else None
    return IntRun(outputs=outputs, trace=trace, saturations={n: int(s["saturations"]) for n, s in states.items()})
