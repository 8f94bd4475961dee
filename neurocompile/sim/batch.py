"""The NumPy engine's batch runner: one batch of samples stepped through time with preallocated buffers, and its
activity accumulators (split from engine.py; the compiled step in compiled.py is a drop-in for it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.mapping.placement import (
    COMPUTE,
    SYNAPSE,
)
from neurocompile.sim import kernels
from neurocompile.sim.activity import _active_count, _lut_ops  # noqa: F401
from neurocompile.sim.fixed import limit, quantize_round, sat
from neurocompile.sim.plan import Array, _Plan

# ------------------------------------------------------------------------------------------------------------
# In-place helpers
# ------------------------------------------------------------------------------------------------------------

def _sat_inplace(a: Array, m: int | None) -> int:
    """Clip ``a`` to [-m, m] in place; the number of clipped values (as fixed.sat counts them)."""
    if m is None or a.size == 0:
        return 0
    if a.max() <= m and a.min() >= -m:
        return 0
    n = int(np.count_nonzero(a > m) + np.count_nonzero(a < -m))
    np.clip(a, -m, m, out=a)
    return n


def _shift_parts(shift: Array, nearest: bool) -> tuple[Array, Array | int, Array | int, bool]:
    """rsh_round / rsh_floor by per-channel ``shift`` as ``((x + half) << L) >> R``: (half, L, R, any_left)."""
    s = np.asarray(shift, np.int64).reshape(-1)
    pos = np.maximum(s, 0)
    half = np.where(pos > 0, np.left_shift(np.int64(1), np.maximum(pos - 1, 0)), 0) if nearest else np.zeros_like(s)
    left = np.maximum(-s, 0)
    if s.size and np.all(s == s[0]):
        return half, int(left[0]), int(pos[0]), bool(left[0])
    return half, left, pos, bool(left.any())


def _any_last(mask: Array, out: Array) -> None:
    """out[...] = mask.any(axis=-1) for a C-contiguous bool array, eight lanes at a time when the last axis allows."""
    k = mask.shape[-1]
    if k % 8 == 0 and mask.flags.c_contiguous:
        words = mask.view(np.uint64)
        acc = words[..., 0].copy()
        for j in range(1, k // 8):
            np.bitwise_or(acc, words[..., j], out=acc)
        np.not_equal(acc, 0, out=out)
    else:
        np.any(mask, axis=-1, out=out)


def _trunc_inplace(x: Array, f: int, tmp: Array) -> None:
    """x = rsh_trunc(x, f) in place: (x + ((x >> 63) & (2^f - 1))) >> f rounds toward zero."""
    if f > 0:
        np.right_shift(x, 63, out=tmp)
        np.bitwise_and(tmp, (1 << f) - 1, out=tmp)
        np.add(x, tmp, out=x)
        np.right_shift(x, f, out=x)
    elif f < 0:
        np.left_shift(x, -f, out=x)


# ------------------------------------------------------------------------------------------------------------
# One batch
# ------------------------------------------------------------------------------------------------------------

class _Acc:
    """Run-wide accumulators (summable over batches)."""

    def __init__(self, p: _Plan, steps: int) -> None:
        g = p.graph
        self.nz = {n: np.zeros(g.node(n).out_size(), np.int64) for n in p.order}  # non-zero outputs per index
        self.edge_nz: dict[tuple[str, str], Array] = {}  # delayed edges: non-zero arrivals per index
        self.active = dict.fromkeys(p.order, 0)
        self.sat = dict.fromkeys(p.order, 0)
        self.spikes_t = {n: np.zeros(steps, np.int64) for n in p.spiking}

    def add(self, o: _Acc) -> None:
        for k, v in o.nz.items():
            self.nz[k] += v
        for k, v in o.edge_nz.items():
            if k in self.edge_nz:
                self.edge_nz[k] = self.edge_nz[k] + v
            else:
                self.edge_nz[k] = v.copy()
        for k in self.active:
            self.active[k] += o.active[k]
            self.sat[k] += o.sat[k]
        for k, v in o.spikes_t.items():
            self.spikes_t[k] += v


class _Batch:
    """Buffers, state and step closures of one batch of ``B`` samples."""

    def __init__(self, p: _Plan, x: dict[str, Array], acc: _Acc, counters: bool, rec: dict[str, Array] | None,
                 rec_row: int | None, rec_sample: dict[str, Array] | None, steps: int) -> None:
        self.p = p
        self.g = p.graph
        self.acc = acc
        self.counters = counters
        self.rec = rec  # node -> [B, T, size] view into the run-wide trace
        self.rec_row = rec_row
        self.rec_sample = rec_sample
        self.T = steps
        self.B = next(iter(x.values())).shape[0]
        self.vals: dict[str, Array | None] = {}
        self.st: dict[str, dict[str, Any]] = {}
        self.delay_lines: dict[tuple[str, str], list[Array]] = {}
        self.finals: dict[str, Callable[[], dict[str, Array]]] = {}
        self.events: dict[str, Array] = {}  # SYNAPSE dense -> bool [B, out]: a synaptic event arrived (counters)
        self.steps: list[Callable[[int], None]] = []
        self.flush: list[Callable[[], None]] = []
        self.x = x
        for name in p.step_order:
            self.steps.append(self._build(name))

    # -- inputs ----------------------------------------------------------------------------------------------
    def _gather(self, name: str, port: str, srcs: list[tuple[str, int]], buf: list, t: int) -> Array:
        if len(srcs) == 1 and srcs[0][1] == 0:
            v = self.vals[srcs[0][0]]
            assert v is not None
            return v
        total = None
        for src, d in srcs:
            v = self._delayed(src, name, d, t) if d > 0 else self.vals[src]
            if total is None:
                if len(srcs) == 1:
                    return v
                if not buf:
                    buf.append(np.empty_like(v))
                total = buf[0]
                np.copyto(total, v)
            else:
                np.add(total, v, out=total)
        if total is None:
            raise IRError(f"node '{name}': port '{port}' has no input")
        return total

    def _delayed(self, src: str, dst: str, d: int, t: int) -> Array:
        key = (src, dst)
        ring = self.delay_lines.get(key)
        v = self.vals[src]
        if ring is None:
            ring = [np.zeros_like(v) for _ in range(d + 1)]
            self.delay_lines[key] = ring
        np.copyto(ring[t % (d + 1)], v)
        out = ring[(t - d) % (d + 1)]
        if self.counters:
            nz = self.acc.edge_nz.setdefault(key, np.zeros(v.shape[1], np.int64))
            nz += np.count_nonzero(out, axis=0)
        return out

    # -- recording and counting ------------------------------------------------------------------------------
    def _emit(self, name: str, out: Array, t: int, sent: Array | None = None) -> None:
        """Count (non-zero outputs per index, spikes per step) and record this step's output of ``name``;
        ``sent``: the messages, when they are not the output itself (a delta encoder sends its changes)."""
        if self.counters:
            nz = np.count_nonzero(out if sent is None else sent, axis=0)
            self.acc.nz[name] += nz
            if name in self.acc.spikes_t:
                self.acc.spikes_t[name][t] += int(nz.sum())
        elif name in self.acc.spikes_t:
            self.acc.spikes_t[name][t] += int(np.count_nonzero(out))
        self._record(name, out, t)

    def _record(self, name: str, out: Array, t: int) -> None:
        if self.rec is not None and name in self.rec:
            self.rec[name][:, t] = out
        if self.rec_sample is not None and self.rec_row is not None and name in self.rec_sample:
            self.rec_sample[name][t] = out[self.rec_row]

    # -- node builders ---------------------------------------------------------------------------------------
    def _build(self, name: str) -> Callable[[int], None]:
        node = self.g.node(name)
        path = self.p.path[name]
        if node.IS_INPUT:
            return self._build_input(name, node)  # type: ignore[arg-type]
        special = _SPECIALISED.get(type(node))  # the plan chose a vectorised path for this node type
        if special is not None and path != "kernel":
            return special(self, name, node, path)
        if name in self.p.fused:
            return self._build_readout(name, node, path)
        return self._build_kernel(name, node)

    def _event_tracker(self, name: str, node: hw.QNode) -> Callable[[Array, int], None] | None:
        """For a SYNAPSE dense (counters on): a step function recording, per output, whether a synaptic event
        arrived (a stored synapse got a non-zero input), delayed like the dense's output (Loihi's update rule)."""
        if not (self.counters and self.p.role[name] == SYNAPSE):  # only a QDense is given the SYNAPSE role
            return None
        B, n_out, delay = self.B, node.out_size(), int(node.delay)
        stored = (node.weight != 0).T.astype(np.float32)  # [in, out]: synapses stored
        full = bool(stored.all())  # every input reaches every output: an event is any non-zero input
        ring = [np.zeros((B, n_out), bool) for _ in range(delay)]
        self.events[name] = np.zeros((B, n_out), bool)

        def update(x: Array, t: int) -> None:
            if full:
                ev = np.broadcast_to(np.any(x != 0, axis=1)[:, None], (B, n_out))
            else:  # sums of 0/1 products: > 0 exactly when a stored synapse got a non-zero input
                ev = ((x != 0).astype(np.float32) @ stored) > 0
            if delay:
                slot = ring[t % delay]
                np.copyto(self.events[name], slot)
                np.copyto(slot, ev)
            else:
                self.events[name] = ev
        return update

    def _build_input(self, name: str, node: hw.QInput) -> Callable[[int], None]:
        x = self.x[name]
        if node.tokens:
            xq = np.ascontiguousarray(np.asarray(x, np.int64).reshape(self.B, self.T, 1).transpose(1, 0, 2))
        else:
            q, n = sat(quantize_round(x, node.out_scale), int(node.out_bits))
            self.acc.sat[name] += n
            xq = np.ascontiguousarray(q.transpose(1, 0, 2))

        def step(t: int) -> None:
            self.vals[name] = xq[t]
            self._emit(name, xq[t], t)
        return step

    def _build_kernel(self, name: str, node: hw.QNode) -> Callable[[int], None]:
        st = kernels.init_state(node, self.B)
        self.st[name] = st
        ports = self.p.ports[name]
        bufs: dict[str, list] = {p: [] for p, _ in ports}
        is_acc = node.SEQUENCE_END
        count_active = self.counters and self.p.role[name] == COMPUTE
        ev_srcs = [s for _, srcs in ports for s, d in srcs if d == 0 and self.p.role[s] == SYNAPSE]
        events = self._event_tracker(name, node)
        self.finals[name] = lambda: {k: (np.stack(v, axis=1) if k == "pipe" else v) for k, v in st.items()
                                     if k != "saturations"}

        def step(t: int) -> None:
            ins = {p: self._gather(name, p, srcs, bufs[p], t) for p, srcs in ports}
            if count_active:
                ev = None
                for s_ in ev_srcs:  # Loihi updates a neuron when any event arrives, even if they sum to zero
                    e_ = self.events.get(s_)
                    if e_ is not None:
                        ev = e_ if ev is None else (ev | e_)
                self.acc.active[name] += _active_count(node, ins, st, ev)
            if events is not None:
                events(ins["in"], t)
            before = st["saturations"]
            out = kernels.step(node, ins, st)
            self.acc.sat[name] += st["saturations"] - before
            st["saturations"] = 0
            if is_acc:  # a sequence-end node records its running value
                self._record(name, kernels.finish(node, st), t)
                return
            sent = None
            if node.SENDS_CHANGES:  # a message per changed value (the first step: changes from zero)
                prev = self.vals.get(name)
                sent = out != (0 if prev is None else prev)
            self.vals[name] = out
            self._emit(name, out, t, sent)
        return step

    def _build_dense(self, name: str, node: hw.QDense, path: str) -> Callable[[int], None]:
        B, n_out = self.B, node.out_size()
        n_in = int(node.weight.shape[1])
        srcs = dict(self.p.ports[name])["in"]
        buf: list = []
        half, left, right, any_left = _shift_parts(node.shift, node.rounding != "floor")
        c = node.bias.astype(np.int64) + half
        m = limit(int(node.out_bits)) if node.out_bits > 0 else None
        acc = np.empty((B, n_out), np.int64)
        if path == "int64":
            wt = np.ascontiguousarray(node.weight.T, dtype=np.int64)
            xf = accf = None
        else:
            dt = np.float32 if path == "float32-blas" else np.float64
            wt = np.ascontiguousarray(node.weight.T, dtype=dt)
            xf = np.empty((B, n_in), dt)
            accf = np.empty((B, n_out), dt)
        delay = int(node.delay)
        ring = [np.zeros((B, n_out), np.int64) for _ in range(delay)]
        out_buf = np.empty((B, n_out), np.int64) if delay else acc
        count_active = self.counters and self.p.role[name] == COMPUTE
        sat_acc = self.acc.sat
        events = self._event_tracker(name, node)

        def finals() -> dict[str, Array]:
            return {"pipe": np.stack([ring[(self.T + j) % delay] for j in range(delay)], axis=1)} if delay else {}
        self.finals[name] = finals

        def step(t: int) -> None:
            x = self._gather(name, "in", srcs, buf, t)
            if count_active:  # a relay dense: every compartment is active when its input vector is non-zero
                self.acc.active[name] += int(np.count_nonzero(np.any(x != 0, axis=1))) * n_out
            if xf is not None:
                np.copyto(xf, x, casting="unsafe")
                np.matmul(xf, wt, out=accf)
                np.copyto(acc, accf, casting="unsafe")
            else:
                np.matmul(x, wt, out=acc)
            np.add(acc, c, out=acc)
            if any_left:
                np.left_shift(acc, left, out=acc)
            np.right_shift(acc, right, out=acc)
            sat_acc[name] += _sat_inplace(acc, m)
            if delay:
                slot = ring[t % delay]
                np.copyto(out_buf, slot)
                np.copyto(slot, acc)
            if events is not None:
                events(x, t)
            self.vals[name] = out_buf
            self._emit(name, out_buf, t)
        return step

    def _build_modebank(self, name: str, node: hw.QModeBank, path: str) -> Callable[[int], None]:
        """QModeBank with its state laid out [H, B, M] (re and im apart), in float64 or int64.

        Coefficients are broadcast once to full [H, B, M] arrays so that every operation runs over one
        contiguous array (NumPy cannot coalesce a broadcast over the middle axis).
        """
        B = self.B
        h, m_ = node.a_re.shape
        shape = (h, B, m_)
        f = int(node.coef_frac_bits)
        srcs = dict(self.p.ports[name])["in"]
        buf: list = []
        m = limit(int(node.out_bits)) if node.out_bits > 0 else None
        fl = path == "float64"
        dt = np.float64 if fl else np.int64
        re, im, nre, nim, t1, t2, uf = (np.zeros(shape, dt) for _ in range(7))
        state: dict[str, Any] = {"re": re, "im": im, "nre": nre, "nim": nim}
        kb = np.asarray(node.b_shift, np.int64).reshape(-1)

        def full(c: Array) -> Array:
            return np.ascontiguousarray(np.broadcast_to(c[:, None, :], shape), dtype=dt)
        if fl:  # a * 2^-F and b * 2^-kb are exact dyadic rationals: see docs/simulator.md
            are, aim = full(np.ldexp(node.a_re, -f)), full(np.ldexp(node.a_im, -f))
            scale = np.ldexp(1.0, -kb)[:, None]
            bre, bim = full(node.b_re * scale), full(node.b_im * scale)
        else:
            are, aim, bre, bim = full(node.a_re), full(node.a_im), full(node.b_re), full(node.b_im)
            half, left, right, any_left = _shift_parts(kb, True)
            half = half[:, None, None]
            if not np.isscalar(left):
                left, right = left[:, None, None], right[:, None, None]
        # the int64 interleaved output [B, H*M*2] is only built when something other than a fused readout reads it
        readers = [s_ for s_ in self.g.succs(name) if s_ not in self.p.fused]
        need_int = bool(readers) or (self.rec is not None and name in self.rec) or self.rec_sample is not None
        out4 = np.zeros((B, h, m_, 2), np.int64) if need_int else None
        counters = self.counters
        if counters:
            nzr = np.zeros(shape, np.int32)
            nzi = np.zeros(shape, np.int32)
            b_re, b_im = np.zeros(shape, bool), np.zeros(shape, bool)
            state["mode_nz"] = np.zeros(shape, bool)  # (re, im) != 0 after the last update
            act = np.zeros(shape, bool)
        self.st[name] = state
        self.vals[name] = None

        def finals() -> dict[str, Array]:
            return {"re": state["re"].transpose(1, 0, 2).astype(np.int64),
                    "im": state["im"].transpose(1, 0, 2).astype(np.int64)}
        self.finals[name] = finals

        def flush() -> None:  # per-index non-zero counts of this batch, in output order (h*M + m)*2 + c
            if counters:
                both = np.stack([nzr.sum(axis=1, dtype=np.int64), nzi.sum(axis=1, dtype=np.int64)], axis=-1)
                self.acc.nz[name] += both.reshape(-1)
        self.flush.append(flush)

        def step(t: int) -> None:
            re, im, nre, nim = state["re"], state["im"], state["nre"], state["nim"]
            u = self._gather(name, "in", srcs, buf, t)
            np.copyto(uf, u.T[:, :, None], casting="unsafe")
            if counters:  # a mode (2 compartments) is active when its input or its previous state is non-zero
                np.not_equal(uf, 0, out=act)
                np.logical_or(act, state["mode_nz"], out=act)
                self.acc.active[name] += 2 * int(np.count_nonzero(act))
            # re_t = rsh_trunc(a_re*re - a_im*im, F) + rsh_round(b_re*u, kb)
            np.multiply(are, re, out=nre)
            np.multiply(aim, im, out=t1)
            np.subtract(nre, t1, out=nre)
            # im_t = rsh_trunc(a_im*re + a_re*im, F) + rsh_round(b_im*u, kb)
            np.multiply(aim, re, out=nim)
            np.multiply(are, im, out=t1)
            np.add(nim, t1, out=nim)
            if fl:
                np.trunc(nre, out=nre)
                np.trunc(nim, out=nim)
                for dst, b in ((nre, bre), (nim, bim)):
                    np.multiply(b, uf, out=t1)
                    np.add(t1, 0.5, out=t1)
                    np.floor(t1, out=t1)
                    np.add(dst, t1, out=dst)
            else:
                _trunc_inplace(nre, f, t2)
                _trunc_inplace(nim, f, t2)
                for dst, b in ((nre, bre), (nim, bim)):
                    np.multiply(b, uf, out=t1)
                    np.add(t1, half, out=t1)
                    if any_left:
                        np.left_shift(t1, left, out=t1)
                    np.right_shift(t1, right, out=t1)
                    np.add(dst, t1, out=dst)
            self.acc.sat[name] += _sat_inplace(nre, m) + _sat_inplace(nim, m)
            state["re"], state["nre"], state["im"], state["nim"] = nre, re, nim, im
            if counters:
                np.not_equal(nre, 0, out=b_re)
                np.not_equal(nim, 0, out=b_im)
                np.add(nzr, b_re, out=nzr)
                np.add(nzi, b_im, out=nzi)
                np.logical_or(b_re, b_im, out=state["mode_nz"])
            if out4 is not None:
                np.copyto(out4[..., 0], nre.transpose(1, 0, 2), casting="unsafe")
                np.copyto(out4[..., 1], nim.transpose(1, 0, 2), casting="unsafe")
                flat = out4.reshape(B, -1)
                self.vals[name] = flat
                self._record(name, flat, t)
        return step

    def _build_readout(self, name: str, node: hw.QModeReadout, path: str) -> Callable[[int], None]:
        """QModeReadout fused with its QModeBank: batched products over the [H, B, M] state."""
        B = self.B
        h, m_ = node.c_re.shape
        bank = dict(self.p.ports[name])["state"][0][0]
        skip_srcs = dict(self.p.ports[name])["skip"]
        buf: list = []
        bst = self.st[bank]
        m = limit(int(node.out_bits)) if node.out_bits > 0 else None
        fl = path == "float64"
        out = np.empty((B, h), np.int64)
        count_active = self.counters and self.p.role[name] == COMPUTE
        act = np.zeros((h, B), bool)
        if fl:
            cre = node.c_re.astype(np.float64)[:, :, None]
            cim = node.c_im.astype(np.float64)[:, :, None]
            d = node.d.astype(np.float64)[:, None]
            s = np.asarray(node.shift, np.int64).reshape(-1)
            scale = np.ldexp(1.0, -s)[:, None]
            halfv = np.where(s > 0, 0.5, 0.0)[:, None]
            o1 = np.empty((h, B, 1))
            o2 = np.empty((h, B, 1))
            sk = np.empty((h, B))
        else:
            cre, cim, d = node.c_re, node.c_im, node.d[:, None]
            half, left, right, any_left = _shift_parts(node.shift, True)
            c = half[:, None]
            if not np.isscalar(left):
                left, right = left[:, None], right[:, None]
            sk = np.empty((h, B), np.int64)

        def step(t: int) -> None:
            re, im = bst["re"], bst["im"]
            skip = self._gather(name, "skip", skip_srcs, buf, t)
            if count_active:  # channel h is active when any of its modes or its skip input is non-zero
                _any_last(bst["mode_nz"], act)
                np.logical_or(act, skip.T != 0, out=act)
                self.acc.active[name] += int(np.count_nonzero(act))
            np.copyto(sk, skip.T, casting="unsafe")
            if fl:
                np.matmul(re, cre, out=o1)
                np.matmul(im, cim, out=o2)
                a = o1[..., 0]
                np.add(a, o2[..., 0], out=a)
                np.multiply(sk, d, out=sk)
                np.add(a, sk, out=a)
                np.multiply(a, scale, out=a)
                np.add(a, halfv, out=a)
                np.floor(a, out=a)
                self.acc.sat[name] += _sat_inplace(a, m)
                np.copyto(out, a.T, casting="unsafe")
            else:
                if re.dtype != np.int64:  # a float64 bank whose readout could not be proven exact in float64
                    re, im = re.astype(np.int64), im.astype(np.int64)
                a = np.einsum("hbm,hm->hb", re, cre) + np.einsum("hbm,hm->hb", im, cim) + d * sk
                np.add(a, c, out=a)
                if any_left:
                    np.left_shift(a, left, out=a)
                np.right_shift(a, right, out=a)
                self.acc.sat[name] += _sat_inplace(a, m)
                np.copyto(out, a.T)
            self.vals[name] = out
            self._emit(name, out, t)
        return step

    # -- running ---------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Array]:
        """All steps, then the sequence end. Returns the sequence-end values (node -> [B, size])."""
        for t in range(self.T):
            for fn in self.steps:
                fn(t)
        for fl in self.flush:
            fl()
        return self._sequence_end()

    def _sequence_end(self) -> dict[str, Array]:
        final: dict[str, Array] = {}
        for name in self.p.step_order:
            node = self.g.node(name)
            if node.SEQUENCE_END:
                final[name] = kernels.finish(node, self.st[name])
                if self.counters:
                    self.acc.nz[name] += np.count_nonzero(final[name], axis=0)
        for name in self.p.end_order:
            node = self.g.node(name)
            st = kernels.init_state(node, self.B)
            ins = {}
            for port, srcs in self.p.ports[name]:
                vals = [final[s] if s in final else self.vals[s] for s, _ in srcs]
                total = vals[0]
                for v in vals[1:]:
                    total = total + v
                ins[port] = total
            out = kernels.step(node, ins, st)
            if out is None:
                out = kernels.finish(node, st)
            self.acc.sat[name] += st["saturations"]
            final[name] = out
            self.st[name] = st
            if self.counters:
                self.acc.nz[name] += np.count_nonzero(out, axis=0)
        return final

    def final_states(self) -> dict[str, dict[str, Array]]:
        out: dict[str, dict[str, Array]] = {}
        for name in self.p.step_order:
            if name in self.finals:
                fs = self.finals[name]()
                if fs:
                    out[name] = fs
        return out


#: node type -> the engine's vectorised builder, used when the plan chose a path other than 'kernel'.
_SPECIALISED: dict[type, Callable[..., Callable[[int], None]]] = {
    hw.QDense: _Batch._build_dense,
    hw.QModeBank: _Batch._build_modebank,
}
