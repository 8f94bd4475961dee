"""The simulator's plan: node roles, value bounds and the arithmetic path each node takes (split from engine.py).

The bounds prove when floating-point products are exact (docs/simulator.md, "Exactness of the floating-point paths")."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.ir.traits import SPIKE_NONE
from neurocompile.mapping.placement import (
    roles,
)
from neurocompile.sim import kernels
from neurocompile.sim.fixed import limit

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
    """Binary or ternary output messages (:attr:`hw.QNode.spiking`)."""
    return node.spiking


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


Bound = Callable[[hw.QNode, dict[str, "int | None"]], "int | None"]

#: node class -> compile-time bound on |output| ``(node, port bounds) -> int | None`` (Python ints: no overflow).
#: The default reads the node's traits (``SPIKES``, ``SATURATES``); tables, inputs and unsaturated sums have their
#: own entries. None (not bounded) keeps the node's consumers on int64.
BOUND: Registry[Bound] = Registry("sim-bound", family="int")


@BOUND.register(hw.QNode)
def _trait_bound(node: hw.QNode, ins: dict[str, int | None]) -> int | None:
    """From the node's traits: a spike is in {-1, 0, 1}; a node ending with sat(., out_bits) stays within
    limit(out_bits); anything else is not bounded at compile time."""
    if node.SPIKES != SPIKE_NONE:
        return 1
    if node.SATURATES and int(node.out_bits) > 0:
        return limit(int(node.out_bits))
    return None


@BOUND.register(hw.QEmbedding, hw.QLUT)
def _table_bound(node: hw.QNode, ins: dict[str, int | None]) -> int | None:
    return _abs_max(node.table)  # type: ignore[attr-defined]


@BOUND.register(hw.QInput)
def _input_bound(node: hw.QInput, ins: dict[str, int | None]) -> int | None:
    ob = int(node.out_bits)
    return None if node.tokens or ob <= 0 else max(limit(ob), 1)


def _saturated(fn: Bound) -> Bound:
    """A node ending with sat(., out_bits): limit(out_bits), or (out_bits 0: no saturation) ``fn``'s bound."""
    def bound(node: hw.QNode, ins: dict[str, int | None]) -> int | None:
        return limit(int(node.out_bits)) if int(node.out_bits) > 0 else fn(node, ins)
    return bound


@BOUND.register(hw.QDense)
@_saturated
def _dense_bound(node: hw.QDense, ins: dict[str, int | None]) -> int | None:
    xb = ins.get("in")
    if xb is None:
        return None
    rows = np.abs(node.weight).sum(axis=1) if node.weight.size else np.zeros(node.weight.shape[0], np.int64)
    acc = max((int(r) * xb + abs(int(b)) for r, b in zip(rows, node.bias)), default=0)
    return _shifted_bound(acc, node.shift)


@BOUND.register(hw.QModeReadout)
@_saturated
def _readout_bound(node: hw.QModeReadout, ins: dict[str, int | None]) -> int | None:
    sb, kb = ins.get("state"), ins.get("skip")
    if sb is None or kb is None:
        return None
    c = int((np.abs(node.c_re) + np.abs(node.c_im)).sum(axis=1).max()) if node.c_re.size else 0
    return _shifted_bound(c * sb + _abs_max(node.d) * kb, node.shift)


@BOUND.register(hw.QMul)
@_saturated
def _mul_bound(node: hw.QMul, ins: dict[str, int | None]) -> int | None:
    a, b = ins.get("a"), ins.get("b")
    return None if a is None or b is None else _shifted_bound(a * b, np.asarray(node.shift))


@BOUND.register(hw.QAdd)
@_saturated
def _add_bound(node: hw.QAdd, ins: dict[str, int | None]) -> int | None:
    return ins.get("in")


def _node_bound(node: hw.QNode, ins: dict[str, int | None]) -> int | None:
    """Compile-time bound on |output| by the node's :data:`BOUND` entry."""
    return BOUND[node](node, ins)


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


@dataclass
class _PathCtx:
    """What a path chooser may read: the node's port bounds and the choices made for the nodes before it."""

    graph: Graph
    name: str
    arith: str
    ins: dict[str, int | None]
    ports: dict[str, list[tuple[str, list[tuple[str, int]]]]]
    bound: dict[str, int | None]
    path: dict[str, str]
    fused: set[str]


#: node class -> its arithmetic path in the vectorised engine (``'kernel'``: stepped by its kernel; the others are
#: the engine's specialisations, proven exact by the bounds above).
PATH: Registry[Callable[[_PathCtx], str]] = Registry("sim-path", family="int")


@PATH.register(hw.QNode)
def _kernel_path(c: _PathCtx) -> str:
    return "kernel"


@PATH.register(hw.QInput)
def _input_path(c: _PathCtx) -> str:
    return "int64"


@PATH.register(hw.QDense)
def _dense_path_of(c: _PathCtx) -> str:
    return _dense_path(c.graph.node(c.name), c.ins.get("in"), c.arith)  # type: ignore[arg-type]


@PATH.register(hw.QModeBank)
def _modebank_path(c: _PathCtx) -> str:
    ok = c.arith == "auto" and _modebank_float_ok(c.graph.node(c.name), c.ins.get("in"))  # type: ignore[arg-type]
    return "float64" if ok else "int64"


@PATH.register(hw.QModeReadout)
def _readout_path(c: _PathCtx) -> str:
    """Fused with its QModeBank (reading the bank's state directly) when it is the bank's only state reader."""
    node: hw.QModeReadout = c.graph.node(c.name)  # type: ignore[assignment]
    srcs = dict(c.ports[c.name])["state"]
    bank = c.graph.node(srcs[0][0]) if len(srcs) == 1 else None
    if not (isinstance(bank, hw.QModeBank) and srcs[0][1] == 0 and bank.a_re.shape == node.c_re.shape
            and c.path.get(srcs[0][0]) in ("float64", "int64")):
        return "kernel"
    c.fused.add(c.name)
    f64 = c.path[srcs[0][0]] == "float64" and _readout_float_ok(node, c.bound[srcs[0][0]], c.ins.get("skip"))
    return "float64" if f64 else "int64"


def plan(graph: Graph, arith: str = "auto") -> _Plan:
    """Compile ``graph``: evaluation order, value bounds and the arithmetic path of every node."""
    if arith not in ARITH:
        raise ValueError(f"arith must be one of {', '.join(ARITH)}, got {arith!r}")
    order = graph.order()
    seq = graph.sequence_end_nodes()
    ports: dict[str, list[tuple[str, list[tuple[str, int]]]]] = {}
    for name in order:
        node = graph.node(name)
        if node.FAMILY != "int":
            raise IRError(f"node '{name}' is a {type(node).__name__}, not an integer node: quantise the graph "
                          "before simulating it")
        if node not in kernels.KERNELS and not node.IS_INPUT:
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
        else:
            path[name] = PATH[node](_PathCtx(graph, name, arith, ins, ports, bound, path, fused))
    spiking = [n for n in order if is_spiking(graph.node(n))]
    return _Plan(graph=graph, arith=arith, order=order, step_order=[n for n in order if n not in seq],
                 end_order=[n for n in order if n in seq], ports=ports, bound=bound, path=path, fused=fused,
                 role=roles(graph), spiking=spiking)
