"""Where messages go once units are on cores, and where cores sit on the mesh and chips.

- :class:`Reach`: for each output of a node, the cores it must send to (one message per distinct destination
  core, its own included), stored as sorted (output, core) pairs: O(pairs) memory where a dense
  [outputs x cores] table would take outputs x cores bytes (65,536 x 600 per SSM layer of the 16-layer model).
- :func:`arrange`: a permutation of the packed cores onto physical cores that lowers hop-weighted traffic.
  Greedy start: cores in packing order (consecutive layers adjacent) laid along a serpentine path over each
  chip's tiles, chips in order. Refinement: pairwise swaps of cores within a window of the path, kept when the
  cost sum over core pairs of traffic(a, b) x (X-Y hops + ``CHIP_LINK_HOPS`` per chip boundary crossed) falls;
  sweeps in a fixed order until none improves (at most ``MAX_SWEEPS``). Deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Cost of one chip-to-chip link crossing in mesh-hop equivalents for the refinement's objective: a crossing
#: leaves one chip's mesh and enters the next one's, at least the length of one chip's mesh edge.
CHIP_LINK_HOPS = 8
#: Swaps are tried between cores at most this many places apart on the serpentine path (16: H = 1,024 x 16 on
#: hala-point 1.60M to 1.52M hop-weighted traffic for 0.5 s more than 8; 32 gains 3 % more for 2 s more).
WINDOW = 16
#: Refinement sweeps at most (each is one pass over every pair in the window).
MAX_SWEEPS = 4


@dataclass(frozen=True)
class Reach:
    """Destination cores of each of ``n`` outputs: unique (row, core) pairs sorted by row then core."""

    n: int
    n_cores: int
    rows: np.ndarray
    cores: np.ndarray

    @staticmethod
    def of(n: int, n_cores: int, rows: np.ndarray, cores: np.ndarray) -> Reach:
        key = np.unique(rows.astype(np.int64) * max(n_cores, 1) + cores.astype(np.int64))
        return Reach(n, n_cores, key // max(n_cores, 1), key % max(n_cores, 1))

    def per_row(self) -> np.ndarray:
        """[n] destination cores of each output (output axons it needs)."""
        return np.bincount(self.rows, minlength=self.n).astype(np.int64)

    def per_core(self) -> np.ndarray:
        """[n_cores] outputs reaching each core (input axons they take there)."""
        return np.bincount(self.cores, minlength=self.n_cores).astype(np.int64)

    def dense(self) -> np.ndarray:
        """bool [n, n_cores] (for small graphs and the counters)."""
        r = np.zeros((self.n, self.n_cores), bool)
        r[self.rows, self.cores] = True
        return r

    def relabel(self, perm: np.ndarray, n_cores: int) -> Reach:
        return Reach.of(self.n, n_cores, self.rows, perm[self.cores])


class DenseReach(dict):  # type: ignore[type-arg]
    """node -> bool [outputs, cores] built on demand from :class:`Reach` pairs (never all held at once)."""

    def __init__(self, pairs: dict[str, Reach]) -> None:
        super().__init__()
        self.pairs = pairs

    def __contains__(self, name: object) -> bool:
        return name in self.pairs

    def __getitem__(self, name: str) -> np.ndarray:
        return self.pairs[name].dense()

    def get(self, name: str, default: object = None) -> np.ndarray | None:  # type: ignore[override]
        return self[name] if name in self.pairs else default  # type: ignore[return-value]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def keys(self):  # type: ignore[no-untyped-def]
        return self.pairs.keys()


def core_xy(cores: np.ndarray, cores_per_chip: int, cores_per_tile: int, mesh_x: int,
            mesh_y: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(chip, global tile x, tile y) of physical cores; chips side by side along x, tiles row-major."""
    chip, local = np.divmod(np.asarray(cores, np.int64), cores_per_chip)
    tile = local // cores_per_tile
    return chip, chip * mesh_x + tile % mesh_x, tile // mesh_x


def serpentine(n: int, mesh: tuple[int, int, int, int]) -> np.ndarray:
    """The first ``n`` physical cores along a serpentine path: per chip, tile rows alternate direction (so
    consecutive cores are neighbours), every core of a tile before the next tile."""
    cpc, cpt, mx, my = mesh
    out = []
    tiles_per_chip = cpc // cpt
    for chip in range((n + cpc - 1) // cpc):
        for y in range(my):
            xs = range(mx) if y % 2 == 0 else range(mx - 1, -1, -1)
            for x in xs:
                t = y * mx + x
                if t >= tiles_per_chip:
                    continue
                out.extend(chip * cpc + t * cpt + k for k in range(cpt) if t * cpt + k < cpc)
                if len(out) >= n:
                    return np.asarray(out[:n], np.int64)
    return np.asarray(out[:n], np.int64)


def traffic(reach: dict[str, Reach], own: dict[str, np.ndarray], n_cores: int) -> dict[tuple[int, int], int]:
    """Messages per step between core pairs (a, b), a < b, when every output fires once: shape-only weights."""
    t: dict[int, int] = {}
    for name, r in reach.items():
        if name not in own or not r.rows.size:
            continue
        src = own[name][r.rows]
        keep = src != r.cores
        a, b = np.minimum(src[keep], r.cores[keep]), np.maximum(src[keep], r.cores[keep])
        keys, cnt = np.unique(a * n_cores + b, return_counts=True)
        for k, c in zip(keys.tolist(), cnt.tolist()):
            t[k] = t.get(k, 0) + c
    return {(k // n_cores, k % n_cores): v for k, v in sorted(t.items())}


def arrange(n_cores: int, pairs: dict[tuple[int, int], int], mesh: tuple[int, int, int, int]) -> tuple[np.ndarray,
                                                                                                      dict[str, int]]:
    """Physical core of each packed core (a permutation onto the serpentine path's first n slots), and the
    cost of numbering cores in packing order on row-major tiles (``row_major``), of the serpentine start
    (``start``) and after refinement (``refined``), and the swaps made."""
    slots = serpentine(n_cores, mesh)
    pos = np.arange(n_cores, dtype=np.int64)  # packed core -> slot index
    if not pairs or n_cores < 2:
        return slots[pos], {"row_major": 0, "start": 0, "refined": 0, "swaps": 0}
    s_chip, s_x, s_y = core_xy(slots, *mesh)

    def dist(p: np.ndarray, q: np.ndarray) -> np.ndarray:  # slot indices -> hops + chip link cost
        return np.abs(s_x[p] - s_x[q]) + np.abs(s_y[p] - s_y[q]) + CHIP_LINK_HOPS * np.abs(s_chip[p] - s_chip[q])

    a = np.array([k[0] for k in pairs], np.int64)
    b = np.array([k[1] for k in pairs], np.int64)
    w = np.array(list(pairs.values()), np.int64)
    nbr: list[list[int]] = [[] for _ in range(n_cores)]
    for i, (ca, cb) in enumerate(zip(a.tolist(), b.tolist())):
        nbr[ca].append(i)
        nbr[cb].append(i)
    nbr_arr = [np.asarray(e, np.int64) for e in nbr]
    start = int((w * dist(pos[a], pos[b])).sum())
    r_chip, r_x, r_y = core_xy(np.arange(n_cores), *mesh)  # cores numbered in packing order, tiles row-major
    row_major = int((w * (np.abs(r_x[a] - r_x[b]) + np.abs(r_y[a] - r_y[b])
                          + CHIP_LINK_HOPS * np.abs(r_chip[a] - r_chip[b]))).sum())

    def cost_of(c: int) -> int:
        e = nbr_arr[c]
        if not e.size:
            return 0
        return int((w[e] * dist(pos[a[e]], pos[b[e]])).sum())

    slot_core = np.arange(n_cores, dtype=np.int64)  # slot index -> packed core
    swaps = 0
    for _ in range(MAX_SWEEPS):
        improved = False
        for s in range(n_cores):
            for d in range(1, WINDOW + 1):
                t = s + d
                if t >= n_cores:
                    break
                c1, c2 = int(slot_core[s]), int(slot_core[t])
                if not nbr_arr[c1].size and not nbr_arr[c2].size:
                    continue
                before = cost_of(c1) + cost_of(c2)
                pos[c1], pos[c2] = t, s
                after = cost_of(c1) + cost_of(c2)
                if after < before:
                    slot_core[s], slot_core[t] = c2, c1
                    swaps += 1
                    improved = True
                else:
                    pos[c1], pos[c2] = s, t
        if not improved:
            break
    refined = int((w * dist(pos[a], pos[b])).sum())
    return slots[pos], {"row_major": row_major, "start": start, "refined": refined, "swaps": swaps}
