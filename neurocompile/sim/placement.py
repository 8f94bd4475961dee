"""Placement: which neurocore holds each compartment and synapse of an integer graph, and how far messages travel.

:func:`place` is a pure function ``(graph, target) -> Placement``. The resource model (docs/simulator.md, section
"Placement") is:

- **Roles.** Host-side nodes (``QInput``, ``QEmbedding``, every node downstream of a sequence-end node, and a
  ``QDense`` that feeds only host-side nodes) get no core. A ``QDense`` whose successors all hold compartments is
  *synapses only*: its weight rows live on the cores of the compartments they feed (replicated when it feeds
  several nodes); it has no compartments of its own. A ``QDense`` that feeds another ``QDense`` becomes a relay
  with one compartment per output (synapses cannot chain without a neuron in between). Every other node holds
  compartments: 2 per complex mode for ``QModeBank``, 1 per output for the rest.
- **Units.** Compartments are placed in units that never straddle two cores: one channel (its 2M compartments)
  for ``QModeBank``, one neuron otherwise.
- **Greedy fill.** Nodes are visited in ``graph.order()``; units fill the current core while its compartments,
  memory (synapse bits, plus compartment state bits when ``target.core.shared_memory``) and input axons stay within
  the target's limits; then the next core opens. A unit that does not fit an empty core is a violation
  (it is placed alone anyway, so every rule is reported).
- **Axons.** One input axon per distinct (source node, source neuron) reaching a core; one output axon per
  distinct destination core of a neuron (its own core included).
- **Mesh.** Core ``k`` sits on chip ``k // cores_per_chip``, tile ``(k % cores_per_chip) // cores_per_tile``,
  tiles row-major on a ``mesh_x`` x ``mesh_y`` grid; chips are laid side by side along x. Messages follow X-Y
  routing: hops = |dx| + |dy| between tiles (the north-south part is |dy|); two cores of one tile are 0 hops apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim.resources import (  # re-exported: the placement API
    COMPUTE,
    HOST,
    SYNAPSE,
    _own_synapse_rows,
    _state_bits,
    _units,
    compartments,
    fanout_nnz,
    input_unit_map,
    roles,
    synapse_count,
    synops_dense_per_step,
    unit_size,
)

__all__ = [
    "HOST", "SYNAPSE", "COMPUTE", "PlacementViolation", "CoreUse", "Routes", "Placement", "place", "roles",
    "compartments", "synapse_count", "synops_dense_per_step", "fanout_nnz", "unit_size", "input_unit_map",
]


# -- results ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlacementViolation:
    """A resource limit the model breaks: ``rule``, ``node`` ('' = whole model), ``resource``, ``used``, ``limit``."""

    rule: str
    node: str
    resource: str
    used: int
    limit: int
    severity: str = "error"  # 'error' blocks export, 'warning' does not

    @property
    def message(self) -> str:
        where = f"node '{self.node}'" if self.node else "the model"
        return f"{where} needs {self.used:,} {self.resource} where the target allows {self.limit:,}"

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "node": self.node, "resource": self.resource, "used": self.used,
                "limit": self.limit, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class CoreUse:
    """Resources used on one core, and where the core sits (chip, tile x, tile y)."""

    core: int
    chip: int
    x: int
    y: int
    compartments: int
    synapse_bits: int
    state_bits: int
    input_axons: int
    output_axons: int
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Routes:
    """Per output index of one node: messages to other cores, of those inside the sender's tile, hops, N-S hops."""

    messages: np.ndarray
    local: np.ndarray
    hops: np.ndarray
    hops_ns: np.ndarray


@dataclass(frozen=True)
class Placement:
    """Where every node lives. ``node_cores[n]`` / ``node_core_counts[n]``: its cores and, per core, its compartments
    (synapse rows for a SYNAPSE dense). ``unit_core[n]``: core of each unit of a COMPUTE node."""

    target: str
    limits: dict[str, int]
    cores: tuple[CoreUse, ...]
    roles: dict[str, str]
    node_cores: dict[str, tuple[int, ...]]
    node_core_counts: dict[str, tuple[int, ...]]
    unit_core: dict[str, np.ndarray]
    routes: dict[str, Routes]
    violations: tuple[PlacementViolation, ...]
    mesh: tuple[int, int, int, int] = (1, 1, 1, 1)  # cores_per_chip, cores_per_tile, mesh_x, mesh_y
    _reach: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def cores_used(self) -> int:
        return len(self.cores)

    @property
    def fits(self) -> bool:
        return not any(v.severity == "error" for v in self.violations)

    def core_xy(self, core: int) -> tuple[int, int, int]:
        """(chip, global tile x, tile y) of a core; chips are laid side by side along x."""
        return _core_xy(core, *self.mesh)

    def hops(self, a: int, b: int) -> tuple[int, int]:
        """(east-west, north-south) hops of X-Y routing from core a to core b."""
        _, xa, ya = self.core_xy(a)
        _, xb, yb = self.core_xy(b)
        return abs(xa - xb), abs(ya - yb)

    def resource_utilisation(self) -> dict[int, dict[str, float]]:
        """Core id -> fraction of each limit used: compartments, memory, input_axons, output_axons."""
        lim = self.limits
        out: dict[int, dict[str, float]] = {}
        for c in self.cores:
            mem = c.synapse_bits + (c.state_bits if lim.get("shared_memory") else 0)
            out[c.core] = {
                "compartments": c.compartments / lim["compartments"],
                "memory": mem / lim["memory_bits"],
                "input_axons": c.input_axons / lim["input_axons"],
                "output_axons": c.output_axons / lim["output_axons"],
            }
        return out

    def utilisation(self) -> dict[int, float]:
        """Core id -> how full the core is: the largest fraction of any of its limits (see resource_utilisation)."""
        return {c: max(d.values()) for c, d in self.resource_utilisation().items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (cores, per-node cores, violations)."""
        return {
            "target": self.target,
            "cores_used": self.cores_used,
            "limits": dict(self.limits),
            "cores": [{"core": c.core, "chip": c.chip, "x": c.x, "y": c.y, "compartments": c.compartments,
                       "synapse_bits": c.synapse_bits, "state_bits": c.state_bits, "input_axons": c.input_axons,
                       "output_axons": c.output_axons, "nodes": list(c.nodes)} for c in self.cores],
            "nodes": {n: {"role": self.roles[n], "cores": list(self.node_cores.get(n, ())),
                          "counts": list(self.node_core_counts.get(n, ()))} for n in self.roles},
            "violations": [v.to_dict() for v in self.violations],
        }


def _core_xy(core: int, cores_per_chip: int, cores_per_tile: int, mesh_x: int, mesh_y: int) -> tuple[int, int, int]:
    chip, local = divmod(int(core), cores_per_chip)
    tile = local // cores_per_tile
    return chip, chip * mesh_x + tile % mesh_x, tile // mesh_x


# -- the greedy placer -----------------------------------------------------------------------------------------

class _Feed:
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
        rows, cols = np.nonzero(self.matrix[u:u + k])  # type: ignore[index]  # row-major: rows ascending
        first = np.full(self.n, k, np.int64)
        first[cols[::-1]] = rows[::-1]  # the last write per column is its first (smallest) row
        return first

    def hit(self, u0: int, u1: int) -> np.ndarray:
        """bool [n_source]: source neurons reaching any unit of u0..u1-1."""
        if self.umap is not None:
            return (self.umap >= u0) & (self.umap < u1)
        return self.matrix[u0:u1].any(axis=0)  # type: ignore[index]


def _feeds(graph: Graph, role: dict[str, str], name: str) -> list[_Feed]:
    """Sources feeding a COMPUTE node, following SYNAPSE denses one level back."""
    node = graph.node(name)
    units = _units(node)
    feeds: list[_Feed] = []
    for src in graph.preds(name):
        port = graph.edge(src, name)["port"]
        n_in = graph.node(src).out_size()
        umap = input_unit_map(node, port, n_in)
        if role[src] == SYNAPSE:
            dense = graph.node(src)
            w = dense.weight != 0  # [out, in]: row o feeds unit umap[o]
            bits = np.bincount(umap, weights=np.count_nonzero(w, axis=1), minlength=units).astype(np.int64)
            bits *= int(dense.weight_bits)
            a = _rows_to_units(w, umap, units)
            for i, dsrc in enumerate(graph.preds(src)):  # every source of the dense reaches the same units
                feeds.append(_Feed(dsrc, bits if i == 0 else 0 * bits, matrix=a))
            if not graph.preds(src):
                feeds.append(_Feed("", bits, umap=np.zeros(0, np.int64)))
        else:
            feeds.append(_Feed(src, np.zeros(units, np.int64), umap=umap))
    return feeds


def _rows_to_units(w: np.ndarray, umap: np.ndarray, units: int) -> np.ndarray:
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


def _new_axons(feeds: list[_Feed], seen: dict[str, np.ndarray], u: int, k: int) -> np.ndarray:
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


@dataclass
class _Fill:
    """State of one greedy pass: per core compartments, synapse bits, state bits, input-axon masks per source,
    output axons (estimated) and nodes; per node the core of each unit; the violations found."""

    comp: list[int] = field(default_factory=list)
    syn: list[int] = field(default_factory=list)
    state: list[int] = field(default_factory=list)
    axons: list[dict[str, np.ndarray]] = field(default_factory=list)
    out: list[int] = field(default_factory=list)
    nodes: list[list[str]] = field(default_factory=list)
    unit_core: dict[str, np.ndarray] = field(default_factory=dict)
    violations: list[PlacementViolation] = field(default_factory=list)

    def open(self) -> int:
        for lst in (self.comp, self.syn, self.state, self.out):
            lst.append(0)
        self.axons.append({})
        self.nodes.append([])
        return len(self.comp) - 1


def _groups(graph: Graph, role: dict[str, str], lim: dict[str, int]) -> list[list[str]]:
    """COMPUTE nodes in placement order, in groups whose units share cores: a QModeBank and the QModeReadout that
    reads all of its state go together, channel by channel (the channel's 2M compartments and its readout neuron
    on one core: the 2M state messages stay inside the core), when such a pair fits one core's compartments and
    input axons. Every other node is a group of its own."""
    order = [n for n in graph.order() if role[n] == COMPUTE]
    taken: set[str] = set()
    groups: list[list[str]] = []
    for name in order:
        if name in taken:
            continue
        group = [name]
        node = graph.node(name)
        succ = graph.succs(name)
        if isinstance(node, hw.QModeBank) and len(succ) == 1 and role[succ[0]] == COMPUTE:
            ro = graph.node(succ[0])
            usz = unit_size(node)
            if isinstance(ro, hw.QModeReadout) and graph.edge(name, succ[0])["port"] == "state" \
                    and _units(ro) == _units(node) and usz + 1 <= lim["compartments"] \
                    and usz + 2 <= lim["input_axons"]:
                group.append(succ[0])
        taken.update(group)
        groups.append(group)
    return groups


def _unit_arrays(graph: Graph, role: dict[str, str], name: str, shared: bool,
                 out_est: dict[str, np.ndarray]) -> tuple[list[_Feed], np.ndarray, np.ndarray, np.ndarray, int]:
    """Per unit of one COMPUTE node: (feeds, memory bits, state bits, estimated output axons, unit size)."""
    node = graph.node(name)
    units = _units(node)
    usz = unit_size(node)
    feeds = _feeds(graph, role, name)
    syn_u = np.zeros(units, np.int64)
    for f in feeds:
        syn_u += f.bits
    own = _own_synapse_rows(node)
    if own is not None:
        syn_u += own.astype(np.int64) * int(getattr(node, "weight_bits", 8))
    state_u = np.full(units, _state_bits(node) * usz, np.int64)
    out_u = out_est[name].reshape(units, usz).sum(axis=1)
    return feeds, syn_u, state_u, out_u, usz


def _greedy(graph: Graph, role: dict[str, str], lim: dict[str, int], out_est: dict[str, np.ndarray]) -> _Fill:
    """One greedy pass; ``out_est[node]`` estimates the output axons of each output of each COMPUTE node."""
    cap, mem_cap, ax_in_cap, ax_out_cap = lim["compartments"], lim["memory_bits"], lim["input_axons"], \
        lim["output_axons"]
    shared = bool(lim["shared_memory"])
    fill = _Fill()
    cur = -1
    for group in _groups(graph, role, lim):
        parts = [_unit_arrays(graph, role, n, shared, out_est) for n in group]
        feeds = [f for p in parts for f in p[0]]
        syn_u = sum(p[1] for p in parts)
        state_u = sum(p[2] for p in parts)
        out_u = sum(p[3] for p in parts)
        usz = sum(p[4] for p in parts)
        units = int(syn_u.shape[0])
        name = ", ".join(group)
        mem_u = syn_u + (state_u if shared else 0)
        cum_comp = np.arange(1, units + 1, dtype=np.int64) * usz
        cum_mem = np.cumsum(mem_u)
        cum_out = np.cumsum(out_u)
        cores_of_units = np.full(units, -1, np.int64)
        u = 0
        if cur < 0:
            cur = fill.open()
        while u < units:
            # largest k such that compartments, memory and (estimated) output axons fit
            def room(cum: np.ndarray, free: int, u: int = u) -> int:
                base = int(cum[u - 1]) if u else 0
                return int(np.searchsorted(cum - base, free, side="right")) - u
            mem_used = fill.syn[cur] + (fill.state[cur] if shared else 0)
            k = max(0, min(units - u, room(cum_comp, cap - fill.comp[cur]), room(cum_mem, mem_cap - mem_used),
                           room(cum_out, ax_out_cap - fill.out[cur])))
            # input axons: distinct (source, neuron) pairs new to this core, first needed at unit offset f
            if k > 0:
                firsts = _new_axons(feeds, fill.axons[cur], u, k)
                free = ax_in_cap - sum(int(m.sum()) for m in fill.axons[cur].values())
                # units u..u+j-1 need count(firsts < j) new axons: largest j <= k within the room
                if firsts.size > free:
                    k = int(firsts[free]) if free >= 0 else 0
            if k == 0:
                if fill.comp[cur] == 0:
                    # one unit does not fit an empty core: report every broken limit and place it alone
                    need_ax = int(_new_axons(feeds, {}, u, 1).size)
                    for res, used, limit_ in (("compartments", usz, cap), ("memory bits", int(mem_u[u]), mem_cap),
                                              ("input axons", need_ax, ax_in_cap),
                                              ("output axons", int(out_u[u]), ax_out_cap)):
                        if used > limit_:
                            fill.violations.append(PlacementViolation("core-capacity", name, res, used, limit_))
                    k = 1
                else:
                    cur = fill.open()
                    continue
            sl = slice(u, u + k)
            cores_of_units[sl] = cur
            fill.comp[cur] += k * usz
            fill.syn[cur] += int(syn_u[sl].sum())
            fill.state[cur] += int(state_u[sl].sum())
            fill.out[cur] += int(out_u[sl].sum())
            for f in feeds:
                if f.n == 0:
                    continue
                hit = f.hit(u, u + k)
                prev = fill.axons[cur].get(f.src)
                fill.axons[cur][f.src] = hit if prev is None else (prev | hit)
            for member in group:
                if member not in fill.nodes[cur]:
                    fill.nodes[cur].append(member)
            u += k
        for member in group:
            fill.unit_core[member] = cores_of_units.copy()
    return fill


#: Greedy passes at most: each pass after the first uses the previous pass's exact output axons per neuron.
MAX_PASSES = 4


def place(graph: Graph, target: Any) -> Placement:
    """Assign every compartment and synapse of ``graph`` to cores of ``target`` (greedy fill; see module doc).

    Output axons depend on where the destinations land, so the fill is repeated (at most ``MAX_PASSES`` times)
    with each neuron's output axons taken as the largest count seen so far, until no core exceeds the limit.
    Never raises for a model that does not fit: every broken limit is returned in ``violations``.
    """
    sysm = target.system
    mesh = (int(sysm.cores_per_chip), int(sysm.cores_per_tile), int(sysm.mesh_x), int(sysm.mesh_y))
    lim = {"compartments": int(target.core.compartments), "memory_bits": int(target.core.synapse_memory_bits),
           "input_axons": int(target.core.input_axons), "output_axons": int(target.core.output_axons),
           "shared_memory": int(bool(target.core.shared_memory)), "cores": int(sysm.cores_total)}
    role = roles(graph)
    order = graph.order()
    out_est = {n: _read_on_chip(graph, role, n) for n in order if role[n] == COMPUTE}
    for attempt in range(MAX_PASSES):
        fill = _greedy(graph, role, lim, out_est)
        n_cores = len(fill.comp)
        out_core = {n: np.repeat(fill.unit_core[n], unit_size(graph.node(n))) for n in out_est}
        reach = _reach_matrices(graph, role, out_core, n_cores)
        out_axons = np.zeros(n_cores, np.int64)
        for n in out_est:
            np.add.at(out_axons, out_core[n], reach[n].sum(axis=1))
        if not (out_axons > lim["output_axons"]).any():
            break
        grown = False
        for n in out_est:
            exact = reach[n].sum(axis=1).astype(np.int64)
            if (exact > out_est[n]).any():
                out_est[n] = np.maximum(out_est[n], exact)
                grown = True
        if not grown:
            break
    violations = list(fill.violations)
    if n_cores > lim["cores"]:
        violations.append(PlacementViolation("cores", "", "cores", n_cores, lim["cores"]))

    node_cores: dict[str, tuple[int, ...]] = {}
    node_counts: dict[str, tuple[int, ...]] = {}
    for name in order:
        if role[name] == COMPUTE:
            ids, cnt = np.unique(out_core[name], return_counts=True)
        elif role[name] == SYNAPSE:
            # rows of the dense, placed with the first compartment node they feed
            rows = _synapse_row_cores(graph, role, out_core, name)
            ids, cnt = np.unique(rows[rows >= 0], return_counts=True)
        else:
            ids, cnt = np.zeros(0, np.int64), np.zeros(0, np.int64)
        node_cores[name] = tuple(int(i) for i in ids)
        node_counts[name] = tuple(int(c) for c in cnt)

    # -- routes and axons --------------------------------------------------------------------------------------
    xy = np.array([_core_xy(c, *mesh) for c in range(n_cores)], np.int64).reshape(n_cores, 3)
    tile = np.array([c // mesh[1] for c in range(n_cores)], np.int64)
    routes: dict[str, Routes] = {}
    in_axons = np.zeros(n_cores, np.int64)
    for name in order:
        r = reach[name]
        n = r.shape[0]
        if n_cores:
            in_axons += r.sum(axis=0)
        if role[name] != COMPUTE or n_cores == 0:
            z = np.zeros(n, np.int64)
            routes[name] = Routes(z, z, z, z)
            continue
        own = out_core[name]
        other = r.copy()
        other[np.arange(n), own] = False
        routes[name] = _routes(other, own, xy, tile)
    for c in range(n_cores):
        if out_axons[c] > lim["output_axons"]:
            violations.append(PlacementViolation("core-capacity", ", ".join(fill.nodes[c]),
                                                 f"output axons on core {c}", int(out_axons[c]), lim["output_axons"]))

    cores = tuple(
        CoreUse(core=c, chip=int(xy[c, 0]), x=int(xy[c, 1]), y=int(xy[c, 2]), compartments=fill.comp[c],
                synapse_bits=fill.syn[c], state_bits=fill.state[c], input_axons=int(in_axons[c]),
                output_axons=int(out_axons[c]), nodes=tuple(fill.nodes[c]))
        for c in range(n_cores)
    )
    return Placement(target=str(getattr(target, "name", "")), limits=lim, cores=cores, roles=role,
                     node_cores=node_cores, node_core_counts=node_counts, unit_core=fill.unit_core, routes=routes,
                     violations=tuple(violations), mesh=mesh, _reach=reach)


def _routes(other: np.ndarray, own: np.ndarray, xy: np.ndarray, tile: np.ndarray) -> Routes:
    """Per output: messages to other cores (``other`` bool [n, cores]), local ones, X-Y hops and N-S hops.
    Rows are grouped by their own core, so that each group is one product with that core's distance vector."""
    n = other.shape[0]
    msgs = other.sum(axis=1).astype(np.int64)
    local, hops, hops_ns = (np.zeros(n, np.int64) for _ in range(3))
    for c in np.unique(own):
        rows = np.flatnonzero(own == c)
        sub = other[rows].astype(np.int64)
        dy = np.abs(xy[c, 2] - xy[:, 2])
        hops[rows] = sub @ (np.abs(xy[c, 1] - xy[:, 1]) + dy)
        hops_ns[rows] = sub @ dy
        local[rows] = sub @ (tile == tile[c]).astype(np.int64)
    return Routes(messages=msgs, local=local, hops=hops, hops_ns=hops_ns)


def _read_on_chip(graph: Graph, role: dict[str, str], name: str) -> np.ndarray:
    """[out_size] estimate of the output axons of each output of ``name``: one per distinct compartment node that
    reads it on chip (directly or through a SYNAPSE dense). Exact when each reader sits on one core."""
    node = graph.node(name)
    readers: dict[str, np.ndarray] = {}
    for s in graph.succs(name):
        if role[s] == COMPUTE:
            readers[s] = np.ones(node.out_size(), bool)
        elif role[s] == SYNAPSE:
            col = np.any(graph.node(s).weight != 0, axis=0)
            for t in graph.succs(s):
                if role[t] == COMPUTE:
                    readers[t] = readers[t] | col if t in readers else col
    need = np.zeros(node.out_size(), np.int64)
    for r in readers.values():
        need += r
    return need


def _dest_cores(graph: Graph, role: dict[str, str], out_core: dict[str, np.ndarray], dst: str, port: str,
                n_in: int, n_cores: int) -> np.ndarray:
    """bool [n_in, n_cores]: cores that input index i of ``dst`` on ``port`` reaches."""
    r = np.zeros((n_in, n_cores), bool)
    if n_cores == 0:
        return r
    if role[dst] == COMPUTE:
        node = graph.node(dst)
        umap = input_unit_map(node, port, n_in)
        r[np.arange(n_in), graph_unit_core(node, out_core[dst], umap)] = True
    elif role[dst] == SYNAPSE:
        w = (graph.node(dst).weight != 0).astype(np.float32)  # [out, in]
        for s in graph.succs(dst):
            sub = _dest_cores(graph, role, out_core, s, graph.edge(dst, s)["port"], w.shape[0], n_cores)
            r |= (w.T @ sub.astype(np.float32)) > 0  # sums of 0/1 products: > 0 exactly when one is 1
    return r


def graph_unit_core(node: hw.QNode, out_core: np.ndarray, umap: np.ndarray) -> np.ndarray:
    """Core of unit umap[i] of a COMPUTE node, given the core of each of its outputs."""
    return out_core[::unit_size(node)][umap]


def _reach_matrices(graph: Graph, role: dict[str, str], out_core: dict[str, np.ndarray],
                    n_cores: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in graph.order():
        n = graph.node(name).out_size()
        r = np.zeros((n, n_cores), bool)
        if role[name] != SYNAPSE:  # a SYNAPSE dense sends nothing: its sources' messages reach its rows
            for s in graph.succs(name):
                r |= _dest_cores(graph, role, out_core, s, graph.edge(name, s)["port"], n, n_cores)
        out[name] = r
    return out


def _synapse_row_cores(graph: Graph, role: dict[str, str], out_core: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Core of each output row of a SYNAPSE dense: the core of the first COMPUTE successor unit it feeds."""
    n = graph.node(name).out_size()
    rank = {v: i for i, v in enumerate(graph.order())}
    for s in sorted(graph.succs(name), key=rank.__getitem__):
        if role[s] == COMPUTE:
            node = graph.node(s)
            umap = input_unit_map(node, graph.edge(name, s)["port"], n)
            return graph_unit_core(node, out_core[s], umap)
    return np.full(n, -1, np.int64)
