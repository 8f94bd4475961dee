"""IR verifier: every structural rule of a :class:`~neurocompile.ir.graph.Graph`, as a list of violations.

:func:`verify` runs every rule and returns all :class:`Violation` s (an empty list means the graph is valid);
:func:`check` raises one :class:`~neurocompile.errors.IRError` that lists them all. Rules (``Violation.rule``):

=================  ================================================================================================
``node-type``      every graph node holds a node object of a class in ``FLOAT_NODES`` or ``INT_NODES``
``dangling-edge``  an edge ends at a name that holds no node object
``port``           every in-edge names one of the destination's ``PORTS``
``unconnected``    every port of every node has at least one in-edge
``size``           ``src.out_size()`` equals the size the destination expects on that port (:func:`input_sizes`)
``shape``          a node's own arrays agree with each other (e.g. S4D ``A_re``, ``B``, ``C`` all [H, M])
``dtype``          float nodes: float32 / complex64 arrays; integer nodes: int64 arrays
``range``          integer arrays fit their declared signed bit widths (symmetric, as ``sat``); decays in [0, 2^F]
``attr``           scalar fields have their declared type and an allowed value (``compare``, ``reset``, ``fn``, ...)
``finite``         no NaN or Inf in any array or float field
``cycle``          the graph is a DAG (recurrence lives inside stateful nodes only)
``io``             ``graph.inputs`` / ``graph.outputs`` are non-empty, exist, and inputs are the Input nodes
``unreachable``    every node is reachable from an input
``dead``           every node reaches an output
``sequence-end``   a node after a sequence-end node (MeanPool) has no per-step input
``delay``          edge delays are integers >= 0
=================  ================================================================================================
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from neurocompile.errors import IRError
from neurocompile.fixedpoint import limit
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.nodes import FLOAT_NODES, Node

__all__ = ["Violation", "verify", "check", "input_sizes", "field_defaults", "ENUM_ATTRS", "RULES"]

RULES = (
    "node-type", "dangling-edge", "port", "unconnected", "size", "shape", "dtype", "range", "attr", "finite",
    "cycle", "io", "unreachable", "dead", "sequence-end", "delay",
)

#: Allowed values of string fields, by (class name, field).
ENUM_ATTRS: dict[tuple[str, str], tuple[str, ...]] = {
    ("LIF", "reset"): ("zero", "subtract"),
    ("LIF", "compare"): (">=", ">"),
    ("Heaviside", "compare"): (">", ">="),
    ("Activation", "fn"): ("sigmoid", "gelu", "relu", "identity"),
    ("Norm", "kind"): ("batch", "layer"),
    ("QLIF", "reset"): ("zero", "subtract"),
    ("QLIF", "compare"): (">=", ">"),
    ("QHeaviside", "compare"): (">", ">="),
    ("QDense", "rounding"): ("nearest", "floor"),
}


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``rule`` (see module doc), ``node`` (name, or '' for graph-level), ``message``."""

    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        where = f" {self.node}" if self.node else ""
        return f"[{self.rule}]{where}: {self.message}"


def _known_classes() -> dict[type, str]:
    out = {cls: name for name, cls in FLOAT_NODES.items()}
    out.update({cls: name for name, cls in hw.INT_NODES.items()})
    return out


def field_defaults(cls: type) -> dict[str, object]:
    """Default value of every dataclass field of ``cls`` (factories called): the field's declared kind."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[f.name] = f.default_factory()  # type: ignore[misc]
    return out


def _dim(a: np.ndarray, i: int) -> int | None:
    return int(a.shape[i]) if a.ndim > i else None


def input_sizes(node: Node) -> dict[str, int | None]:
    """The input size each port of ``node`` expects (None: not determined by the node's own fields)."""
    n = node
    if isinstance(n, (fl.Input, hw.QInput)):
        return {}
    if isinstance(n, (fl.Embedding, hw.QEmbedding)):
        return {"in": 1}
    if isinstance(n, fl.Affine):
        return {"in": _dim(n.weight, 1)}
    if isinstance(n, hw.QDense):
        return {"in": _dim(n.weight, 1)}
    if isinstance(n, fl.S4D):
        return {"in": n.out_size()}
    if isinstance(n, fl.ModeBank):
        return {"in": _dim(n.dA, 0)}
    if isinstance(n, hw.QModeBank):
        return {"in": _dim(n.a_re, 0)}
    if isinstance(n, fl.ModeReadout):
        return {"state": int(n.C.size) * 2, "skip": n.out_size()}
    if isinstance(n, hw.QModeReadout):
        return {"state": int(n.c_re.size) * 2, "skip": n.out_size()}
    if isinstance(n, fl.GLU):
        return {"in": 2 * n.size}
    if isinstance(n, (fl.Mul, hw.QMul)):
        return {"a": n.size, "b": n.size}
    return {p: n.out_size() for p in n.PORTS}


# ---------------------------------------------------------------------------------------------------------- shapes
def _shape_rules(name: str, n: Node) -> list[str]:
    """Messages for arrays of ``n`` that disagree with each other."""
    msgs: list[str] = []

    def want(field_name: str, shape: tuple[int, ...], allow_empty: bool = False) -> None:
        a = getattr(n, field_name)
        if allow_empty and a.size == 0:
            return
        if tuple(a.shape) != tuple(shape):
            msgs.append(f"{field_name} has shape {list(a.shape)}, expected {list(shape)}")

    def ndim(field_name: str, k: int) -> bool:
        a = getattr(n, field_name)
        if a.ndim != k:
            msgs.append(f"{field_name} must have {k} dimension(s), has shape {list(a.shape)}")
            return False
        return True

    if isinstance(n, fl.Embedding):
        ndim("weight", 2)
    elif isinstance(n, fl.Affine):
        if ndim("weight", 2):
            want("bias", (n.weight.shape[0],))
    elif isinstance(n, fl.S4D):
        if ndim("A_re", 2):
            hm = n.A_re.shape
            for f in ("A_im", "B", "C"):
                want(f, hm)
            want("C2", hm, allow_empty=True)
            want("log_dt", (hm[0],))
            want("D", (hm[0],))
    elif isinstance(n, fl.ModeBank):
        if ndim("dA", 2):
            want("dB", n.dA.shape)
    elif isinstance(n, fl.ModeReadout):
        if ndim("C", 2):
            want("D", (n.C.shape[0],))
    elif isinstance(n, (fl.LIF, fl.Heaviside)):
        ndim("vth", 1)
    elif isinstance(n, fl.RefractoryLIF):
        if ndim("vth", 1):
            want("rho", n.vth.shape)
    elif isinstance(n, fl.Norm):
        if ndim("weight", 1):
            want("bias", n.weight.shape)
            if n.kind == "batch":
                want("mean", n.weight.shape)
                want("var", n.weight.shape)
    elif isinstance(n, hw.QEmbedding):
        ndim("table", 2)
    elif isinstance(n, hw.QDense):
        if ndim("weight", 2):
            want("bias", (n.weight.shape[0],))
            want("shift", (n.weight.shape[0],))
    elif isinstance(n, hw.QModeBank):
        if ndim("a_re", 2):
            for f in ("a_im", "b_re", "b_im"):
                want(f, n.a_re.shape)
            want("b_shift", (n.a_re.shape[0],))
    elif isinstance(n, hw.QModeReadout):
        if ndim("c_re", 2):
            want("c_im", n.c_re.shape)
            want("d", (n.c_re.shape[0],))
            want("shift", (n.c_re.shape[0],))
    elif isinstance(n, (hw.QLIF, hw.QHeaviside)):
        ndim("vth", 1)
    elif isinstance(n, hw.QRefractory):
        if ndim("vth", 1):
            want("rho", n.vth.shape)
    elif isinstance(n, hw.QLavaLIF):
        if ndim("vth", 1):
            want("bias_mant", n.vth.shape)
            want("bias_exp", n.vth.shape)
    elif isinstance(n, hw.QLUT):
        ndim("table", 1)
    elif isinstance(n, hw.QLayerNorm):
        for f in ("weight", "bias", "shift"):
            want(f, (n.size,))
        if isinstance(n.index_bits, int) and 1 <= n.index_bits <= 24:
            want("rsqrt_table", ((1 << n.index_bits) + 1,))
    # Nodes sized by an integer field must have a positive size.
    for f in ("size",):
        if hasattr(n, f) and isinstance(getattr(n, f), int) and getattr(n, f) < 0:
            msgs.append(f"{f}={getattr(n, f)} must be >= 0")
    return msgs


# ---------------------------------------------------------------------------------------------------------- values
def _range_rules(n: hw.QNode) -> list[str]:
    msgs: list[str] = []

    def fits(field_name: str, bits: int, what: str) -> None:
        a = getattr(n, field_name)
        if a.size == 0 or a.dtype != np.int64 or bits <= 0 or bits > 63:
            return
        m = limit(bits)
        lo, hi = int(a.min()), int(a.max())
        if lo < -m or hi > m:
            bad = hi if hi > m else lo
            msgs.append(f"{field_name} value {bad} does not fit {what}={bits} signed bits (limit +-{m})")

    def unit(field_name: str, value: int, f: int) -> None:
        if isinstance(value, int) and not 0 <= value <= (1 << f):
            msgs.append(f"{field_name}={value} must be in [0, 2^{f}] (a decay factor in [0, 1])")

    if isinstance(n, hw.QEmbedding):
        fits("table", n.out_bits, "out_bits")
    elif isinstance(n, hw.QDense):
        fits("weight", n.weight_bits, "weight_bits")
    elif isinstance(n, hw.QModeBank):
        fits("b_re", n.weight_bits, "weight_bits")
        fits("b_im", n.weight_bits, "weight_bits")
        for f in ("a_re", "a_im"):
            a = getattr(n, f)
            if a.size and a.dtype == np.int64 and 0 <= n.coef_frac_bits <= 62:
                peak = int(np.abs(a).max())
                if peak > (1 << n.coef_frac_bits):
                    msgs.append(f"{f} magnitude {peak} exceeds 2^coef_frac_bits = {1 << n.coef_frac_bits} (|a| <= 1)")
    elif isinstance(n, hw.QModeReadout):
        for f in ("c_re", "c_im", "d"):
            fits(f, n.weight_bits, "weight_bits")
    elif isinstance(n, hw.QLIF):
        fits("vth", n.state_bits, "state_bits")
        unit("decay", n.decay, n.coef_frac_bits)
    elif isinstance(n, hw.QRefractory):
        fits("vth", n.state_bits, "state_bits")
        fits("rho", n.state_bits, "state_bits")
        unit("decay", n.decay, n.coef_frac_bits)
        unit("lam", n.lam, n.coef_frac_bits)
    elif isinstance(n, hw.QLavaLIF):
        fits("vth", n.state_bits, "state_bits")
        fits("bias_mant", 13, "13-bit bias mantissa")
        unit("du", n.du, n.coef_frac_bits)
        unit("dv", n.dv, n.coef_frac_bits)
    elif isinstance(n, hw.QLUT):
        fits("table", n.out_bits, "out_bits")
    elif isinstance(n, hw.QLayerNorm):
        fits("weight", n.weight_bits, "weight_bits")
        fits("bias", n.out_bits, "out_bits")
        for f, lo, hi in (("mean_mul", 1, 1 << 40), ("mean_shift", 0, 62), ("var_shift", 0, 62), ("eps", 0, 1 << 62),
                          ("index_bits", 1, 24), ("rsqrt_frac_bits", 0, 40)):
            v = getattr(n, f)
            if isinstance(v, int) and not lo <= v <= hi:
                msgs.append(f"{f}={v} must be in [{lo}, {hi}]")
        t = n.rsqrt_table
        if t.size and t.dtype == np.int64 and isinstance(n.rsqrt_frac_bits, int) and 0 <= n.rsqrt_frac_bits <= 40:
            if int(t.min()) < 0 or int(t.max()) > (1 << n.rsqrt_frac_bits):
                msgs.append(f"rsqrt_table entries must be in [0, 2^rsqrt_frac_bits = {1 << n.rsqrt_frac_bits}]")
        if n.shift.size and n.shift.dtype == np.int64 and (int(n.shift.min()) < -62 or int(n.shift.max()) > 62):
            msgs.append("shift values must be in [-62, 62]")
    elif isinstance(n, hw.QTernarize):
        if isinstance(n.den, int) and n.den <= 0:
            msgs.append(f"den={n.den} must be positive")
    bits_fields = ("out_bits", "weight_bits", "state_bits", "coef_frac_bits", "trace_frac_bits")
    for f in bits_fields:
        v = getattr(n, f, None)
        if isinstance(v, int) and not 0 <= v <= 62:
            msgs.append(f"{f}={v} must be in [0, 62]")
    return msgs


def _attr_rules(cls_name: str, n: Node, defaults: dict[str, object]) -> list[str]:
    msgs: list[str] = []
    for f, default in defaults.items():
        v = getattr(n, f, None)
        if isinstance(default, np.ndarray):
            if not isinstance(v, np.ndarray):
                msgs.append(f"field {f} must be a numpy array, got {type(v).__name__}")
            continue
        if isinstance(default, bool):
            ok = isinstance(v, (bool, np.bool_))
        elif isinstance(default, int):
            ok = isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        elif isinstance(default, float):
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        elif isinstance(default, str):
            ok = isinstance(v, str)
        else:
            ok = True
        if not ok:
            msgs.append(f"field {f}={v!r} must be of type {type(default).__name__}")
            continue
        allowed = ENUM_ATTRS.get((cls_name, f))
        if allowed is not None and v not in allowed:
            msgs.append(f"field {f}={v!r} is not one of {', '.join(map(repr, allowed))}")
        if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
            msgs.append(f"field {f}={v} is not finite")
    return msgs


def _array_rules(n: Node, defaults: dict[str, object], integer: bool) -> tuple[list[str], list[str]]:
    """(dtype messages, finiteness messages)."""
    dtype_msgs: list[str] = []
    finite_msgs: list[str] = []
    for f, default in defaults.items():
        a = getattr(n, f, None)
        if not isinstance(default, np.ndarray) or not isinstance(a, np.ndarray):
            continue
        want = np.dtype(np.int64) if integer else default.dtype
        if a.dtype != want:
            dtype_msgs.append(f"{f} has dtype {a.dtype}, expected {want}")
        if a.dtype.kind in "fc" and a.size and not np.all(np.isfinite(a)):
            k = int(np.count_nonzero(~np.isfinite(a)))
            finite_msgs.append(f"{f} holds {k} NaN/Inf value(s) (first at index {np.argwhere(~np.isfinite(a))[0].tolist()})")
    return dtype_msgs, finite_msgs


# ---------------------------------------------------------------------------------------------------------- verify
def verify(graph: Graph) -> list[Violation]:
    """Run every rule on ``graph``; return all violations (empty list: valid)."""
    out: list[Violation] = []
    known = _known_classes()
    g = graph.g
    objs: dict[str, Node] = {}

    def add(rule: str, node: str, msg: str) -> None:
        out.append(Violation(rule, node, msg))

    for name, data in g.nodes(data=True):
        obj = data.get("node")
        if obj is None:
            srcs = [u for u in g.predecessors(name)] + [v for v in g.successors(name)]
            add("dangling-edge", name, f"edges {srcs} -> '{name}' end at a name that holds no node (add the node or remove the edge)")
            continue
        cls_name = known.get(type(obj))
        if cls_name is None:
            supported = ", ".join(sorted(list(FLOAT_NODES) + list(hw.INT_NODES)))
            add("node-type", name, f"node type {type(obj).__name__} is not an IR node class; supported: {supported}")
            continue
        objs[name] = obj
        defaults = field_defaults(type(obj))
        for m in _attr_rules(cls_name, obj, defaults):
            add("attr", name, m)
        integer = isinstance(obj, hw.QNode)
        dmsgs, fmsgs = _array_rules(obj, defaults, integer)
        for m in dmsgs:
            add("dtype", name, m)
        for m in fmsgs:
            add("finite", name, m)
        try:
            shape_msgs = _shape_rules(name, obj)
        except Exception as exc:  # a field of the wrong kind; already reported by 'attr'
            shape_msgs = [f"cannot check array shapes ({type(exc).__name__}: {exc})"]
        for m in shape_msgs:
            add("shape", name, m)
        if integer:
            for m in _range_rules(obj):
                add("range", name, m)

    # -- edges, ports and sizes
    for name, obj in objs.items():
        ports = obj.PORTS
        seen: set[str] = set()
        try:
            expected = input_sizes(obj)
        except Exception:
            expected = {}
        for src, _, d in sorted(g.in_edges(name, data=True), key=lambda e: e[2].get("order", 0)):
            port = d.get("port", "in")
            delay = d.get("delay", 0)
            if not isinstance(delay, int) or isinstance(delay, bool) or delay < 0:
                add("delay", name, f"edge {src} -> {name} has delay {delay!r}; delays are integers >= 0")
            if port not in ports:
                allowed = ", ".join(ports) if ports else "none (an input node takes no edges)"
                add("port", name, f"edge {src} -> {name} uses port '{port}'; {obj.op} ports: {allowed}")
                continue
            seen.add(port)
            if src not in objs:
                continue
            try:
                got = objs[src].out_size()
            except Exception:
                continue
            want = expected.get(port)
            if want is not None and got != want:
                add("size", name, f"edge {src} -> {name} port '{port}': source size {got}, {obj.op} expects {want}")
        for port in ports:
            if port not in seen:
                add("unconnected", name, f"{obj.op} port '{port}' has no input edge")

    # -- cycles
    acyclic = nx.is_directed_acyclic_graph(g)
    if not acyclic:
        cycles = []
        for c in nx.simple_cycles(g):
            cycles.append(" -> ".join(c + [c[0]]))
            if len(cycles) >= 5:
                break
        add("cycle", "", f"graph has cycle(s): {'; '.join(cycles)}; recurrence must live inside stateful nodes")

    # -- inputs and outputs
    input_like = (fl.Input, hw.QInput)
    if not graph.inputs:
        add("io", "", "graph.inputs is empty")
    if not graph.outputs:
        add("io", "", "graph.outputs is empty")
    for n in graph.inputs:
        if n not in objs:
            add("io", n, f"graph input '{n}' is not a node of the graph")
        elif not isinstance(objs[n], input_like):
            add("io", n, f"graph input '{n}' is a {objs[n].op}, not an Input/QInput node")
    for n in graph.outputs:
        if n not in objs:
            add("io", n, f"graph output '{n}' is not a node of the graph")
    for n, obj in objs.items():
        if isinstance(obj, input_like) and n not in graph.inputs:
            add("io", n, f"input node '{n}' is missing from graph.inputs {graph.inputs}")

    # -- reachability
    ins = [n for n in graph.inputs if n in g]
    outs = [n for n in graph.outputs if n in g]
    if ins:
        reach: set[str] = set(ins)
        for n in ins:
            reach |= nx.descendants(g, n)
        for n in objs:
            if n not in reach:
                add("unreachable", n, f"node is not reachable from the inputs {ins}")
    if outs:
        live: set[str] = set(outs)
        for n in outs:
            live |= nx.ancestors(g, n)
        for n in objs:
            if n not in live:
                add("dead", n, f"node's output reaches none of the outputs {outs} (remove it or wire it)")

    # -- sequence-end consistency
    if acyclic and len(objs) == g.number_of_nodes():
        ends = {n for n, o in objs.items() if o.SEQUENCE_END}
        after: set[str] = set()
        for n in ends:
            after |= nx.descendants(g, n)
        for n in sorted(after):
            per_step = [p for p in g.predecessors(n) if p not in after and p not in ends]
            if per_step:
                add("sequence-end", n, f"runs once at the sequence end but also takes per-step input(s) {per_step}")
    return out


def check(graph: Graph) -> Graph:
    """Raise :class:`IRError` listing every violation of ``graph``; return the graph when it is valid."""
    violations = verify(graph)
    if violations:
        listed = "; ".join(str(v) for v in violations)
        err = IRError(f"graph '{graph.name}' failed verification with {len(violations)} violation(s): {listed}")
        err.violations = violations  # type: ignore[attr-defined]
        raise err
    return graph
