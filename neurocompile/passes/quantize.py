"""Quantize: calibrated float graph -> integer graph of hardware Q-nodes (same node names, same edges).

Scheme (docs/passes.md has the reasoning and the measured numbers):

- Every value x is an integer x_int of ``out_bits`` signed bits with x = x_int * ``out_scale`` (one scale per
  node). Spikes have scale 1. Inputs summed on one port, and the inputs and output of a residual ``Add``, share
  one scale (union-find groups): the residual stream has ONE scale, the largest its members need.
- Widths are set by the consumers so that every on-chip accumulator fits the target's ``accumulator_bits`` in the
  worst case (sum |W_int| * input limit, the design rule of docs/semantics.md): a dense layer of fan-in n lets
  its inputs use ``acc - log2(wmax n)`` bits; a ModeBank's input ``acc - weight_bits + 1``; a readout's skip one
  bit less; a product a*b at most ``acc + 1`` bits in total; a neuron's input ``state_bits - 2``. Graded
  messages never exceed ``graded_message_bits``.
- Scales come from calibration: s = 1.02 clip / (2^(bits-1) - 1), clip chosen by the calibration method,
  rounded up to a power of two (``pow2_scales``: every weight grid is then a power of two per channel).
- Weights: per-output-channel mantissas of ``weight_bits`` with a per-channel shift (qmath.quantize_rows).
- ModeBank (ssmquant.py): a = round(dA 2^F) (pulled inside the unit circle when rounding reaches it;
  impulse-response deviation over the calibration horizon checked); each mode's state in its own basis so that
  its input coefficient is an exact integer and its calibrated peak uses the state width; the readout absorbs
  the basis. The state width is searched: each candidate is simulated on the calibration input together with
  the readout (whose accumulator shares its budget between 2M state terms and the skip term) and the one with
  the best readout SQNR wins.
- Neurons: decay = round(tau 2^F), vth = round(V_th / s_in), rho = round(rho / s_in).
- Activations become LUTs (qmath.make_lut) over the calibrated input range; their error is measured.
- Mul: y = rsh_round(a b, k) has scale s_a s_b 2^k; when the output scale is imposed (residual stream),
  the scale of the producer of ``a`` is adjusted (within a factor 2 of its need) to make it exact.
- LayerNorm -> QLayerNorm (input at most 16 bits, and its channel sum fits the accumulator): 1/H as m / 2^k_m
  (k_m = ceil(log2 H) + 16, exact for a power-of-two H), eps in units of the variance (s_in^2), a 1/sqrt table of
  2^lut_bits + 1 entries with 16 fractional bits indexed by the variance's mantissa, the gain w / s_out as
  per-channel ``weight_bits`` mantissas with a shift, the bias in output units; its error alone is measured.
- MeanPool -> QAccumulate (32-bit, host side) whose out_scale is s_in / T (T: calibration length); the
  readout after it is a host-side QDense with out_bits 0.
Saturations are counted by running the integer graph on the calibration data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.errors import QuantizationError, UnsupportedOpError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.ir.traits import SPIKE_BINARY, SPIKE_NONE, SPIKE_TERNARY
from neurocompile.passes import qmath
from neurocompile.passes.calibrate import clip_range
from neurocompile.passes.common import PassContext, limit

NAME = "quantize"
SPIKE_BITS = {SPIKE_BINARY: 1, SPIKE_TERNARY: 2}  # a spike's width and scale are fixed by its kind
ADJUSTABLE = (fl.Affine, fl.Activation, fl.ModeReadout, fl.Embedding)
ACCUMULATE_BITS = 32  # host-side sequence sum
HOST_BITS = 24  # resolution of host-side (out_bits 0) values
HEADROOM = 1.02  # scales leave 2 % above the clipping range: weight rounding must not push the peak over
LAYERNORM_IN_BITS = 16  # widest QLayerNorm input: d^2 sums and d * r * w products stay far inside int64
LUT_BOUNDS = {"sigmoid": (-16.0, 16.0), "gelu": (-10.0, math.inf), "relu": (-math.inf, math.inf)}


def lut_function(fn: str):
    from neurocompile.ir.interpret import gelu, sigmoid

    return {"sigmoid": sigmoid, "gelu": gelu, "relu": lambda v: np.maximum(v, 0.0),
            "identity": lambda v: v}[fn]


def ternary_alpha(w: np.ndarray) -> float | None:
    """alpha when every non-zero weight of ``w`` has magnitude alpha (a ternary matrix), else None."""
    mag = np.abs(np.asarray(w, np.float64))
    nz = mag[mag > 0]
    if nz.size == 0:
        return None
    a = float(nz.max())
    return a if np.all(np.abs(nz - a) <= 1e-6 * a) else None


#: consumer class -> the widest input (bits) it accepts on a port so that its accumulator fits
#: ``(precision, consumer node, port) -> bits | None`` (None: no constraint).
IN_BITS: Registry[Callable[[Any, Any, str], int | None]] = Registry("quantize-in-bits", family="float")


@IN_BITS.register(fl.Node)
def _no_limit(p: Any, c: fl.Node, port: str) -> int | None:
    return None


@IN_BITS.register(fl.Affine)
def _affine_in(p: Any, c: fl.Affine, port: str) -> int | None:
    wm = 1 if ternary_alpha(c.weight) is not None else p.wmax
    return qmath.bits_for(p.acc_limit / (wm * max(1, c.weight.shape[1])))


@IN_BITS.register(fl.ModeBank)
def _modebank_in(p: Any, c: fl.ModeBank, port: str) -> int | None:
    return qmath.bits_for(p.acc_limit / p.wmax)


@IN_BITS.register(fl.ModeReadout)
def _readout_in(p: Any, c: fl.ModeReadout, port: str) -> int | None:
    return qmath.bits_for(p.acc_limit / (2 * p.wmax)) if port == "skip" else None


@IN_BITS.register(fl.LIF, fl.RefractoryLIF)
def _neuron_in(p: Any, c: fl.Node, port: str) -> int | None:
    return p.state_bits - 2


@IN_BITS.register(fl.Mul)
def _mul_in(p: Any, c: fl.Mul, port: str) -> int | None:
    half = (p.accumulator_bits + 1) // 2
    return half if port == "b" else p.accumulator_bits + 1 - half


@IN_BITS.register(fl.Norm)
def _norm_in(p: Any, c: fl.Norm, port: str) -> int | None:
    """QLayerNorm: its channel sum fits the accumulator, squares stay in int64."""
    return min(LAYERNORM_IN_BITS, qmath.bits_for(p.acc_limit / max(1, c.out_size())))


class _Plan:
    """Widths, scales and product shifts of every node, decided before any node is emitted."""

    def __init__(self, g: Graph, ctx: PassContext) -> None:
        self.g, self.ctx, self.p = g, ctx, ctx.precision
        self.late = g.sequence_end_nodes()
        self.steps = int(g.meta["calibration"]["steps"])
        msg = self.p.message_bits
        self.cap = msg if msg > 2 else min(self.p.state_bits, self.p.accumulator_bits)
        if msg <= 2:
            ctx.warn(f"target {self.p.target_name} carries only {msg}-bit messages: graded values are quantised to "
                     f"{self.cap} bits and the design-rule checks report every graded connection")
        self.order = g.order()
        self.bits: dict[str, int] = {}
        self.scale: dict[str, float] = {}
        self.mul_shift: dict[str, int] = {}
        self.fixed: set[str] = set()  # scales that later steps must not change
        self._bits()
        self._groups()
        self._scales()
        self._products()

    # -- widths
    def _allowed(self, consumer: str, port: str) -> int | None:
        c = self.g.node(consumer)
        if consumer in self.late or c.SEQUENCE_END:
            return None
        return IN_BITS[c](self.p, c, port)

    def _bits(self) -> None:
        g = self.g
        for n in self.order:
            node = g.node(n)
            if node.SPIKES != SPIKE_NONE:
                self.bits[n] = SPIKE_BITS[node.SPIKES]
            elif node.IS_INPUT and node.tokens:  # type: ignore[attr-defined]
                self.bits[n] = max(2, int(node.vocab).bit_length() + 1)  # type: ignore[attr-defined]
            elif node.SEQUENCE_END:
                self.bits[n] = ACCUMULATE_BITS
            elif n in self.late:
                self.bits[n] = 0
            else:
                allowed = [self._allowed(s, g.edge(n, s)["port"]) for s in g.succs(n)]
                allowed = [a for a in allowed if a is not None]
                self.bits[n] = min([self.cap] + allowed)

    # -- shared scales
    def _groups(self) -> None:
        parent = {n: n for n in self.order}

        def find(a: str) -> str:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for n in self.order:
            node = self.g.node(n)
            by_port: dict[str, list[str]] = {}
            for p in self.g.preds(n):
                by_port.setdefault(self.g.edge(p, n)["port"], []).append(p)
            tied = [ps for ps in by_port.values() if len(ps) > 1]
            if node.SUMS_INPUTS:
                tied.append([n] + self.g.preds(n))
            for ps in tied:
                for q in ps[1:]:
                    parent[find(q)] = find(ps[0])
        groups: dict[str, list[str]] = {}
        for n in self.order:
            groups.setdefault(find(n), []).append(n)
        self.groups = [m for m in groups.values() if len(m) > 1]
        for members in self.groups:
            fixed = [m for m in members if self.g.node(m).SPIKES != SPIKE_NONE or self.g.node(m).SEQUENCE_END
                     or m in self.late]
            if fixed:
                raise QuantizationError(
                    f"nodes {members} must share one integer scale (summed on one port or a residual add), but "
                    f"'{fixed[0]}' ({self.g.node(fixed[0]).op}) has a fixed scale; this wiring is not supported")
            b = min(self.bits[m] for m in members)
            for m in members:
                self.bits[m] = b

    def _desired(self, n: str) -> float:
        bits = self.bits[n] or HOST_BITS
        lo, hi = clip_range(self.ctx, self.g, n, bits)
        c = max(abs(lo), abs(hi))
        s = HEADROOM * c / limit(bits) if c > 0 else 1.0
        return 2.0 ** math.ceil(math.log2(s)) if self.ctx.options.pow2_scales else s

    def _scales(self) -> None:
        g = self.g
        for n in self.order:
            node = g.node(n)
            if node.SPIKES != SPIKE_NONE or (node.IS_INPUT and node.tokens):  # type: ignore[attr-defined]
                self.scale[n] = 1.0
                self.fixed.add(n)
            elif not node.SEQUENCE_END:
                self.scale[n] = self._desired(n)
        for members in self.groups:
            s = max(self.scale[m] for m in members)
            for m in members:
                self.scale[m] = s
                self.fixed.add(m)
        for n in self.order:  # ternary weights with a free output scale: make the weights exactly {-1, 0, 1}
            node = g.node(n)
            if isinstance(node, fl.Affine) and n not in self.fixed and n not in self.late:
                alpha = ternary_alpha(node.weight)
                if alpha is not None:
                    unit = alpha * self.in_scale(n)
                    self.scale[n] = unit * 2.0 ** math.ceil(math.log2(self.scale[n] / unit))

    def in_scale(self, n: str, port: str | None = None) -> float:
        ps = self.g.preds(n, port)
        return self.scale[ps[0]] if ps else 1.0

    def in_limit(self, n: str, port: str | None = None) -> int:
        return sum(1 if self.bits[p] <= 2 else limit(self.bits[p]) for p in self.g.preds(n, port))

    # -- products and sequence ends
    def _products(self) -> None:
        g = self.g
        for n in self.order:
            node = g.node(n)
            if node.SEQUENCE_END:  # the sequence sum: 1/T folded into the scale
                self.scale[n] = self.in_scale(n) / self.steps
                continue
            if not isinstance(node, fl.Mul):
                continue
            pa, pb = g.preds(n, "a"), g.preds(n, "b")
            if len(pa) != 1 or len(pb) != 1:
                raise QuantizationError(f"Mul '{n}' needs exactly one input per port, has a={pa}, b={pb}")
            a, b = pa[0], pb[0]
            if n not in self.fixed:
                s_ab = self.scale[a] * self.scale[b]
                k = math.ceil(math.log2(self._desired(n) / s_ab))
                self.mul_shift[n], self.scale[n] = k, s_ab * 2.0 ** k
                continue
            adj = next((q for q in (a, b) if isinstance(g.node(q), ADJUSTABLE) and q not in self.fixed
                        and g.succs(q) == [n] and q not in g.outputs), None)
            if adj is None:
                raise QuantizationError(
                    f"Mul '{n}' must output the residual-stream scale {self.scale[n]:.4g}, but neither input "
                    f"({a}, {b}) is a dense layer, table or readout whose scale can be adjusted to make it exact")
            other = b if adj == a else a
            need = self.scale[adj]
            k = math.floor(math.log2(self.scale[n] / (self.scale[other] * need)))
            self.mul_shift[n] = k
            self.scale[adj] = self.scale[n] / (self.scale[other] * 2.0 ** k)
            self.fixed.add(adj)


def real_saturations(q: Graph, x: np.ndarray, run: Any = None) -> dict[str, int]:
    """Saturation counts per node of integer graph ``q`` on ``x``; a LUT's clamps count only where its function
    is not flat (clamping sigmoid's or GELU's flat ends is exact). ``run``: an existing ``run_int`` result
    recording at least the LUT inputs."""
    from neurocompile.ir import hw
    from neurocompile.passes._intrun import run_int

    luts = {n: q.preds(n) for n in q.order() if isinstance(q.node(n), hw.QLUT)}
    if run is None:
        run = run_int(q, x, record=True, nodes=sorted({p for ps in luts.values() for p in ps}))
    sat = dict(run.saturations)
    for n, preds in luts.items():
        lut = q.node(n)
        xi = sum(run.trace[p] for p in preds)
        sat[n] = qmath.lut_clamps(lut.table.size, lut.in_shift, lut.offset, lut.fn, xi)[1]
    return {n: int(c) for n, c in sat.items() if c}


def run(graph: Graph, ctx: PassContext) -> Graph:
    if "calibration" not in graph.meta or "calib_trace" not in ctx.info:
        raise QuantizationError("quantize needs calibration ranges: run the calibrate pass first")
    for name in graph.order():
        node = graph.node(name)
        if node.must_lower():
            raise UnsupportedOpError(f"node '{name}' ({graph.node(name).op}) must be lowered before quantisation "
                                     f"(run the fold, discretize and lower passes)")
    from neurocompile.passes._emit import Emitter

    plan = _Plan(graph, ctx)
    em = Emitter(graph, ctx, plan)
    q = graph.copy()
    for name in graph.order():
        q.replace(name, em.emit(name))
    x = ctx.info["calib_x"]
    sat = real_saturations(q, x)
    total = x.shape[0] * x.shape[1]
    for n, cnt in sat.items():
        rate = cnt / max(1, total * q.node(n).out_size())
        if rate > 1e-3:
            ctx.warn(f"node '{n}' ({q.node(n).op}) saturated {cnt} values on the calibration data "
                     f"({100 * rate:.2f} % of its outputs); try calibration='max' or more bits")
    q.meta = dict(graph.meta)
    q.meta["quant"] = {
        "precision": {k: v for k, v in vars(ctx.precision).items()},
        "options": ctx.options.to_dict(),
        "steps": plan.steps,
        "nodes": em.records,
        "calibration_saturations": sat,
    }
    ctx.note(NAME, nodes=len(q), warnings=len(ctx.info["warnings"]))
    return q
