"""Node-by-node emission of integer Q-nodes for :mod:`neurocompile.passes.quantize` (which owns the scheme)."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from neurocompile.errors import QuantizationError
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes import qmath
from neurocompile.passes.calibrate import clip_range
from neurocompile.passes.common import PassContext, limit
from neurocompile.sim import kernels

REFRACTORY_TRACE_BITS = 8  # fractional bits of the SPikE-SSM refractory trace
RSQRT_FRAC_BITS = 16  # fractional bits of QLayerNorm's 1/sqrt table (T[1] = 2^16)
LAYERNORM_MEAN_BITS = 16  # 1/H ~ m / 2^(ceil(log2 H) + 16)


class Emitter:
    def __init__(self, g: Graph, ctx: PassContext, plan: Any) -> None:
        self.g, self.ctx, self.plan, self.p = g, ctx, plan, ctx.precision
        self.trace = ctx.info["calib_trace"]
        self.records: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, hw.QModeReadout] = {}

    def emit(self, name: str) -> hw.QNode:
        n = self.g.node(name)
        fn = getattr(self, f"_{type(n).__name__.lower()}", None)
        if fn is None:
            raise QuantizationError(f"node '{name}': no integer form for {n.op}")
        q = fn(name, n)
        q.out_scale = float(q.out_scale)
        rec = self.records.setdefault(name, {})
        rec.update(op=q.op, out_scale=q.out_scale, out_bits=int(q.out_bits))
        return q

    # -- helpers
    def _s(self, name: str) -> float:
        return self.plan.scale[name]

    def _b(self, name: str) -> int:
        return self.plan.bits[name]

    def _dense(self, name: str, w: np.ndarray, b: np.ndarray | None, s_in: np.ndarray | float, in_limit: Any,
               s_out: float, host: bool) -> qmath.RowQuant:
        w = np.asarray(w, np.float64)
        w_hat = w * np.asarray(s_in, np.float64) / s_out
        b_hat = None if b is None else np.asarray(b, np.float64) / s_out
        acc = math.inf if host else self.p.acc_limit
        rq = qmath.quantize_rows(w_hat, self.p.wmax, acc, in_limit, b_hat)
        if rq.zeroed:
            self._zeroed(name, rq.zeroed, w_hat, b_hat, in_limit)
        deq = rq.weight * (2.0 ** -rq.shift[:, None]) * s_out / np.asarray(s_in, np.float64)
        self.records.setdefault(name, {})["weight_sqnr_db"] = _num(qmath.sqnr_db(w, deq))
        # output rounding error bound of the coarser weights, relative to the output range
        rel = 0.5 * float(np.sum(np.broadcast_to(in_limit, w.shape[1:]))) * 2.0 ** -rq.shift.astype(np.float64) \
            / max(1, limit(self._b(name) or 24))
        exact = np.all(np.abs(rq.weight * 2.0 ** -rq.shift[:, None].astype(np.float64) - w_hat)
                       <= 1e-9 * np.abs(w_hat).max(initial=1.0), axis=1)
        weak = [o for o in rq.acc_limited if rq.lost_bits[o] > 2 and rel[o] > 2.0 ** -(self.p.weight_bits - 1)
                and not exact[o]]
        if weak and not host:
            o = max(weak, key=lambda i: rq.lost_bits[i])
            self.ctx.warn(
                f"node '{name}': the {self.p.accumulator_bits}-bit accumulator limit (worst case "
                f"{self.p.acc_limit:,} = sum |W| x input limit) costs channel {o} {int(rq.lost_bits[o])} bits of "
                f"its {self.p.weight_bits}-bit weights ({len(weak)} channel(s) lose more than 2 bits); fewer input "
                f"bits (message_bits) or a wider accumulator (accumulator_bits) would help")
        return rq

    def _zeroed(self, name: str, rows: list[int], w_hat: np.ndarray, b_hat: np.ndarray | None, in_limit: Any) -> None:
        """Rows whose weights all round to 0 under the accumulator limit. Where the lost input term is at most 1 %
        of the output range (a bias that dominates a tiny weight) it is a precision warning; otherwise an error
        naming the cause (the bias, or the summed inputs)."""
        lim_in = np.broadcast_to(np.asarray(in_limit, np.float64), w_hat.shape[1:])
        lost = np.abs(w_hat[rows]) @ lim_in  # largest input term of each zeroed row, in output units
        bias = np.zeros(len(rows)) if b_hat is None else np.abs(b_hat[rows])
        out_lim = limit(self._b(name) or 24)
        o = int(np.argmax(lost))
        row = rows[o]
        cause = (f"its bias ({bias[o]:,.0f} output units) takes the {self.p.accumulator_bits}-bit accumulator's range, "
                 f"leaving its weights (input term at most {lost[o]:,.1f} output units over the input's range "
                 f"{float(np.max(lim_in)):,.0f}) below one level") if bias[o] > lost[o] else (
                 f"its {w_hat.shape[1]} inputs with an input limit of {float(np.max(lim_in)):,.0f} overflow the "
                 f"{self.p.accumulator_bits}-bit accumulator (limit {self.p.acc_limit:,}) even with 1-level weights")
        if float(lost.max()) <= 0.01 * out_lim:
            self.ctx.warn(f"node '{name}': channel {row}: {cause}; {len(rows)} channel(s) lose their input term "
                          f"(at most {lost[o]:,.1f} of {out_lim:,} output units)")
            return
        raise QuantizationError(
            f"node '{name}': channel {row}: {cause} ({len(rows)} channel(s) would be all zero); use fewer message "
            f"bits (message_bits) or a wider accumulator (accumulator_bits)")

    # -- node kinds
    def _input(self, name: str, n: fl.Input) -> hw.QNode:
        return hw.QInput(size=n.size, tokens=n.tokens, vocab=n.vocab, out_bits=self._b(name), out_scale=self._s(name))

    def _embedding(self, name: str, n: fl.Embedding) -> hw.QNode:
        lim = limit(self._b(name))
        table = np.clip(qmath.round_half_away(n.weight / self._s(name)), -lim, lim)
        return hw.QEmbedding(table=table, out_bits=self._b(name), out_scale=self._s(name))

    def _affine(self, name: str, n: fl.Affine) -> hw.QNode:
        host = name in self.plan.late
        rq = self._dense(name, n.weight, n.bias, self.plan.in_scale(name), self.plan.in_limit(name),
                         self._s(name), host)
        return hw.QDense(weight=rq.weight, bias=rq.bias, shift=rq.shift, weight_bits=self.p.weight_bits,
                         out_bits=0 if host else self._b(name), out_scale=self._s(name))

    def _add(self, name: str, n: fl.Add) -> hw.QNode:
        return hw.QAdd(size=n.size, out_bits=self._b(name), out_scale=self._s(name))

    def _meanpool(self, name: str, n: fl.MeanPool) -> hw.QNode:
        return hw.QAccumulate(size=n.size, out_bits=self._b(name), out_scale=self._s(name))

    def _ternarize(self, name: str, n: fl.Ternarize) -> hw.QNode:
        fr = Fraction(n.threshold).limit_denominator(100)
        return hw.QTernarize(num=fr.numerator, den=fr.denominator, size=n.size, out_scale=1.0)

    def _mul(self, name: str, n: fl.Mul) -> hw.QNode:
        return hw.QMul(shift=int(self.plan.mul_shift[name]), size=n.size, out_bits=self._b(name),
                       out_scale=self._s(name))

    def _activation(self, name: str, n: fl.Activation) -> hw.QNode:
        from neurocompile.passes.quantize import LUT_BOUNDS, lut_function

        f = lut_function(n.fn)
        src = self.g.preds(name)
        s_in, bits_out, s_out = self.plan.in_scale(name), self._b(name), self._s(name)
        in_bits = self._b(src[0])
        lo, hi = clip_range(self.ctx, self.g, src[0], in_bits) if len(src) == 1 else (
            -limit(in_bits) * s_in, limit(in_bits) * s_in)
        blo, bhi = LUT_BOUNDS.get(n.fn, (-math.inf, math.inf))
        lo, hi = max(lo, blo), min(hi, bhi)
        table, shift, offset = qmath.make_lut(f, s_in, lo, hi, s_out, bits_out, 1 << self.ctx.options.lut_bits)
        q = hw.QLUT(table=table, in_shift=shift, offset=offset, fn=n.fn, size=n.size, out_bits=bits_out,
                    out_scale=s_out)
        x = sum(self.trace[p].astype(np.float64) for p in src)
        xi = np.clip(qmath.round_half_away(x / s_in), -limit(in_bits), limit(in_bits))
        y = kernels.step_lut(q, {"in": xi.reshape(-1, xi.shape[-1])}, {"saturations": 0}) * s_out
        ref = f(x).reshape(y.shape)
        clamped, harmful = qmath.lut_clamps(table.size, shift, offset, n.fn, xi)
        sq = qmath.sqnr_db(ref, y)
        self.records.setdefault(name, {}).update(
            lut_entries=int(table.size), lut_sqnr_db=_num(sq), lut_max_abs_error=float(np.abs(ref - y).max()),
            lut_clamped=clamped, lut_clamped_nonflat=harmful, lut_range=[float(lo), float(hi)])
        if sq < 30.0:
            self.ctx.warn(f"node '{name}': the {n.fn} look-up table ({table.size} entries over [{lo:.4g}, {hi:.4g}]) "
                          f"reproduces the function with only {sq:.1f} dB SQNR on the calibration data; more "
                          f"entries (lut_bits, now {self.ctx.options.lut_bits}) would help")
        return q

    def _lif(self, name: str, n: fl.LIF) -> hw.QNode:
        s_in = self.plan.in_scale(name)
        F = self.p.decay_bits
        return hw.QLIF(decay=int(qmath.round_half_away(n.tau * (1 << F))), vth=self._vth(name, n.vth, s_in),
                       coef_frac_bits=F, state_bits=self.p.state_bits, reset=n.reset, compare=n.compare)

    def _refractorylif(self, name: str, n: fl.RefractoryLIF) -> hw.QNode:
        s_in = self.plan.in_scale(name)
        F = self.p.decay_bits
        one = 1 << F
        return hw.QRefractory(decay=int(qmath.round_half_away(n.tau * one)),
                              lam=int(qmath.round_half_away(n.lam * one)), vth=self._vth(name, n.vth, s_in),
                              rho=qmath.round_half_away(n.rho / s_in), coef_frac_bits=F,
                              trace_frac_bits=REFRACTORY_TRACE_BITS, state_bits=self.p.state_bits)

    def _heaviside(self, name: str, n: fl.Heaviside) -> hw.QNode:
        s_in = self.plan.in_scale(name)
        return hw.QHeaviside(vth=qmath.round_half_away(n.vth / s_in), compare=n.compare)

    def _vth(self, name: str, vth: np.ndarray, s_in: float) -> np.ndarray:
        v = qmath.round_half_away(np.asarray(vth, np.float64) / s_in)
        if v.min() < 1:
            raise QuantizationError(f"node '{name}': threshold {float(np.min(vth)):.4g} is below one integer unit "
                                    f"of its input ({s_in:.4g}); the input range is too wide for its width")
        self.records.setdefault(name, {})["vth_levels_min"] = int(v.min())
        if v.min() < 64:
            self.ctx.warn(f"node '{name}': its threshold is only {int(v.min())} integer units of its input "
                          f"(coarse spikes); the calibrated input range is large next to the threshold")
        return v

    def _norm(self, name: str, n: fl.Norm) -> hw.QNode:
        """LayerNorm -> QLayerNorm (docs/semantics.md): scales from calibration, error alone measured."""
        from neurocompile.passes.quantize import LAYERNORM_IN_BITS

        if n.kind != "layer":
            raise QuantizationError(f"node '{name}': a {n.kind} Norm must be folded before quantisation")
        h = n.out_size()
        src = self.g.preds(name)
        s_in, s_out, bits_out = self.plan.in_scale(name), self._s(name), self._b(name)
        in_bits = max(self._b(p) for p in src) if src else LAYERNORM_IN_BITS
        if in_bits > LAYERNORM_IN_BITS:
            raise QuantizationError(f"node '{name}': LayerNorm input of {in_bits} bits; at most "
                                    f"{LAYERNORM_IN_BITS} are supported")
        k_m = max(0, math.ceil(math.log2(h))) + LAYERNORM_MEAN_BITS
        m = int(round(2.0 ** k_m / h))
        while m % 2 == 0 and k_m > 0:  # exact for a power-of-two H: m = 1, k_m = log2 H
            m, k_m = m // 2, k_m - 1
        L, R = int(self.ctx.options.lut_bits), RSQRT_FRAC_BITS
        idx = np.arange((1 << L) + 1, dtype=np.float64)
        table = qmath.round_half_away(2.0 ** R / np.sqrt(np.maximum(idx, 1.0)))
        eps = int(qmath.round_half_away(float(n.eps) / (s_in * s_in)))
        gain = n.weight.astype(np.float64) / s_out  # y_int = d_int / sqrt(V) * gain + b_int
        rq = qmath.quantize_rows(gain[:, None], self.p.wmax, math.inf, 1.0)
        lim = limit(bits_out) if bits_out > 0 else None
        bias = qmath.round_half_away(n.bias.astype(np.float64) / s_out)
        if lim is not None:
            bias = np.clip(bias, -lim, lim)
        q = hw.QLayerNorm(size=h, mean_mul=m, mean_shift=k_m, var_shift=0, eps=eps, index_bits=L,
                          rsqrt_frac_bits=R, rsqrt_table=table.astype(np.int64), weight=rq.weight[:, 0].copy(),
                          bias=bias.astype(np.int64), shift=(rq.shift + R).astype(np.int64),
                          weight_bits=self.p.weight_bits, out_bits=bits_out, out_scale=s_out)
        # the error this node adds alone, on its quantised calibration input
        x = sum(self.trace[p].astype(np.float64) for p in src)
        xi = np.clip(qmath.round_half_away(x / s_in), -limit(in_bits), limit(in_bits))
        flat = xi.reshape(-1, h)
        y = kernels.step_layernorm(q, {"in": flat}, {"saturations": 0}) * s_out
        mu = x.mean(axis=-1, keepdims=True)
        ref = ((x - mu) / np.sqrt(((x - mu) ** 2).mean(axis=-1, keepdims=True) + n.eps) * n.weight + n.bias)
        sq = qmath.sqnr_db(ref.reshape(y.shape), y)
        deq = rq.weight[:, 0] * 2.0 ** -rq.shift.astype(np.float64) * s_out
        self.records.setdefault(name, {}).update(
            norm_sqnr_db=_num(sq), weight_sqnr_db=_num(qmath.sqnr_db(n.weight, deq)), rsqrt_entries=int(table.size),
            mean_mul=m, mean_shift=k_m, eps_int=eps)
        if sq < 30.0:
            self.ctx.warn(f"node '{name}': the integer LayerNorm reproduces the float one with only {sq:.1f} dB SQNR "
                          f"on the calibration data (input {in_bits} bits, scale {s_in:.4g}); more input bits or a "
                          f"larger lut_bits would help")
        return q

    # -- SSM
    def _modebank(self, name: str, n: fl.ModeBank) -> hw.QNode:
        from neurocompile.passes.ssmquant import quantize_ssm

        ro = [s for s in self.g.succs(name) if isinstance(self.g.node(s), fl.ModeReadout)
              and self.g.edge(name, s)["port"] == "state"]
        if len(ro) != 1 or self.g.succs(name) != ro:
            raise QuantizationError(f"ModeBank '{name}' must feed exactly one ModeReadout (its 'state' port)")
        bank, readout, info = quantize_ssm(self, name, n, ro[0], self.g.node(ro[0]))
        self.pending[ro[0]] = readout
        self.records.setdefault(name, {}).update(info)
        return bank

    def _modereadout(self, name: str, n: fl.ModeReadout) -> hw.QNode:
        try:
            return self.pending.pop(name)
        except KeyError:
            raise QuantizationError(f"ModeReadout '{name}' is not fed by a ModeBank on its 'state' port") from None


def _num(v: float) -> float | None:
    """JSON-safe float (None for inf/nan)."""
    return float(v) if math.isfinite(v) else None

