"""Binarize: ``weights='ternary'|'binary'`` -> each selected Affine's weights become {-1, 0, 1} x a per-channel scale.

Per output channel o (row W_o), as in ternary weight networks (Li et al. 2016) and binary-weight networks:

- ternary: t = sign(W) [|W| > delta_o], delta_o = 0.7 mean|W_o|; alpha_o = mean of |W_o| over the kept entries;
- binary:  t = sign(W) (0 -> +1); alpha_o = mean|W_o|;

and W_o <- alpha_o t_o (alpha_o minimises ||W_o - alpha_o t_o||^2 for that support). Rows already ternary
(every non-zero |w| equal, e.g. GSU's Ter(W)) are left as they are. Selected layers: the hidden mixing
Affines; the encoder (fed by the input) and host-side readout keep ``weight_bits`` mantissas unless
``ternarize_io``. The quantiser turns alpha_o t_o into integer rows m_o t_o (one mantissa m_o and shift per row),
or exactly t_o when every row shares alpha; the report verifies it.
"""

from __future__ import annotations

import numpy as np

from neurocompile.fixedpoint import TERNARY_CUT
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes.common import PassContext

NAME = "binarize"


def ternarize_rows(w: np.ndarray, binary: bool = False) -> np.ndarray:
    """alpha_o * t_o per row of ``w`` (float64)."""
    w = np.asarray(w, np.float64)
    mag = np.abs(w)
    if binary:
        t = np.where(w >= 0, 1.0, -1.0)
        alpha = mag.mean(axis=1)
    else:
        delta = TERNARY_CUT * mag.mean(axis=1, keepdims=True)
        keep = mag > delta
        t = np.sign(w) * keep
        alpha = np.where(keep.any(axis=1), (mag * keep).sum(axis=1) / np.maximum(keep.sum(axis=1), 1), 0.0)
    return alpha[:, None] * t


def is_ternary(w: np.ndarray) -> bool:
    """True when each row's non-zero magnitudes are all equal."""
    mag = np.abs(np.asarray(w, np.float64))
    for row in mag:
        nz = row[row > 0]
        if nz.size and not np.all(np.abs(nz - nz[0]) <= 1e-6 * nz[0]):
            return False
    return True


def selected(graph: Graph, ternarize_io: bool) -> list[str]:
    """The Affines that ``weights`` ternary/binary applies to."""
    late = graph.sequence_end_nodes()
    out = []
    for name, node in graph.items():
        if not isinstance(node, fl.Affine):
            continue
        io = name in late or any(isinstance(graph.node(p), (fl.Input, fl.Embedding)) for p in graph.preds(name))
        if io and not ternarize_io:
            continue
        out.append(name)
    return out


def run(graph: Graph, ctx: PassContext) -> Graph:
    mode = ctx.options.weights
    if mode == "int":
        ctx.note(NAME, weights="int", layers=[])
        return graph
    g = graph.copy()
    done = []
    for name in selected(g, ctx.options.ternarize_io):
        node = g.node(name)
        if is_ternary(node.weight):
            continue
        node.weight = ternarize_rows(node.weight, binary=(mode == "binary")).astype(np.float32)
        done.append(name)
    g.meta["weights"] = mode
    ctx.note(NAME, weights=mode, layers=done)
    return g
