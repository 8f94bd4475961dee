"""A neurocompile integer graph as a network of Lava Processes (the mapping; running it is in ``runner.py``).

One Lava Process per graph node, connected as the graph's edges (zero delay: every node model receives and
sends within one ``run_spk``). Lava's own ``Dense`` and ``LIF`` take the nodes whose semantics they share
(:func:`native_dense_params`, :func:`native_lif_params`); neurocompile's Processes (``proc/process.py``,
``proc/models.py``) take the rest. Inputs enter through :class:`~.proc.process.HostSource` (an external pipe fed
by the host with already quantised values); every node's output and state leave through an external tap pipe.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.backends.lava._require import require_lava
from neurocompile.errors import BackendError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.sim.fixed import limit, quantize_round, sat

INT32_MAX = (1 << 31) - 1


# -------------------------------------------------------------------------------------------------- the plan
def _out_limit(node: hw.QNode) -> int | None:
    """Largest |output| of ``node`` (None: unbounded)."""
    if node.out_bits <= 0:
        return None
    if node.out_bits <= 2:
        return 1
    return limit(node.out_bits)


def native_dense_params(graph: Graph, name: str) -> dict[str, Any] | None:
    """Arguments of Lava's ``Dense`` reproducing QDense ``name`` exactly, or None when it cannot.

    Lava's Dense matches a QDense with ``delay`` 1, ``rounding`` 'floor', no bias, one shift for all outputs,
    weights that fit its 8-bit sign modes, and sums that stay in int32 and never reach the node's saturation.
    """
    node = graph.node(name)
    if not isinstance(node, hw.QDense) or node.delay != 1 or node.rounding != "floor":
        return None
    if np.any(node.bias != 0) or node.shift.size == 0 or np.any(node.shift != node.shift[0]):
        return None
    m = node.weight
    if m.size == 0:
        return None
    if m.min() >= 0 and m.max() <= 255:
        weights, mode, k = m, "EXCITATORY", 0
    elif m.max() <= 0 and m.min() >= -255:
        weights, mode, k = m, "INHIBITORY", 0
    elif m.min() >= -128 and m.max() <= 127:
        weights, mode, k = m * 2, "MIXED", 1  # Lava drops one bit of mixed 8-bit weights: keep it even
    else:
        return None
    preds = graph.preds(name)
    limits = [_out_limit(graph.node(p)) for p in preds]
    if not preds or any(lim is None for lim in limits):
        return None
    in_limit = sum(limits)  # type: ignore[arg-type]
    s = int(node.shift[0])
    acc = int(np.abs(weights).sum(axis=1).max()) * in_limit
    weight_exp = -s - k
    out = acc << weight_exp if weight_exp >= 0 else -((-acc) >> -weight_exp)
    if acc > INT32_MAX or out > INT32_MAX or (node.out_bits > 0 and out > limit(node.out_bits)):
        return None
    # Lava's binary mode reads its (summed) input as bool: only one spiking source keeps that exact
    binary = len(preds) == 1 and graph.node(preds[0]).out_bits == 1
    return {"weights": weights.astype(np.int64), "weight_exp": weight_exp, "num_weight_bits": 8, "sign_mode": mode,
            "num_message_bits": 0 if binary else 24}


def native_lif_params(node: hw.QNode) -> dict[str, Any] | None:
    """Arguments of Lava's ``LIF`` reproducing a QLavaLIF exactly, or None (per-neuron vth, other widths)."""
    if not isinstance(node, hw.QLavaLIF) or node.vth.size == 0:
        return None
    if (node.coef_frac_bits, node.state_bits, node.act_shift, node.vth_shift) != (12, 24, 6, 6):
        return None
    if np.any(node.vth != node.vth[0]) or not 0 <= int(node.vth[0]) < (1 << 17):
        return None
    if not (0 <= node.du <= 4095 and 0 <= node.dv <= 4095):
        return None
    if np.abs(node.bias_mant).max() >= (1 << 12) or np.abs(node.bias_exp).max() > 7:
        return None
    return {"du": int(node.du), "dv": int(node.dv), "vth": int(node.vth[0]),
            "bias_mant": node.bias_mant.astype(np.int64), "bias_exp": node.bias_exp.astype(np.int64)}


def _check_graph(graph: Graph) -> None:
    from neurocompile.backends.lava.proc import load_all

    load_all()
    for name, node in graph.items():
        if node.FAMILY != "int" or not (node.IS_INPUT or node in PROCS):
            kinds = ", ".join(sorted(["QInput", *(c.__name__ for c in PROCS.types())]))
            raise BackendError(f"node '{name}' is a {type(node).__name__}; the Lava backend runs integer graphs "
                               f"only ({kinds}): quantise the model first")
        if node.IS_INPUT and name not in graph.inputs:
            raise BackendError(f"QInput '{name}' is not listed in graph.inputs")
    post = graph.sequence_end_nodes()
    for u, v, d in graph.g.edges(data=True):
        if d.get("delay", 0) and v in post:
            raise BackendError(f"edge {u} -> {v} has delay {d['delay']} into a node that runs after the sequence "
                               "end; the Lava backend supports edge delays between per-step nodes only")
    if not graph.inputs:
        raise BackendError(f"graph '{graph.name}' has no inputs")
    for name in graph.sequence_end_nodes():
        node = graph.node(name)
        if node.STATEFUL or node.state_vars():
            raise BackendError(f"node '{name}' runs after the sequence end and is stateful; the Lava backend "
                               "evaluates post-sequence nodes every step and needs them stateless")


# ----------------------------------------------------------------------------------------------- the network
@dataclass
class _Tap:
    """Where one node's per-step output (and state) reach the host."""

    node: str
    proc: Any  # the Process whose ``tap`` OutPort is an external pipe
    n_out: int
    states: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # per-sample layout after the output
    native: Any = None  # Lava's own Process (state read with Var.get), or None


class LavaNetwork:
    """A neurocompile integer graph mapped onto Lava Processes.

    Attributes:
        graph: the integer graph.
        batch: samples run side by side (None: one, and Lava's own Dense/LIF may be used).
        plan: node -> 'lava.Dense', 'lava.LIF' (Lava's own Process) or the name of neurocompile's Process.
        procs: node -> Lava Process of the most recent build (rebuilt by every :func:`run`).
    """

    def __init__(self, graph: Graph, batch: int | None = None, native: bool = True, tap_buffer: int = 64,
                 stall_timeout_s: float = 300.0) -> None:
        require_lava()
        _check_graph(graph)
        if batch is not None and int(batch) < 1:
            raise BackendError(f"batch must be >= 1 or None, got {batch}")
        self.graph = graph
        self.batch = None if batch is None else int(batch)
        self.native = bool(native) and self.batch is None
        self.tap_buffer = int(tap_buffer)
        self.stall_timeout_s = float(stall_timeout_s)
        self.procs: dict[str, Any] = {}
        self.plan: dict[str, str] = {}
        self._sources: dict[str, Any] = {}
        self._taps: list[_Tap] = []
        self._ctrl_users: list[Any] = []
        self._delay_lines: list[Any] = []  # EdgeDelayProc of edges with a delay
        self._used = True
        self.build()

    @property
    def lead(self) -> tuple[int, ...]:
        return () if self.batch is None else (self.batch,)

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for k in self.plan.values():
            kinds[k] = kinds.get(k, 0) + 1
        return f"LavaNetwork({self.graph.name!r}, batch={self.batch}, processes={kinds})"

    # -- build ----------------------------------------------------------------------------------------------
    def build(self) -> LavaNetwork:
        """Create fresh Lava Processes for the graph (a stopped runtime's Processes cannot run again)."""
        from lava.proc.dense.process import Dense
        from lava.proc.lif.process import LIF
        from lava.utils.weightutils import SignMode

        from neurocompile.backends.lava.proc import process as P

        g, lead, tb = self.graph, self.lead, self.tap_buffer
        self.procs, self.plan, self._sources, self._taps, self._ctrl_users = {}, {}, {}, [], []
        self._delay_lines = []
        outs: dict[str, Any] = {}  # node -> OutPort carrying its per-step output
        for name, node in g.items():
            common = {"lead": lead, "tap_buffer": tb, "name": name}
            if node.IS_INPUT:
                src = P.HostSource(n_out=node.out_size(), lead=lead, in_buffer=tb, name=name)
                self._sources[name] = src
                self.procs[name], self.plan[name], outs[name] = src, "HostSource", src.s_out
                continue
            dense = native_dense_params(g, name) if self.native else None
            lif = native_lif_params(node) if self.native else None
            if dense is not None:
                proc = Dense(weights=dense["weights"], weight_exp=dense["weight_exp"],
                             num_weight_bits=dense["num_weight_bits"], sign_mode=SignMode[dense["sign_mode"]],
                             num_message_bits=dense["num_message_bits"], name=name)
                self._add_native_tap(name, proc, proc.a_out, node.out_size(), [("pipe", (1, node.out_size()))])
                self.procs[name], self.plan[name], outs[name] = proc, "lava.Dense", proc.a_out
                ins = {"in": proc.s_in}
            elif lif is not None:
                n = node.out_size()
                proc = LIF(shape=(n,), du=lif["du"], dv=lif["dv"], vth=lif["vth"], bias_mant=lif["bias_mant"],
                           bias_exp=lif["bias_exp"], name=name)
                self._add_native_tap(name, proc, proc.s_out, n, [("u", (n,)), ("v", (n,))])
                self.procs[name], self.plan[name], outs[name] = proc, "lava.LIF", proc.s_out
                ins = {"in": proc.a_in}
            else:
                proc, states = _make_proc(P, node, common)
                self._taps.append(_Tap(name, proc, node.out_size(), states))
                if proc.STATEFUL:
                    self._ctrl_users.append(proc)
                self.procs[name], self.plan[name], outs[name] = proc, type(proc).__name__, proc.s_out
                ins = {port: proc.in_port(port) for port in node.PORTS}
            for src_name in g.preds(name):
                edge = g.edge(src_name, name)
                port = edge["port"]
                if port not in ins:
                    raise BackendError(f"edge {src_name} -> {name}: port '{port}' is not a port of "
                                       f"{type(node).__name__}")
                src_out = outs[src_name]
                if edge.get("delay", 0) > 0:  # a delay line Process on the edge
                    line = P.EdgeDelayProc(n=g.node(src_name).out_size(), delay=int(edge["delay"]), lead=lead,
                                           name=f"{src_name}->{name}.delay")
                    src_out.connect(line.a_in)
                    self._ctrl_users.append(line)
                    self._delay_lines.append(line)
                    src_out = line.s_out
                src_out.connect(ins[port])
        ctrl = self._sources[self.graph.inputs[0]].ctrl
        for proc in self._ctrl_users:
            ctrl.connect(proc.ctrl)
        self._used = False
        return self

    def _add_native_tap(self, name: str, proc: Any, out_port: Any, n_out: int, states: list) -> None:
        from neurocompile.backends.lava.proc import process as P

        tap = P.HostTap(n_out=n_out, lead=self.lead, tap_buffer=self.tap_buffer, name=f"{name}.tap")
        out_port.connect(tap.a_in)
        self._taps.append(_Tap(name, tap, n_out, states, native=proc))

    def any_process(self) -> Any:
        return next(iter(self._sources.values()))


States = list[tuple[str, tuple[int, ...]]]
#: node class -> ``(P, node, kw) -> (neurocompile's Process for it, its state layout in the tap per sample)``;
#: ``P`` is the ``proc.process`` module (imported only when Lava is present).
PROCS: Registry[Callable[[Any, Any, dict], tuple[Any, States]]] = Registry(
    "lava-process", family="int", exempt={"QInput": "fed by a HostSource from the host, built in LavaNetwork.build"})


def _make_proc(P: Any, node: hw.QNode, kw: dict) -> tuple[Any, States]:
    """neurocompile's Process for ``node`` and its state layout in the tap (per sample)."""
    from neurocompile.backends.lava.proc import load_all

    load_all()  # node types whose Process lives in a module of its own register on import
    make = PROCS.get(node)
    if make is None:
        raise BackendError(f"no Lava Process for node type {type(node).__name__}")
    return make(P, node, kw)


@PROCS.register(hw.QEmbedding)
def _p_embedding(P: Any, node: hw.QEmbedding, kw: dict) -> tuple[Any, States]:
    return P.QEmbeddingProc(table=node.table, **kw), []


@PROCS.register(hw.QDense)
def _p_dense(P: Any, node: hw.QDense, kw: dict) -> tuple[Any, States]:
    n = node.out_size()
    proc = P.QDenseProc(weight=node.weight, bias=node.bias, shift=node.shift, out_bits=node.out_bits,
                        rounding=node.rounding, delay=node.delay, **kw)
    return proc, ([("pipe", (node.delay, n))] if node.delay > 0 else [])


@PROCS.register(hw.QModeBank)
def _p_modebank(P: Any, node: hw.QModeBank, kw: dict) -> tuple[Any, States]:
    return P.QModeBankProc(a_re=node.a_re, a_im=node.a_im, b_re=node.b_re, b_im=node.b_im, b_shift=node.b_shift,
                           coef_frac_bits=node.coef_frac_bits, out_bits=node.out_bits, **kw), []


@PROCS.register(hw.QModeReadout)
def _p_modereadout(P: Any, node: hw.QModeReadout, kw: dict) -> tuple[Any, States]:
    return P.QModeReadoutProc(c_re=node.c_re, c_im=node.c_im, d=node.d, shift=node.shift,
                              out_bits=node.out_bits, **kw), []


@PROCS.register(hw.QLIF)
def _p_lif(P: Any, node: hw.QLIF, kw: dict) -> tuple[Any, States]:
    return P.QLIFProc(decay=node.decay, vth=node.vth, coef_frac_bits=node.coef_frac_bits,
                      state_bits=node.state_bits, reset=node.reset, compare=node.compare, **kw), _unit_states(node)


@PROCS.register(hw.QHeaviside)
def _p_heaviside(P: Any, node: hw.QHeaviside, kw: dict) -> tuple[Any, States]:
    return P.QHeavisideProc(vth=node.vth, compare=node.compare, **kw), []


@PROCS.register(hw.QRefractory)
def _p_refractory(P: Any, node: hw.QRefractory, kw: dict) -> tuple[Any, States]:
    return (P.QRefractoryProc(decay=node.decay, lam=node.lam, vth=node.vth, rho=node.rho,
                              coef_frac_bits=node.coef_frac_bits, trace_frac_bits=node.trace_frac_bits,
                              state_bits=node.state_bits, **kw), _unit_states(node))


@PROCS.register(hw.QLUT)
def _p_lut(P: Any, node: hw.QLUT, kw: dict) -> tuple[Any, States]:
    return P.QLUTProc(table=node.table, in_shift=node.in_shift, offset=node.offset, size=node.out_size(), **kw), []


@PROCS.register(hw.QMul)
def _p_mul(P: Any, node: hw.QMul, kw: dict) -> tuple[Any, States]:
    return P.QMulProc(shift=node.shift, size=node.out_size(), out_bits=node.out_bits, **kw), []


@PROCS.register(hw.QLayerNorm)
def _p_layernorm(P: Any, node: hw.QLayerNorm, kw: dict) -> tuple[Any, States]:
    return P.QLayerNormProc(size=node.out_size(), mean_mul=node.mean_mul, mean_shift=node.mean_shift,
                            var_shift=node.var_shift, eps=node.eps, index_bits=node.index_bits,
                            rsqrt_table=node.rsqrt_table, weight=node.weight, bias=node.bias, shift=node.shift,
                            out_bits=node.out_bits, **kw), []


@PROCS.register(hw.QTernarize)
def _p_ternarize(P: Any, node: hw.QTernarize, kw: dict) -> tuple[Any, States]:
    return P.QTernarizeProc(num=node.num, den=node.den, size=node.out_size(), **kw), []


@PROCS.register(hw.QAdd)
def _p_add(P: Any, node: hw.QAdd, kw: dict) -> tuple[Any, States]:
    return P.QAddProc(size=node.out_size(), out_bits=node.out_bits, **kw), []


@PROCS.register(hw.QAccumulate)
def _p_accumulate(P: Any, node: hw.QAccumulate, kw: dict) -> tuple[Any, States]:
    return P.QAccumulateProc(size=node.out_size(), out_bits=node.out_bits, **kw), _unit_states(node)


@PROCS.register(hw.QLavaLIF)
def _p_lavalif(P: Any, node: hw.QLavaLIF, kw: dict) -> tuple[Any, States]:
    return (P.QLavaLIFProc(du=node.du, dv=node.dv, vth=node.vth, bias_mant=node.bias_mant, bias_exp=node.bias_exp,
                           coef_frac_bits=node.coef_frac_bits, state_bits=node.state_bits,
                           act_shift=node.act_shift, vth_shift=node.vth_shift, **kw), _unit_states(node))


def _unit_states(node: hw.QNode) -> States:
    """The tap layout of a neuron's state variables (one value per output unit each, in ``STATE`` order)."""
    return [(v.name, v.shape(node)) for v in node.STATE]


# -------------------------------------------------------------------------------------------------- inputs
def _as_inputs(graph: Graph, x: Any) -> dict[str, np.ndarray]:
    if isinstance(x, Mapping):
        missing = [n for n in graph.inputs if n not in x]
        if missing:
            raise BackendError(f"inputs {missing} missing; the graph's inputs are {graph.inputs}")
        return {n: np.asarray(x[n]) for n in graph.inputs}
    if len(graph.inputs) != 1:
        raise BackendError(f"graph has {len(graph.inputs)} inputs {graph.inputs}: pass x as a dict")
    return {graph.inputs[0]: np.asarray(x)}


def quantize_inputs(graph: Graph, x: Any, steps: int | None = None, count: bool = False) -> tuple:
    """Host-side QInput: ({input: int64 [n, T, size]}, n, T), floats quantised with ``quantize_round`` and
    saturated to ``out_bits``; with ``count``, also {input: values clipped}."""
    xs = _as_inputs(graph, x)
    out: dict[str, np.ndarray] = {}
    clipped: dict[str, int] = {}
    n = t_len = None
    for name, a in xs.items():
        node = graph.node(name)
        if node.tokens and a.ndim == 2:
            a = a[..., None]
        if a.ndim == 2 and node.size == 1:
            a = a[..., None]
        if a.ndim != 3 or a.shape[2] != node.size:
            raise BackendError(f"input '{name}' must have shape [n, T, {node.size}] (got {list(a.shape)})")
        if steps is not None:
            if steps > a.shape[1]:
                raise BackendError(f"steps={steps} exceeds the input length T={a.shape[1]}")
            a = a[:, :steps]
        if node.tokens:
            q = a.astype(np.int64)
        else:
            q, clipped[name] = sat(quantize_round(a, node.out_scale), node.out_bits)
        out[name] = q
        if n is None:
            n, t_len = a.shape[0], a.shape[1]
        elif (n, t_len) != (a.shape[0], a.shape[1]):
            raise BackendError("all inputs need the same number of samples and steps")
    if not t_len:
        raise BackendError("need at least one step of input")
    if count:
        return out, int(n), int(t_len), clipped
    return out, int(n), int(t_len)


# --------------------------------------------------------------------------------------------------- loading
def load(artifact: Graph | str | os.PathLike, batch: int | None = None, native: bool = True,
         tap_buffer: int = 64) -> LavaNetwork:
    """Build the Lava network of an artifact directory (its integer graph) or of an integer Graph."""
    require_lava()
    if isinstance(artifact, Graph):
        graph = artifact
    else:
        graph = _load_artifact_graph(Path(artifact))
    return LavaNetwork(graph, batch=batch, native=native, tap_buffer=tap_buffer)


def _load_artifact_graph(path: Path) -> Graph:
    """The integer graph of an artifact directory (manifest checked) or of a saved graph directory."""
    from neurocompile.errors import NeurocompileError

    if not path.exists():
        raise BackendError(f"artifact '{path}' does not exist; create one with 'neurocompile export MODEL --target T'")
    try:
        if (path / "manifest.json").is_file():
            from neurocompile.artifact import load_artifact

            return load_artifact(path).int_graph
        from neurocompile.ir.serialize import load_graph

        for c in (path, path / "int"):
            if (c / "graph.json").is_file():
                return load_graph(c)
    except NeurocompileError as e:
        raise BackendError(f"cannot load '{path}' for the Lava backend: {e}") from e
    raise BackendError(f"'{path}' is neither a neurocompile artifact (manifest.json) nor a saved graph (graph.json)")
