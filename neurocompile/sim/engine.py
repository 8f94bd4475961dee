"""The integer simulator: runs a hardware (Q-node) graph over a dataset, bit-exactly, with activity counters.

:func:`simulate` steps time in ``graph.order()`` exactly as docs/semantics.md says, vectorised over the batch, the
channels and the compartments. Its arithmetic is the arithmetic of :mod:`neurocompile.sim.kernels` (the executable
specification); three interchangeable paths compute it (``arith``):

- ``'reference'``: every node through :func:`neurocompile.sim.kernels.step` (slow; the definition).
- ``'int64'``: fused NumPy int64 kernels with preallocated buffers for QDense, QModeBank and QModeReadout.
- ``'auto'`` (default): as ``'int64'``, but products whose exactness is proven at compile time run in floating
  point: QDense products in float32 BLAS when every partial sum stays below 2^24, in float64 BLAS below 2^53; the
  QModeBank recurrence and its QModeReadout in float64 when every intermediate value stays below 2^53. Past those
  bounds the node falls back to int64. ``SimResult.paths`` names the path each node took. The proof is in
  docs/simulator.md ("Exactness of the floating-point paths"); tests check the three paths agree bit for bit.

Counters (``SimResult.counts``, a :class:`~neurocompile.sim.counters.RunCounts`) are defined in docs/simulator.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.errors import DatasetError, IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import kernels
from neurocompile.sim.counters import LayerCounts, RunCounts
from neurocompile.sim.fixed import limit, quantize_round, sat
from neurocompile.sim.placement import (
    COMPUTE,
    SYNAPSE,
    Placement,
    compartments,
    fanout_nnz,
    place,
    roles,
    synapse_count,
    synops_dense_per_step,
)
from neurocompile.sim.placement_modes import message_routes, synapse_format

__all__ = ["SimResult", "simulate", "merge_results", "plan", "is_spiking", "ARITH", "EXACT_F32", "EXACT_F64"]

ARITH = ("auto", "int64", "reference")
EXACT_F32 = 1 << 24  # every integer of magnitude <= 2^24 is a float32; sums below it are exact
EXACT_F64 = 1 << 53  # the same for float64

Array = np.ndarray


# ------------------------------------------------------------------------------------------------------------
# Result
# ------------------------------------------------------------------------------------------------------------

@dataclass
class SimResult:
    """What one simulation run produced. Arrays are int64; ``n`` samples, ``T`` steps.

    Attributes:
        outputs: output node -> values: [n, size] for sequence-end outputs (logits), [n, T, size] otherwise.
        predictions: [n] argmax of the first output (of its last step when per-step); ties: lowest index.
        spikes: spiking node (out_bits <= 2) -> total spikes (non-zero outputs) over the run.
        spikes_per_step: spiking node -> [T] spikes at each step, summed over samples.
        saturations: node -> values clipped to their declared width (all nodes, zeros included).
        counts: activity counters (None when ``counters=False``).
        trace: with ``record=True``, node -> every output: [n, T, size] for per-step nodes (QAccumulate: its
            running sum), [n, size] for nodes after a sequence end.
        final_states: with ``record=True``, node -> its state after the last step (kernels' names and shapes,
            batch axis first): QModeBank 're', 'im' [n, H, M]; QLIF 'v'; QRefractory 'v', 's', 'r'; QAccumulate
            'acc'; QDense with delay 'pipe' [n, delay, out] (index 0 is emitted next).
        sample_trace: with ``record_sample=i``, node -> sample i's outputs ([T, size] or [size]).
        record_sample: the sample index of ``sample_trace``.
        placement: the placement used for message and hop counts (None without a target).
        paths: node -> arithmetic path: 'float32-blas', 'float64-blas', 'float64', 'int64' or 'kernel'.
        samples, steps: n and T.
    """

    outputs: dict[str, Array]
    predictions: Array
    spikes: dict[str, int]
    spikes_per_step: dict[str, Array]
    saturations: dict[str, int]
    counts: RunCounts | None
    samples: int
    steps: int
    trace: dict[str, Array] | None = None
    final_states: dict[str, dict[str, Array]] | None = None
    sample_trace: dict[str, Array] | None = None
    record_sample: int | None = None
    placement: Placement | None = None
    paths: dict[str, str] = field(default_factory=dict)
    spiking: tuple[str, ...] = ()  # spiking nodes, graph order
    backend: str = "numpy"  # 'compiled' (one numba step for the whole graph) or 'numpy' (``paths`` apply)

    @property
    def sample_spikes(self) -> dict[str, Array]:
        """Spike raster of the recorded sample: spiking node -> [T, size] (empty without ``record_sample``)."""
        if not self.sample_trace:
            return {}
        return {n: self.sample_trace[n] for n in self.spiking if n in self.sample_trace}


# ------------------------------------------------------------------------------------------------------------
# Compile-time plan: ports, value bounds, arithmetic paths
# ------------------------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------------------------
# In-place helpers
# ------------------------------------------------------------------------------------------------------------

def _sat_inplace(a: Array, m: int | None) -> int:
    """Clip ``a`` to [-m, m] in place; the number of clipped values (as fixed.sat counts them)."""
    if m is None or a.size == 0:
        return 0
    if a.max() <= m and a.min() >= -m:
        return 0
    n = int(np.count_nonzero(a > m) + np.count_nonzero(a < -m))
    np.clip(a, -m, m, out=a)
    return n


def _shift_parts(shift: Array, nearest: bool) -> tuple[Array, Array | int, Array | int, bool]:
    """rsh_round / rsh_floor by per-channel ``shift`` as ``((x + half) << L) >> R``: (half, L, R, any_left)."""
    s = np.asarray(shift, np.int64).reshape(-1)
    pos = np.maximum(s, 0)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0) if nearest else np.zeros_like(s)
    left = np.maximum(-s, 0)
    if s.size and np.all(s == s[0]):
        return half, int(left[0]), int(pos[0]), bool(left[0])
    return half, left, pos, bool(left.any())


def _any_last(mask: Array, out: Array) -> None:
    """out[...] = mask.any(axis=-1) for a C-contiguous bool array, eight lanes at a time when the last axis allows."""
    k = mask.shape[-1]
    if k % 8 == 0 and mask.flags.c_contiguous:
        words = mask.view(np.uint64)
        acc = words[..., 0].copy()
        for j in range(1, k // 8):
            np.bitwise_or(acc, words[..., j], out=acc)
        np.not_equal(acc, 0, out=out)
    else:
        np.any(mask, axis=-1, out=out)


def _trunc_inplace(x: Array, f: int, tmp: Array) -> None:
    """x = rsh_trunc(x, f) in place: (x + ((x >> 63) & (2^f - 1))) >> f rounds toward zero."""
    if f > 0:
        np.right_shift(x, 63, out=tmp)
        np.bitwise_and(tmp, (1 << f) - 1, out=tmp)
        np.add(x, tmp, out=x)
        np.right_shift(x, f, out=x)
    elif f < 0:
        np.left_shift(x, -f, out=x)


# ------------------------------------------------------------------------------------------------------------
# One batch
# ------------------------------------------------------------------------------------------------------------

class _Acc:
    """Run-wide accumulators (summable over batches)."""

    def __init__(self, p: _Plan, steps: int) -> None:
        g = p.graph
        self.nz = {n: np.zeros(g.node(n).out_size(), np.int64) for n in p.order}  # non-zero outputs per index
        self.edge_nz: dict[tuple[str, str], Array] = {}  # delayed edges: non-zero arrivals per index
        self.active = dict.fromkeys(p.order, 0)
        self.sat = dict.fromkeys(p.order, 0)
        self.spikes_t = {n: np.zeros(steps, np.int64) for n in p.spiking}

    def add(self, o: _Acc) -> None:
        for k, v in o.nz.items():
            self.nz[k] += v
        for k, v in o.edge_nz.items():
            if k in self.edge_nz:
                self.edge_nz[k] = self.edge_nz[k] + v
            else:
                self.edge_nz[k] = v.copy()
        for k in self.active:
            self.active[k] += o.active[k]
            self.sat[k] += o.sat[k]
        for k, v in o.spikes_t.items():
            self.spikes_t[k] += v


class _Batch:
    """Buffers, state and step closures of one batch of ``B`` samples."""

    def __init__(self, p: _Plan, x: dict[str, Array], acc: _Acc, counters: bool, rec: dict[str, Array] | None,
                 rec_row: int | None, rec_sample: dict[str, Array] | None, steps: int) -> None:
        self.p = p
        self.g = p.graph
        self.acc = acc
        self.counters = counters
        self.rec = rec  # node -> [B, T, size] view into the run-wide trace
        self.rec_row = rec_row
        self.rec_sample = rec_sample
        self.T = steps
        self.B = next(iter(x.values())).shape[0]
        self.vals: dict[str, Array | None] = {}
        self.st: dict[str, dict[str, Any]] = {}
        self.delay_lines: dict[tuple[str, str], list[Array]] = {}
        self.finals: dict[str, Callable[[], dict[str, Array]]] = {}
        self.events: dict[str, Array] = {}  # SYNAPSE dense -> bool [B, out]: a synaptic event arrived (counters)
        self.steps: list[Callable[[int], None]] = []
        self.flush: list[Callable[[], None]] = []
        self.x = x
        for name in p.step_order:
            self.steps.append(self._build(name))

    # -- inputs ----------------------------------------------------------------------------------------------
    def _gather(self, name: str, port: str, srcs: list[tuple[str, int]], buf: list, t: int) -> Array:
        if len(srcs) == 1 and srcs[0][1] == 0:
            v = self.vals[srcs[0][0]]
            assert v is not None
            return v
        total = None
        for src, d in srcs:
            v = self._delayed(src, name, d, t) if d > 0 else self.vals[src]
            if total is None:
                if len(srcs) == 1:
                    return v
                if not buf:
                    buf.append(np.empty_like(v))
                total = buf[0]
                np.copyto(total, v)
            else:
                np.add(total, v, out=total)
        if total is None:
            raise IRError(f"node '{name}': port '{port}' has no input")
        return total

    def _delayed(self, src: str, dst: str, d: int, t: int) -> Array:
        key = (src, dst)
        ring = self.delay_lines.get(key)
        v = self.vals[src]
        if ring is None:
            ring = [np.zeros_like(v) for _ in range(d + 1)]
            self.delay_lines[key] = ring
        np.copyto(ring[t % (d + 1)], v)
        out = ring[(t - d) % (d + 1)]
        if self.counters:
            nz = self.acc.edge_nz.setdefault(key, np.zeros(v.shape[1], np.int64))
            nz += np.count_nonzero(out, axis=0)
        return out

    # -- recording and counting ------------------------------------------------------------------------------
    def _emit(self, name: str, out: Array, t: int) -> None:
        """Count (non-zero outputs per index, spikes per step) and record this step's output of ``name``."""
        if self.counters:
            nz = np.count_nonzero(out, axis=0)
            self.acc.nz[name] += nz
            if name in self.acc.spikes_t:
                self.acc.spikes_t[name][t] += int(nz.sum())
        elif name in self.acc.spikes_t:
            self.acc.spikes_t[name][t] += int(np.count_nonzero(out))
        self._record(name, out, t)

    def _record(self, name: str, out: Array, t: int) -> None:
        if self.rec is not None and name in self.rec:
            self.rec[name][:, t] = out
        if self.rec_sample is not None and self.rec_row is not None and name in self.rec_sample:
            self.rec_sample[name][t] = out[self.rec_row]

    # -- node builders ---------------------------------------------------------------------------------------
    def _build(self, name: str) -> Callable[[int], None]:
        node = self.g.node(name)
        path = self.p.path[name]
        if isinstance(node, hw.QInput):
            return self._build_input(name, node)
        if isinstance(node, hw.QDense) and path != "kernel":
            return self._build_dense(name, node, path)
        if isinstance(node, hw.QModeBank) and path != "kernel":
            return self._build_modebank(name, node, path)
        if name in self.p.fused:
            return self._build_readout(name, node, path)
        return self._build_kernel(name, node)

    def _event_tracker(self, name: str, node: hw.QNode) -> Callable[[Array, int], None] | None:
        """For a SYNAPSE dense (counters on): a step function recording, per output, whether a synaptic event
        arrived (a stored synapse got a non-zero input), delayed like the dense's output (Loihi's update rule)."""
        if not (self.counters and self.p.role[name] == SYNAPSE and isinstance(node, hw.QDense)):
            return None
        B, n_out, delay = self.B, node.out_size(), int(node.delay)
        stored = (node.weight != 0).T.astype(np.float32)  # [in, out]: synapses stored
        full = bool(stored.all())  # every input reaches every output: an event is any non-zero input
        ring = [np.zeros((B, n_out), bool) for _ in range(delay)]
        self.events[name] = np.zeros((B, n_out), bool)

        def update(x: Array, t: int) -> None:
            if full:
                ev = np.broadcast_to(np.any(x != 0, axis=1)[:, None], (B, n_out))
            else:  # sums of 0/1 products: > 0 exactly when a stored synapse got a non-zero input
                ev = ((x != 0).astype(np.float32) @ stored) > 0
            if delay:
                slot = ring[t % delay]
                np.copyto(self.events[name], slot)
                np.copyto(slot, ev)
            else:
                self.events[name] = ev
        return update

    def _build_input(self, name: str, node: hw.QInput) -> Callable[[int], None]:
        x = self.x[name]
        if node.tokens:
            xq = np.ascontiguousarray(np.asarray(x, np.int64).reshape(self.B, self.T, 1).transpose(1, 0, 2))
        else:
            q, n = sat(quantize_round(x, node.out_scale), int(node.out_bits))
            self.acc.sat[name] += n
            xq = np.ascontiguousarray(q.transpose(1, 0, 2))

        def step(t: int) -> None:
            self.vals[name] = xq[t]
            self._emit(name, xq[t], t)
        return step

    def _build_kernel(self, name: str, node: hw.QNode) -> Callable[[int], None]:
        st = kernels.init_state(node, self.B)
        self.st[name] = st
        ports = self.p.ports[name]
        bufs: dict[str, list] = {p: [] for p, _ in ports}
        is_acc = isinstance(node, hw.QAccumulate)
        count_active = self.counters and self.p.role[name] == COMPUTE
        ev_srcs = [s for _, srcs in ports for s, d in srcs if d == 0 and self.p.role[s] == SYNAPSE
                   and isinstance(self.g.node(s), hw.QDense)]
        events = self._event_tracker(name, node)
        self.finals[name] = lambda: {k: (np.stack(v, axis=1) if k == "pipe" else v) for k, v in st.items()
                                     if k != "saturations"}

        def step(t: int) -> None:
            ins = {p: self._gather(name, p, srcs, bufs[p], t) for p, srcs in ports}
            if count_active:
                ev = None
                for s_ in ev_srcs:  # Loihi updates a neuron when any event arrives, even if they sum to zero
                    e_ = self.events.get(s_)
                    if e_ is not None:
                        ev = e_ if ev is None else (ev | e_)
                self.acc.active[name] += _active_count(node, ins, st, ev)
            if events is not None:
                events(ins["in"], t)
            before = st["saturations"]
            out = kernels.step(node, ins, st)
            self.acc.sat[name] += st["saturations"] - before
            st["saturations"] = 0
            if is_acc:
                self._record(name, st["acc"], t)
                return
            self.vals[name] = out
            self._emit(name, out, t)
        return step

    def _build_dense(self, name: str, node: hw.QDense, path: str) -> Callable[[int], None]:
        B, n_out = self.B, node.out_size()
        n_in = int(node.weight.shape[1])
        srcs = dict(self.p.ports[name])["in"]
        buf: list = []
        half, left, right, any_left = _shift_parts(node.shift, node.rounding != "floor")
        c = node.bias.astype(np.int64) + half
        m = limit(int(node.out_bits)) if node.out_bits > 0 else None
        acc = np.empty((B, n_out), np.int64)
        if path == "int64":
            wt = np.ascontiguousarray(node.weight.T, dtype=np.int64)
            xf = accf = None
        else:
            dt = np.float32 if path == "float32-blas" else np.float64
            wt = np.ascontiguousarray(node.weight.T, dtype=dt)
            xf = np.empty((B, n_in), dt)
            accf = np.empty((B, n_out), dt)
        delay = int(node.delay)
        ring = [np.zeros((B, n_out), np.int64) for _ in range(delay)]
        out_buf = np.empty((B, n_out), np.int64) if delay else acc
        count_active = self.counters and self.p.role[name] == COMPUTE
        sat_acc = self.acc.sat
        events = self._event_tracker(name, node)

        def finals() -> dict[str, Array]:
            return {"pipe": np.stack([ring[(self.T + j) % delay] for j in range(delay)], axis=1)} if delay else {}
        self.finals[name] = finals

        def step(t: int) -> None:
            x = self._gather(name, "in", srcs, buf, t)
            if count_active:  # a relay dense: every compartment is active when its input vector is non-zero
                self.acc.active[name] += int(np.count_nonzero(np.any(x != 0, axis=1))) * n_out
            if xf is not None:
                np.copyto(xf, x, casting="unsafe")
                np.matmul(xf, wt, out=accf)
                np.copyto(acc, accf, casting="unsafe")
            else:
                np.matmul(x, wt, out=acc)
            np.add(acc, c, out=acc)
            if any_left:
                np.left_shift(acc, left, out=acc)
            np.right_shift(acc, right, out=acc)
            sat_acc[name] += _sat_inplace(acc, m)
            if delay:
                slot = ring[t % delay]
                np.copyto(out_buf, slot)
                np.copyto(slot, acc)
            if events is not None:
                events(x, t)
            self.vals[name] = out_buf
            self._emit(name, out_buf, t)
        return step

    def _build_modebank(self, name: str, node: hw.QModeBank, path: str) -> Callable[[int], None]:
        """QModeBank with its state laid out [H, B, M] (re and im apart), in float64 or int64.

        Coefficients are broadcast once to full [H, B, M] arrays so that every operation runs over one
        contiguous array (NumPy cannot coalesce a broadcast over the middle axis).
        """
        B = self.B
        h, m_ = node.a_re.shape
        shape = (h, B, m_)
        f = int(node.coef_frac_bits)
        srcs = dict(self.p.ports[name])["in"]
        buf: list = []
        m = limit(int(node.out_bits)) if node.out_bits > 0 else None
        fl = path == "float64"
        dt = np.float64 if fl else np.int64
        re, im, nre, nim, t1, t2, uf = (np.zeros(shape, dt) for _ in range(7))
        state: dict[str, Any] = {"re": re, "im": im, "nre": nre, "nim": nim}
        kb = np.asarray(node.b_shift, np.int64).reshape(-1)

        def full(c: Array) -> Array:
            return np.ascontiguousarray(np.broadcast_to(c[:, None, :], shape), dtype=dt)
        if fl:  # a * 2^-F and b * 2^-kb are exact dyadic rationals: see docs/simulator.md
            are, aim = full(np.ldexp(node.a_re, -f)), full(np.ldexp(node.a_im, -f))
            scale = np.ldexp(1.0, -kb)[:, None]
            bre, bim = full(node.b_re * scale), full(node.b_im * scale)
        else:
            are, aim, bre, bim = full(node.a_re), full(node.a_im), full(node.b_re), full(node.b_im)
            half, left, right, any_left = _shift_parts(kb, True)
            half = half[:, None, None]
            if not np.isscalar(left):
                left, right = left[:, None, None], right[:, None, None]
        # the int64 interleaved output [B, H*M*2] is only built when something other than a fused readout reads it
        readers = [s_ for s_ in self.g.succs(name) if s_ not in self.p.fused]
        need_int = bool(readers) or (self.rec is not None and name in self.rec) or self.rec_sample is not None
        out4 = np.zeros((B, h, m_, 2), np.int64) if need_int else None
        counters = self.counters
        if counters:
            nzr = np.zeros(shape, np.int32)
            nzi = np.zeros(shape, np.int32)
            b_re, b_im = np.zeros(shape, bool), np.zeros(shape, bool)
            state["mode_nz"] = np.zeros(shape, bool)  # (re, im) != 0 after the last update
            act = np.zeros(shape, bool)
        self.st[name] = state
        self.vals[name] = None

        def finals() -> dict[str, Array]:
            return {"re": state["re"].transpose(1, 0, 2).astype(np.int64),
                    "im": state["im"].transpose(1, 0, 2).astype(np.int64)}
        self.finals[name] = finals

        def flush() -> None:  # per-index non-zero counts of this batch, in output order (h*M + m)*2 + c
            if counters:
                both = np.stack([nzr.sum(axis=1, dtype=np.int64), nzi.sum(axis=1, dtype=np.int64)], axis=-1)
                self.acc.nz[name] += both.reshape(-1)
        self.flush.append(flush)

        def step(t: int) -> None:
            re, im, nre, nim = state["re"], state["im"], state["nre"], state["nim"]
            u = self._gather(name, "in", srcs, buf, t)
            np.copyto(uf, u.T[:, :, None], casting="unsafe")
            if counters:  # a mode (2 compartments) is active when its input or its previous state is non-zero
                np.not_equal(uf, 0, out=act)
                np.logical_or(act, state["mode_nz"], out=act)
                self.acc.active[name] += 2 * int(np.count_nonzero(act))
            # re_t = rsh_trunc(a_re*re - a_im*im, F) + rsh_round(b_re*u, kb)
            np.multiply(are, re, out=nre)
            np.multiply(aim, im, out=t1)
            np.subtract(nre, t1, out=nre)
            # im_t = rsh_trunc(a_im*re + a_re*im, F) + rsh_round(b_im*u, kb)
            np.multiply(aim, re, out=nim)
            np.multiply(are, im, out=t1)
            np.add(nim, t1, out=nim)
            if fl:
                np.trunc(nre, out=nre)
                np.trunc(nim, out=nim)
                for dst, b in ((nre, bre), (nim, bim)):
                    np.multiply(b, uf, out=t1)
                    np.add(t1, 0.5, out=t1)
                    np.floor(t1, out=t1)
                    np.add(dst, t1, out=dst)
            else:
                _trunc_inplace(nre, f, t2)
                _trunc_inplace(nim, f, t2)
                for dst, b in ((nre, bre), (nim, bim)):
                    np.multiply(b, uf, out=t1)
                    np.add(t1, half, out=t1)
                    if any_left:
                        np.left_shift(t1, left, out=t1)
                    np.right_shift(t1, right, out=t1)
                    np.add(dst, t1, out=dst)
            self.acc.sat[name] += _sat_inplace(nre, m) + _sat_inplace(nim, m)
            state["re"], state["nre"], state["im"], state["nim"] = nre, re, nim, im
            if counters:
                np.not_equal(nre, 0, out=b_re)
                np.not_equal(nim, 0, out=b_im)
                np.add(nzr, b_re, out=nzr)
                np.add(nzi, b_im, out=nzi)
                np.logical_or(b_re, b_im, out=state["mode_nz"])
            if out4 is not None:
                np.copyto(out4[..., 0], nre.transpose(1, 0, 2), casting="unsafe")
                np.copyto(out4[..., 1], nim.transpose(1, 0, 2), casting="unsafe")
                flat = out4.reshape(B, -1)
                self.vals[name] = flat
                self._record(name, flat, t)
        return step

    def _build_readout(self, name: str, node: hw.QModeReadout, path: str) -> Callable[[int], None]:
        """QModeReadout fused with its QModeBank: batched products over the [H, B, M] state."""
        B = self.B
        h, m_ = node.c_re.shape
        bank = dict(self.p.ports[name])["state"][0][0]
        skip_srcs = dict(self.p.ports[name])["skip"]
        buf: list = []
        bst = self.st[bank]
        m = limit(int(node.out_bits)) if node.out_bits > 0 else None
        fl = path == "float64"
        out = np.empty((B, h), np.int64)
        count_active = self.counters and self.p.role[name] == COMPUTE
        act = np.zeros((h, B), bool)
        if fl:
            cre = node.c_re.astype(np.float64)[:, :, None]
            cim = node.c_im.astype(np.float64)[:, :, None]
            d = node.d.astype(np.float64)[:, None]
            s = np.asarray(node.shift, np.int64).reshape(-1)
            scale = np.ldexp(1.0, -s)[:, None]
            halfv = np.where(s > 0, 0.5, 0.0)[:, None]
            o1 = np.empty((h, B, 1))
            o2 = np.empty((h, B, 1))
            sk = np.empty((h, B))
        else:
            cre, cim, d = node.c_re, node.c_im, node.d[:, None]
            half, left, right, any_left = _shift_parts(node.shift, True)
            c = half[:, None]
            if not np.isscalar(left):
                left, right = left[:, None], right[:, None]
            sk = np.empty((h, B), np.int64)

        def step(t: int) -> None:
            re, im = bst["re"], bst["im"]
            skip = self._gather(name, "skip", skip_srcs, buf, t)
            if count_active:  # channel h is active when any of its modes or its skip input is non-zero
                _any_last(bst["mode_nz"], act)
                np.logical_or(act, skip.T != 0, out=act)
                self.acc.active[name] += int(np.count_nonzero(act))
            np.copyto(sk, skip.T, casting="unsafe")
            if fl:
                np.matmul(re, cre, out=o1)
                np.matmul(im, cim, out=o2)
                a = o1[..., 0]
                np.add(a, o2[..., 0], out=a)
                np.multiply(sk, d, out=sk)
                np.add(a, sk, out=a)
                np.multiply(a, scale, out=a)
                np.add(a, halfv, out=a)
                np.floor(a, out=a)
                self.acc.sat[name] += _sat_inplace(a, m)
                np.copyto(out, a.T, casting="unsafe")
            else:
                if re.dtype != np.int64:  # a float64 bank whose readout could not be proven exact in float64
                    re, im = re.astype(np.int64), im.astype(np.int64)
                a = np.einsum("hbm,hm->hb", re, cre) + np.einsum("hbm,hm->hb", im, cim) + d * sk
                np.add(a, c, out=a)
                if any_left:
                    np.left_shift(a, left, out=a)
                np.right_shift(a, right, out=a)
                self.acc.sat[name] += _sat_inplace(a, m)
                np.copyto(out, a.T)
            self.vals[name] = out
            self._emit(name, out, t)
        return step

    # -- running ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Array]:
        """All steps, then the sequence end. Returns the sequence-end values (node -> [B, size])."""
        for t in range(self.T):
            for fn in self.steps:
                fn(t)
        for fl in self.flush:
            fl()
        return self._sequence_end()

    def _sequence_end(self) -> dict[str, Array]:
        final: dict[str, Array] = {}
        for name in self.p.step_order:
            node = self.g.node(name)
            if node.SEQUENCE_END:
                final[name] = kernels.finish(node, self.st[name])
                if self.counters:
                    self.acc.nz[name] += np.count_nonzero(final[name], axis=0)
        for name in self.p.end_order:
            node = self.g.node(name)
            st = kernels.init_state(node, self.B)
            ins = {}
            for port, srcs in self.p.ports[name]:
                vals = [final[s] if s in final else self.vals[s] for s, _ in srcs]
                total = vals[0]
                for v in vals[1:]:
                    total = total + v
                ins[port] = total
            out = kernels.step(node, ins, st)
            if out is None:
                out = kernels.finish(node, st)
            self.acc.sat[name] += st["saturations"]
            final[name] = out
            self.st[name] = st
            if self.counters:
                self.acc.nz[name] += np.count_nonzero(out, axis=0)
        return final

    def final_states(self) -> dict[str, dict[str, Array]]:
        out: dict[str, dict[str, Array]] = {}
        for name in self.p.step_order:
            if name in self.finals:
                fs = self.finals[name]()
                if fs:
                    out[name] = fs
        return out


def _active_count(node: hw.QNode, ins: dict[str, Array], st: dict[str, Any], events: Array | None = None) -> int:
    """Updated compartments of this step (Loihi's rule): a synaptic event arrived (``events``, when the input
    comes through stored synapses), the input is non-zero, or the (previous) state is non-zero."""
    if isinstance(node, hw.QModeBank):
        mode = (st["re"] != 0) | (st["im"] != 0) | (ins["in"] != 0)[:, :, None]
        return 2 * int(np.count_nonzero(mode))
    if isinstance(node, hw.QModeReadout):
        h, m = node.c_re.shape
        state = ins["state"].reshape(-1, h, 2 * m)
        return int(np.count_nonzero(np.any(state != 0, axis=2) | (ins["skip"] != 0)))
    if isinstance(node, hw.QDense):
        return int(np.count_nonzero(np.any(ins["in"] != 0, axis=1))) * node.out_size()
    a = events
    for v in ins.values():
        a = (v != 0) if a is None else (a | (v != 0))
    for k in ("u", "v", "r", "s", "acc"):
        if k in st:
            a = (st[k] != 0) if a is None else (a | (st[k] != 0))
    return int(np.count_nonzero(a)) if a is not None else 0


# ------------------------------------------------------------------------------------------------------------
# Counters
# ------------------------------------------------------------------------------------------------------------

def _lut_ops(node: hw.QNode) -> int:
    """Look-ups of one step of one sample: one per QLUT element, one 1/sqrt per QLayerNorm."""
    if isinstance(node, hw.QLUT):
        return node.out_size()
    if isinstance(node, hw.QLayerNorm):
        return 1
    return 0


def _messages_in(g: Graph, p: _Plan, acc: _Acc, placement: Placement, name: str) -> int:
    """Messages received by the cores of ``name``: per source output index, its non-zero outputs times the
    cores of ``name`` it reaches (messages through a SYNAPSE dense are counted by the dense)."""
    mine = list(placement.node_cores.get(name, ()))
    if not mine or p.role[name] not in (COMPUTE, SYNAPSE):
        return 0
    total = 0
    for s_ in g.preds(name):
        reach = placement._reach.get(s_)
        if reach is None or reach.shape[1] == 0 or p.role[s_] == SYNAPSE:
            continue
        cols = [c for c in mine if c < reach.shape[1]]
        total += int(acc.nz[s_] @ reach[:, cols].sum(axis=1))
    return total


def _layer_counts(p: _Plan, acc: _Acc, samples: int, steps: int, placement: Placement | None) -> RunCounts:
    g = p.graph
    layers = []
    for name in p.order:
        node = g.node(name)
        role = p.role[name]
        n_steps = samples if name in p.end_order else samples * steps
        comp = compartments(node, role)
        nz = acc.nz[name]
        events = int(nz.sum()) if role != SYNAPSE else 0
        spiking = is_spiking(node)
        mac = ac = 0
        for port, srcs in p.ports[name]:
            fo = fanout_nnz(node, port)
            if fo is None:
                continue
            for src, d in srcs:
                arr = acc.edge_nz.get((src, name)) if d > 0 else acc.nz[src]
                if arr is None:
                    continue
                ops = int(arr @ fo)
                if is_spiking(g.node(src)):
                    ac += ops
                else:
                    mac += ops
        msgs = local = hops = hops_ns = msgs_in = 0
        core_ids: tuple[int, ...] = ()
        core_counts: tuple[int, ...] = ()
        if placement is not None:
            r = message_routes(placement, name)
            if r.messages.size == nz.size:
                msgs, local, hops, hops_ns = (int(nz @ v) for v in (r.messages, r.local, r.hops, r.hops_ns))
            core_ids = placement.node_cores[name]
            core_counts = placement.node_core_counts[name]
            msgs_in = _messages_in(g, p, acc, placement, name) if role != "host" else 0
        layers.append(LayerCounts(
            name=name,
            kind=type(node).__name__,
            core_ids=core_ids,
            core_neurons=core_counts,
            role=role,
            synapse_format=synapse_format(node),
            neurons=comp,
            synapses=synapse_count(node),
            spikes=events if spiking else 0,
            graded_messages=0 if spiking else events,
            payload_bits=0 if spiking else events * max(int(node.out_bits), 0),
            synops_dense=synops_dense_per_step(node) * n_steps,
            synops_effective_mac=mac,
            synops_effective_ac=ac,
            neuron_updates=acc.active[name],
            compartment_updates=comp * n_steps,
            state_update_ops=4 * (node.out_size() // 2) * n_steps if isinstance(node, hw.QModeBank) else 0,
            lut_ops=_lut_ops(node) * n_steps,
            messages=msgs,
            messages_local=local,
            messages_in=msgs_in,
            hops=hops,
            hops_ns=hops_ns,
            saturations=acc.sat[name],
            steps=n_steps,
            samples=samples,
        ))
    cores = placement.cores_used if placement is not None else 0
    return RunCounts(layers=tuple(layers), samples=samples, steps_per_sample=steps, cores_used=cores)


# ------------------------------------------------------------------------------------------------------------
# Public entry point
# ------------------------------------------------------------------------------------------------------------

def _inputs(graph: Graph, x: Array | Mapping[str, Array]) -> tuple[dict[str, Array], int, int]:
    names = list(graph.inputs)
    if not names:
        raise IRError(f"graph '{graph.name}' has no inputs")
    if not isinstance(x, Mapping):
        if len(names) != 1:
            raise DatasetError(f"graph '{graph.name}' has {len(names)} inputs ({', '.join(names)}): pass x as a "
                               "dict {input name: array}")
        x = {names[0]: x}
    out: dict[str, Array] = {}
    n = steps = None
    for name in names:
        if name not in x:
            raise DatasetError(f"no data for input '{name}' of graph '{graph.name}'")
        node = graph.node(name)
        a = np.asarray(x[name])
        if node.tokens:
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[:, :, 0]
            if a.ndim != 2 or not np.issubdtype(a.dtype, np.integer):
                raise DatasetError(f"input '{name}' takes token ids: expected an integer array [n, T], got "
                                   f"{a.dtype} {list(a.shape)}")
        else:
            if a.ndim == 2 and node.size == 1:
                a = a[:, :, None]
            if a.ndim != 3 or a.shape[2] != node.size:
                raise DatasetError(f"input '{name}' expects [n, T, {node.size}] features, got {list(a.shape)}")
        if n is None:
            n, steps = int(a.shape[0]), int(a.shape[1])
        elif (a.shape[0], a.shape[1]) != (n, steps):
            raise DatasetError(f"input '{name}' has {a.shape[0]} samples x {a.shape[1]} steps; expected {n} x {steps}")
        out[name] = a
    assert n is not None and steps is not None
    if steps < 1:
        raise DatasetError("inputs have no time steps (T = 0)")
    return out, n, steps


def simulate(graph: Graph, x: Array | Mapping[str, Array], *, batch_size: int = 64, record: bool = False,
             record_sample: int | None = None, counters: bool = True, target: Any = None,
             placement: Placement | None = None, progress: bool = False, arith: str = "auto",
             threads: int = 1, backend: str = "auto") -> SimResult:
    """Run the integer ``graph`` over dataset ``x`` bit-exactly (docs/semantics.md).

    Args:
        graph: a hardware graph (Q-nodes only).
        x: float features [n, T, d] (quantised by the graph's QInput), or int token ids [n, T]; a dict
            {input name: array} for graphs with several inputs.
        batch_size: samples simulated together (results do not depend on it).
        record: keep every node's output at every step (``trace``) and the final states (memory: n x T x size).
        record_sample: keep one sample's full trace (``sample_trace``, for the report's raster).
        counters: fill ``counts`` (a few passes over the state per step; off for pure accuracy runs).
        target: a :class:`~neurocompile.target.Target` or target name; used to place the graph when
            ``placement`` is not given (messages and hops need a placement; without one they are 0).
        placement: a precomputed :func:`~neurocompile.sim.placement.place` result.
        progress: show a progress bar over batches.
        arith: 'auto' (exact floating-point paths where proven), 'int64' or 'reference' (see module doc).
        threads: batches simulated concurrently in threads (NumPy releases the GIL in its loops); results do
            not depend on it.
        backend: 'compiled' (the whole step as one numba function, :mod:`neurocompile.sim.compiled`), 'numpy'
            (the paths above) or 'auto' (compiled when numba is installed, every node type has a compiled kernel
            and ``arith`` is 'auto'). Results do not depend on it.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    p = plan(graph, arith)
    xs, n, steps = _inputs(graph, x)
    if record_sample is not None and not 0 <= record_sample < n:
        raise DatasetError(f"record_sample {record_sample} is out of range: the dataset has {n} samples")
    if placement is None and target is not None:
        if isinstance(target, str):
            from neurocompile.target import load_target

            target = load_target(target)
        placement = place(graph, target)
    from neurocompile.sim.compiled import batch_runner

    runner = batch_runner(p, backend, xs, counters) or _Batch  # the compiled step, or the NumPy engine
    acc = _Acc(p, steps)
    per_step_outputs = [o for o in graph.outputs if o not in p.end_order and not graph.node(o).SEQUENCE_END]
    rec_nodes = list(p.order) if record else list(per_step_outputs)
    sizes = {nm: graph.node(nm).out_size() for nm in p.order}
    trace = {nm: np.zeros((n, steps, sizes[nm]), np.int64) for nm in rec_nodes if nm not in p.end_order}
    end_vals: dict[str, list[Array]] = {}
    sample_trace = None
    if record_sample is not None:
        sample_trace = {nm: np.zeros((steps, sizes[nm]), np.int64) for nm in p.step_order}
    states: dict[str, dict[str, list[Array]]] = {}

    starts = list(range(0, n, batch_size))

    def run_one(i0: int) -> tuple[int, int, dict[str, Array], dict[str, dict[str, Array]], _Acc]:
        i1 = min(n, i0 + batch_size)
        xb = {k: v[i0:i1] for k, v in xs.items()}
        rec = {k: v[i0:i1] for k, v in trace.items()}
        row = record_sample - i0 if record_sample is not None and i0 <= record_sample < i1 else None
        acc_b = _Acc(p, steps)
        batch = runner(p, xb, acc_b, counters, rec, row, sample_trace if row is not None else None, steps)
        final = batch.run()
        if row is not None and sample_trace is not None:
            for k in p.end_order:  # QAccumulate keeps its running sum, as in trace
                sample_trace[k] = np.asarray(final[k][row], np.int64)
        return i0, i1, final, (batch.final_states() if record else {}), acc_b

    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("samples"),
                       TimeRemainingColumn(), transient=True)
        bar.start()
        task = bar.add_task("sim", total=n)
    done: dict[int, tuple] = {}
    pool = None
    try:
        if threads > 1 and len(starts) > 1:
            from concurrent.futures import ThreadPoolExecutor, as_completed

            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="neurocompile-sim")
            futures = [pool.submit(run_one, i0) for i0 in starts]
            for fut in as_completed(futures):
                res = fut.result()
                done[res[0]] = res
                if bar is not None:
                    bar.update(task, advance=res[1] - res[0])
        else:
            for i0 in starts:
                done[i0] = run_one(i0)
                if bar is not None:
                    bar.update(task, advance=done[i0][1] - i0)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.stop()
    for i0 in starts:  # merge in sample order
        _, _, final, fstates, acc_b = done[i0]
        acc.add(acc_b)
        for k, v in final.items():
            end_vals.setdefault(k, []).append(np.asarray(v, np.int64))
        for k, sd in fstates.items():
            for sk, sv in sd.items():
                states.setdefault(k, {}).setdefault(sk, []).append(np.asarray(sv, np.int64))

    end = {k: np.concatenate(v, axis=0) for k, v in end_vals.items()}
    outputs: dict[str, Array] = {}
    for o in graph.outputs:
        outputs[o] = end[o] if o in end else trace[o]
    first = outputs[graph.outputs[0]] if graph.outputs else np.zeros((n, 1), np.int64)
    logits = first if first.ndim == 2 else first[:, -1, :]
    predictions = np.argmax(logits, axis=-1).astype(np.int64) if logits.shape[-1] else np.zeros(n, np.int64)
    full_trace = None
    if record:
        full_trace = dict(trace)
        for k in p.end_order:
            full_trace[k] = end[k]
    final_states = None
    if record:
        final_states = {k: {sk: np.concatenate(sv, axis=0) for sk, sv in d.items()} for k, d in states.items()}
    counts = _layer_counts(p, acc, n, steps, placement) if counters else None
    return SimResult(
        outputs=outputs,
        predictions=predictions,
        spikes={k: int(v.sum()) for k, v in acc.spikes_t.items()},
        spikes_per_step=dict(acc.spikes_t),
        saturations=dict(acc.sat),
        counts=counts,
        samples=n,
        steps=steps,
        trace=full_trace,
        final_states=final_states,
        sample_trace=sample_trace,
        record_sample=record_sample,
        placement=placement,
        paths=dict(p.path),
        backend="numpy" if runner is _Batch else "compiled",
        spiking=tuple(p.spiking),
    )


def merge_results(parts: Sequence[SimResult]) -> SimResult:
    """Concatenate runs over consecutive shards of one dataset (in order) into one result.

    Counts, spikes and saturations add; outputs, predictions, traces and final states concatenate along the
    sample axis. ``record_sample`` of a part is taken as an index into that part; the merged index is global.
    """
    if not parts:
        raise ValueError("merge_results needs at least one result")
    first = parts[0]
    steps = first.steps
    for r in parts:
        if r.steps != steps:
            raise ValueError(f"cannot merge runs of {steps} and {r.steps} steps")

    def cat(getter: Callable[[SimResult], dict[str, Array] | None]) -> dict[str, Array] | None:
        ds = [getter(r) for r in parts]
        if any(d is None for d in ds):
            return None
        return {k: np.concatenate([d[k] for d in ds], axis=0) for k in ds[0]}  # type: ignore[index]

    counts = None
    if all(r.counts is not None for r in parts):
        counts = parts[0].counts
        for r in parts[1:]:
            counts = counts + r.counts  # type: ignore[operator]
    offset = 0
    sample_trace = None
    record_sample = None
    for r in parts:
        if r.sample_trace is not None and r.record_sample is not None:
            sample_trace, record_sample = r.sample_trace, offset + r.record_sample
        offset += r.samples
    final_states = None
    if all(r.final_states is not None for r in parts):
        final_states = {k: {sk: np.concatenate([r.final_states[k][sk] for r in parts], axis=0)  # type: ignore[index]
                            for sk in d} for k, d in first.final_states.items()}  # type: ignore[union-attr]
    return dataclasses.replace(
        first,
        outputs=cat(lambda r: r.outputs) or {},
        predictions=np.concatenate([r.predictions for r in parts]),
        spikes={k: sum(r.spikes[k] for r in parts) for k in first.spikes},
        spikes_per_step={k: sum(r.spikes_per_step[k] for r in parts) for k in first.spikes_per_step},
        saturations={k: sum(r.saturations[k] for r in parts) for k in first.saturations},
        counts=counts,
        samples=sum(r.samples for r in parts),
        trace=cat(lambda r: r.trace),
        final_states=final_states,
        sample_trace=sample_trace,
        record_sample=record_sample,
    )
