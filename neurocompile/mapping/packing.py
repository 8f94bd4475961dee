"""Packing placement units into cores under every per-core limit at once (compartments, memory, input axons,
output axons): the partition step of :func:`neurocompile.mapping.placement.place`.

Units (an SSM channel with its readout neuron, or one neuron) come in *groups* (one node, or a bank with the
reader of its whole state), in graph order. Groups are sorted into *streams* by kind: their binding resource,
the first resource (in ``RES`` order) within ``TIE`` of the largest total_r / limit_r over the group (an SSM
channel binds input axons, a dense layer's neurons bind synapse memory, a neuron read by many cores output
axons), and the other resources at or above ``KIND`` of it (a residual add, using output and input axons
alike, is not paced with the LIF neurons, which use output axons only). Filling cores from one stream in graph
order leaves the other resources idle (a core of SSM channels uses a seventh of its memory, a core of dense rows
a quarter of its axons), so each core draws from every stream:

- cores open one at a time; *progress* of a stream is its binding resource placed / the stream's total, and
  *step* the progress one full core of it makes. Every stream draws on every core, except a stream of units
  reading a dense layer while it is more than one step of the least-advanced stream ahead (the layers stay
  aligned, so messages travel less far); the stream needing most cores (smallest step) draws last;
- a stream takes the longest run of its next units that fits, leaving for the streams after it on this core
  their average use (total / K, K the lower bound of cores) of every resource they need far less than their
  own (``SLACK``); a stream drawing before others takes at most up to the furthest progress one of them can
  reach after this core (so LIF neurons follow the dense rows they feed, and the cores holding those rows,
  which need all the LIF axons as inputs, spend their output axons on them). Units reading a dense layer are
  not held back: they gather on as few cores as their memory allows, since every core holding some needs all
  the layer's inputs;
- input axons are counted exactly: a source neuron reaching several units of one core needs one axon there.

A unit that does not fit an empty core is a ``core-capacity`` violation (placed alone, so every rule is found).
The result is deterministic: it depends only on the graph and the limits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from neurocompile.ir.graph import Graph
from neurocompile.mapping.resources import (
    COMPUTE,
    RESOURCES,
    SYNAPSE,
    _own_synapse_rows,
    _state_bits,
    _units,
    input_unit_map,
    unit_size,
)

RES = ("compartments", "memory_bits", "input_axons", "output_axons")
#: a resource a stream needs below this fraction of its binding one is reserved for it on cores it shares
SLACK = 0.75
#: resources of a group within this fraction of its largest one tie for binding it
TIE = 0.1
#: a resource of a group at or above this fraction of its binding one marks a kind of its own (its own stream)
KIND = 0.6


class Feed:
    """One source feeding a COMPUTE node: which of the node's units each source neuron reaches.

    ``umap`` (elementwise: source neuron j reaches unit umap[j] only) or ``matrix`` (bool [units, n_source],
    through a SYNAPSE dense); ``bits`` [units]: synapse bits charged to each unit.
    """

    def __init__(self, src: str, bits: np.ndarray, umap: np.ndarray | None = None,
                 matrix: np.ndarray | None = None) -> None:
        self.src, self.bits, self.umap, self.matrix = src, bits, umap, matrix
        self.n = int(umap.shape[0]) if umap is not None else int(matrix.shape[1])  # type: ignore[union-attr]

    def first(self, u: int, k: int) -> np.ndarray:
        """Per source neuron: offset of the first unit in u..u+k-1 it reaches (k when none)."""
        if self.umap is not None:
            off = self.umap - u
            return np.where((off >= 0) & (off < k), off, k)
        sub = self.matrix[u:u + k]  # type: ignore[index]
        if not sub.shape[0]:
            return np.full(self.n, k, np.int64)
        first = sub.argmax(axis=0).astype(np.int64)  # the first True of each column (0 when none)
        return np.where(sub[first, np.arange(self.n)], first, k)

    def hit(self, u0: int, u1: int) -> np.ndarray:
        """bool [n_source]: source neurons reaching any unit of u0..u1-1."""
        if self.umap is not None:
            return (self.umap >= u0) & (self.umap < u1)
        return self.matrix[u0:u1].any(axis=0)  # type: ignore[index]


def feeds_of(graph: Graph, role: dict[str, str], name: str) -> list[Feed]:
    """Sources feeding a COMPUTE node, following SYNAPSE denses one level back."""
    node = graph.node(name)
    units = _units(node)
    feeds: list[Feed] = []
    for src in graph.preds(name):
        port = graph.edge(src, name)["port"]
        n_in = graph.node(src).out_size()
        umap = input_unit_map(node, port, n_in)
        if role[src] == SYNAPSE:
            dense = graph.node(src)
            w = dense.weight != 0  # [out, in]: row o feeds unit umap[o]
            bits = np.bincount(umap, weights=np.count_nonzero(w, axis=1), minlength=units).astype(np.int64)
            bits *= int(dense.weight_bits)
            a = rows_to_units(w, umap, units)
            for i, dsrc in enumerate(graph.preds(src)):  # every source of the dense reaches the same units
                feeds.append(Feed(dsrc, bits if i == 0 else 0 * bits, matrix=a))
            if not graph.preds(src):
                feeds.append(Feed("", bits, umap=np.zeros(0, np.int64)))
        else:
            feeds.append(Feed(src, np.zeros(units, np.int64), umap=umap))
    return feeds


def rows_to_units(w: np.ndarray, umap: np.ndarray, units: int) -> np.ndarray:
    """bool [units, in]: OR of the rows of ``w`` that each unit receives (row o goes to unit umap[o])."""
    if w.shape[0] == units and np.array_equal(umap, np.arange(units)):
        return w
    order = np.argsort(umap, kind="stable")
    su = umap[order]
    starts = np.flatnonzero(np.r_[True, su[1:] != su[:-1]])
    out = np.zeros((units, w.shape[1]), bool)
    if starts.size:
        out[su[starts]] = np.logical_or.reduceat(w[order], starts, axis=0)
    return out


def new_axons(feeds: list[Feed], seen: dict[str, np.ndarray], u: int, k: int) -> np.ndarray:
    """Sorted unit offsets (0..k-1) at which each new (source, neuron) axon first appears in units u..u+k-1."""
    per_src: dict[str, np.ndarray] = {}
    for f in feeds:
        if f.n == 0:
            continue
        first = f.first(u, k)
        if f.src in seen:
            first = np.where(seen[f.src], k, first)
        per_src[f.src] = np.minimum(per_src[f.src], first) if f.src in per_src else first
    if not per_src:
        return np.zeros(0, np.int64)
    allf = np.concatenate(list(per_src.values()))
    return np.sort(allf[allf < k])


def groups(graph: Graph, role: dict[str, str], lim: dict[str, int]) -> list[list[str]]:
    """COMPUTE nodes in placement order, in groups whose units share cores: a bank and the reader of its whole
    state go together, channel by channel (the channel's 2M compartments and its readout neuron on one core: the
    2M state messages stay inside the core), when such a pair fits one core's compartments and input axons.
    Every other node is a group of its own."""
    taken: set[str] = set()
    out: list[list[str]] = []
    for name in (n for n in graph.order() if role[n] == COMPUTE):
        if name in taken:
            continue
        group = [name]
        node = graph.node(name)
        succ = graph.succs(name)
        if RESOURCES[node].pairs_with_state_reader and len(succ) == 1 and role[succ[0]] == COMPUTE:
            ro = graph.node(succ[0])
            usz = unit_size(node)
            port = RESOURCES[ro].state_port
            if port and graph.edge(name, succ[0])["port"] == port and _units(ro) == _units(node) \
                    and usz + 1 <= lim["compartments"] and usz + 2 <= lim["input_axons"]:
                group.append(succ[0])
        taken.update(group)
        out.append(group)
    return out


@dataclass
class Group:
    """Per unit arrays of one group: feeds, memory bits (synapses, plus state where memory is shared), state bits,
    estimated output axons; compartments per unit; cumulative sums with a leading 0 for O(1) range totals."""

    names: list[str]
    feeds: list[Feed]
    mem: np.ndarray
    syn: np.ndarray
    state: np.ndarray
    out: np.ndarray
    usz: int
    cum: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def units(self) -> int:
        return int(self.mem.shape[0])

    @property
    def shared_inputs(self) -> bool:
        """True when the units read a dense layer: they share its inputs, so they gather on as few cores as fit
        (each core holding some needs every input axon of the layer)."""
        return any(f.matrix is not None for f in self.feeds)

    def total(self, r: str) -> int:
        return int(self.cum[r][-1])


def group_arrays(graph: Graph, role: dict[str, str], names: list[str], shared: bool,
                 out_est: dict[str, np.ndarray]) -> Group:
    feeds: list[Feed] = []
    syn = state = out = 0
    usz = 0
    for name in names:
        node = graph.node(name)
        units, sz = _units(node), unit_size(node)
        f = feeds_of(graph, role, name)
        feeds += f
        s = np.zeros(units, np.int64)
        for x in f:
            s += x.bits
        own = _own_synapse_rows(node)
        if own is not None:
            s += own.astype(np.int64) * int(getattr(node, "weight_bits", 8))
        syn = syn + s
        state = state + np.full(units, _state_bits(node) * sz, np.int64)
        out = out + out_est[name].reshape(units, sz).sum(axis=1)
        usz += sz
    mem = syn + (state if shared else 0)
    g = Group(list(names), feeds, np.asarray(mem, np.int64), np.asarray(syn, np.int64),
              np.asarray(state, np.int64), np.asarray(out, np.int64), usz)
    n = g.units
    z = np.zeros(1, np.int64)
    g.cum = {"compartments": np.arange(n + 1, dtype=np.int64) * usz, "memory_bits": np.r_[z, np.cumsum(g.mem)],
             "output_axons": np.r_[z, np.cumsum(g.out)],
             # input axons if the group sat on one core, spread evenly over its units: for choosing the binding
             # resource and measuring progress only (the fill counts axons exactly)
             "input_axons": (_distinct_sources(g.feeds, n) * np.arange(n + 1, dtype=np.int64)) // max(n, 1)}
    return g


def _distinct_sources(feeds: list[Feed], n: int) -> int:
    """Distinct (source, neuron) pairs reaching units 0..n-1: the group's input axons on one core."""
    srcs: dict[str, np.ndarray] = {}
    for f in feeds:
        if f.n:
            h = f.hit(0, n)
            srcs[f.src] = srcs[f.src] | h if f.src in srcs else h
    return sum(int(m.sum()) for m in srcs.values())


@dataclass
class Fill:
    """State of one packing: per core compartments, synapse bits, state bits, input-axon masks per source,
    estimated output axons and nodes; per node the core of each unit; the violations found."""

    comp: list[int] = field(default_factory=list)
    syn: list[int] = field(default_factory=list)
    state: list[int] = field(default_factory=list)
    axons: list[dict[str, np.ndarray]] = field(default_factory=list)
    n_axons: list[int] = field(default_factory=list)
    out: list[int] = field(default_factory=list)
    nodes: list[list[str]] = field(default_factory=list)
    unit_core: dict[str, np.ndarray] = field(default_factory=dict)
    violations: list[tuple[str, str, int, int]] = field(default_factory=list)  # node, resource, used, limit

    def open(self) -> int:
        for lst in (self.comp, self.syn, self.state, self.out, self.n_axons):
            lst.append(0)
        self.axons.append({})
        self.nodes.append([])
        return len(self.comp) - 1

    def used(self, c: int, shared: bool) -> dict[str, int]:
        return {"compartments": self.comp[c], "memory_bits": self.syn[c] + (self.state[c] if shared else 0),
                "input_axons": self.n_axons[c], "output_axons": self.out[c]}


def _take(g: Group, u: int, fill: Fill, c: int, caps: dict[str, int], shared: bool) -> int:
    """Largest k such that units u..u+k-1 of ``g`` fit core ``c`` within ``caps``."""
    used = fill.used(c, shared)
    k = g.units - u
    for r in ("compartments", "memory_bits", "output_axons"):
        cum = g.cum[r]
        k = min(k, int(np.searchsorted(cum[u:] - cum[u], caps[r] - used[r], side="right")) - 1)
    if k <= 0:
        return 0
    firsts = new_axons(g.feeds, fill.axons[c], u, k)
    free = caps["input_axons"] - used["input_axons"]
    if firsts.size > free:  # units u..u+j-1 need count(firsts < j) new axons: largest j within the room
        k = int(firsts[free]) if free >= 0 else 0
    return k


def _commit(g: Group, u: int, k: int, fill: Fill, c: int, unit_core: dict[str, np.ndarray]) -> None:
    sl = slice(u, u + k)
    fill.comp[c] += k * g.usz
    fill.syn[c] += int(g.syn[sl].sum())
    fill.state[c] += int(g.state[sl].sum())
    fill.out[c] += int(g.out[sl].sum())
    for f in g.feeds:
        if f.n == 0:
            continue
        hit = f.hit(u, u + k)
        prev = fill.axons[c].get(f.src)
        fill.axons[c][f.src] = hit if prev is None else (prev | hit)
    fill.n_axons[c] = sum(int(m.sum()) for m in fill.axons[c].values())
    for name in g.names:
        unit_core[name][sl] = c
        if name not in fill.nodes[c]:
            fill.nodes[c].append(name)


class _Stream:
    """Groups of one binding resource, in graph order, and how far they are placed."""

    def __init__(self, members: list[Group], lim: dict[str, int]) -> None:
        self.members = members
        self.totals = {r: sum(g.total(r) for g in members) for r in RES}
        self.resource = max(RES, key=lambda r: (self.totals[r] / lim[r], -RES.index(r)))
        self.step = lim[self.resource] / max(self.totals[self.resource], 1)  # progress of one full core
        self.gi = self.u = 0
        self.done_amount = 0

    def units_until(self, progress: float) -> int:
        """Units of the current group that keep this stream's progress at or below ``progress``."""
        g = self.members[self.gi]
        cum = g.cum[self.resource]
        room = progress * self.totals[self.resource] - self.done_amount
        return max(0, int(np.searchsorted(cum[self.u:] - cum[self.u], room, side="right")) - 1)

    def slack(self, r: str, lim: dict[str, int]) -> bool:
        """True when resource r binds this stream far less than its own resource (reserve it: it will not adapt)."""
        return self.totals[r] / lim[r] < SLACK * self.totals[self.resource] / lim[self.resource]

    @property
    def finished(self) -> bool:
        return self.gi >= len(self.members)

    def progress(self) -> float:
        return self.done_amount / max(self.totals[self.resource], 1)

    def advance(self, k: int) -> None:
        g = self.members[self.gi]
        self.done_amount += int(g.cum[self.resource][self.u + k] - g.cum[self.resource][self.u])
        self.u += k
        if self.u >= g.units:
            self.gi, self.u = self.gi + 1, 0


def pack(graph: Graph, role: dict[str, str], lim: dict[str, int], out_est: dict[str, np.ndarray]) -> Fill:
    """Fill cores from the binding-resource streams (module doc); ``out_est[node]``: estimated output axons of
    each output of each COMPUTE node."""
    shared = bool(lim["shared_memory"])
    gs = [group_arrays(graph, role, names, shared, out_est) for names in groups(graph, role, lim)]
    fill = Fill()
    for g in gs:
        for name in g.names:
            fill.unit_core[name] = np.full(g.units, -1, np.int64)
    # the lower bound from these groups alone sets one core's share of every resource
    k_lb = max(1, *(math.ceil(sum(g.total(r) for g in gs) / lim[r]) for r in RES))
    # one stream per kind of group: its binding resource (a resource within TIE of the largest counts as binding
    # too, the first in RES order wins, so that SSM channels using input and output axons alike bind one) and
    # the other resources within KIND of it. Each stream's progress is measured in its binding resource, so
    # groups of different profiles (LIF neurons: output axons only; residual adds: output and input axons) do
    # not pace one another
    kinds: dict[tuple[str, ...], list[Group]] = {}
    for g in gs:
        if g.units:
            top = max(g.total(r) / lim[r] for r in RES)
            bind = next(r for r in RES if g.total(r) / lim[r] >= (1 - TIE) * top)
            key = (bind,) + tuple(r for r in RES if r != bind and g.total(r) / lim[r] >= KIND * top)
            kinds.setdefault(key, []).append(g)
    streams = [_Stream(kinds[k], lim) for k in sorted(kinds, key=lambda k: [RES.index(r) for r in k])]
    while not all(s.finished for s in streams):
        c = fill.open()
        live = sorted((s for s in streams if not s.finished), key=lambda s: (s.progress(), RES.index(s.resource)))
        # every stream draws, except units reading a dense layer (never held back by a limit) while they are more
        # than one core of the least-advanced stream ahead of it: the layers stay aligned (fewer hops)
        lead = live[0]
        draw = [s for s in live if s is lead or not s.members[s.gi].shared_inputs
                or s.progress() <= lead.progress() + lead.step]
        # the stream needing the most cores draws last: it fills what the others leave of its resource
        draw.sort(key=lambda s: -s.step)
        placed = False
        for i, s in enumerate(draw):
            later = draw[i + 1:]
            caps = {r: lim[r] - sum(t.totals[r] // k_lb for t in later if t.slack(r, lim)) for r in RES}
            # the furthest a later stream can be after this core: a stream drawing before others goes no further
            # (it follows the stream that advances fastest, e.g. LIF neurons the dense rows they feed)
            limit = max((t.progress() + t.step for t in later), default=None)
            while not s.finished:
                g = s.members[s.gi]
                k = _take(g, s.u, fill, c, caps, shared)
                if limit is not None and not g.shared_inputs:
                    k = min(k, s.units_until(limit))
                if k == 0:
                    break
                _commit(g, s.u, k, fill, c, fill.unit_core)
                s.advance(k)
                placed = True
        if not placed:  # nothing fits within the reserves: the first stream's next unit, alone if need be
            s = live[0]
            g = s.members[s.gi]
            k = _take(g, s.u, fill, c, lim, shared)
            if k == 0:
                used = {"compartments": g.usz, "memory_bits": int(g.mem[s.u]),
                        "input_axons": int(new_axons(g.feeds, {}, s.u, 1).size), "output_axons": int(g.out[s.u])}
                for r in RES:
                    if used[r] > lim[r]:
                        fill.violations.append((", ".join(g.names), r.replace("_", " "), used[r], lim[r]))
                k = 1
            _commit(g, s.u, k, fill, c, fill.unit_core)
            s.advance(k)
    return fill
