"""Integer runs for the passes' own use (calibration traces, saturation counts, quantisation reports).

A thin view of the reference runner (:func:`neurocompile.sim.reference.run`, docs/semantics.md section 2) in the
layout the passes read: sequence-end nodes and those after them record their one final value as [B, 1, n].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir.graph import Graph
from neurocompile.sim import reference

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
    if x.ndim not in (2, 3):
        raise IRError(f"integer run: input must be [B, T, d] (or [B, T] tokens), got shape {list(x.shape)}")
    r = reference.run(graph, x, record=record, nodes=nodes)
    trace = {n: (r.final[n][:, None] if n in r.final else v) for n, v in r.trace.items()} if record else None
    return IntRun(outputs=r.outputs, trace=trace, saturations=r.saturations)
