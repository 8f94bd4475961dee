"""The compiled step's batch runner: :class:`CompiledBatch`, a drop-in for the NumPy engine's ``_Batch`` (same
constructor, ``run()`` and ``final_states()``), and :func:`batch_runner`, which picks it or the NumPy engine.

Re-exported by :mod:`neurocompile.sim.compiled`, which it reads lazily (that module imports this one last).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile.errors import IRError

Array = np.ndarray


def batch_runner(p: Any, backend: str, xs: dict[str, Array], counters: bool = False) -> type | None:
    """The batch class for ``backend``: :class:`CompiledBatch`, or None for the NumPy engine.

    'auto' picks the compiled step when numba is installed, ``arith`` is 'auto' and every node is supported;
    'compiled' insists (a clear error names what is missing); 'numpy' never compiles. ``counters`` does not
    matter: the compiled step counts everything the NumPy engine counts.
    """
    from neurocompile.sim import compiled as c

    if backend not in c.BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(c.BACKENDS)}, got {backend!r}")
    if backend == "numpy" or (backend == "auto" and p.arith != "auto"):
        return None
    why = None if c.available() else "numba is not installed (pip install numba)"
    if why is None:
        why = c.supports(p)
    if why is None:
        why = c.Layout.check_tokens_of(p, xs)
    if why is None:
        return CompiledBatch
    if backend == "compiled":
        raise IRError(f"backend 'compiled' cannot run graph '{p.graph.name}': {why}; use backend='numpy'")
    return None


class _Views(dict):
    """node -> its last output, a view of the layout taken when first read (a quiet bank's is rebuilt then)."""

    def __init__(self, lay: Any) -> None:
        super().__init__()
        self.lay = lay

    def __missing__(self, name: str) -> Array:
        v = self[name] = self.lay.view(name)
        return v


class CompiledBatch:
    """Drop-in for the engine's batch runner: same constructor arguments, ``run()`` and ``final_states()``."""

    def __init__(self, p: Any, x: dict[str, Array], acc: Any, counters: bool, rec: dict[str, Array] | None,
                 rec_row: int | None, rec_sample: dict[str, Array] | None, steps: int) -> None:
        self.p, self.g, self.acc, self.counters = p, p.graph, acc, counters
        self.rec, self.rec_row, self.rec_sample, self.T, self.x = rec, rec_row, rec_sample, steps, x
        self.B = next(iter(x.values())).shape[0]
        from neurocompile.sim.compiled import Layout, program

        self.lay = Layout(program(p), self.B)
        self.vals: dict[str, Array] = {}
        self.st: dict[str, dict[str, Any]] = {}

    def run(self) -> dict[str, Array]:
        lay, acc = self.lay, self.acc
        names = set(self.rec or ()) & set(lay.prog.names)
        if self.rec_sample is not None and self.rec_row is not None:
            names |= set(self.rec_sample)

        def keep(t0: int, t1: int, seqs: dict[str, Array]) -> None:
            for name, r in seqs.items():
                if self.rec is not None and name in self.rec:
                    self.rec[name][:, t0:t1] = r
                if self.rec_sample is not None and self.rec_row is not None and name in self.rec_sample:
                    self.rec_sample[name][t0:t1] = r[self.rec_row]
        spk, sats, act = lay.advance(self.x, self.T, frozenset(names), self.counters, keep)
        lay.release()
        for name, n in sats.items():
            acc.sat[name] += n
        for name, n in act.items():
            acc.active[name] += n
        for k, name in enumerate(lay.prog.names):
            acc.sat[name] += int(lay.sat[k])
            if self.counters:
                acc.active[name] += int(lay.active[k])
                acc.nz[name] += lay.counts(name)
        for i, name in enumerate(lay.spiking):
            acc.spikes_t[name] += spk[i]
        if self.counters:
            for key, (o, n) in lay.edges.items():
                v = lay.edge_nz[o: o + n]
                acc.edge_nz[key] = acc.edge_nz[key] + v if key in acc.edge_nz else v.copy()
        self.vals = _Views(lay)  # the outputs the sequence end reads, as views when read (not advanced again)
        for name in lay.prog.names:  # views, copied by final_states(); a sequence-end node's state is its
            # output, which must not hold on to the arena: a copy
            self.st[name] = lay.states(name, copy=bool(self.g.node(name).SEQUENCE_END))
        from neurocompile.sim.batch import _Batch  # the sequence end runs the engine's own code, for identity

        return _Batch._sequence_end(self)  # type: ignore[arg-type]  # duck-typed: the same fields as _Batch

    def final_states(self) -> dict[str, dict[str, Array]]:
        return {k: {part: v.copy() for part, v in self.st[k].items()}
                for k in self.lay.prog.names if self.st.get(k)}

