"""Streaming simulation: feed a hardware graph one time step (or one chunk) at a time, state carried between calls.

    from neurocompile import Session
    s = Session("out/artifact")          # an artifact directory, an Artifact or an integer Graph
    for x_t in stream:                   # x_t: [d] features (or a token id) of one step
        out = s.step(x_t)                # graph output -> this step's value; sequence-end outputs (logits)
                                         # as if the sequence ended after this step
    s.reset()                            # back to t = 0 (all states 0)

A session gives exactly what :func:`neurocompile.sim.engine.simulate` gives on the whole sequence (tests compare
them): per-step outputs equal the run's trace at that step, and after the last step the sequence-end outputs
equal the run's outputs. It runs on the compiled step (:mod:`neurocompile.sim.compiled`) when numba is
installed, otherwise on the reference kernels (:mod:`neurocompile.sim.kernels`), node by node.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.errors import DatasetError, IRError
from neurocompile.ir.graph import Graph
from neurocompile.sim import kernels
from neurocompile.sim.fixed import quantize_round, sat

__all__ = ["Session"]

Array = np.ndarray


def _graph_of(model: Any) -> Graph:
    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, Path)):
        from neurocompile.artifact import load_artifact

        return load_artifact(model).int_graph
    g = getattr(model, "int_graph", None)
    if isinstance(g, Graph):
        return g
    raise IRError(f"Session takes an artifact directory, an Artifact or an integer Graph, not {type(model).__name__}")


class Session:
    """A running simulation of one integer graph over ``batch`` streams (``None``: one stream, no batch axis).

    Args:
        model: artifact directory, :class:`~neurocompile.artifact.Artifact` or integer :class:`Graph`.
        batch: number of independent streams stepped together; ``None`` for a single stream whose inputs and
            outputs have no batch axis.
        backend: 'auto' (compiled when available), 'compiled' or 'reference' (the kernels, node by node).
    """

    def __init__(self, model: Any, *, batch: int | None = None, backend: str = "auto") -> None:
        from neurocompile.sim.engine import plan

        self.graph = _graph_of(model)
        if batch is not None and batch < 1:
            raise ValueError(f"batch must be >= 1 or None, got {batch}")
        if backend not in ("auto", "compiled", "reference"):
            raise ValueError(f"backend must be 'auto', 'compiled' or 'reference', got {backend!r}")
        self.batch = batch
        self.B = batch or 1
        self._p = plan(self.graph, "auto")
        self._lay = None
        if backend != "reference":
            from neurocompile.sim import compiled

            why = None if compiled.available() else "numba is not installed"
            why = why or compiled.supports(self._p)
            if why is None:
                self._lay = compiled.Layout(compiled.program(self._p), self.B)
            elif backend == "compiled":
                raise IRError(f"Session: the compiled backend cannot run graph '{self.graph.name}': {why}")
        self.backend = "compiled" if self._lay is not None else "reference"
        self._inputs_set = set(self.graph.inputs)
        self._tokens = any(self.graph.node(n).tokens for n in self.graph.inputs)
        self._ends = EndPlan(self._p, self._lay is not None)
        self._end_inputs = [s for s in self._p.step_order if s in self._ends.inputs]
        ends = {n for n, _, _ in self._ends.finish} | set(self._p.end_order)
        self._end_outs = [o for o in self.graph.outputs if o in ends]
        self._has_ends = bool(self._end_outs)
        self._per_step = [o for o in self.graph.outputs if o in self._p.step_order
                          and not self.graph.node(o).SEQUENCE_END]
        self._rec = frozenset(self._per_step)
        self.reset()

    # -- state -----------------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Start again at t = 0 with every state 0 (and the saturation counts cleared)."""
        self.t = 0
        if self._lay is not None:
            self._lay.clear()
        else:
            self._st = {n: kernels.init_state(self.graph.node(n), self.B) for n in self._p.step_order}
            self._rings: dict[tuple[str, str], list[Array]] = {}
            self._vals: dict[str, Array] = {}
        self._sat_in = dict.fromkeys(self._p.step_order, 0)

    @property
    def saturations(self) -> dict[str, int]:
        """Values clipped so far, per node that runs every step (QInput quantisation included)."""
        out = dict(self._sat_in)
        if self._lay is not None:
            for k, n in enumerate(self._lay.prog.names):
                out[n] += int(self._lay.sat[k])
        else:
            for n, st in self._st.items():
                out[n] += int(st["saturations"])
        return out

    def states(self) -> dict[str, dict[str, Array]]:
        """State of every stateful node after the last step (kernels' names; batch axis first)."""
        if self._lay is not None:
            return {n: s for n in self._p.step_order if (s := self._lay.states(n))}
        out = {}
        for n, st in self._st.items():
            d = {k: (np.stack(v, axis=1) if k == "pipe" else v.copy()) for k, v in st.items() if k != "saturations"}
            if d:
                out[n] = d
        return out

    # -- inputs ----------------------------------------------------------------------------------------------
    def _inputs(self, x: Any, steps: int | None) -> tuple[dict[str, Array], int]:
        """x of one step ([d], a token id; [B, d] with a batch) or of a chunk ([T, d]; [B, T, d]) -> [B, T, d]."""
        names = list(self.graph.inputs)
        if not isinstance(x, Mapping):
            if len(names) != 1:
                raise DatasetError(f"graph '{self.graph.name}' has inputs {', '.join(names)}: pass a dict")
            x = {names[0]: x}
        out, n_steps = {}, None
        for name in names:
            if name not in x:
                raise DatasetError(f"no data for input '{name}' of graph '{self.graph.name}'")
            node = self.graph.node(name)
            a = np.asarray(x[name])
            width = 1 if node.tokens else node.size
            lead = (() if self.batch is None else (self.B,)) + (() if steps == 1 else (-1,))
            if node.tokens and a.ndim == len(lead):
                a = a[..., None]
            if a.ndim != len(lead) + 1 or a.shape[-1] != width or (self.batch is not None and a.shape[0] != self.B):
                want = "x".join(["B"] * (self.batch is not None) + ["T"] * (steps != 1) + [str(width)])
                raise DatasetError(f"input '{name}': expected shape [{want}], got {list(a.shape)}")
            a = a.reshape(self.B, -1, width)
            if node.tokens and not np.issubdtype(a.dtype, np.integer):
                raise DatasetError(f"input '{name}' takes integer token ids, got {a.dtype}")
            if n_steps is None:
                n_steps = int(a.shape[1])
            elif a.shape[1] != n_steps:
                raise DatasetError(f"input '{name}' has {a.shape[1]} steps; expected {n_steps}")
            out[name] = a
        if not n_steps:
            raise DatasetError("no time steps given")
        return out, n_steps

    # -- stepping --------------------------------------------------------------------------------------------
    def step(self, x_t: Any, ends: bool = True) -> dict[str, Array]:
        """Advance one step. Returns graph output -> value ([size], or [B, size] with a batch): per-step outputs
        at this step, and with ``ends`` the sequence-end outputs as if the sequence ended after this step."""
        xs, _ = self._inputs(x_t, 1)
        out = self._advance(xs, 1)
        res = {o: v[:, 0] for o, v in out.items()}
        if ends:
            res.update(self.outputs())
        return res if self.batch is not None else {k: v[0] for k, v in res.items()}

    def run(self, x: Any, ends: bool = True) -> dict[str, Array]:
        """Advance a chunk of T steps ([T, d], or [B, T, d]). Per-step outputs: [T, size] ([B, T, size]); with
        ``ends`` the sequence-end outputs after the chunk."""
        xs, steps = self._inputs(x, None)
        res = self._advance(xs, steps)
        if ends:
            res.update(self.outputs())
        return res if self.batch is not None else {k: v[0] for k, v in res.items()}

    def outputs(self) -> dict[str, Array]:
        """Sequence-end outputs (e.g. logits) from the current state, [B, size]; the session can keep stepping."""
        if not self._has_ends:
            return {}
        if self.t == 0:
            raise DatasetError("no step has run yet: sequence-end outputs need at least one step")
        if self._lay is not None:
            vals = {n: self._lay.view(n) for n in self._end_inputs}
            st = {n: self._lay.states(n, copy=False) for n, _, _ in self._ends.finish}
        else:
            vals, st = self._vals, self._st
        final = self._ends.run(vals, st, self.B)
        return {o: np.array(final[o], np.int64) for o in self._end_outs}

    def _advance(self, xs: dict[str, Array], steps: int) -> dict[str, Array]:
        if self._lay is not None:
            lay = self._lay
            bad = lay.check_tokens_of(self._p, xs) if self._tokens else None
            if bad:
                raise DatasetError(f"{bad}: token ids must lie in [0, vocabulary size)")
            out = {o: np.empty((self.B, steps, lay.size[o]), np.int64) for o in self._per_step}

            def keep(t0: int, t1: int, seqs: dict[str, Array]) -> None:
                for o, v in seqs.items():
                    out[o][:, t0:t1] = v
            _, sats, _ = lay.advance(xs, steps, self._rec, False, keep)
            for n, v in sats.items():
                self._sat_in[n] += v
            self.t += steps
            return out
        trace = {o: np.zeros((self.B, steps, self.graph.node(o).out_size()), np.int64) for o in self._per_step}
        for tl in range(steps):
            self._reference_step({k: v[:, tl] for k, v in xs.items()})
            for o in self._per_step:
                trace[o][:, tl] = self._vals[o]
        return trace

    def _reference_step(self, x_t: dict[str, Array]) -> None:
        """One step of every node through the kernels (docs/semantics.md section 2), in graph order."""
        g, t = self.graph, self.t
        for name in self._p.step_order:
            node = g.node(name)
            if name in self._inputs_set:
                if node.tokens:
                    self._vals[name] = np.asarray(x_t[name], np.int64)
                else:
                    q, n = sat(quantize_round(x_t[name], node.out_scale), int(node.out_bits))
                    self._sat_in[name] += n
                    self._vals[name] = q
                continue
            ins = {}
            for port, srcs in self._p.ports[name]:
                total = None
                for src, d in srcs:
                    v = self._vals[src]
                    if d > 0:  # edge delay: the value of step t - d (zeros before)
                        ring = self._rings.setdefault((src, name), [np.zeros_like(v) for _ in range(d + 1)])
                        ring[t % (d + 1)] = v.copy()
                        v = ring[(t + 1) % (d + 1)]
                    total = v if total is None else total + v
                ins[port] = total
            out = kernels.step(node, ins, self._st[name])
            self._vals[name] = self._st[name]["acc"] if out is None else out
        self.t += 1


class EndPlan:
    """The sequence-end part of a plan, resolved once (per-call Python cost is what a one-sample stream pays).

    ``finish``: the sequence-end nodes run every step (QAccumulate), read from their state; ``steps``: the nodes
    after them, run once in graph order. A node with a whole-chunk form in the compiled step (a QDense without
    pipeline) runs through it: the kernel's int64 product, then one compiled pass for bias, shift and saturation
    instead of the kernel's several NumPy passes; the values are the kernel's (tests compare them).
    """

    def __init__(self, p: Any, compiled: bool) -> None:
        g = p.graph
        self.finish = [(name, node, kernels.finish_var(node)) for name in p.step_order
                       if (node := g.node(name)).SEQUENCE_END]
        self.steps: list[tuple[str, Any, list[tuple[str, list[str]]], Any, str]] = []
        kern_of = None
        if compiled:
            from neurocompile.sim.compiled_nodes import KERNELS

            kern_of = KERNELS.get
        for name in p.end_order:
            node = g.node(name)
            kern = kern_of(node) if kern_of is not None else None
            fast = kern if kern is not None and kern.whole is not None and not getattr(node, "delay", 0) else None
            ports = [(port, [s for s, _ in srcs]) for port, srcs in p.ports[name]]
            self.steps.append((name, node, ports, fast, "int64"))  # once per call: the kernel's int64 product
        self.inputs = {s for _, _, ports, _, _ in self.steps for _, srcs in ports for s in srcs}
        self.cache: dict[str, dict[str, Any]] = {}  # the end denses' parameters as the compiled pass reads them

    def run(self, vals: Mapping[str, Array], st: Mapping[str, Mapping[str, Any]], B: int) -> dict[str, Array]:
        """Sequence-end values (QAccumulate emissions and the nodes after them) from the current state, no
        counting. ``vals``: outputs of the step nodes the end nodes read; ``st``: states of the sequence-end nodes."""
        final: dict[str, Array] = {name: st[name][var] for name, _, var in self.finish}
        for name, node, ports, fast, path in self.steps:
            ins = {}
            for port, srcs in ports:
                total = final[srcs[0]] if srcs[0] in final else vals[srcs[0]]
                for src in srcs[1:]:
                    total = total + (final[src] if src in final else vals[src])
                ins[port] = total
            if fast is not None:
                final[name] = out = np.empty((B, node.out_size()), np.int64)
                fast.whole(node, ins, path, out, self.cache.setdefault(name, {}))
                continue
            s = kernels.init_state(node, B)
            out = kernels.step(node, ins, s)
            final[name] = kernels.finish(node, s) if out is None else out
        return final

