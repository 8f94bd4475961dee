"""Mapping modes and message routes: the same network placed as another tool places it.

:func:`place_as` places a hardware graph with one of three strategies:

- ``packed``: :func:`neurocompile.mapping.placement.place` (greedy fill, the default);
- ``layer-per-core``: every compartment node starts on a fresh core and fills cores to the compartment limit
  (the mapping SANA-FE's examples use);
- a placement file (JSON ``{"node name": core}`` or ``{"node name": [core of each unit]}``): the cores are taken
  as given, e.g. to spread layers over several tiles.

:func:`message_routes` gives, per output index of a node, the messages its non-zero output sends, counted as
Loihi (and SANA-FE) count them: one message to **each distinct destination core, the sender's own core
included**, with the X-Y hops of each. Host-side sources (the input) send host-to-chip messages that enter the
mesh at the host port, the tile of core 0 (``HOST_CORE``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.ir.graph import Graph
from neurocompile.mapping import placement as pl
from neurocompile.mapping.mesh import DenseReach
from neurocompile.mapping.resources import _Dense, synapse_storage

__all__ = ["MODES", "HOST_CORE", "SPARSE_BELOW", "Routes", "place_as", "message_routes", "read_placement_file",
           "synapse_format", "tiles_used"]

MODES = ("packed", "layer-per-core")
#: Host-to-chip messages enter the mesh at this core's tile (the chip's corner next to its host interface).
HOST_CORE = 0
#: A dense weight matrix with fewer than this fraction of non-zero weights is stored in the sparse format.
SPARSE_BELOW = _Dense.SPARSE_BELOW


@dataclass(frozen=True)
class Routes:
    """Per output index: messages (one per destination core, own core included), of those in the sender's
    tile, mesh hops and the north-south part of the hops."""

    messages: np.ndarray
    local: np.ndarray
    hops: np.ndarray
    hops_ns: np.ndarray


def synapse_format(node: Any) -> str:
    """Storage format of a node's synapses, which sets the price of a look-up: 'dense' or 'sparse' ('' = none).

    A QDense is stored dense when at least ``SPARSE_BELOW`` of its weights are non-zero, sparse otherwise (each
    look-up still reads only the stored, non-zero synapses); SSM banks and readouts are block-diagonal: sparse.
    """
    return synapse_storage(node)


def read_placement_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a placement file: JSON object, node name -> core id or list of core ids (one per unit)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise NeurocompileError(f"cannot read placement file '{path}': {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise NeurocompileError(f"placement file '{path}': not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise NeurocompileError(f"placement file '{path}': expected an object of node name -> core(s)")
    return data


def _layer_per_core(graph: Graph, role: dict[str, str], cap: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    nxt = 0
    for name in graph.order():
        if role[name] != pl.COMPUTE:
            continue
        node = graph.node(name)
        usz = pl.unit_size(node)
        units = int(node.out_size()) // usz
        per_core = max(1, cap // usz)
        out[name] = nxt + np.arange(units, dtype=np.int64) // per_core
        nxt = int(out[name][-1]) + 1 if units else nxt
    return out


def _from_file(graph: Graph, role: dict[str, str], spec: dict[str, Any], where: str) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in graph.order():
        if role[name] != pl.COMPUTE:
            continue
        node = graph.node(name)
        units = int(node.out_size()) // pl.unit_size(node)
        if name not in spec:
            raise NeurocompileError(f"placement file '{where}': node '{name}' is not placed; give its core "
                                    f"(an integer) or one core per unit ({units} integers)")
        v = spec[name]
        a = np.full(units, v, np.int64) if isinstance(v, int) else np.asarray(v, np.int64).reshape(-1)
        if a.size != units or (a < 0).any():
            raise NeurocompileError(f"placement file '{where}': node '{name}' needs one core id >= 0 or {units} "
                                    f"of them, got {v!r}")
        out[name] = a
    unknown = sorted(set(spec) - set(out))
    if unknown:
        raise NeurocompileError(f"placement file '{where}': unknown or off-chip node(s) {', '.join(unknown)}")
    return out


def place_as(graph: Graph, target: Any, mode: str = "packed") -> pl.Placement:
    """Place ``graph`` on ``target`` with ``mode``: 'packed', 'layer-per-core' or a path to a placement file."""
    if mode == "packed":
        return pl.place(graph, target)
    role = pl.roles(graph)
    cap = int(target.core.compartments)
    if mode == "layer-per-core":
        unit_core = _layer_per_core(graph, role, cap)
    elif os.path.exists(str(mode)):
        unit_core = _from_file(graph, role, read_placement_file(mode), str(mode))
    else:
        raise NeurocompileError(f"unknown mapping '{mode}': use one of {', '.join(MODES)} or a placement file path")
    return _build(graph, target, role, unit_core)


def _build(graph: Graph, target: Any, role: dict[str, str], unit_core: dict[str, np.ndarray]) -> pl.Placement:
    """A Placement from given unit cores: resources per core, routes, and every limit the cores break."""
    s = target.system
    mesh = (int(s.cores_per_chip), int(s.cores_per_tile), int(s.mesh_x), int(s.mesh_y))
    lim = {"compartments": int(target.core.compartments), "memory_bits": int(target.core.synapse_memory_bits),
           "input_axons": int(target.core.input_axons), "output_axons": int(target.core.output_axons),
           "shared_memory": int(bool(target.core.shared_memory)), "cores": int(s.cores_total)}
    order = graph.order()
    n_cores = 1 + max((int(a.max()) for a in unit_core.values() if a.size), default=-1)
    out_core = {n: np.repeat(unit_core[n], pl.unit_size(graph.node(n))) for n in unit_core}
    reach = pl.reach_pairs(graph, role, unit_core, n_cores)
    comp = np.zeros(n_cores, np.int64)
    syn = np.zeros(n_cores, np.int64)
    nodes: list[list[str]] = [[] for _ in range(n_cores)]
    node_cores: dict[str, tuple[int, ...]] = {}
    node_counts: dict[str, tuple[int, ...]] = {}
    for name in order:
        node = graph.node(name)
        if role[name] == pl.COMPUTE:
            cores = out_core[name]
        elif role[name] == pl.SYNAPSE:
            cores = pl._synapse_row_cores(graph, role, out_core, name)
            cores = cores[cores >= 0]
            bits = np.count_nonzero(node.weight, axis=1)[: cores.size] * int(node.weight_bits)
            np.add.at(syn, cores, bits)
        else:
            cores = np.zeros(0, np.int64)
        if role[name] == pl.COMPUTE:
            np.add.at(comp, cores, 1)
        ids, cnt = np.unique(cores, return_counts=True)
        node_cores[name] = tuple(int(i) for i in ids)
        node_counts[name] = tuple(int(c) for c in cnt)
        for c in ids:
            if name not in nodes[int(c)]:
                nodes[int(c)].append(name)
    in_axons = np.zeros(n_cores, np.int64)
    out_axons = np.zeros(n_cores, np.int64)
    for name in order:
        in_axons += reach[name].per_core() if n_cores else 0
        if role[name] == pl.COMPUTE:
            np.add.at(out_axons, out_core[name], reach[name].per_row())
    used = [c for c in range(n_cores) if nodes[c]]
    violations = []
    for c in used:
        for res, u, key in (("compartments", comp[c], "compartments"), ("synapse memory bits", syn[c], "memory_bits"),
                            ("input axons", in_axons[c], "input_axons"), ("output axons", out_axons[c],
                                                                          "output_axons")):
            if u > lim[key]:
                violations.append(pl.PlacementViolation("core-capacity", ", ".join(nodes[c]), f"{res} on core {c}",
                                                        int(u), lim[key]))
    if n_cores > lim["cores"]:
        violations.append(pl.PlacementViolation("cores", "", "cores (highest core id + 1)", n_cores, lim["cores"]))
    cores = tuple(pl.CoreUse(core=c, chip=pl._core_xy(c, *mesh)[0], x=pl._core_xy(c, *mesh)[1],
                             y=pl._core_xy(c, *mesh)[2], compartments=int(comp[c]), synapse_bits=int(syn[c]),
                             state_bits=0, input_axons=int(in_axons[c]), output_axons=int(out_axons[c]),
                             nodes=tuple(nodes[c])) for c in used)
    routes = {n: pl.routes_of(reach[n], out_core.get(n), mesh) if role[n] == pl.COMPUTE else
              pl._no_routes(reach[n].n) for n in order}
    return pl.Placement(target=str(getattr(target, "name", "")), limits=lim, cores=cores, roles=role,
                        node_cores=node_cores, node_core_counts=node_counts, unit_core=dict(unit_core),
                        routes=routes, violations=tuple(violations), mesh=mesh, _reach=DenseReach(reach),
                        reach=reach)


def _xy(p: pl.Placement, cores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cpc, cpt, mx, my = p.mesh
    chip, local = np.divmod(cores, cpc)
    tile = local // cpt
    return chip * mx + tile % mx, tile // mx, chip * (mx * my) + tile


def message_routes(p: pl.Placement, name: str) -> Routes:
    """Messages per output index of ``name`` under Loihi's rule (one per destination core, own core included).

    A COMPUTE node sends from the core of each output; a HOST node with on-chip readers (the input) sends
    host-to-chip messages from the host port (the tile of ``HOST_CORE``); a SYNAPSE dense sends nothing (its
    sources' messages reach its rows).
    """
    r = p.reach.get(name)
    role = p.roles.get(name)
    if r is None or role == pl.SYNAPSE or r.n_cores == 0:
        z = np.zeros(0 if r is None else r.n, np.int64)
        return Routes(z, z, z, z)
    if role == pl.COMPUTE:
        usz = r.n // max(1, int(p.unit_core[name].size))
        src = np.repeat(p.unit_core[name], usz)[r.rows]
    else:
        src = np.full(r.rows.size, HOST_CORE, np.int64)
    sx, sy, st = _xy(p, src)
    dx, dy, dt = _xy(p, r.cores)
    ew, ns = np.abs(sx - dx), np.abs(sy - dy)

    def per(v: np.ndarray) -> np.ndarray:
        return np.bincount(r.rows, weights=v, minlength=r.n).astype(np.int64)

    return Routes(messages=per(np.ones(r.rows.size)), local=per((st == dt).astype(np.float64)),
                  hops=per((ew + ns).astype(np.float64)), hops_ns=per(ns.astype(np.float64)))


def tiles_used(p: pl.Placement, host: bool = True) -> int:
    """Distinct tiles holding a used core, plus the host port's tile when ``host`` (inputs enter there)."""
    cores = [c.core for c in p.cores]
    if host:
        cores.append(HOST_CORE)
    if not cores:
        return 0
    return int(np.unique(_xy(p, np.asarray(cores, np.int64))[2]).size)
