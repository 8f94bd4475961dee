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
from neurocompile.ir.graph import Graph
from neurocompile.ir.nodes import FLOAT_NODES, Node
from neurocompile.ir.traits import field_meta

__all__ = ["Violation", "verify", "check", "input_sizes", "field_defaults", "ENUM_ATTRS", "RULES"]

RULES = (
    "node-type", "dangling-edge", "port", "unconnected", "size", "shape", "dtype", "range", "attr", "finite",
    "cycle", "io", "unreachable", "dead", "sequence-end", "delay",
)

def _enum_attrs() -> dict[tuple[str, str], tuple[str, ...]]:
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for name, cls in {**FLOAT_NODES, **hw.INT_NODES}.items():
        for f, meta in field_meta(cls).items():
            if "choices" in meta:
                out[(name, f)] = tuple(meta["choices"])
    return out


#: Allowed values of string fields, by (class name, field): read from the fields' ``choices`` metadata.
ENUM_ATTRS: dict[tuple[str, str], tuple[str, ...]] = _enum_attrs()


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


def input_sizes(node: Node) -> dict[str, int | None]:
    """The input size each port of ``node`` expects (None: not determined by the node's own fields)."""
    return node.port_sizes()


# ---------------------------------------------------------------------------------------------------------- shapes
def _shape_rules(name: str, n: Node) -> list[str]:
    """Messages for arrays of ``n`` that disagree with each other (read from the fields' ``dims`` metadata).

    The ``anchor`` fields are checked first and bind the dimension symbols; when one has the wrong number of
    dimensions the other shapes are not compared (they would all be reported against a wrong reference)."""
    msgs: list[str] = []
    meta = {f: m for f, m in field_meta(type(n)).items() if "dims" in m}
    sym: dict[str, int] = {}
    for f, m in meta.items():
        if not m.get("anchor"):
            continue
        a = getattr(n, f)
        if a.ndim != len(m["dims"]):
            msgs.append(f"{f} must have {len(m['dims'])} dimension(s), has shape {list(a.shape)}")
            return msgs
        sym.update(zip(m["dims"], (int(d) for d in a.shape)))
    for f, m in meta.items():
        if m.get("anchor"):
            continue
        when = m.get("when")
        if when is not None and getattr(n, when[0]) != when[1]:
            continue
        a = getattr(n, f)
        if m.get("optional") and a.size == 0:
            continue
        shape = tuple(sym[d] if d in sym else getattr(n, d) for d in m["dims"])
        if tuple(a.shape) != shape:
            msgs.append(f"{f} has shape {list(a.shape)}, expected {list(shape)}")
    msgs += [m for rule, m in n.check_fields() if rule == "shape"]
    # Nodes sized by an integer field must have a positive size.
    size = getattr(n, "size", None)
    if isinstance(size, int) and size < 0:
        msgs.append(f"size={size} must be >= 0")
    return msgs


# ---------------------------------------------------------------------------------------------------------- values
def _width(n: Node, v: int | str) -> int:
    return int(getattr(n, v)) if isinstance(v, str) else int(v)


def _range_rules(n: hw.QNode) -> list[str]:
    """Value ranges of an integer node, read from its fields' ``fits``, ``unit`` and ``range`` metadata."""
    msgs: list[str] = []
    for f, m in field_meta(type(n)).items():
        v = getattr(n, f)
        if isinstance(v, np.ndarray):
            if v.size == 0 or v.dtype != np.int64:
                continue
            lo, hi = int(v.min()), int(v.max())
            if "fits" in m:
                b = _width(n, m["fits"])
                what = m["fits"] if isinstance(m["fits"], str) else "width"
                if 0 < b <= 63 and (lo < -limit(b) or hi > limit(b)):
                    bad = hi if hi > limit(b) else lo
                    msgs.append(f"{f} value {bad} does not fit {what}={b} signed bits (limit +-{limit(b)})")
            if "unit" in m and 0 <= _width(n, m["unit"]) <= 62:
                one = 1 << _width(n, m["unit"])
                peak = max(abs(lo), abs(hi))
                if peak > one:
                    msgs.append(f"{f} magnitude {peak} exceeds 2^{m['unit']} = {one} (|a| <= 1)")
            if "range" in m:
                rlo, rhi = m["range"]
                if lo < rlo or (rhi is not None and hi > rhi):
                    msgs.append(f"{f} values must be in [{rlo}, {rhi}]")
        elif isinstance(v, int) and not isinstance(v, bool):
            if "unit" in m:
                fb = getattr(n, m["unit"])
                if isinstance(fb, int) and 0 <= fb <= 62 and not 0 <= v <= (1 << fb):
                    msgs.append(f"{f}={v} must be in [0, 2^{fb}] (a decay factor in [0, 1])")
            if "range" in m:
                rlo, rhi = m["range"]
                if v < rlo or (rhi is not None and v > rhi):
                    msgs.append(f"{f}={v} must be in [{rlo}, {rhi}]" if rhi is not None else f"{f}={v} must be >= {rlo}")
    msgs += [m for rule, m in n.check_fields() if rule == "range"]
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
        allowed = field_meta(type(n))[f].get("choices")
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
        integer = obj.FAMILY == "int"
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
    if not graph.inputs:
        add("io", "", "graph.inputs is empty")
    if not graph.outputs:
        add("io", "", "graph.outputs is empty")
    for n in graph.inputs:
        if n not in objs:
            add("io", n, f"graph input '{n}' is not a node of the graph")
        elif not objs[n].IS_INPUT:
            add("io", n, f"graph input '{n}' is a {objs[n].op}, not an Input/QInput node")
    for n in graph.outputs:
        if n not in objs:
            add("io", n, f"graph output '{n}' is not a node of the graph")
    for n, obj in objs.items():
        if obj.IS_INPUT and n not in graph.inputs:
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
