"""The compiled backend of the simulator: the whole graph's step as one numba function (no Python per node per step).

:func:`program` turns an engine plan into flat int64 tables (node rows, port-source rows, one parameter arena);
:class:`Layout` places a batch's outputs, port sums, delay rings, states and counters in flat arenas; and
:func:`neurocompile.sim.compiled_kernels.run_chunk` advances all of it over a chunk of steps. The arithmetic is
int64 exactly as :mod:`neurocompile.sim.kernels` (docs/semantics.md), so results are bit-identical to the NumPy
engine; tests compare outputs, traces, states, saturations and counters on every node type.

:class:`CompiledBatch` has the interface of the engine's batch runner (``run()``, ``final_states()``), so
``simulate(..., backend='compiled')`` only swaps the class. ``available()`` is False without numba; the engine
then keeps its NumPy path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.sim import kernels
from neurocompile.sim.fixed import limit, quantize_round, rsh_floor, rsh_round, sat
from neurocompile.sim.placement import COMPUTE

__all__ = ["BACKENDS", "CompiledBatch", "Layout", "Program", "available", "batch_runner", "program", "supports"]

BACKENDS = ("auto", "numpy", "compiled")
Array = np.ndarray

_OPS: dict[type, str] = {
    hw.QInput: "INPUT", hw.QEmbedding: "EMBEDDING", hw.QDense: "DENSE", hw.QModeBank: "MODEBANK",
    hw.QModeReadout: "READOUT", hw.QLIF: "LIF", hw.QHeaviside: "HEAVISIDE", hw.QRefractory: "REFRACTORY",
    hw.QLUT: "LUT", hw.QMul: "MUL", hw.QTernarize: "TERNARIZE", hw.QAdd: "ADD", hw.QAccumulate: "ACCUMULATE",
    hw.QLavaLIF: "LAVALIF", hw.QLayerNorm: "LAYERNORM",
}


def _ck() -> Any:
    from neurocompile.sim import compiled_kernels

    return compiled_kernels


def available() -> bool:
    """True when numba is installed (the compiled step can run)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _lim(bits: int) -> int:
    """Saturation limit of ``bits`` (-1: no saturation, for bits <= 0)."""
    return limit(int(bits)) if int(bits) > 0 else -1


def supports(p: Any) -> str | None:
    """None when every node of plan ``p`` that runs per step has a compiled kernel; otherwise the reason."""
    g = p.graph
    for name in p.step_order:
        node = g.node(name)
        if type(node) not in _OPS:
            return f"node '{name}' ({type(node).__name__}) has no compiled kernel"
        for port, srcs in p.ports[name]:
            sizes = {g.node(s).out_size() for s, _ in srcs}
            if len(sizes) > 1:
                return f"node '{name}': port '{port}' sums sources of different sizes"
            if not srcs and not isinstance(node, hw.QInput):
                return f"node '{name}': port '{port}' has no input"
        if isinstance(node, hw.QEmbedding):
            srcs = dict(p.ports[name])["in"]
            if len(srcs) != 1 or srcs[0][1] or not isinstance(g.node(srcs[0][0]), hw.QInput):
                return f"node '{name}': embedding not fed directly by a token input"
    return None


@dataclass
class Program:
    """A plan as flat tables that do not depend on the batch size (parameters and per-node scalars)."""

    plan: Any
    names: list[str]  # nodes run every step, in order
    ops: list[int]
    prm: Array  # int64 parameter arena
    prm_off: list[int]
    scalars: list[list[int]]  # op-specific A0.. columns
    tmp_size: int
    index: dict[str, int] = field(default_factory=dict)
    whole: set[str] = field(default_factory=set)  # feed-forward in time: computed for a whole chunk at once


WHOLE_MIN_ROWS = 32  # samples x steps of a chunk from which whole-sequence products pay for their set-up

# stateless node types; fed only by inputs (through such nodes, without delays) they are computed for all steps of
# a chunk at once (one matrix product per chunk) and enter the compiled loop as precomputed inputs
_TIME_FREE = (hw.QDense, hw.QLUT, hw.QMul, hw.QAdd, hw.QHeaviside, hw.QTernarize, hw.QLayerNorm, hw.QEmbedding)


def _whole_sequence_nodes(p: Any) -> set[str]:
    g = p.graph
    free = {n for n in p.step_order if isinstance(g.node(n), hw.QInput)}
    whole: set[str] = set()
    for name in p.step_order:
        node = g.node(name)
        if (isinstance(node, _TIME_FREE) and not getattr(node, "delay", 0)
                and all(src in free and d == 0 for _, srcs in p.ports[name] for src, d in srcs)):
            whole.add(name)
            free.add(name)
    return whole


def _whole_dense(node: hw.QDense, x: Array, path: str) -> tuple[Array, int]:
    """kernels.step_dense over all rows at once; the product in float BLAS where the plan proved it exact."""
    if path in ("float32-blas", "float64-blas"):
        dt = np.float32 if path == "float32-blas" else np.float64
        acc = (x.astype(dt) @ np.asarray(node.weight, dt).T).astype(np.int64)
    else:
        acc = x @ np.asarray(node.weight, np.int64).T
    acc += node.bias
    shifted = rsh_floor(acc, node.shift) if node.rounding == "floor" else rsh_round(acc, node.shift)
    return sat(shifted, int(node.out_bits))


def _params(node: hw.QNode) -> tuple[list[Array], list[int]]:
    """Parameter arrays (concatenated into the arena) and the op-specific scalars of ``node``."""
    i64 = lambda a: np.asarray(a, np.int64).reshape(-1)
    if isinstance(node, hw.QDense):
        w = np.asarray(node.weight, np.int64)
        shift = np.broadcast_to(i64(node.shift), (w.shape[0],)) if i64(node.shift).size == 1 else i64(node.shift)
        return ([i64(w.T.copy()), i64(node.bias), i64(shift)],
                [int(w.shape[1]), int(node.rounding == "floor"), int(node.delay)])
    if isinstance(node, hw.QModeBank):
        h, m = node.a_re.shape
        kb = i64(node.b_shift)
        kb = np.broadcast_to(kb, (h,)) if kb.size == 1 else kb
        kbm = np.repeat(kb, m)  # per-mode copies: rsh_round(x, kb) = ((x + half) << left) >> right
        half = np.where(kbm > 0, np.left_shift(np.int64(1), np.maximum(kbm - 1, 0)), 0)
        return ([i64(node.a_re), i64(node.a_im), i64(node.b_re), i64(node.b_im), i64(half),
                 i64(np.maximum(-kbm, 0)), i64(np.maximum(kbm, 0))], [h, m, int(node.coef_frac_bits)])
    if isinstance(node, hw.QModeReadout):
        h, m = node.c_re.shape
        s = i64(node.shift)
        s = np.broadcast_to(s, (h,)) if s.size == 1 else s
        return [i64(node.c_re), i64(node.c_im), i64(node.d), i64(s)], [h, m]
    if isinstance(node, hw.QLIF):
        return ([i64(node.vth)], [int(node.decay), int(node.coef_frac_bits), _lim(node.state_bits),
                                  int(node.reset != "zero"), int(node.compare == ">=")])
    if isinstance(node, hw.QRefractory):
        return ([i64(node.vth), i64(node.rho)], [int(node.decay), int(node.lam), int(node.coef_frac_bits),
                                                 int(node.trace_frac_bits), _lim(node.state_bits)])
    if isinstance(node, hw.QLavaLIF):
        n = node.out_size()
        bias = np.broadcast_to(rsh_floor(i64(node.bias_mant), -i64(node.bias_exp)), (n,))
        f = int(node.coef_frac_bits)
        return ([i64(node.vth), i64(bias)], [f, int(node.state_bits), (1 << f) - (int(node.du) + 1),
                                             (1 << f) - int(node.dv), int(node.act_shift), int(node.vth_shift)])
    if isinstance(node, hw.QHeaviside):
        return [i64(node.vth)], [int(node.compare == ">=")]
    if isinstance(node, hw.QLUT):
        return [i64(node.table)], [int(node.in_shift), int(node.offset), int(np.asarray(node.table).shape[0])]
    if isinstance(node, hw.QMul):
        return [], [int(node.shift)]
    if isinstance(node, hw.QTernarize):
        return [], [int(node.num), int(node.den)]
    if isinstance(node, hw.QEmbedding):
        return [i64(node.table)], [int(node.table.shape[0])]
    if isinstance(node, hw.QLayerNorm):
        n = node.size
        b = lambda a: np.broadcast_to(i64(a), (n,)) if i64(a).size == 1 else i64(a)
        return ([b(node.weight), b(node.bias), b(node.shift), i64(node.rsqrt_table)],
                [int(node.mean_mul), int(node.mean_shift), int(node.var_shift), int(node.eps), int(node.index_bits)])
    return [], []  # QInput, QAdd, QAccumulate


def program(p: Any) -> Program:
    """Flatten plan ``p`` (cached on the plan: one program per plan)."""
    cached = getattr(p, "_compiled_program", None)
    if cached is not None:
        return cached
    ck = _ck()
    g = p.graph
    names = list(p.step_order)
    ops, offs, scalars, chunks = [], [], [], []
    pos = 0
    tmp = 1
    for name in names:
        node = g.node(name)
        ops.append(getattr(ck, _OPS[type(node)]))
        arrays, sc = _params(node)
        offs.append(pos)
        for a in arrays:
            chunks.append(a)
            pos += a.size
        scalars.append(sc)
        if isinstance(node, (hw.QDense, hw.QModeBank, hw.QModeReadout)):  # scratch of a sample's row
            tmp = max(tmp, node.out_size() if not isinstance(node, hw.QModeReadout) else 2 * node.c_re.size)
    prm = np.concatenate(chunks) if chunks else np.zeros(1, np.int64)
    prog = Program(plan=p, names=names, ops=ops, prm=np.ascontiguousarray(prm, np.int64), prm_off=offs,
                   scalars=scalars, tmp_size=tmp, index={n: i for i, n in enumerate(names)},
                   whole=_whole_sequence_nodes(p))
    p._compiled_program = prog
    return prog


class Layout:
    """Arenas of one batch of ``B`` samples: outputs, port sums and delay rings (``buf``), states (``st``),
    counters (``nz``, ``edge_nz``, ``active``, ``sat``, ``spk``) and recorded outputs (``rec``)."""

    def __init__(self, prog: Program, B: int) -> None:
        ck = _ck()
        p, g = prog.plan, prog.plan.graph
        self.prog, self.B = prog, B
        n = len(prog.names)
        meta = np.zeros((n, ck.NMETA), np.int64)
        gat: list[list[int]] = []
        size = {nm: g.node(nm).out_size() for nm in prog.names}
        pos = st = nzp = enz = 0
        self.out: dict[str, int] = {}
        self.st: dict[str, int] = {}
        self.nz: dict[str, int] = {}
        self.edges: dict[tuple[str, str], tuple[int, int]] = {}  # delayed edge -> (edge_nz offset, size)
        self.rec: dict[str, int] = {}
        self.spiking = [nm for nm in prog.names if nm in set(p.spiking)]
        spk_row = {nm: i for i, nm in enumerate(self.spiking)}
        for k, name in enumerate(prog.names):
            node = g.node(name)
            self.out[name] = pos
            pos += B * size[name]
        for k, name in enumerate(prog.names):
            node = g.node(name)
            row = meta[k]
            row[ck.OP], row[ck.SIZE], row[ck.OUT] = prog.ops[k], size[name], self.out[name]
            row[ck.LIM] = _lim(node.out_bits) if not isinstance(node, hw.QInput) else -1
            row[ck.PRM], row[ck.SAT] = prog.prm_off[k], k
            row[ck.ACTIVE] = int(p.role[name] == COMPUTE or isinstance(node, hw.QModeBank))
            row[ck.SPK] = spk_row.get(name, -1)
            row[ck.REC] = -1
            sc = prog.scalars[k]
            row[ck.A0: ck.A0 + len(sc)] = sc
            row[ck.G0] = len(gat)
            for j, (port, srcs) in enumerate(p.ports[name]):
                if len(srcs) == 1 and srcs[0][1] == 0:
                    at = self.out[srcs[0][0]]
                else:
                    at = pos
                    pos += B * size[srcs[0][0]]
                    for i, (src, d) in enumerate(srcs):
                        ring = ez = 0
                        if d > 0:
                            ring, ez = pos, enz
                            pos += (d + 1) * B * size[src]
                            self.edges[(src, name)] = (enz, size[src])
                            enz += size[src]
                        gat.append([at, self.out[src], size[src], d, ring, ez, int(i == 0)])
                row[ck.P0 + j] = at
            row[ck.G1] = len(gat)
            self.st[name] = st
            row[ck.STO] = st
            st += B * self._state_words(node)
            self.nz[name] = nzp
            row[ck.NZO] = nzp
            nzp += size[name]
        self.meta = meta
        self.gat = np.asarray(gat, np.int64).reshape(-1, ck.NGAT)
        self.buf = np.zeros(max(pos, 1), np.int64)
        self.state = np.zeros(max(st, 1), np.int64)
        self.nz_arena = np.zeros(max(nzp, 1), np.int64)
        self.edge_nz = np.zeros(max(enz, 1), np.int64)
        self.active = np.zeros(n, np.int64)
        self.sat = np.zeros(n, np.int64)
        self.tmp = np.zeros(prog.tmp_size, np.int64)
        self.inputs = [nm for nm in prog.names if isinstance(g.node(nm), hw.QInput)]
        self._input_nodes = [(k, nm, g.node(nm)) for k, nm in enumerate(prog.names)
                             if nm in self.inputs or nm in prog.whole]
        self.whole_active: dict[str, int] = {}  # active compartments of the precomputed nodes, last chunk
        # a whole-sequence node's own row, restored for chunks too small to be worth a matrix product
        self._own = {k: (int(meta[k, ck.OP]), int(meta[k, ck.ACTIVE]), int(meta[k, ck.G1]))
                     for k, nm in enumerate(prog.names) if nm in prog.whole}
        self._whole_on: bool | None = None
        self._xin_col = ck.XIN
        self.size = size
        self._rec_key: tuple | None = None
        self._rec_arena = np.zeros(1, np.int64)
        self.t = 0  # global step of the next chunk (delay rings and pipelines continue across chunks)

    def clear(self) -> None:
        """Back to t = 0: outputs, port sums, delay rings, states and counters all 0 (the layout is kept)."""
        for a in (self.buf, self.state, self.nz_arena, self.edge_nz, self.active, self.sat):
            a.fill(0)
        self.whole_active = {}
        self.t = 0

    @staticmethod
    def _state_words(node: hw.QNode) -> int:
        n = node.out_size()
        if isinstance(node, hw.QModeBank):
            return n  # re and im: H*M each
        if isinstance(node, (hw.QLIF, hw.QAccumulate)):
            return n
        if isinstance(node, hw.QLavaLIF):
            return 2 * n
        if isinstance(node, hw.QRefractory):
            return 3 * n
        if isinstance(node, hw.QDense):
            return int(node.delay) * n
        return 0

    def record(self, names: set[str], steps: int) -> Array:
        """Give ``names`` record slots [B, steps, size] in an arena (for the next chunk of ``steps``; every slot
        is written by the chunk, so the arena of the previous chunk with the same slots is reused)."""
        key = (frozenset(names), steps)
        if self._rec_key == key:
            return self._rec_arena
        ck = _ck()
        self.rec = {}
        pos = 0
        for k, name in enumerate(self.prog.names):
            self.meta[k, ck.REC] = -1
            if name in names:
                self.rec[name] = pos
                self.meta[k, ck.REC] = pos
                pos += self.B * steps * self.size[name]
        self._rec_key, self._rec_arena = key, np.zeros(max(pos, 1), np.int64)
        return self._rec_arena

    def view(self, name: str) -> Array:
        """This step's output of ``name`` [B, size] (a view into the arena)."""
        n = self.size[name]
        o = self.out[name]
        return self.buf[o: o + self.B * n].reshape(self.B, n)

    def quantise(self, xs: dict[str, Array], steps: int) -> tuple[Array, dict[str, int]]:
        """Inputs [B, T, d] (floats or token ids) -> the [T, B, size] int64 arena and saturations per input."""
        parts, sats = [], {}
        rows: dict[str, Array] = {}  # node -> [B * T, size]
        self._set_whole(self.B * steps >= WHOLE_MIN_ROWS)
        self.whole_active = {}
        for k, name, node in self._input_nodes:
            if not isinstance(node, hw.QInput):
                if not self._whole_on:
                    continue
                q, sats[name] = self._whole(name, node, rows)
                rows[name] = q
                self.meta[k, self._xin_col] = sum(a.size for a in parts)
                parts.append(np.ascontiguousarray(q.reshape(self.B, steps, -1).transpose(1, 0, 2)).reshape(-1))
                continue
            x = xs[name]
            if node.tokens:
                q = np.asarray(x, np.int64).reshape(self.B, steps, 1)
                sats[name] = 0
            else:
                q, sats[name] = sat(quantize_round(x, node.out_scale), int(node.out_bits))
            self.meta[k, self._xin_col] = sum(a.size for a in parts)
            q = np.asarray(q, np.int64)
            rows[name] = q.reshape(-1, q.shape[-1])
            parts.append(np.ascontiguousarray(q.transpose(1, 0, 2)).reshape(-1))
        return (np.concatenate(parts) if parts else np.zeros(1, np.int64)), sats

    def _set_whole(self, on: bool) -> None:
        """Whole-sequence nodes precomputed (read like inputs in the loop) or stepped in the loop like the others."""
        if on == self._whole_on:
            return
        ck = _ck()
        for k, (op, active, g1) in self._own.items():
            if on:
                self.meta[k, ck.OP], self.meta[k, ck.ACTIVE], self.meta[k, ck.G1] = ck.INPUT, 0, self.meta[k, ck.G0]
            else:
                self.meta[k, ck.OP], self.meta[k, ck.ACTIVE], self.meta[k, ck.G1] = op, active, g1
        self._whole_on = on

    def _whole(self, name: str, node: hw.QNode, rows: dict[str, Array]) -> tuple[Array, int]:
        """A feed-forward-in-time node over every step of the chunk at once (rows are samples x steps)."""
        from neurocompile.sim.activity import _active_count

        p = self.prog.plan
        ins = {}
        for port, srcs in p.ports[name]:
            total = rows[srcs[0][0]]
            for src, _ in srcs[1:]:
                total = total + rows[src]
            ins[port] = total
        st = kernels.init_state(node, next(iter(ins.values())).shape[0])
        if p.role[name] == COMPUTE:
            self.whole_active[name] = _active_count(node, ins, st)
        if isinstance(node, hw.QDense):
            return _whole_dense(node, ins["in"], p.path[name])
        out = kernels.step(node, ins, st)
        return np.ascontiguousarray(out, np.int64), int(st["saturations"])

    @staticmethod
    def check_tokens_of(p: Any, xs: dict[str, Array]) -> str | None:
        """Token ids the tables cannot index (the NumPy path raises on them; the compiled one must not read)."""
        g = p.graph
        for name in p.step_order:
            node = g.node(name)
            if isinstance(node, hw.QEmbedding):
                src = dict(p.ports[name])["in"][0][0]
                ids = np.asarray(xs[src])
                v = int(node.table.shape[0])
                if ids.size and (int(ids.min()) < -v or int(ids.max()) >= v):
                    return f"token ids of '{src}' outside the {v}-entry table of '{name}'"
        return None

    def run(self, xin: Array, steps: int, counters: bool, rec: Array | None = None) -> Array:
        """Advance ``steps`` steps; returns the spikes per step [spiking nodes, steps] of this chunk."""
        spk = np.zeros((max(len(self.spiking), 1), steps), np.int64)
        _ck().run_chunk(self.t, steps, self.B, self.meta, self.gat, self.prog.prm, self.buf, self.state, xin,
                        self.tmp, self.nz_arena, self.edge_nz, self.active, self.sat, spk,
                        rec if rec is not None else np.zeros(1, np.int64), counters)
        self.t += steps
        return spk

    def states(self, name: str) -> dict[str, Array]:
        """State of ``name`` with the kernels' names and shapes (batch axis first); {} for stateless nodes."""
        node = self.prog.plan.graph.node(name)
        n, B, o = node.out_size(), self.B, self.st[name]
        s = self.state

        def part(i: int, shape: tuple[int, ...]) -> Array:
            m = int(np.prod(shape))
            return s[o + i * m: o + (i + 1) * m].reshape(shape).copy()
        if isinstance(node, hw.QModeBank):
            h, m = node.a_re.shape
            return {"re": part(0, (B, h, m)), "im": part(1, (B, h, m))}
        if isinstance(node, hw.QLIF):
            return {"v": part(0, (B, n))}
        if isinstance(node, hw.QAccumulate):
            return {"acc": part(0, (B, n))}
        if isinstance(node, hw.QLavaLIF):
            return {"u": part(0, (B, n)), "v": part(1, (B, n))}
        if isinstance(node, hw.QRefractory):
            return {"v": part(0, (B, n)), "s": part(1, (B, n)), "r": part(2, (B, n))}
        if isinstance(node, hw.QDense) and node.delay > 0:
            d = int(node.delay)
            ring = s[o: o + d * B * n].reshape(d, B, n)
            return {"pipe": np.stack([ring[(self.t + j) % d] for j in range(d)], axis=1)}
        return {}


def batch_runner(p: Any, backend: str, xs: dict[str, Array], counters: bool = False) -> type | None:
    """The batch class for ``backend``: :class:`CompiledBatch`, or None for the NumPy engine.

    'auto' picks the compiled step when numba is installed, ``arith`` is 'auto' and every node is supported;
    'compiled' insists (a clear error names what is missing); 'numpy' never compiles.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "numpy" or (backend == "auto" and p.arith != "auto"):
        return None
    why = None if available() else "numba is not installed (pip install numba)"
    if why is None:
        why = supports(p)
    if why is None:
        why = Layout.check_tokens_of(p, xs)
    if why is None and counters:
        why = _event_rule_gap(p)
    if why is None:
        return CompiledBatch
    if backend == "compiled":
        raise IRError(f"backend 'compiled' cannot run graph '{p.graph.name}': {why}; use backend='numpy'")
    return None


def _event_rule_gap(p: Any) -> str | None:
    """Why the compiled step cannot count this graph: Loihi updates a neuron when any synaptic event arrives
    (even if the events sum to zero); the NumPy engine tracks those events behind synapse-only dense layers,
    the compiled step counts non-zero inputs only, so with counters on such graphs stay on the NumPy engine."""
    from neurocompile.ir import hw
    from neurocompile.sim.placement import SYNAPSE

    for name in p.order:
        if p.role.get(name) == SYNAPSE and isinstance(p.graph.node(name), hw.QDense):
            return (f"node '{name}' is a synapse-only dense layer, whose event-driven neuron updates only the "
                    "NumPy engine counts; use counters=False or backend='numpy'")
    return None


class CompiledBatch:
    """Drop-in for the engine's batch runner: same constructor arguments, ``run()`` and ``final_states()``."""

    def __init__(self, p: Any, x: dict[str, Array], acc: Any, counters: bool, rec: dict[str, Array] | None,
                 rec_row: int | None, rec_sample: dict[str, Array] | None, steps: int) -> None:
        self.p, self.g, self.acc, self.counters = p, p.graph, acc, counters
        self.rec, self.rec_row, self.rec_sample, self.T, self.x = rec, rec_row, rec_sample, steps, x
        self.B = next(iter(x.values())).shape[0]
        self.lay = Layout(program(p), self.B)
        self.vals: dict[str, Array | None] = {}
        self.st: dict[str, dict[str, Any]] = {}

    def run(self) -> dict[str, Array]:
        lay, acc = self.lay, self.acc
        names = set(self.rec or ()) & set(lay.prog.names)
        if self.rec_sample is not None and self.rec_row is not None:
            names |= set(self.rec_sample)
        rec = lay.record(names, self.T)
        xin, sats = lay.quantise(self.x, self.T)
        spk = lay.run(xin, self.T, self.counters, rec)
        for name, n in sats.items():
            acc.sat[name] += n
        if self.counters:
            for name, n in lay.whole_active.items():
                acc.active[name] += n
        for k, name in enumerate(lay.prog.names):
            acc.sat[name] += int(lay.sat[k])
            if self.counters:
                acc.active[name] += int(lay.active[k])
                o = lay.nz[name]
                acc.nz[name] += lay.nz_arena[o: o + acc.nz[name].size]
        for i, name in enumerate(lay.spiking):
            acc.spikes_t[name] += spk[i]
        if self.counters:
            for key, (o, n) in lay.edges.items():
                v = lay.edge_nz[o: o + n]
                acc.edge_nz[key] = acc.edge_nz[key] + v if key in acc.edge_nz else v.copy()
        g = self.g
        for name, o in lay.rec.items():
            n = g.node(name).out_size()
            r = rec[o: o + self.B * self.T * n].reshape(self.B, self.T, n)
            if self.rec is not None and name in self.rec:
                self.rec[name][...] = r
            if self.rec_sample is not None and self.rec_row is not None and name in self.rec_sample:
                self.rec_sample[name][...] = r[self.rec_row]
        for name in lay.prog.names:
            self.vals[name] = lay.view(name)
            self.st[name] = lay.states(name)
        return _sequence_end(self)

    def final_states(self) -> dict[str, dict[str, Array]]:
        return {k: self.st[k] for k in self.lay.prog.names if self.st.get(k)}


def _sequence_end(batch: Any) -> dict[str, Array]:
    """Sequence-end emissions and the host nodes after them, run once (the engine's own code, for identity)."""
    from neurocompile.sim.batch import _Batch

    return _Batch._sequence_end(batch)


def end_outputs(p: Any, vals: dict[str, Array], st: dict[str, dict[str, Any]], B: int) -> dict[str, Array]:
    """Sequence-end values (QAccumulate emissions and the nodes after them) from the current state, no counting."""
    g = p.graph
    final: dict[str, Array] = {}
    for name in p.step_order:
        node = g.node(name)
        if node.SEQUENCE_END:
            final[name] = kernels.finish(node, st[name])
    for name in p.end_order:
        node = g.node(name)
        s = kernels.init_state(node, B)
        ins = {}
        for port, srcs in p.ports[name]:
            total = None
            for src, _ in srcs:
                v = final[src] if src in final else vals[src]
                total = v if total is None else total + v
            ins[port] = total
        out = kernels.step(node, ins, s)
        final[name] = kernels.finish(node, s) if out is None else out
    return final
