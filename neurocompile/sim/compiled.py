"""The compiled backend of the simulator: the graph's steps as numba loops, no Python per node per step.

:func:`program` turns an engine plan into flat int64 tables (node rows, port-source rows, one parameter arena)
with the per-node-type entries of :data:`neurocompile.sim.compiled_nodes.KERNELS`; :class:`Layout` places a
batch's outputs, port sums, delay rings, states, synaptic events and counters in flat arenas and advances them
over chunks of steps with :func:`neurocompile.sim.compiled_kernels.run_chunk`. The arithmetic is int64 exactly as
:mod:`neurocompile.sim.kernels` (docs/semantics.md), and every counter of the NumPy engine is counted the same
way (Loihi's event-driven update rule included), so results are bit-identical; tests compare outputs, traces,
states, saturations and counters on every node type and every shipped model.

Whole-sequence execution: a graph is acyclic in time except inside stateful nodes, so a chunk of T steps can run
node by node. Dense layers fed without delays whose product the plan proved exact in float32 or float64 (and
embeddings; ``Kernel.chunked``) run over all B x T rows of the chunk at once, one BLAS matrix product each; the
other nodes step through time in compiled *groups*, which read what was computed before them as inputs
(elementwise nodes stay in the loop: one fused compiled pass beats several NumPy passes over the chunk).
:func:`schedule` assigns nodes to groups; in chunks smaller than ``WHOLE_MIN_ROWS`` rows, or where a node's work
over the chunk is under ``WHOLE_MIN_WORK``, nodes step in the loop.

:class:`CompiledBatch` has the interface of the engine's batch runner (``run()``, ``final_states()``), so
``simulate(..., backend='compiled')`` only swaps the class. ``available()`` is False without numba; the engine
then keeps its NumPy path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.mapping.placement import COMPUTE, SYNAPSE
from neurocompile.sim import kernels
from neurocompile.sim.compiled_nodes import KERNELS, Kernel, Tally, _lim, mode_stride, readout_modes_at, whole
from neurocompile.sim.fixed import quantize_round, sat
from neurocompile.sim.host import POOL, one_blas_thread

__all__ = ["BACKENDS", "CompiledBatch", "Layout", "Program", "available", "batch_runner", "program", "schedule",
           "supports"]

BACKENDS = ("auto", "numpy", "compiled")
Array = np.ndarray
# whole-chunk array operations pay for their set-up (tens of us in Python) from this many samples x steps, and
# this much work (rows x multiply-adds per row; a compiled loop does about 1e9 a second, skipping zero inputs)
WHOLE_MIN_ROWS = 32
WHOLE_MIN_WORK = 1 << 20
CHUNK_ROWS = 2048  # samples x steps per chunk at most (bounds the memory of the kept output sequences)


_KERNELS_MODULE: list[Any] = []  # compiled_kernels, imported on first use (it needs numba)
def _ck() -> Any:
    if not _KERNELS_MODULE:
        from neurocompile.sim import compiled_kernels

        _KERNELS_MODULE.append(compiled_kernels)
    return _KERNELS_MODULE[0]


def _whole_passes() -> Any:
    from neurocompile.sim import compiled_whole

    return compiled_whole


def available() -> bool:
    """True when numba is installed (the compiled step can run)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def supports(p: Any) -> str | None:
    """None when every node of plan ``p`` that runs per step has a compiled kernel; otherwise the reason."""
    g = p.graph
    for name in p.step_order:
        node = g.node(name)
        kern = KERNELS.get(node)
        if kern is None:
            return f"node '{name}' ({type(node).__name__}) has no compiled kernel"
        for port, srcs in p.ports[name]:
            sizes = {g.node(s).out_size() for s, _ in srcs}
            if len(sizes) > 1:
                return f"node '{name}': port '{port}' sums sources of different sizes"
            if not srcs and kern.op != "INPUT":
                return f"node '{name}': port '{port}' has no input"
        why = kern.check(p, name) if kern.check is not None else None
        if why:
            return why
    return None


@dataclass
class Program:
    """A plan as flat tables that do not depend on the batch size (parameters, per-node scalars, traits)."""

    plan: Any
    names: list[str]  # nodes run every step, in order
    kerns: list[Kernel]
    ops: list[int]
    prm: Array  # int64 parameter arena
    prm_off: list[int]
    scalars: list[list[int]]  # op-specific A0.. columns
    tmp_size: int
    index: dict[str, int] = field(default_factory=dict)
    chunked: dict[str, int] = field(default_factory=dict)  # may run over a whole chunk: node -> work per row
    ev_src: dict[str, list[str]] = field(default_factory=dict)  # node -> synapse-only denses whose events count
    ev_prod: set[str] = field(default_factory=set)

    @property
    def whole(self) -> set[str]:
        """Nodes run over a whole chunk at once (for chunks of at least WHOLE_MIN_ROWS rows)."""
        return {n for n, k in schedule(self, None).kind.items() if k == "whole"}


def program(p: Any) -> Program:
    """Flatten plan ``p`` (cached on the plan: one program per plan)."""
    cached = getattr(p, "_compiled_program", None)
    if cached is not None:
        return cached
    ck = _ck()
    g = p.graph
    names = list(p.step_order)
    kerns = [KERNELS[g.node(n)] for n in names]
    ops, offs, scalars, chunks = [], [], [], []
    pos, tmp = 0, 1
    for name, kern in zip(names, kerns):
        node = g.node(name)
        ops.append(getattr(ck, kern.op))
        arrays, sc = kern.params(node)
        offs.append(pos)
        for a in arrays:
            chunks.append(a)
            pos += a.size
        scalars.append(sc)
        tmp = max(tmp, kern.scratch(node))
    prm = np.concatenate(chunks) if chunks else np.zeros(1, np.int64)
    free, ev_src = {}, {}
    kind = dict(zip(names, kerns))
    for name, kern in zip(names, kerns):
        node, edges = g.node(name), [e for _, srcs in p.ports[name] for e in srcs]
        work = kern.chunked(node, p.path[name]) if kern.chunked is not None else 0
        if work and not getattr(node, "delay", 0) and all(d == 0 for _, d in edges):
            free[name] = work
        if kern.event_rule and p.role[name] == COMPUTE:
            src = [s for s, d in edges if d == 0 and p.role[s] == SYNAPSE and kind[s].op == "DENSE"]
            if src:
                ev_src[name] = sorted(set(src), key=names.index)
    prog = Program(plan=p, names=names, kerns=kerns, ops=ops, prm=np.ascontiguousarray(prm, np.int64),
                   prm_off=offs, scalars=scalars, tmp_size=tmp, index={n: i for i, n in enumerate(names)},
                   chunked=free, ev_src=ev_src, ev_prod={s for v in ev_src.values() for s in v})
    p._compiled_program = prog
    return prog


@dataclass
class Schedule:
    """Node-major execution of a chunk: ``kind`` 'in' (graph input), 'whole' (all rows at once) or 'step';
    ``at``: a stepped node's group, or the group before which an input or whole node is ready."""

    kind: dict[str, str]
    at: dict[str, int]
    groups: int
    replay: list[list[str]]  # per group: nodes computed before it that its nodes read (as inputs, step by step)
    whole_at: list[list[str]]  # per group index (and one past the last): whole nodes computed before it
    keep: set[str]  # nodes whose output sequences are kept in the chunk's arena
    keep_ev: set[str]  # synapse-only denses whose event sequences are kept


def schedule(prog: Program, rows: int | None) -> Schedule:
    """Group the nodes for chunks of ``rows`` samples x steps (None: any size): whole-chunk nodes (those worth it
    at this size) as early as their inputs allow, stepped nodes in the first group after their inputs."""
    p = prog.plan
    kind: dict[str, str] = {}
    at: dict[str, int] = {}
    preds = {n: [s for _, srcs in p.ports[n] for s, _ in srcs] for n in prog.names}
    for name, kern in zip(prog.names, prog.kerns):
        if kern.op == "INPUT":
            kind[name], at[name] = "in", 0
        elif name in prog.chunked and (rows is None or (rows >= WHOLE_MIN_ROWS
                                                        and rows * prog.chunked[name] >= WHOLE_MIN_WORK)):
            kind[name] = "whole"
            at[name] = max((at[s] + (kind[s] == "step") for s in preds[name]), default=0)
        else:
            kind[name] = "step"
            at[name] = max((at[s] for s in preds[name]), default=0)
    groups = max((at[n] + 1 for n in prog.names if kind[n] == "step"), default=0)
    replay: list[list[str]] = [[] for _ in range(groups)]
    keep = {n for n in prog.names if kind[n] != "step"}
    for name in prog.names:
        for s in preds[name]:
            if kind[name] == "whole" or (kind[s] == "step" and at[s] != at[name]):
                keep.add(s)
            if kind[name] == "step" and (kind[s] != "step" or at[s] < at[name]) and s not in replay[at[name]]:
                replay[at[name]].append(s)
    keep_ev = set()
    for c, srcs in prog.ev_src.items():
        for s in srcs:
            if kind[c] == "whole" or kind[s] == "whole" or at[s] != at[c]:
                keep_ev.add(s)
            if kind[c] == "step" and s not in replay[at[c]] and (kind[s] != "step" or at[s] < at[c]):
                replay[at[c]].append(s)
    for r in replay:
        r.sort(key=prog.index.__getitem__)
    whole_at = [[n for n in prog.names if kind[n] == "whole" and at[n] == i] for i in range(groups + 1)]
    return Schedule(kind, at, groups, replay, whole_at, keep, keep_ev)


@dataclass
class _ChunkPlan:
    """What a chunk of T steps needs, resolved once per (T, recorded nodes, counters): the schedule, the arena
    offsets of kept output and event sequences, per-group node rows, quiet banks, the inputs (name, node, offset,
    words), the last-step copies (buffer view, offset, size), recorded nodes, the whole nodes before each group."""

    sch: Schedule
    off: dict[str, int]
    evq: dict[str, int]
    evx: Array  # per entry of the layout's evs: where that source's events of the chunk are kept (-1: in ev)
    size: int
    groups: list[tuple[Array, Array]]
    quiet: list[str]
    ins: list[tuple[str, Any, int, int]]
    last: list[tuple[Array, int, int]]
    rec: list[str]
    whole_at: list[list[str]]


class Layout:
    """Arenas of one batch of ``B`` samples: outputs, port sums and delay rings (``buf``), states (``state``),
    synaptic events (``ev``) and counters (``nz_arena``, ``edge_nz``, ``active``, ``sat``); the chunks' kept
    output sequences live in a per-chunk arena (see :meth:`advance`)."""

    def __init__(self, prog: Program, B: int) -> None:
        ck = _ck()
        p, g = prog.plan, prog.plan.graph
        self.prog, self.B = prog, B
        n = len(prog.names)
        meta = np.full((n, ck.NMETA), -1, np.int64)
        meta[:, ck.A0:] = 0
        gat: list[list[int]] = []
        evs: list[int] = []
        self._ev_src: list[tuple[str, str]] = []  # (node, synapse-only dense) of each entry of evs
        size = {nm: g.node(nm).out_size() for nm in prog.names}
        pos = st = nzp = enz = evp = 0
        self.out: dict[str, int] = {}
        self.st: dict[str, int] = {}
        self.nz: dict[str, int] = {}
        self.edges: dict[tuple[str, str], tuple[int, int]] = {}  # delayed edge -> (edge_nz offset, size)
        self.evo: dict[str, int] = {}
        self.spiking = [nm for nm in prog.names if nm in set(p.spiking)]
        self.spk_row = {nm: i for i, nm in enumerate(self.spiking)}
        for name in prog.names:
            self.out[name] = pos
            pos += B * size[name]
        for name in prog.names:  # event slots: the current step's, then the dense's delay pipeline
            if name in prog.ev_prod:
                self.evo[name] = evp
                evp += (1 + int(g.node(name).delay)) * B * size[name]
        for k, name in enumerate(prog.names):
            node, kern = g.node(name), prog.kerns[k]
            row = meta[k]
            row[ck.OP], row[ck.SIZE], row[ck.OUT] = prog.ops[k], size[name], self.out[name]
            row[ck.LIM] = _lim(node.out_bits) if kern.op != "INPUT" else -1
            row[ck.PRM], row[ck.SAT] = prog.prm_off[k], k
            row[ck.ACTIVE] = int(p.role[name] == COMPUTE or kern.always_active)
            row[ck.SPK] = self.spk_row.get(name, -1)
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
            st += B * kern.words(node)
            self.nz[name] = nzp
            row[ck.NZO] = nzp
            # a bank counts re then im, each mode-major and padded (compiled_nodes.mode_stride)
            nzp += size[name] // 2 + mode_stride(size[name] // 2) if kern.op == "MODEBANK" else size[name]
            row[ck.EVO] = self.evo.get(name, -1)
            row[ck.EV0] = len(evs)
            evs.extend(self.evo[s] for s in prog.ev_src.get(name, ()))
            self._ev_src.extend((name, s) for s in prog.ev_src.get(name, ()))
            row[ck.EV1] = len(evs)
            if kern.op == "MODEBANK":
                row[ck.A0 + 7], row[ck.A0 + 9] = -1, 1  # no readout fused, output written (set per chunk plan)
        self.fuse_at: dict[str, int] = {}  # readout -> state words where its bank leaves per-channel sums, flags
        for name in prog.names:
            if self._bank_of(name) is not None:
                self.fuse_at[name] = st
                st += 2 * B * size[name]
        self._flags: list[tuple[int, int]] = []  # per bank: words of its per-sample, per-mode 'a state was 0' flags
        for k, name in enumerate(prog.names):
            if prog.kerns[k].op == "MODEBANK":
                meta[k, ck.A0 + 11] = st
                self._flags.append((st, B * g.node(name).a_re.shape[1]))
                st += B * g.node(name).a_re.shape[1]
        self.meta = meta
        self.gat = np.asarray(gat, np.int64).reshape(-1, ck.NGAT)
        self.evs = np.asarray(evs or [0], np.int64)
        self.buf = np.zeros(max(pos, 1), np.int64)
        self.state = np.zeros(max(st, 1), np.int64)
        for o, w in self._flags:  # unknown: the first step takes the loop that checks every state
            self.state[o: o + w] = 1
        self.nz_arena = np.zeros(max(nzp, 1), np.int64)
        self.edge_nz = np.zeros(max(enz, 1), np.int64)
        self.ev = np.zeros(max(evp, 1), np.int64)
        self.active = np.zeros(n, np.int64)
        self.sat = np.zeros(n, np.int64)
        self.tmp = np.zeros(prog.tmp_size, np.int64)
        self.evm = np.zeros(max(size.values(), default=1), np.int64)
        self.size = size
        self.inputs = [nm for nm, kern in zip(prog.names, prog.kerns) if kern.op == "INPUT"]
        self._plans: dict[tuple, Any] = {}
        self._parts: dict[str, list[tuple[str, tuple[int, ...], int]]] = {}
        self._wcache: dict[str, dict[str, Any]] = {}  # whole nodes' buffers (compiled_nodes.whole)
        self._arena = np.zeros(0, np.int64)
        self._quiet: set[str] = set()  # banks whose output the last chunk did not write (view() writes it)
        self.t = 0  # global step of the next chunk (delay rings and pipelines continue across chunks)
        self.bank_rows = 0  # samples x steps the banks counted (their zeros) in

    def clear(self) -> None:
        """Back to t = 0: outputs, port sums, delay rings, states, events and counters all 0 (layout kept)."""
        for a in (self.buf, self.state, self.nz_arena, self.edge_nz, self.active, self.sat, self.ev):
            a.fill(0)
        for o, w in self._flags:
            self.state[o: o + w] = 1
        self.t = self.bank_rows = 0

    def view(self, name: str) -> Array:
        """This step's output of ``name`` [B, size] (a view into the arena). A bank that the last chunk did not
        write (its state, re and im interleaved) is written first: only when asked, for it is rarely read."""
        n, o = self.size[name], self.out[name]
        v = self.buf[o: o + self.B * n].reshape(self.B, n)
        if name in self._quiet:
            self._quiet.discard(name)
            B, so, hm = self.B, self.st[name], n // 2
            w = v.reshape(B, *self._by_channel(name, so, B).shape[1:], 2)  # [B, H, M, re/im]: no temporary
            w[..., 0], w[..., 1] = self._by_channel(name, so, B), self._by_channel(name, so + B * hm, B)
        return v

    @staticmethod
    def check_tokens_of(p: Any, xs: dict[str, Array]) -> str | None:
        """Token ids the tables cannot index (the NumPy path raises on them; the compiled one must not read)."""
        g = p.graph
        for name in p.step_order:
            node = g.node(name)
            kern = KERNELS.get(node)
            srcs = dict(p.ports[name]).get("in", [])
            if kern is None or kern.op != "EMBEDDING" or len(srcs) != 1 or srcs[0][0] not in xs:
                continue  # an embedding reads a token input directly (supports() checks it)
            ids = np.asarray(xs[srcs[0][0]])
            v = int(node.table.shape[0])
            if ids.size and (int(ids.min()) < -v or int(ids.max()) >= v):
                return f"token ids of '{srcs[0][0]}' outside the {v}-entry table of '{name}'"
        return None

    # -- one chunk ---------------------------------------------------------------------------------------------
    def _chunk_plan(self, T: int, rec: frozenset, counters: bool) -> Any:
        """Per-group node rows and the arena offsets of the kept sequences, for chunks of T steps (cached)."""
        key = (T, rec, counters)
        cp = self._plans.get(key)
        if cp is not None:
            return cp
        ck = _ck()
        prog, B = self.prog, self.B
        sch = schedule(prog, B * T)
        keep = sch.keep | set(rec)
        off, pos = {}, 0
        for name in prog.names:
            if name in keep:
                off[name] = pos
                pos += B * T * self.size[name]
        evq = {}
        for name in prog.names:
            if counters and name in sch.keep_ev:
                evq[name] = pos
                pos += B * T * self.size[name]
        groups = []
        quiet: list[str] = []  # banks whose output is not written per step
        for gi in range(sch.groups):
            m = self.meta.copy()
            own = [k for k, nm in enumerate(prog.names) if sch.kind[nm] == "step" and sch.at[nm] == gi]
            fused: set[str] = set()
            p_ports = prog.plan.ports
            for k in own:
                nm = prog.names[k]
                m[k, ck.SEQ] = off.get(nm, -1)
                m[k, ck.EVQ] = evq.get(nm, -1)
                bank = self._bank_of(nm)
                if bank is not None and bank not in fused and sch.kind[bank] == "step" and sch.at[bank] == gi:
                    fused.add(bank)  # the bank forms this readout's sums over its modes (earlier in the step)
                    kb = prog.index[bank]
                    m[k, ck.A0 + 2] = m[kb, ck.A0 + 7] = self.fuse_at[nm]
                    m[kb, ck.A0 + 8] = prog.prm_off[k] + readout_modes_at(prog.plan.graph.node(nm))
                    users = [c for c in prog.names if c != nm and any(s == bank for _, ss in p_ports[c] for s, _ in ss)]
                    if not users and m[kb, ck.SEQ] < 0 and bank not in rec and bank not in self.spk_row:
                        m[kb, ck.A0 + 9] = 0  # only its fused readout reads it: the output is rebuilt at the end
                        quiet.append(bank)
            rep = [prog.index[nm] for nm in sch.replay[gi]]
            for k in rep:
                nm = prog.names[k]
                m[k, ck.OP] = ck.INPUT
                m[k, ck.XIN] = off[nm] if nm in off else -1
                m[k, ck.G1] = m[k, ck.G0]
                m[k, ck.NZO] = m[k, ck.SPK] = m[k, ck.SEQ] = m[k, ck.EVQ] = -1
                m[k, ck.ACTIVE] = 0
            groups.append((np.asarray(sorted(own + rep), np.int64), m))
        g = prog.plan.graph
        ins = [(nm, g.node(nm), off[nm], B * T * self.size[nm]) for nm in self.inputs]
        last = [(self.view(nm), off[nm], self.size[nm]) for nm in prog.names if sch.kind[nm] != "step"]
        evx = np.asarray([evq[s] if sch.kind[c] == "step" and s in sch.replay[sch.at[c]] and s in evq else -1
                          for c, s in self._ev_src] or [-1], np.int64)
        cp = _ChunkPlan(sch, off, evq, evx, max(pos, 1), groups, quiet, ins, last,
                        [nm for nm in rec if nm in off], [sch.whole_at[gi] for gi in range(sch.groups + 1)])
        self._plans[key] = cp
        return cp

    def _bank_of(self, name: str) -> str | None:
        """The QModeBank a QModeReadout reads directly (one source, no delay, same shape), else None."""
        prog = self.prog
        if prog.kerns[prog.index[name]].op != "READOUT":
            return None
        srcs = dict(prog.plan.ports[name])["state"]
        if len(srcs) != 1 or srcs[0][1] or srcs[0][0] not in prog.index:
            return None
        bank = srcs[0][0]
        g = prog.plan.graph
        ok = prog.kerns[prog.index[bank]].op == "MODEBANK" and g.node(bank).a_re.shape == g.node(name).c_re.shape
        return bank if ok else None

    def advance(self, xs: dict[str, Array], steps: int, rec: frozenset = frozenset(), counters: bool = False,
                on_chunk: Any = None) -> tuple[Array, dict[str, int], dict[str, int]]:
        """Advance ``steps`` steps on inputs [B, steps, d] in chunks of at most CHUNK_ROWS rows.

        ``on_chunk(t0, t1, seqs)`` receives each chunk's recorded outputs (node -> [B, t1 - t0, size] views).
        Returns (spikes per step [spiking nodes, steps], saturations of the inputs and whole nodes, their active
        compartments); the other counters accumulate in the layout's arenas."""
        B = self.B
        tc = max(1, min(steps, CHUNK_ROWS // max(B, 1)))
        spk = np.zeros((max(len(self.spiking), 1), steps), np.int64)
        sats: dict[str, int] = {}
        act: dict[str, int] = {}
        if tc == steps:  # one chunk (a streamed sample): no slicing, no per-chunk spike buffer
            seqs = self._chunk(xs, steps, rec, counters, spk, sats, act)
            if on_chunk is not None:
                on_chunk(0, steps, seqs)
            return spk, sats, act
        for t0 in range(0, steps, tc):
            t1 = min(steps, t0 + tc)
            part = np.zeros((spk.shape[0], t1 - t0), np.int64)
            seqs = self._chunk({k: v[:, t0:t1] for k, v in xs.items()}, t1 - t0, rec, counters, part, sats, act)
            spk[:, t0:t1] = part
            if on_chunk is not None:
                on_chunk(t0, t1, seqs)
        return spk, sats, act

    def _chunk(self, xs: dict[str, Array], T: int, rec: frozenset, counters: bool, spk: Array,
               sats: dict[str, int], act: dict[str, int]) -> dict[str, Array]:
        ck, prog, B = _ck(), self.prog, self.B
        cp = self._chunk_plan(T, rec, counters)
        off = cp.off
        if self._arena.size != cp.size:  # else reused: every word a chunk reads it wrote first
            self.release()
            self._arena = POOL.take(cp.size)
        arena = self._arena

        def seq(name: str, at: dict[str, int] = off) -> Array:
            n = self.size[name]
            return arena[at[name]: at[name] + B * T * n].reshape(B, T, n)
        for name, node, o, m in cp.ins:
            y = arena[o: o + m].reshape(B, T, -1)
            x = xs[name]
            if node.tokens:
                y[...] = np.asarray(x, np.int64).reshape(B, T, 1)
                n_sat = 0
            else:
                n_sat = -1
                if x.dtype in (np.float32, np.float64) and x.ndim == 3:  # one compiled pass, no temporaries
                    n_sat = _whole_passes().quantize_input(x, float(node.out_scale), _lim(node.out_bits), y)
                if n_sat < 0:
                    y[...], n_sat = sat(quantize_round(x, node.out_scale), int(node.out_bits))
            sats[name] = sats.get(name, 0) + n_sat
            self._count(name, y, counters, spk)
        for gi, whole_nodes in enumerate(cp.whole_at):
            if whole_nodes:
                with one_blas_thread():
                    for name in whole_nodes:
                        self._whole(name, seq, cp.evq, counters, spk, sats, act)
            if gi < len(cp.groups):
                ks, m = cp.groups[gi]
                ck.run_chunk(self.t, T, B, ks, m, self.gat, prog.prm, self.buf, self.state, arena, arena,
                             self.tmp, self.evm, self.nz_arena, self.edge_nz, self.active, self.sat, spk, arena,
                             self.ev, self.evs, cp.evx, counters)
        for v, o, n in cp.last:  # the last step's output of every node computed outside the loop
            v[...] = arena[o: o + B * T * n].reshape(B, T, n)[:, -1]
        self._quiet = set(cp.quiet)
        self.bank_rows += B * T if counters else 0
        self.t += T
        return {name: seq(name) for name in cp.rec}

    def release(self) -> None:
        """Give the chunk arena back to the scratch pool (views of it that :meth:`advance` passed on die)."""
        POOL.give(self._arena)
        self._arena = np.zeros(0, np.int64)

    def _count(self, name: str, y: Array, counters: bool, spk: Array) -> None:
        """Non-zero outputs per index and spikes per step of a sequence computed outside the loop."""
        row = self.spk_row.get(name, -1)
        if counters or row >= 0:
            _whole_passes().count_seq(y, self.nz_arena, self.nz[name], spk, row, counters)

    def _whole(self, name: str, seq: Any, evq: dict[str, int], counters: bool, spk: Array,
               sats: dict[str, int], act: dict[str, int]) -> None:
        """A time-free node over every row (samples x steps) of the chunk at once."""
        from neurocompile.sim.activity import _active_count

        prog = self.prog
        p, node, kern = prog.plan, prog.plan.graph.node(name), prog.kerns[prog.index[name]]
        rows = self.B * seq(name).shape[1]
        ins = {}
        for port, srcs in p.ports[name]:
            total = seq(srcs[0][0]).reshape(rows, -1)
            for src, _ in srcs[1:]:
                total = total + seq(src).reshape(rows, -1)
            ins[port] = total
        if counters and p.role[name] == COMPUTE:
            ev = None
            for s in prog.ev_src.get(name, ()):
                e = seq(s, evq).reshape(rows, -1) != 0
                ev = e if ev is None else (ev | e)
            act[name] = act.get(name, 0) + _active_count(node, ins, kernels.init_state(node, rows), ev)
        y, cache = seq(name), self._wcache.setdefault(name, {})
        if name in evq and "stored" not in cache:  # Loihi's events: a stored (non-zero) weight got a non-zero input
            cache["stored"] = np.ascontiguousarray(np.asarray(node.weight).T != 0, np.uint8)
        tally = None if not counters or name in self.spk_row else Tally(
            self.nz_arena, self.nz[name], cache.get("stored"), seq(name, evq).reshape(rows, -1) if name in evq else None)
        sats[name] = sats.get(name, 0) + whole(kern, node, ins, p.path[name], y.reshape(rows, -1), cache, tally)
        if tally is None or not tally.counted:
            self._count(name, y, counters, spk)
            if name in evq:
                _whole_passes().dense_events(np.ascontiguousarray(ins["in"]), cache["stored"],
                                             seq(name, evq).reshape(rows, -1))

    def counts(self, name: str) -> Array:
        """Non-zero outputs per index of ``name`` so far (a QModeBank counts re of every mode, then im)."""
        n, o = self.size[name], self.nz[name]
        if self.prog.kerns[self.prog.index[name]].op != "MODEBANK":
            return self.nz_arena[o: o + n]
        out = np.empty(n, np.int64)  # the bank counts its zeros (compiled_ssm._modebank)
        out[0::2] = self.bank_rows - self._by_channel(name, o, 1, self.nz_arena).reshape(-1)
        out[1::2] = self.bank_rows - self._by_channel(name, o + mode_stride(n // 2), 1, self.nz_arena).reshape(-1)
        return out

    def _by_channel(self, name: str, o: int, B: int, arena: Array | None = None) -> Array:
        """A bank's mode-major [B, M, H] words at ``o`` of ``arena`` (the state) as a [B, H, M] view."""
        h, m = self.prog.plan.graph.node(name).a_re.shape
        a = self.state if arena is None else arena
        return a[o: o + B * h * m].reshape(B, m, h).swapaxes(1, 2)

    def states(self, name: str, copy: bool = True) -> dict[str, Array]:
        """State of ``name`` with the kernels' names and shapes (batch axis first); {} for stateless nodes.
        ``copy=False``: views into the arena (valid until the next step)."""
        node = self.prog.plan.graph.node(name)
        kern = self.prog.kerns[self.prog.index[name]]
        B, o, s = self.B, self.st[name], self.state
        if kern.pipe:
            d, n = int(getattr(node, "delay", 0)), node.out_size()
            if not d:
                return {}
            ring = s[o: o + d * B * n].reshape(d, B, n)
            return {"pipe": np.stack([ring[(self.t + j) % d] for j in range(d)], axis=1)}
        out = {}
        parts = self._parts.get(name)
        if parts is None:  # cached: a one-sample stream asks for them after every call
            parts = self._parts[name] = [(part, (B, *shape), B * int(np.prod(shape))) for part, shape in
                                         kern.states(node)]
        bank = kern.op == "MODEBANK"
        for part, shape, m in parts:
            v = self._by_channel(name, o, B) if bank else s[o: o + m].reshape(shape)  # a bank's: mode-major
            out[part] = (np.ascontiguousarray(v) if bank else v.copy()) if copy else v
            o += m
        return out


# the batch runner lives in compiled_batch (this file's size budget); imported last, it reads this module lazily
from neurocompile.sim.compiled_batch import CompiledBatch, batch_runner  # noqa: E402
