"""The simulator's plan: node roles, value bounds and the arithmetic path each node takes (split from engine.py).

The bounds prove when floating-point products are exact (docs/simulator.md, "Exactness of the floating-point paths")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import kernels
from neurocompile.sim.fixed import limit
from neurocompile.sim.placement import (
    roles,
)

ARITH = ("auto", "int64", "reference")
EXACT_F32 = 1 << 24  # every integer of magnitude <= 2^24 is a float32; sums below it are exact
EXACT_F64 = 1 << 53  # the same for float64

Array = np.ndarray


@dataclass
class _Plan:
    graph: Graph
    arith: str
    order: list[str]
    step_order: list[str]  # run every step
    end_order: list[str]  # run once after the last step
    ports: dict[str, list[tuple[str, list[tuple[str, int]]]]]  # node -> [(port, [(src, delay)])]
    bound: dict[str, int | None]  # max |output| (None: not bounded at compile time)
    path: dict[str, str]
    fused: set[str]  # QModeReadouts reading their QModeBank's state directly
    role: dict[str, str]
    spiking: list[str]


def is_spiking(node: hw.QNode) -> bool:
    """Binary or ternary outputs (1 <= out_bits <= 2); token ids and host-side logits (out_bits 0) are not spikes."""
    if isinstance(node, hw.QInput) and node.tokens:
        return False
    return 1 <= int(node.out_bits) <= 2


def _port_bound(bound: Mapping[str, int | None], srcs: Sequence[tuple[str, int]]) -> int | None:
    total = 0
    for s, _ in srcs:
        b = bound[s]
        if b is None:
            return None
        total += b
    return total


def _shifted_bound(acc: int, shift: Array) -> int:
    """Upper bound of |rsh_round(v, s)| (and rsh_floor) for |v| <= acc, over the shifts ``s``."""
    out = 0
    for s in {int(v) for v in np.asarray(shift).reshape(-1)} or {0}:
        out = max(out, (acc >> s) + 1 if s > 0 else acc << -s)
    return out


def _abs_max(a: Array) -> int:
    return int(np.abs(a).max()) if a.size else 0


_SPIKES = (hw.QLIF, hw.QHeaviside, hw.QRefractory, hw.QLavaLIF, hw.QTernarize)  # outputs in {-1, 0, 1}
_SATURATING = (hw.QDense, hw.QModeBank, hw.QModeReadout, hw.QMul, hw.QAdd, hw.QAccumulate,
               hw.QLayerNorm)  # sat(., out_bits)


def _node_bound(node: hw.QNode, ins: dict[str, int | None]) -> int | None:
    """Compile-time bound on |output| (Python ints: no overflow); None when not bounded or not known.

    Only node types whose kernel provably limits the output are trusted (spikes, tables, and the nodes that end
    with ``sat(., out_bits)``); any other node type gets None, which keeps its consumers on int64.
    """
    ob = int(node.out_bits)
    if isinstance(node, _SPIKES):
        return 1
    if isinstance(node, (hw.QEmbedding, hw.QLUT)):
        return _abs_max(node.table)
    if isinstance(node, hw.QInput):
        return None if node.tokens or ob <= 0 else max(limit(ob), 1)
    if not isinstance(node, _SATURATING):
        return None
    if ob > 0:
        return limit(ob)
    xb = ins.get("in")
    if isinstance(node, hw.QDense) and xb is not None:
        rows = np.abs(node.weight).sum(axis=1) if node.weight.size else np.zeros(node.weight.shape[0], np.int64)
        acc = max((int(r) * xb + abs(int(b)) for r, b in zip(rows, node.bias)), default=0)
        return _shifted_bound(acc, node.shift)
    if isinstance(node, hw.QModeReadout) and ins.get("state") is not None and ins.get("skip") is not None:
        c = int((np.abs(node.c_re) + np.abs(node.c_im)).sum(axis=1).max()) if node.c_re.size else 0
        acc = c * ins["state"] + _abs_max(node.d) * ins["skip"]
        return _shifted_bound(acc, node.shift)
    if isinstance(node, hw.QMul) and ins.get("a") is not None and ins.get("b") is not None:
        return _shifted_bound(ins["a"] * ins["b"], np.asarray(node.shift))
    if isinstance(node, hw.QAdd) and xb is not None:
        return xb
    return None


def _dense_path(node: hw.QDense, xb: int | None, arith: str) -> str:
    """float32/float64 BLAS when sum_i |W[o, i]| * max|x| stays below 2^24 / 2^53 for every row o."""
    if arith != "auto" or xb is None:
        return "int64"
    rows = np.abs(node.weight).sum(axis=1) if node.weight.size else np.zeros(1, np.int64)
    worst = int(rows.max()) * xb if rows.size else 0
    if worst < EXACT_F32:
        return "float32-blas"
    if worst < EXACT_F64:
        return "float64-blas"
    return "int64"


def _modebank_float_ok(node: hw.QModeBank, ub: int | None) -> bool:
    """float64 recurrence exact: |a_re*re| + |a_im*im|, |b*u| (+ rounding half) and their sums all < 2^53."""
    if ub is None or node.out_bits <= 0 or node.a_re.size == 0:
        return False
    lim = limit(int(node.out_bits))
    rot = int((np.abs(node.a_re) + np.abs(node.a_im)).max()) * lim
    kb = np.asarray(node.b_shift).reshape(-1)
    bmax = max(_abs_max(node.b_re), _abs_max(node.b_im))
    left = max(0, -int(kb.min())) if kb.size else 0
    half = (1 << (int(kb.max()) - 1)) if kb.size and int(kb.max()) > 0 else 0
    inp = (bmax * ub << left) + half
    f = int(node.coef_frac_bits)
    new = (rot >> f if f > 0 else rot << -f) + 1 + inp
    return max(rot, inp, new) < EXACT_F64


def _readout_float_ok(node: hw.QModeReadout, state_b: int | None, skip_b: int | None) -> bool:
    if state_b is None or skip_b is None or node.c_re.size == 0:
        return False
    c = int((np.abs(node.c_re) + np.abs(node.c_im)).sum(axis=1).max())
    acc = c * state_b + _abs_max(node.d) * skip_b
    s = np.asarray(node.shift).reshape(-1)
    half = (1 << (int(s.max()) - 1)) if s.size and int(s.max()) > 0 else 0
    # rounding: acc * 2^-s + 1/2 is exact while acc + 2^(s-1) < 2^53; left shifts stay below int64's range
    grown = acc << max(0, -int(s.min())) if s.size else acc
    return acc + half < EXACT_F64 and grown < (1 << 62)


def plan(graph: Graph, arith: str = "auto") -> _Plan:
    """Compile ``graph``: evaluation order, value bounds and the arithmetic path of every node."""
    if arith not in ARITH:
        raise ValueError(f"arith must be one of {', '.join(ARITH)}, got {arith!r}")
    order = graph.order()
    seq = graph.sequence_end_nodes()
    ports: dict[str, list[tuple[str, list[tuple[str, int]]]]] = {}
    for name in order:
        node = graph.node(name)
        if not isinstance(node, hw.QNode):
            raise IRError(f"node '{name}' is a {type(node).__name__}, not an integer node: quantise the graph "
                          "before simulating it")
        if type(node) not in kernels.STEP and not isinstance(node, hw.QInput):
            raise IRError(f"node '{name}': no integer kernel for {type(node).__name__}")
        plist = []
        for port in node.PORTS:
            srcs = [(s, int(graph.edge(s, name).get("delay", 0))) for s in graph.preds(name, port)]
            plist.append((port, srcs))
        ports[name] = plist
    bound: dict[str, int | None] = {}
    path: dict[str, str] = {}
    fused: set[str] = set()
    for name in order:
        node = graph.node(name)
        ins = {p: _port_bound(bound, srcs) for p, srcs in ports[name]}
        bound[name] = _node_bound(node, ins)
        if arith == "reference" or name in seq:
            path[name] = "kernel"
        elif isinstance(node, hw.QDense):
            path[name] = _dense_path(node, ins.get("in"), arith)
        elif isinstance(node, hw.QModeBank):
            path[name] = "float64" if arith == "auto" and _modebank_float_ok(node, ins.get("in")) else "int64"
        elif isinstance(node, hw.QModeReadout):
            srcs = dict(ports[name])["state"]
            bank = graph.node(srcs[0][0]) if len(srcs) == 1 else None
            if (isinstance(bank, hw.QModeBank) and srcs[0][1] == 0 and bank.a_re.shape == node.c_re.shape
                    and path.get(srcs[0][0]) in ("float64", "int64")):
                fused.add(name)
                f64 = path[srcs[0][0]] == "float64" and _readout_float_ok(node, bound[srcs[0][0]], ins.get("skip"))
                path[name] = "float64" if f64 else "int64"
            else:
                path[name] = "kernel"
        elif isinstance(node, hw.QInput):
            path[name] = "int64"
        else:
            path[name] = "kernel"
    spiking = [n for n in order if is_spiking(graph.node(n))]
    return _Plan(graph=graph, arith=arith, order=order, step_order=[n for n in order if n not in seq],
                 end_order=[n for n in order if n in seq], ports=ports, bound=bound, path=path, fused=fused,
                 role=roles(graph), spiking=spiking)
