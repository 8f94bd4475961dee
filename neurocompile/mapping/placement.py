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
- **Packing** (:mod:`neurocompile.mapping.packing`): units are packed into cores under every per-core limit at once
  (compartments, memory: synapse bits, plus compartment state bits when ``target.core.shared_memory``, input and
  output axons), drawing on each core from streams of groups sorted by their binding resource, so that
  axon-bound SSM channels and memory-bound dense rows share cores. A unit that does not fit an empty core is a
  violation (it is placed alone anyway, so every rule is reported).
- **Axons.** One input axon per distinct (source node, source neuron) reaching a core; one output axon per
  distinct destination core of a neuron (its own core included).
- **Mesh.** Physical core ``k`` sits on chip ``k // cores_per_chip``, tile ``(k % cores_per_chip) //
  cores_per_tile``, tiles row-major on a ``mesh_x`` x ``mesh_y`` grid; chips are laid side by side along x.
  Packed cores are arranged onto physical cores by :func:`neurocompile.mapping.mesh.arrange` (serpentine start,
  swap refinement of hop-weighted traffic with chip links costed). Messages follow X-Y routing: hops = |dx| +
  |dy| between tiles (the north-south part is |dy|); two cores of one tile are 0 hops apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.mapping.mesh import DenseReach, Reach, arrange, core_xy, traffic
from neurocompile.mapping.packing import pack
from neurocompile.mapping.resources import (  # re-exported: the placement API
    COMPUTE,
    HOST,
    SYNAPSE,
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
    """Per output index of one node: messages to other cores, of those inside the sender's tile, hops, N-S hops,
    chip-to-chip links crossed."""

    messages: np.ndarray
    local: np.ndarray
    hops: np.ndarray
    hops_ns: np.ndarray
    chip_links: np.ndarray | None = None


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
    _reach: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)  # dense, on demand
    reach: dict[str, Reach] = field(default_factory=dict, repr=False, compare=False)  # (output, core) pairs
    mesh_cost: dict[str, int] = field(default_factory=dict)  # hop-weighted traffic before/after refinement

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
            "mesh_cost": dict(self.mesh_cost),
        }


def _core_xy(core: int, cores_per_chip: int, cores_per_tile: int, mesh_x: int, mesh_y: int) -> tuple[int, int, int]:
    chip, local = divmod(int(core), cores_per_chip)
    tile = local // cores_per_tile
    return chip, chip * mesh_x + tile % mesh_x, tile // mesh_x


#: Packing passes at most: each pass after the first uses the previous pass's exact output axons per neuron.
MAX_PASSES = 6


def limits_of(target: Any) -> dict[str, int]:
    """Per-core limits (and total cores) of a target, as the packer reads them."""
    return {"compartments": int(target.core.compartments), "memory_bits": int(target.core.synapse_memory_bits),
            "input_axons": int(target.core.input_axons), "output_axons": int(target.core.output_axons),
            "shared_memory": int(bool(target.core.shared_memory)), "cores": int(target.system.cores_total)}


def place(graph: Graph, target: Any) -> Placement:
    """Assign every compartment and synapse of ``graph`` to cores of ``target`` (see module doc).

    Units are packed (:func:`neurocompile.mapping.packing.pack`); output axons depend on where the destinations land,
    so the packing is repeated (at most ``MAX_PASSES`` times) with each neuron's output axons taken from the
    previous pass, and the pass with the fewest cores among those that break no output-axon limit is kept (the
    last one when all do). The packed cores are then arranged on the mesh and chips
    (:func:`neurocompile.mapping.mesh.arrange`). Never raises for a model that does not fit: every broken limit is
    returned in ``violations``.
    """
    from neurocompile.mapping.partials import placement_graph

    # a neuron over the fan-in limit is placed as partial-sum compartments plus its soma (mapping/partials.py)
    graph, _ = placement_graph(graph, target)
    sysm = target.system
    mesh = (int(sysm.cores_per_chip), int(sysm.cores_per_tile), int(sysm.mesh_x), int(sysm.mesh_y))
    lim = limits_of(target)
    role = roles(graph)
    order = graph.order()
    # first guess: one axon per reader node, or more where a dense reader's rows cannot share one core
    out_est = {n: np.maximum(_read_on_chip(graph, role, n), min_spread(graph, role, n, lim["memory_bits"]))
               for n in order if role[n] == COMPUTE}
    best = None
    cap = dict(lim)
    last_over = 1 << 62
    for _ in range(MAX_PASSES):
        fill = pack(graph, role, cap, out_est)
        n_cores = len(fill.comp)
        reach = reach_pairs(graph, role, fill.unit_core, n_cores)
        out_axons = np.zeros(n_cores, np.int64)
        for n in out_est:
            np.add.at(out_axons, np.repeat(fill.unit_core[n], unit_size(graph.node(n))), reach[n].per_row())
        over = int(out_axons.max(initial=0)) - lim["output_axons"]
        if best is None or (max(over, 0), n_cores) < (max(best[3], 0), len(best[0].comp)):
            best = (fill, reach, out_axons, over)
        if over <= 0:
            break
        # the next pass charges each output its exact axons of this pass; when that no longer helps, scaled up on
        # the cores that overflowed (their outputs' destinations spread further when repacked)
        scale = np.maximum(out_axons / lim["output_axons"], 1.0) if over >= last_over else np.ones(n_cores)
        if over >= last_over:  # and keep the overshoot free on every core
            cap["output_axons"] = max(1, cap["output_axons"] - over)
        last_over = over
        for n in out_est:
            here = scale[np.repeat(fill.unit_core[n], unit_size(graph.node(n)))]
            out_est[n] = np.maximum(out_est[n], np.ceil(reach[n].per_row() * here - 1e-9).astype(np.int64))
    fill, reach, out_axons, _ = best  # type: ignore[misc]
    n_cores = len(fill.comp)
    violations = [PlacementViolation("core-capacity", *v) for v in fill.violations]
    if n_cores > lim["cores"]:
        violations.append(PlacementViolation("cores", "", "cores", n_cores, lim["cores"]))
    # -- mesh and chips: packed core j sits on physical core perm[j] --------------------------------------------
    own = {n: np.repeat(fill.unit_core[n], unit_size(graph.node(n))) for n in fill.unit_core}
    perm, cost = arrange(n_cores, traffic(reach, own, n_cores), mesh) if n_cores <= lim["cores"] else \
        (np.arange(n_cores, dtype=np.int64), {"row_major": 0, "start": 0, "refined": 0, "swaps": 0})
    width = int(perm.max()) + 1 if n_cores else 0
    for c in range(n_cores):
        if out_axons[c] > lim["output_axons"]:
            violations.append(PlacementViolation("core-capacity", ", ".join(fill.nodes[c]), f"output axons on core "
                                                 f"{int(perm[c])}", int(out_axons[c]), lim["output_axons"]))
    unit_core = {n: perm[u] for n, u in fill.unit_core.items()}
    reach = {n: r.relabel(perm, width) for n, r in reach.items()}
    out_core = {n: perm[v] for n, v in own.items()}

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

    in_axons = np.zeros(max(width, 1), np.int64)
    routes: dict[str, Routes] = {}
    for name in order:
        r = reach[name]
        in_axons += r.per_core()[: in_axons.size] if width else 0
        routes[name] = routes_of(r, out_core.get(name), mesh) if role[name] == COMPUTE else _no_routes(r.n)
    chip, x, y = core_xy(perm, *mesh)
    cores = sorted(
        (CoreUse(core=int(perm[c]), chip=int(chip[c]), x=int(x[c]), y=int(y[c]), compartments=fill.comp[c],
                 synapse_bits=fill.syn[c], state_bits=fill.state[c], input_axons=int(in_axons[perm[c]]),
                 output_axons=int(out_axons[c]), nodes=tuple(fill.nodes[c])) for c in range(n_cores)),
        key=lambda u: u.core)
    return Placement(target=str(getattr(target, "name", "")), limits=lim, cores=tuple(cores), roles=role,
                     node_cores=node_cores, node_core_counts=node_counts, unit_core=unit_core, routes=routes,
                     violations=tuple(violations), mesh=mesh, _reach=DenseReach(reach), reach=reach,
                     mesh_cost=cost)


def _no_routes(n: int) -> Routes:
    z = np.zeros(n, np.int64)
    return Routes(z, z, z, z, z)


def routes_of(r: Reach, own: np.ndarray | None, mesh: tuple[int, int, int, int]) -> Routes:
    """Per output: messages to other cores, of those inside the sender's tile, X-Y hops, N-S hops and chip
    boundaries crossed (chips lie side by side along x: a message from chip a to chip b crosses |a - b|)."""
    if own is None or not r.rows.size:
        return _no_routes(r.n)
    src = own[r.rows]
    keep = src != r.cores
    rows, src, dst = r.rows[keep], src[keep], r.cores[keep]
    ca, xa, ya = core_xy(src, *mesh)
    cb, xb, yb = core_xy(dst, *mesh)
    cpt = mesh[1]
    def per(v: np.ndarray) -> np.ndarray:
        return np.bincount(rows, weights=v, minlength=r.n).astype(np.int64)
    return Routes(messages=per(np.ones(rows.size)), local=per((src // cpt == dst // cpt).astype(np.float64)),
                  hops=per(np.abs(xa - xb) + np.abs(ya - yb)), hops_ns=per(np.abs(ya - yb)),
                  chip_links=per(np.abs(ca - cb)))


def min_spread(graph: Graph, role: dict[str, str], name: str, memory_bits: int) -> np.ndarray:
    """[out_size] the fewest cores the synapse rows reading each output of ``name`` can occupy: the memory of the
    SYNAPSE dense rows with a non-zero weight in its column (row bits = non-zero weights x weight bits) over one
    core's memory, rounded up. The output needs an output axon to, and an input axon on, each of them."""
    n = int(graph.node(name).out_size())
    bits = np.zeros(n, np.float64)
    for s in graph.succs(name):
        if role[s] == SYNAPSE:
            w = graph.node(s).weight != 0
            row_bits = np.count_nonzero(w, axis=1).astype(np.float64) * int(graph.node(s).weight_bits)
            bits += row_bits @ w
    return np.ceil(bits / max(memory_bits, 1)).astype(np.int64)


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


def _dest_pairs(graph: Graph, role: dict[str, str], unit_core: dict[str, np.ndarray], dst: str, port: str,
                n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """(input index, core) pairs: the cores that input index i of ``dst`` on ``port`` reaches."""
    if role[dst] == COMPUTE:
        node = graph.node(dst)
        umap = input_unit_map(node, port, n_in)
        return np.arange(n_in, dtype=np.int64), unit_core[dst][umap]
    if role[dst] != SYNAPSE:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    w = graph.node(dst).weight != 0  # [out, in]
    rows_i, rows_c = [], []
    for s in graph.succs(dst):
        if role[s] != COMPUTE:
            continue
        o, c = _dest_pairs(graph, role, unit_core, s, graph.edge(dst, s)["port"], w.shape[0])
        row_core = np.full(w.shape[0], -1, np.int64)
        row_core[o] = c
        for core in np.unique(c):  # the inputs whose weights reach a row on this core
            hit = np.flatnonzero(w[row_core == core].any(axis=0))
            rows_i.append(hit)
            rows_c.append(np.full(hit.size, core, np.int64))
    if not rows_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows_i), np.concatenate(rows_c)


def graph_unit_core(node: hw.QNode, out_core: np.ndarray, umap: np.ndarray) -> np.ndarray:
    """Core of unit umap[i] of a COMPUTE node, given the core of each of its outputs."""
    return out_core[::unit_size(node)][umap]


def reach_pairs(graph: Graph, role: dict[str, str], unit_core: dict[str, np.ndarray],
                n_cores: int) -> dict[str, Reach]:
    """Per node, the cores each output reaches (a SYNAPSE dense sends nothing: its sources reach its rows)."""
    out: dict[str, Reach] = {}
    for name in graph.order():
        n = int(graph.node(name).out_size())
        ri, rc = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        if role[name] != SYNAPSE:
            for s in graph.succs(name):
                i, c = _dest_pairs(graph, role, unit_core, s, graph.edge(name, s)["port"], n)
                ri.append(i)
                rc.append(c)
        out[name] = Reach.of(n, n_cores, np.concatenate(ri), np.concatenate(rc))
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
