"""Cycle-level timing: an event-driven schedule of every time step, core by core and message by message.

:func:`cycle_timing` replays one sample's recorded activity (``simulate(..., record=True)``) on the placement
and schedules, within every step, from the target's per-operation times (ns):

1. **Soma timeline of each core.** The core visits its compartments in placement order. Each costs
   ``neuron_access_ns``, plus ``neuron_update_ns`` when updated (Loihi's rule: an event arrived or the state was
   non-zero), plus ``spike_out_ns`` when it fires. A firing compartment then generates one message per
   destination core (ascending core id), ``message_out_ns`` each. A message leaves at the time it is
   generated; the timeline ends after the last compartment (``soma_end``).
2. **Host port.** Input spikes are sent by the host port (the tile of core 0), ``message_out_ns`` per message,
   in input-index order.
3. **Mesh.** A message follows X-Y routing (east-west first, then north-south). Each directed link carries one
   message at a time for one hop time (``hop_ew_ns`` / ``hop_ns_ns``); a message waits for a busy link
   (contention). Events are handled in global time order, so messages claim links first come, first served.
4. **Receive timeline of each core.** Messages are served one at a time, first sent first served:
   ``message_in_ns`` plus ``synaptic_op_*_ns`` per synapse the message looks up on that core (the dendritic
   sums are used at the next step, as on Loihi).
5. **Back-pressure.** Mesh links buffer ``link_buffer_messages`` messages: at most ``(hops + 1)`` times that
   may be outstanding (sent, not yet processed) towards one core; a sender whose next message would exceed it
   waits until the oldest is processed, and its soma timeline waits too.

The step ends when every timeline is done, then the partial-sum phase (a neuron split into partial-sum
compartments integrates only after their graded messages arrive: :func:`partial_relay_ns`, the latest such
arrival of the step, 0 without partial sums) and the barrier for the tiles used::

    t_step = max(soma_end over cores, last receive over cores, host port) + t_partial + barrier(tiles used)

The report gives the distribution over steps (mean, p95, max) and the critical core (the core that ends last
most often). Where nothing contends (one message per link at a time, receives not overlapping), the schedule
reduces to the analytical model's terms; docs/energy.md compares both with SANA-FE's detailed model.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.mapping import placement as pl
from neurocompile.mapping.placement_modes import HOST_CORE, synapse_format, tiles_used
from neurocompile.sim.fixed import rsh_trunc

__all__ = ["HOST_PORT", "Message", "Sender", "cycle_timing", "schedule_step"]


class Sender:
    """One core's (or the host port's) work in one step: per compartment, its soma cost (ns) and its messages."""

    def __init__(self, core: int, costs: np.ndarray, dests: list[list[int]], lookups: list[list[int]]) -> None:
        self.core, self.costs, self.dests, self.lookups = core, costs, dests, lookups


class Message:
    """A message of one step: sender core, destination core, generation time, synapses it looks up."""

    __slots__ = ("src", "dst", "t_gen", "lookups", "t_arrive", "t_done")

    def __init__(self, src: int, dst: int, t_gen: float, lookups: int) -> None:
        self.src, self.dst, self.t_gen, self.lookups = src, dst, t_gen, lookups
        self.t_arrive = self.t_done = t_gen


#: Sender id of the host port (its messages leave from the tile of ``HOST_CORE``).
HOST_PORT = -1


def _tile_xy(core: int, mesh: tuple[int, int, int, int]) -> tuple[int, int]:
    cpc, cpt, mx, _ = mesh
    core = HOST_CORE if core == HOST_PORT else core
    chip, local = divmod(core, cpc)
    tile = local // cpt
    return chip * mx + tile % mx, tile // mx


def _route(a: int, b: int, mesh: tuple[int, int, int, int]) -> list[tuple[tuple[int, int], tuple[int, int], bool]]:
    """Directed links (from tile, to tile, north-south?) of the X-Y route from core a to core b."""
    (x, y), (x1, y1) = _tile_xy(a, mesh), _tile_xy(b, mesh)
    out = []
    while x != x1:
        nx_ = x + (1 if x1 > x else -1)
        out.append(((x, y), (nx_, y), False))
        x = nx_
    while y != y1:
        ny = y + (1 if y1 > y else -1)
        out.append(((x, y), (x, ny), True))
        y = ny
    return out


def _plan(s: Sender, out_ns: float) -> list[tuple[float, int, int]]:
    """The sender's messages in order: (soma time since the previous message incl. its generation, dst, look-ups),
    and a last entry (remaining soma time, -1, 0)."""
    plan: list[tuple[float, int, int]] = []
    pending = 0.0
    for i, c in enumerate(s.costs):
        pending += float(c)
        for d, k in zip(s.dests[i], s.lookups[i]):
            plan.append((pending + out_ns, int(d), int(k)))
            pending = 0.0
    plan.append((pending, -1, 0))
    return plan


def schedule_step(senders: list[Sender], mesh: tuple[int, int, int, int], t: Any, syn_ns: dict[int, float],
                  msg_out_ns: float | None = None) -> dict[str, Any]:
    """Schedule one step (see module doc) in global time order. ``syn_ns[core]``: look-up time on that core.

    Back-pressure: at most ``(hops + 1) x link_buffer_messages`` messages may be outstanding (sent, not yet
    processed) towards one destination core; a sender whose next message would exceed that waits until the
    oldest outstanding one is processed, and its soma timeline waits with it.
    Returns per-core soma end, receive end, the messages, and the step's busy time before the barrier (ns)."""
    import heapq

    out_ns = t.message_out_ns if msg_out_ns is None else msg_out_ns
    buf = int(t.link_buffer_messages)
    plans = [_plan(sd, out_ns) for sd in senders]
    pos = [0] * len(senders)
    heap = [(plans[i][0][0], i) for i in range(len(senders))]
    heapq.heapify(heap)
    msgs: list[Message] = []
    soma_end: dict[int, float] = {}
    link_free: dict[tuple[tuple[int, int], tuple[int, int]], float] = {}
    recv_end: dict[int, float] = {}
    done_at: dict[int, list[float]] = {}  # per destination: processing end of every accepted message (sorted)
    while heap:
        now, i = heapq.heappop(heap)
        sd = senders[i]
        _, dst, k = plans[i][pos[i]]
        if dst < 0:  # the sender's last compartments after its last message
            soma_end[sd.core] = max(soma_end.get(sd.core, 0.0), now)
            continue
        route = _route(sd.core, dst, mesh)
        cap = (len(route) + 1) * buf
        ends = done_at.setdefault(dst, [])
        out = len(ends) - bisect.bisect_right(ends, now)  # outstanding towards dst at `now`
        if out >= cap:  # wait until enough of them are processed (ends is sorted)
            now = ends[len(ends) - out + (out - cap)]
        m = Message(sd.core, dst, now, k)
        at = now
        for a, b_, ns in route:
            start = max(at, link_free.get((a, b_), 0.0))
            at = start + (t.hop_ns_ns if ns else t.hop_ew_ns)
            link_free[(a, b_)] = at
        m.t_arrive = at
        m.t_done = max(at, recv_end.get(dst, 0.0)) + t.message_in_ns + k * syn_ns.get(dst, t.synaptic_op_ns)
        recv_end[dst] = m.t_done
        bisect.insort(ends, m.t_done)
        msgs.append(m)
        pos[i] += 1
        heapq.heappush(heap, (now + plans[i][pos[i]][0], i))
    ends_c = {c: max(soma_end.get(c, 0.0), recv_end.get(c, 0.0)) for c in set(soma_end) | set(recv_end)}
    busy = max(ends_c.values(), default=0.0)
    critical = max(ends_c, key=lambda c: (ends_c[c], -c)) if ends_c else None
    return {"soma_end": soma_end, "recv_end": recv_end, "messages": msgs, "busy_ns": busy, "critical": critical}


def _lookups(graph: Graph, p: pl.Placement, name: str, n_cores: int) -> np.ndarray:
    """int [n_out, n_cores]: synapses output i of ``name`` looks up on each core (SYNAPSE denses and direct readers)."""
    n = graph.node(name).out_size()
    L = np.zeros((n, n_cores), np.int64)
    out_core = {k: np.repeat(v, pl.unit_size(graph.node(k))) for k, v in p.unit_core.items() if k in graph}
    for s in graph.succs(name):
        role = p.roles[s]
        if role == pl.SYNAPSE:
            rows = pl._synapse_row_cores(graph, p.roles, out_core, s)
            w = graph.node(s).weight != 0  # [out, in]
            ok = rows >= 0
            onehot = np.zeros((rows.size, n_cores), np.int64)
            onehot[np.flatnonzero(ok), rows[ok]] = 1
            L += w.T.astype(np.int64) @ onehot
        elif role == pl.COMPUTE:
            node = graph.node(s)
            umap = pl.input_unit_map(node, graph.edge(name, s)["port"], n)
            L[np.arange(n), pl.graph_unit_core(node, out_core[s], umap)] += 1
    return L


def _updated(graph: Graph, name: str, trace: dict[str, np.ndarray], p: pl.Placement, sample: int) -> np.ndarray:
    """bool [T, n]: compartments updated at each step (Loihi's rule), recomputed from the recorded inputs: an input
    or event reached the compartment's unit, it emitted, or (QLIF, replayed exactly) its membrane was non-zero.
    Other stateful nodes whose state stays non-zero without input or output are under-counted (FIXME)."""
    node = graph.node(name)
    out = trace[name][sample] != 0
    preds = graph.preds(name)
    usz = pl.unit_size(node)
    upd = out.copy()
    for q in preds:  # a non-zero input reaches the unit that reads it (all its compartments)
        if q not in trace:
            continue
        xq = trace[q][sample] != 0
        umap = pl.input_unit_map(node, graph.edge(q, name)["port"], xq.shape[1])
        units = np.zeros((xq.shape[0], out.shape[1] // usz), bool)
        np.logical_or.at(units.T, umap, xq.T)
        upd |= np.repeat(units, usz, axis=1)
    for q in preds:  # events through stored synapses arrive even when they sum to zero
        dn = graph.node(q)
        if p.roles.get(q) == pl.SYNAPSE and isinstance(dn, hw.QDense):
            srcs = [s for s in graph.preds(q) if s in trace]
            if not srcs:
                continue
            xin = sum(trace[s][sample] for s in srcs)
            ev = ((xin != 0).astype(np.float32) @ (dn.weight != 0).T.astype(np.float32)) > 0
            if ev.shape[1] != upd.shape[1]:
                continue
            d = int(dn.delay)
            if d:
                ev = np.concatenate([np.zeros((d, ev.shape[1]), bool), ev[:-d]], axis=0)
            upd |= ev
    if isinstance(node, hw.QLIF) and len(preds) == 1 and preds[0] in trace:  # non-zero membrane before the step
        x = trace[preds[0]][sample]
        v = np.zeros(node.out_size(), np.int64)
        for t_ in range(x.shape[0]):
            upd[t_] |= v != 0
            vn = rsh_trunc(node.decay * v, node.coef_frac_bits) + x[t_]
            s = vn > node.vth if node.compare == ">" else vn >= node.vth
            v = vn if node.reset == "none" else np.where(s, 0 if node.reset == "zero" else vn - node.vth, vn)
    return upd


def partial_relay_ns(graph: Graph, p: pl.Placement, trace: dict[str, np.ndarray], target: Any, sample: int,
                     steps: int) -> np.ndarray:
    """[steps] the extra message phase of partial sums (ns): at each step, the latest arrival at a soma of the
    non-zero partial sums (generation, one message out, its X-Y hops, one message in; links not contended).
    Zero at steps without one, and without partial-sum compartments."""
    from neurocompile.mapping.partials import partial_sums
    from neurocompile.sim.activity import _partial_routes, dense_input, placed_splits

    t = target.timing
    out = np.zeros(steps)
    for s in placed_splits(graph, p):
        if not all(q in trace for q in graph.preds(s.dense)):
            continue
        x = dense_input(graph, s.dense, {q: trace[q][sample:sample + 1] for q in graph.preds(s.dense)})[0]
        hops, ns = _partial_routes(p, s)
        each = (t.spike_out_ns + t.message_out_ns + (hops - ns) * t.hop_ew_ns + ns * t.hop_ns_ns
                + t.message_in_ns)
        live = partial_sums(graph, s, x)[:steps] != 0  # [T, parts]
        out[:live.shape[0]] = np.maximum(out[:live.shape[0]], np.where(live, each[None, :], 0.0).max(axis=1,
                                                                                                    initial=0.0))
    return out


def cycle_timing(graph: Graph, placement: pl.Placement, trace: dict[str, np.ndarray], target: Any,
                 sample: int = 0) -> dict[str, Any]:
    """Schedule every step of sample ``sample`` of a recorded run (``trace`` from ``simulate(record=True)``).

    Returns ``{'mode': 'cycle', 'per_step_ns', 'mean_ns', 'p95_ns', 'max_ns', 'critical_core', 'barrier_ns',
    'tiles_used', 'core_busy_ns'}`` (per-step latencies include the barrier; ``core_busy_ns``: mean end time of
    each core's timelines per step).
    """
    t = target.timing
    p = placement
    mesh = p.mesh
    n_cores = max((c.core for c in p.cores), default=-1) + 1
    steps = next(iter(trace.values())).shape[1]
    senders_src: list[tuple[str, int | None]] = []
    for name in graph.order():
        role = p.roles.get(name)
        if name not in trace:
            continue
        if role == pl.COMPUTE or (role == pl.HOST and isinstance(graph.node(name), hw.QInput)):
            senders_src.append((name, None if role == pl.COMPUTE else HOST_PORT))
    reach = {n: p._reach[n][:, :n_cores] for n, _ in senders_src}
    look = {n: _lookups(graph, p, n, n_cores) for n, _ in senders_src}
    upd = {n: _updated(graph, n, trace, p, sample) for n, h in senders_src if h is None}
    syn_ns: dict[int, float] = {}
    for name in graph.order():
        if p.roles.get(name) == pl.SYNAPSE:
            fmt = synapse_format(graph.node(name))
            v = t.synaptic_op_sparse_ns if fmt == "sparse" else t.synaptic_op_ns
            for c in p.node_cores.get(name, ()):
                syn_ns[c] = v
    barrier = t.barrier_for_tiles(tiles_used(p))
    relay = partial_relay_ns(graph, p, trace, target, sample, steps)
    per_step = np.zeros(steps)
    core_busy = np.zeros(max(n_cores, 1))
    crit_count: dict[int, int] = {}
    unit_cores = {n: np.repeat(p.unit_core[n], pl.unit_size(graph.node(n))) for n, h in senders_src if h is None}
    for step in range(steps):
        by_core: dict[int, list[tuple[float, list[int], list[int]]]] = {}
        for name, host in senders_src:
            fired = trace[name][sample, step] != 0
            if host is not None:
                idx = np.flatnonzero(fired)
                cores = np.full(idx.size, host)
                costs = np.zeros(idx.size)
            else:
                node_upd = upd[name][step]
                cores = unit_cores[name]
                idx = np.arange(fired.size)
                costs = (t.neuron_access_ns + node_upd * t.neuron_update_ns + fired * t.spike_out_ns)
            for j, i in enumerate(idx):
                d = np.flatnonzero(reach[name][i]) if fired[i] else np.zeros(0, np.int64)
                by_core.setdefault(int(cores[j] if host is not None else cores[i]), []).append(
                    (float(costs[j] if host is not None else costs[i]), [int(c) for c in d],
                     [int(look[name][i, c]) for c in d]))
        senders = []
        for core, items in sorted(by_core.items()):
            senders.append(Sender(core, np.array([a for a, _, _ in items]), [b for _, b, _ in items],
                                  [c for _, _, c in items]))
        r = schedule_step(senders, mesh, t, syn_ns)
        per_step[step] = r["busy_ns"] + relay[step] + barrier
        for c in set(r["soma_end"]) | set(r["recv_end"]):
            if c < core_busy.size:
                core_busy[c] += max(r["soma_end"].get(c, 0.0), r["recv_end"].get(c, 0.0))
        if r["critical"] is not None:
            crit_count[r["critical"]] = crit_count.get(r["critical"], 0) + 1
    critical = max(crit_count, key=lambda c: (crit_count[c], -c)) if crit_count else None
    return {
        "mode": "cycle",
        "per_step_ns": [float(v) for v in per_step],
        "mean_ns": float(per_step.mean()) if steps else 0.0,
        "p95_ns": float(np.percentile(per_step, 95)) if steps else 0.0,
        "max_ns": float(per_step.max()) if steps else 0.0,
        "critical_core": critical,
        "barrier_ns": barrier,
        "tiles_used": tiles_used(p),
        "core_busy_ns": {int(c): float(v / max(steps, 1)) for c, v in enumerate(core_busy) if v > 0},
        "sample": sample,
    }
