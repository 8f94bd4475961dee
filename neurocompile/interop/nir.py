"""NIR (Neuromorphic Intermediate Representation) import and export for the plain-SNN subset of the float IR.

>>> nir_graph = to_nir(graph)           # Affine / LIF / Heaviside / Add graphs
>>> write_nir(graph, "model.nir")
>>> graph = from_nir(nir.read("snn.nir"))  # e.g. exported from snnTorch or Norse

Time. NIR neurons are continuous-time ODEs; neurocompile's are discrete (one update per step). The two are tied
by forward Euler with step ``dt`` (the convention snnTorch's NIR export uses, default ``dt = 1e-4``):
``tau dv/dt = (v_leak - v) + R I`` becomes ``v_t = (1 - dt/tau) v_{t-1} + (dt/tau) v_leak + (dt R/tau) I_t``.
So a SpikingSSM LIF with decay factor ``a`` per step exports as ``tau = dt / (1 - a)``, ``R = 1 / (1 - a)``,
``v_leak = 0`` (then ``dt R / tau = 1``: the input enters unscaled) and ``v_reset = 0`` (hard reset to zero).
NIR's threshold compares with ``>``; SpikingSSM's with ``>=``: the comparison is kept in the node's metadata
(``neurocompile.compare``) and read back by :func:`from_nir` (NIR graphs without it get ``>``).

NIR 1.0 has no diagonal-SSM (complex-mode) node, no gating product, no sigmoid/GELU and no mean-over-time, so the
SSM families (SpikingSSM, Binary S4D, GSU, SPikE-SSM) are refused by :func:`to_nir` with a message naming every
such node. See docs/interop.md for the mapping table.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.errors import NeurocompileError, UnsupportedOpError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry

__all__ = ["DEFAULT_DT", "from_nir", "read_nir", "to_nir", "write_nir"]

#: Euler step (seconds) tying NIR's continuous time constants to per-step decay factors (snnTorch's default).
DEFAULT_DT = 1e-4
_EXPORTABLE = "Input, Affine, LIF (reset 'zero'), Heaviside, Add"
_IMPORTABLE = "Input, Output, Affine, Linear, Scale, Threshold, LIF, IF, LI, CubaLIF, Identity"


def _nir():
    try:
        import nir
    except ImportError as e:  # pragma: no cover
        raise NeurocompileError("NIR interop needs the 'nir' package: pip install nir") from e
    return nir


#: float node class -> ``(nir, name, node, dt) -> NIR node``, or a string saying why NIR 1.0 cannot express it.
EXPORT: Registry[Callable[[Any, str, Any, float], Any]] = Registry("nir-export", family="float")


def _no_nir(why: str) -> Callable[[Any, str, Any, float], str]:
    return lambda nir, name, n, dt: why


EXPORT.register(fl.S4D, fl.ModeBank, fl.ModeReadout)(_no_nir(
    "NIR 1.0 has no diagonal-SSM (complex-mode) node: its LI is a real, per-neuron leak and cannot carry the 2x2 "
    "decay-rotation of a complex mode"))
EXPORT.register(fl.Mul, fl.GLU)(_no_nir("NIR 1.0 has no elementwise product of two signals (gating)"))
EXPORT.register(fl.MeanPool)(_no_nir("NIR 1.0 has no mean-over-time (sequence-end) node"))
EXPORT.register(fl.RefractoryLIF)(_no_nir("NIR 1.0 has no neuron with a decaying refractory trace"))
EXPORT.register(fl.Embedding, fl.Ternarize, fl.Norm)(_no_nir("no NIR 1.0 primitive expresses it"))


@EXPORT.register(fl.Activation)
def _activation_nir(nir: Any, name: str, n: fl.Activation, dt: float) -> Any:
    return f"NIR 1.0 has no {n.fn!r} activation node"


@EXPORT.register(fl.Input)
def _input_nir(nir: Any, name: str, n: fl.Input, dt: float) -> Any:
    if n.tokens:
        return "token-id inputs have no NIR type"
    return nir.Input(input_type=np.array([n.out_size()]))


@EXPORT.register(fl.Affine)
def _affine_nir(nir: Any, name: str, n: fl.Affine, dt: float) -> Any:
    return nir.Affine(weight=n.weight.astype(np.float32), bias=n.bias.astype(np.float32))


@EXPORT.register(fl.LIF)
def _lif_nir(nir: Any, name: str, n: fl.LIF, dt: float) -> Any:
    if n.reset != "zero":
        return f"NIR's LIF resets to v_reset (hard reset); reset {n.reset!r} has no NIR equivalent"
    size = n.out_size()
    vth = n.vth.astype(np.float32)
    meta = {"neurocompile.compare": n.compare, "neurocompile.dt": float(dt)}
    if float(n.tau) == 1.0:  # no leak: an integrate-and-fire neuron, v += dt R I
        return nir.IF(r=np.full(size, 1.0 / dt, np.float32), v_threshold=vth, v_reset=np.zeros(size, np.float32),
                      metadata=meta)
    a = float(n.tau)
    if not 0.0 <= a < 1.0:
        return f"decay factor {a} is outside [0, 1]"
    return nir.LIF(tau=np.full(size, dt / (1.0 - a), np.float32), r=np.full(size, 1.0 / (1.0 - a), np.float32),
                   v_leak=np.zeros(size, np.float32), v_threshold=vth, v_reset=np.zeros(size, np.float32),
                   metadata=meta)


@EXPORT.register(fl.Heaviside)
def _heaviside_nir(nir: Any, name: str, n: fl.Heaviside, dt: float) -> Any:
    return nir.Threshold(threshold=n.vth.astype(np.float32), metadata={"neurocompile.compare": n.compare})


@EXPORT.register(fl.Add)
def _add_nir(nir: Any, name: str, n: fl.Add, dt: float) -> Any:
    return nir.Scale(scale=np.ones(n.out_size(), np.float32))  # NIR sums the edges into a node


def to_nir(graph: Graph, dt: float = DEFAULT_DT) -> Any:
    """Convert a float graph of Input / Affine / LIF / Heaviside / Add nodes to a ``nir.NIRGraph``.

    LIF decay factors become NIR time constants through ``dt`` (module docstring). Raises
    :class:`UnsupportedOpError` listing every node NIR cannot express (all SSM models: NIR 1.0 has no diagonal-SSM
    node) and edges with a delay.
    """
    nir = _nir()
    if not dt > 0:
        raise NeurocompileError(f"to_nir: dt must be positive, got {dt}")
    bad: list[str] = []
    nodes: dict[str, Any] = {}
    for name, n in graph.items():
        rule = EXPORT.get(n)
        made = rule(nir, name, n, dt) if rule is not None else "no NIR 1.0 primitive expresses it"
        if isinstance(made, str):
            bad.append(f"'{name}' ({n.op}): {made}")
        else:
            nodes[name] = made
    if bad:
        raise UnsupportedOpError(
            f"graph '{graph.name}' cannot be written as NIR: node {'; node '.join(bad)}. NIR export supports "
            f"{_EXPORTABLE} (plain SNNs); export SSM models to ONNX instead (neurocompile.interop.onnx)")
    edges: list[tuple[str, str]] = []
    for name in graph.order():
        for src in graph.preds(name):
            e = graph.edge(src, name)
            if int(e.get("delay", 0)):
                raise UnsupportedOpError(f"edge '{src}' -> '{name}' has a delay of {e['delay']} step(s); NIR export "
                                         f"supports zero-delay edges only")
            edges.append((src, name))
    for o in graph.outputs:
        out_name = "output" if len(graph.outputs) == 1 and "output" not in nodes else f"output.{o}"
        nodes[out_name] = nir.Output(output_type=np.array([graph.node(o).out_size()]))
        edges.append((o, out_name))
    return nir.NIRGraph(nodes=nodes, edges=edges,
                        metadata={"producer": "neurocompile", "name": graph.name, "dt": float(dt)})


def write_nir(graph: Graph, path: str | os.PathLike, dt: float = DEFAULT_DT) -> str:
    """Write :func:`to_nir` of ``graph`` to ``path`` (NIR's HDF5 format); returns the path."""
    nir = _nir()
    ng = to_nir(graph, dt)
    path = os.fspath(path)
    nir.write(path, ng)
    return path


def read_nir(path: str | os.PathLike, dt: float | None = None) -> Graph:
    """Read a NIR file and convert it with :func:`from_nir`."""
    nir = _nir()
    try:
        ng = nir.read(os.fspath(path))
    except Exception as e:  # h5py / nir raise many types
        raise NeurocompileError(f"cannot read NIR file '{path}': {e}") from e
    return from_nir(ng, dt=dt)


def _vec(name: str, kind: str, v: Any, size: int) -> np.ndarray:
    a = np.asarray(v, np.float64).reshape(-1)
    if a.size == 1:
        a = np.full(size, a[0])
    if a.size != size:
        raise UnsupportedOpError(f"NIR node '{name}' ({kind}): parameter of {a.size} values for {size} neurons")
    return a


def from_nir(nir_graph: Any, dt: float | None = None, name: str = "nir") -> Graph:
    """Convert a flat, feed-forward ``nir.NIRGraph`` of plain SNN primitives to a float :class:`Graph`.

    Supported: Input, Output, Affine, Linear, Scale, Identity, Threshold (-> Heaviside), LIF / IF (-> LIF, with an
    Affine in front when the input is scaled or v_leak != 0), LI (-> a real one-mode ModeBank + ModeReadout) and
    CubaLIF (synaptic current as a one-mode ModeBank, then LIF). ``dt`` (seconds per step) defaults to the graph's
    ``metadata['dt']``, else :data:`DEFAULT_DT`. Every neuron's ``v_reset`` must be 0 (hard reset to zero), and a
    LIF's time constant must be the same for all its neurons. Raises :class:`UnsupportedOpError` naming the node.
    """
    nir = _nir()
    meta = getattr(nir_graph, "metadata", None) or {}
    dt = float(dt if dt is not None else meta.get("dt", DEFAULT_DT))
    if not dt > 0:
        raise NeurocompileError(f"from_nir: dt must be positive, got {dt}")
    g = Graph(str(meta.get("name", name)))
    entry: dict[str, str] = {}  # NIR node -> IR node receiving its in-edges
    exit_: dict[str, str] = {}  # NIR node -> IR node emitting its output
    outputs: list[str] = []

    def refuse(nname: str, kind: str, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"NIR node '{nname}' ({kind}): {why}; from_nir supports {_IMPORTABLE} "
                                  f"(flat, feed-forward, 1-D)")

    def scaled(nname: str, size: int, k: np.ndarray, c: np.ndarray) -> str | None:
        """An Affine k*x + c in front of a neuron, unless it is the identity."""
        if np.allclose(k, 1.0, rtol=0, atol=1e-12) and not np.any(c):
            return None
        return g.add(f"{nname}.in", fl.Affine(weight=np.diag(k).astype(np.float32), bias=c.astype(np.float32)))

    def leak(nname: str, kind: str, tau: Any, size: int) -> np.ndarray:
        a = 1.0 - dt / _vec(nname, kind, tau, size)
        if np.any(a < 0) or np.any(a >= 1):
            raise refuse(nname, kind, f"dt/tau = {dt}/tau gives a per-step decay outside [0, 1) "
                                      f"(dt = {dt} s; pass dt=... matching the exporting simulator)")
        return a

    def mode(nname: str, a: np.ndarray, b: np.ndarray, src: str) -> str:
        size = a.size
        bank = g.add(f"{nname}.modes", fl.ModeBank(dA=a.astype(np.complex64).reshape(size, 1),
                                                 dB=b.astype(np.complex64).reshape(size, 1)), src)
        return g.add(nname, fl.ModeReadout(C=np.full((size, 1), 0.5, np.complex64), D=np.zeros(size, np.float32)),
                     {"state": bank, "skip": src})

    def reset0(nname: str, kind: str, node: Any, size: int) -> None:
        vr = getattr(node, "v_reset", None)
        if vr is not None and np.any(_vec(nname, kind, vr, size) != 0):
            raise refuse(nname, kind, "v_reset != 0; neurocompile's LIF resets to zero")

    for nname, node in nir_graph.nodes.items():
        kind = type(node).__name__
        if isinstance(node, nir.Input):
            size = int(np.prod(node.input_type["input"]))
            g.add(nname, fl.Input(size=size))
            g.inputs.append(nname)
            entry[nname] = exit_[nname] = nname
        elif isinstance(node, nir.Output):
            outputs.append(nname)
        elif isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight, np.float32)
            if w.ndim != 2:
                raise refuse(nname, kind, f"weight of shape {list(w.shape)} (2-D only)")
            bias = np.asarray(node.bias, np.float32) if isinstance(node, nir.Affine) else np.zeros(w.shape[0],
                                                                                                     np.float32)
            entry[nname] = exit_[nname] = g.add(nname, fl.Affine(weight=w, bias=bias.reshape(-1)))
        elif isinstance(node, nir.Scale):
            s = np.asarray(node.scale, np.float32).reshape(-1)
            entry[nname] = exit_[nname] = g.add(nname, fl.Affine(weight=np.diag(s), bias=np.zeros_like(s)))
        elif type(node).__name__ == "Identity":  # not exported at nir top level in every version
            size = int(np.prod(node.input_type["input"]))
            entry[nname] = exit_[nname] = g.add(nname, fl.Add(size=size))
        elif isinstance(node, nir.Threshold):
            vth = np.asarray(node.threshold, np.float32).reshape(-1)
            cmp = node.metadata.get("neurocompile.compare", ">") if node.metadata else ">"
            entry[nname] = exit_[nname] = g.add(nname, fl.Heaviside(vth=vth, compare=str(cmp)))
        elif isinstance(node, (nir.LIF, nir.IF, nir.CubaLIF)):
            size = int(np.asarray(node.v_threshold).size)
            vth = _vec(nname, kind, node.v_threshold, size).astype(np.float32)
            reset0(nname, kind, node, size)
            r = _vec(nname, kind, node.r, size)
            if isinstance(node, nir.IF):
                tau_step, k, c = 1.0, dt * r, np.zeros(size)
            else:
                tau_mem = node.tau if isinstance(node, nir.LIF) else node.tau_mem
                a = leak(nname, kind, tau_mem, size)
                if not np.allclose(a, a[0], rtol=1e-6, atol=0):
                    raise refuse(nname, kind, "time constants differ between neurons; neurocompile's LIF has one "
                                              "decay factor per population (split the population)")
                tau_step = float(a[0])
                k = (1.0 - a) * r
                c = (1.0 - a) * _vec(nname, kind, node.v_leak, size)
            cmp = node.metadata.get("neurocompile.compare", ">") if node.metadata else ">"
            lif = fl.LIF(tau=tau_step, vth=vth, reset="zero", compare=str(cmp))
            if isinstance(node, nir.CubaLIF):  # I_t = (1 - dt/tau_syn) I_{t-1} + (dt/tau_syn) w_in S_t
                a_syn = leak(nname, kind, node.tau_syn, size)
                first = g.add(f"{nname}.syn.in", fl.Add(size=size))
                syn = mode(f"{nname}.syn", a_syn, (1.0 - a_syn) * _vec(nname, kind, node.w_in, size), first)
                pre = scaled(nname, size, k, c)
                if pre is not None:
                    g.connect(syn, pre)
                g.add(nname, lif, pre or syn)
                entry[nname], exit_[nname] = first, nname
            else:
                pre = scaled(nname, size, k, c)
                g.add(nname, lif, pre) if pre else g.add(nname, lif)
                entry[nname], exit_[nname] = pre or nname, nname
        elif isinstance(node, nir.LI):  # v_t = a v_{t-1} + (1 - a)(v_leak + R I_t): a real one-mode bank
            size = int(np.asarray(node.tau).size)
            a = leak(nname, kind, node.tau, size)
            first = g.add(f"{nname}.in", fl.Affine(weight=np.diag((1.0 - a) * _vec(nname, kind, node.r, size))
                                                   .astype(np.float32),
                                                   bias=((1.0 - a) * _vec(nname, kind, node.v_leak, size))
                                                   .astype(np.float32)))
            mode(nname, a, np.ones(size), first)
            entry[nname], exit_[nname] = first, nname
        elif isinstance(node, nir.NIRGraph):
            raise refuse(nname, kind, "nested subgraphs are not supported (flatten the graph first)")
        else:
            raise refuse(nname, kind, "no neurocompile equivalent")
    for src, dst in nir_graph.edges:
        if src not in exit_ and src not in outputs:
            raise UnsupportedOpError(f"NIR edge '{src}' -> '{dst}': unknown source node")
        if dst in outputs:
            continue
        if dst not in entry:
            raise UnsupportedOpError(f"NIR edge '{src}' -> '{dst}': unknown destination node")
        g.connect(exit_[src], entry[dst])
    for o in outputs:
        srcs = [exit_[s] for s, d in nir_graph.edges if d == o]
        if len(srcs) == 1:
            g.outputs.append(srcs[0])
        elif srcs:
            size = g.node(srcs[0]).out_size()
            g.outputs.append(g.add(o, fl.Add(size=size), srcs))
        else:
            raise UnsupportedOpError(f"NIR output node '{o}' has no incoming edge")
    if not g.inputs:
        raise UnsupportedOpError("the NIR graph has no Input node")
    try:
        g.order()
    except NeurocompileError as e:
        raise UnsupportedOpError(f"the NIR graph is recurrent (a cycle among its nodes): {e}; from_nir imports "
                                 f"feed-forward graphs (recurrence only inside neurons)") from None
    g.meta["source"] = {"format": "nir", "dt": dt}
    return g
