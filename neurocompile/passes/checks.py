"""Design-rule checks of an integer graph against the target: a list of violations, never a boolean.

Every rule runs on every node and all results are returned; ``severity`` 'error' blocks export, 'warning' does not.

============== ================================================================================================
rule           what is compared (``used`` vs ``limit``)
============== ================================================================================================
accumulator    worst-case dendritic sum of a node, sum_i |W_oi| * input_limit_i + |bias_o| (max over channels),
               vs 2^(accumulator_bits-1) - 1 (docs/semantics.md); also each ModeBank product |b| * u_limit
weight-bits    largest |weight mantissa| (QDense, QModeBank b, QModeReadout c/d) vs 2^(weight_bits-1) - 1;
               and the node's declared weight_bits vs the target's
state-bits     declared state width (QModeBank out_bits, neuron state_bits) vs the target's state_bits
message-bits   declared width of a graded on-chip message vs graded_message_bits (1-bit targets: binary only)
decay          coefficient fractional bits vs decay_bits (error); a ModeBank pole with |a| >= 2^F (error);
               neuron decay of 0 or 2^F (warning: no leak / no memory)
threshold      neuron threshold vs the threshold mantissa range 2^(mant+shift) (warning)
fan-in         distinct inputs of one neuron (non-zero weights of its row; a readout channel: its own modes'
               c and its skip) vs the core's input axons: over it, the neuron's stored synapses are split into
               partial-sum compartments (mapping/partials.py, no finding); an error only when its soma still
               needs more input axons than the core has (direct inputs, or more partials than axons)
partial-sum    worst-case |partial sum| of one partial compartment, sum_(i in slice) |W_oi| * input_limit_i, vs
               the graded message payload 2^(message_bits-1) - 1 (a binary-spike target splits nothing)
fan-out        consumer nodes one neuron reaches vs the core's output axons (warning)
product        QMul operand widths a_bits + b_bits - 1 vs accumulator_bits (warning)
(accumulator)  QLayerNorm: its channel sum H * input_limit vs the accumulator (error); its sum of squares
               (times 1/H's multiplier) and d * r * w products, held by the node's program in 64 bits, vs 2^62
============== ================================================================================================

Host-side nodes (sequence-end nodes and what follows them: the mean pool and the readout) are exempt from the
chip's limits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry
from neurocompile.passes.common import Precision, limit

__all__ = ["Violation", "check_graph", "RULES", "errors"]

RULES = ("accumulator", "weight-bits", "state-bits", "message-bits", "decay", "threshold", "fan-in", "fan-out",
         "product", "partial-sum")


@dataclass(frozen=True)
class Violation:
    """One design-rule result: ``rule`` broken at ``node`` for ``resource``: ``used`` against ``limit``."""

    rule: str
    node: str
    resource: str
    used: float
    limit: float
    severity: str  # 'error' | 'warning'
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"[{self.severity}] {self.rule} at '{self.node}': {self.resource} {self.used:,.0f} > limit "
                f"{self.limit:,.0f}" + (f" ({self.message})" if self.message else ""))


def errors(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]


def _in_limit(g: Graph, name: str, port: str | None = None) -> int:
    total = 0
    for p in g.preds(name, port):
        q = g.node(p)
        bits = getattr(q, "out_bits", 24)
        total += 1 if 0 < bits <= 2 else limit(bits) if bits > 0 else limit(62)
    return total


_GENERIC = "no node-specific design rule (the message-width and connectivity rules apply to it)"
#: integer node class -> its own design rules ``(add, graph, precision, name, node) -> None`` (``add`` records a
#: violation); every node also gets the message-width and connectivity rules of :func:`check_graph`.
RULES_BY_NODE: Registry[Callable[..., None]] = Registry("design-rules", family="int", exempt={
    "QInput": "a host input: the host chooses its encoding (message-width rule only)",
    "QEmbedding": "a host-side table (the host sends its rows)",
    "QLUT": _GENERIC, "QTernarize": _GENERIC, "QAdd": _GENERIC, "QAccumulate": "host side (sequence end)",
    "QLavaLIF": "FIXME: Lava's LIF fixes its own widths (24-bit u, v; 12-bit decays); no rule checks them yet",
})


@RULES_BY_NODE.register(hw.QDense)
def _check_dense(add: Any, g: Graph, prec: Precision, name: str, n: hw.QDense) -> None:
    acc = prec.acc_limit
    worst = float((np.abs(n.weight) @ np.full(n.weight.shape[1], _in_limit(g, name), np.float64)
                   + np.abs(n.bias)).max(initial=0))
    if worst > acc:
        add("accumulator", name, "worst-case dendritic sum", worst, acc, "error",
            f"{prec.accumulator_bits}-bit accumulator; reduce the input width or the weights")
    _weights(add, name, {"weight": n.weight}, n.weight_bits, prec)


@RULES_BY_NODE.register(hw.QModeReadout)
def _check_readout(add: Any, g: Graph, prec: Precision, name: str, n: hw.QModeReadout) -> None:
    acc = prec.acc_limit
    lx, lu = _in_limit(g, name, "state"), _in_limit(g, name, "skip")
    worst = float(((np.abs(n.c_re) + np.abs(n.c_im)).sum(axis=1) * lx + np.abs(n.d) * lu).max(initial=0))
    if worst > acc:
        add("accumulator", name, "worst-case readout sum", worst, acc, "error",
            f"{prec.accumulator_bits}-bit accumulator")
    _weights(add, name, {"c_re": n.c_re, "c_im": n.c_im, "d": n.d}, n.weight_bits, prec)


@RULES_BY_NODE.register(hw.QModeBank)
def _check_modebank(add: Any, g: Graph, prec: Precision, name: str, n: hw.QModeBank) -> None:
    acc = prec.acc_limit
    worst = float(np.maximum(np.abs(n.b_re), np.abs(n.b_im)).max(initial=0)) * _in_limit(g, name)
    if worst > acc:
        add("accumulator", name, "input product |b| * u", worst, acc, "error")
    _weights(add, name, {"b_re": n.b_re, "b_im": n.b_im}, n.weight_bits, prec)
    one = 1 << n.coef_frac_bits
    mag2 = n.a_re.astype(np.float64) ** 2 + n.a_im.astype(np.float64) ** 2
    if mag2.size and mag2.max() >= one * one:
        add("decay", name, "|a| (pole magnitude, units of 2^-F)", float(np.sqrt(mag2.max())), one - 1,
            "error", "a pole on or outside the unit circle never decays")
    if n.out_bits > prec.state_bits:
        add("state-bits", name, "mode state width (bits)", n.out_bits, prec.state_bits, "error")
    if n.coef_frac_bits > prec.decay_bits:
        add("decay", name, "coefficient fractional bits", n.coef_frac_bits, prec.decay_bits, "error")


@RULES_BY_NODE.register(hw.QLayerNorm)
def _check_layernorm(add: Any, g: Graph, prec: Precision, name: str, n: hw.QLayerNorm) -> None:
    acc = prec.acc_limit
    lx = _in_limit(g, name)
    if n.size * lx > acc:
        add("accumulator", name, "worst-case channel sum", n.size * lx, acc, "error",
            f"{prec.accumulator_bits}-bit accumulator; reduce the LayerNorm's input width")
    d = 2 * lx  # |x - mean|
    wide = max(n.size * d * d * max(1, n.mean_mul), d * int(np.abs(n.rsqrt_table).max(initial=0))
               * int(np.abs(n.weight).max(initial=0)))
    if wide >= 1 << 62:
        add("accumulator", name, "sum of squares / normalised product (int64 program)", wide, (1 << 62) - 1,
            "error", "the LayerNorm's wide intermediates must stay exact in int64")
    _weights(add, name, {"weight": n.weight}, n.weight_bits, prec)


@RULES_BY_NODE.register(hw.QMul)
def _check_mul(add: Any, g: Graph, prec: Precision, name: str, n: hw.QMul) -> None:
    ba = sum(getattr(g.node(p), "out_bits", 0) for p in g.preds(name, "a"))
    bb = sum(getattr(g.node(p), "out_bits", 0) for p in g.preds(name, "b"))
    if ba + bb - 1 > prec.accumulator_bits:
        add("product", name, "product width a*b (bits)", ba + bb - 1, prec.accumulator_bits, "warning")


def _threshold(add: Any, prec: Precision, name: str, n: Any) -> None:
    if n.vth.size:
        tmax = (1 << (prec.threshold_mant_bits + prec.threshold_shift)) - 1
        if float(n.vth.max()) > tmax:
            add("threshold", name, "threshold (integer units)", float(n.vth.max()), tmax, "warning",
                "above the threshold mantissa range")


@RULES_BY_NODE.register(hw.QLIF, hw.QRefractory)
def _check_neuron(add: Any, g: Graph, prec: Precision, name: str, n: Any) -> None:
    if n.state_bits > prec.state_bits:
        add("state-bits", name, "membrane width (bits)", n.state_bits, prec.state_bits, "error")
    if n.coef_frac_bits > prec.decay_bits:
        add("decay", name, "decay fractional bits", n.coef_frac_bits, prec.decay_bits, "error")
    one = 1 << n.coef_frac_bits
    if n.decay >= one:
        add("decay", name, "membrane decay factor", n.decay, one - 1, "warning", "no leak")
    _threshold(add, prec, name, n)


@RULES_BY_NODE.register(hw.QHeaviside)
def _check_heaviside(add: Any, g: Graph, prec: Precision, name: str, n: hw.QHeaviside) -> None:
    _threshold(add, prec, name, n)


def check_graph(g: Graph, prec: Precision) -> list[Violation]:
    """Run every rule on the integer graph ``g``; returns all violations (empty: the graph fits the target)."""
    out: list[Violation] = []
    host = g.sequence_end_nodes() | {n for n in g.g.nodes if g.node(n).SEQUENCE_END}
    from neurocompile.mapping.partials import plan_partials
    from neurocompile.mapping.placement import COMPUTE, HOST, SYNAPSE, roles
    from neurocompile.passes.fit import neuron_fan_in, neuron_fan_out

    role = roles(g)  # a synapse-only dense's sum stays on its destination's core: it is not a message
    plan = plan_partials(g, prec.input_axons, prec.message_bits > 2, role)

    def add(rule: str, node: str, resource: str, used: float, lim: float, severity: str, msg: str = "") -> None:
        out.append(Violation(rule, node, resource, float(used), float(lim), severity, msg))

    for name in g.order():
        n = g.node(name)
        if n.FAMILY != "int" or name in host:
            continue
        # -- accumulator and weight widths, neurons: the node type's own rules
        rules = RULES_BY_NODE.get(n)
        if rules is not None:
            rules(add, g, prec, name, n)
        # -- messages
        sends = name in g.outputs or any(s not in host for s in g.succs(name))
        if 2 < n.out_bits and sends and n.out_bits > prec.message_bits and role.get(name) != SYNAPSE:
            if role.get(name) == HOST:  # host input: the host chooses its encoding; only spikes reach a 1-bit chip
                add("message-bits", name, "graded host input width (bits)", n.out_bits, prec.message_bits,
                    "warning", "the host must send this input as binary spikes")
            else:
                add("message-bits", name, "graded message width (bits)", n.out_bits, prec.message_bits, "error",
                    "the target carries binary spikes only" if prec.message_bits <= 2 else "")
        # -- connectivity, per neuron from the non-zero structure (passes/fit.py)
        if role[name] == COMPUTE:
            _fan_in_soma(add, g, role, plan, name, int(neuron_fan_in(g, role, name).max(initial=0)))
        elif isinstance(n, hw.QDense):
            _fan_in_rows(add, g, role, plan, name, n, prec.input_axons)
        if role[name] == COMPUTE:
            fan_out = int(neuron_fan_out(g, role, name, 1 << 62).max(initial=0))
            if fan_out > prec.output_axons:
                add("fan-out", name, "output axons of one neuron", fan_out, prec.output_axons, "warning")
    _partial_payload(add, g, plan, prec)
    return out


def _fan_in_soma(add: Any, g: Graph, role: dict[str, str], plan: Any, name: str, fan_in: int) -> None:
    """A COMPUTE node over the input axons: an error only for the units partial sums cannot bring within them."""
    over = [o for o in plan.over if o[0] == name]
    if fan_in <= plan.input_axons or not over:
        return
    soma = max(o[2] for o in over)
    if soma == fan_in:
        add("fan-in", name, "input axons of one neuron", fan_in, plan.input_axons, "error", over[0][4])
    else:
        add("fan-in", name, "input axons of one soma after partial sums", soma, plan.input_axons, "error",
            f"{len(over)} neuron(s) of fan-in up to {fan_in:,}: {over[0][4]}; reduce the inputs per neuron")


def _fan_in_rows(add: Any, g: Graph, role: dict[str, str], plan: Any, name: str, n: hw.QDense, lim: int) -> None:
    """A dense's rows over the input axons are fine when every compartment node it feeds splits them."""
    per_row = np.count_nonzero(n.weight, axis=1) * max(1, len(g.preds(name)))
    rows = set(np.flatnonzero(per_row > lim).tolist())
    if not rows:
        return
    from neurocompile.mapping.placement import SYNAPSE

    readers = [s for s in g.succs(name) if role[s] != "host"]
    if role[name] == SYNAPSE and readers and all(rows <= plan.split_rows(s, name) for s in readers):
        return
    why = next((o[4] for o in plan.over if o[0] in readers), "")
    add("fan-in", name, "input axons of one neuron", int(per_row.max()), lim, "error", why)


def _partial_payload(add: Any, g: Graph, plan: Any, prec: Precision) -> None:
    """Each partial compartment sends its exact sum as one graded message: it must fit the graded payload."""
    for s in plan.splits:
        w = np.abs(s.weights(np.asarray(g.node(s.dense).weight, np.int64)))
        worst = float(w.sum(axis=1).max(initial=0)) * _in_limit(g, s.dense)
        if worst > limit(prec.message_bits):
            add("partial-sum", s.soma, "worst-case partial sum (graded payload)", worst, limit(prec.message_bits),
                "error", f"{prec.message_bits}-bit graded messages carry the partial sums through '{s.dense}'; "
                         f"narrow its input width or weights")


def _weights(add: Any, name: str, arrays: dict[str, np.ndarray], bits: int, prec: Precision) -> None:
    if bits > prec.weight_bits:
        add("weight-bits", name, "declared weight width (bits)", bits, prec.weight_bits, "error")
    for field, a in arrays.items():
        peak = int(np.abs(a).max(initial=0))
        if peak > prec.wmax:
            add("weight-bits", name, f"|{field}| mantissa", peak, prec.wmax, "error")
