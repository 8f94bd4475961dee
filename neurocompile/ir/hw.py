"""Integer (hardware-level) IR nodes: what the quantiser produces, the simulator runs and the Lava backend emits.

All arrays are int64 in memory (their declared bit widths are checked by the verifier and the design-rule
checks). The arithmetic of every node is defined once, in docs/semantics.md, and implemented by
:mod:`neurocompile.sim.kernels`; the helpers named below are in :mod:`neurocompile.sim.fixed`:

- ``rsh_trunc(x, s)``: sign(x) * (|x| >> s), rounding toward zero (decays, rotations; as Lava's LIF and RF).
- ``rsh_round(x, s)``: floor((x + 2^(s-1)) / 2^s), round half up; s <= 0 shifts left (rescaling sums).
- ``sat(x, bits)``: clip to [-(2^(bits-1) - 1), 2^(bits-1) - 1] (symmetric, as Lava's voltage saturation).

Every node carries ``out_scale``: the real value of one integer unit of its output (for dequantisation,
reports and comparisons with the float graph; never used by the integer arithmetic), and ``out_bits``:
the signed width of its output messages (1 for binary spikes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from neurocompile.ir.nodes import Node, _dim
from neurocompile.ir.traits import SPIKE_BINARY, SPIKE_TERNARY, StateVar, arr, attr, bits


def _i(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.int64)


@dataclass
class QNode(Node):
    """Base of integer nodes."""

    FAMILY: ClassVar[str] = "int"
    #: its messages are the changes of its output (a delta encoder): the counters count, per output value, the
    #: steps where it changed, not the steps where it was non-zero
    SENDS_CHANGES: ClassVar[bool] = False
    #: runs in its producer's compartments, as their output stage (a delta encoder): no compartments, updates or
    #: received messages of its own, and the producer's messages are the ones this node sends
    OUTPUT_STAGE: ClassVar[bool] = False
    #: an insertable node: the export option that inserts it (``--insert NAME=VALUE``) and the edges it goes on,
    #: as (producer class name, consumer class name); built by the class method ``inserted(producer, value)``
    INSERT_OPTION: ClassVar[str] = ""
    INSERT_EDGES: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: registry name -> why this node type deliberately has no entry there (read by the coverage test)
    REGISTRY_EXEMPT: ClassVar[dict[str, str]] = {}
    out_scale: float = 1.0  # real value per integer unit of the output
    out_bits: int = bits(24)  # signed output width (bits); 1 = binary spikes {0, 1}

    @property
    def spiking(self) -> bool:
        """True when the output messages are spikes: binary or ternary values (1 <= out_bits <= 2; a spiking
        neuron's ``SPIKES`` kind, or a spike input); token ids and host-side logits (out_bits 0) are not."""
        if getattr(self, "tokens", False):
            return False
        return 1 <= int(self.out_bits) <= 2


@dataclass
class QInput(QNode):
    """Quantised input. :math:`x^{int}_t = \\mathrm{sat}(\\mathrm{round}(x_t / s), b)` with s = out_scale.

    For token inputs (``tokens``) the ids pass through unchanged. Rounding is half away from zero
    (numpy ``rint`` is half-to-even: the spec uses floor(|x|/s + 1/2) * sign(x)).
    """

    PORTS: ClassVar[tuple[str, ...]] = ()
    IS_INPUT: ClassVar[bool] = True
    size: int = 1
    tokens: bool = False
    vocab: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class QEmbedding(QNode):
    """Integer embedding table. :math:`y_t = E[x_t]`, E is [vocab, H] integers of ``out_bits``."""

    table: np.ndarray = arr(lambda: _i(0, 0), dims=("V", "H"), anchor=True, fits="out_bits")  # [vocab, H]

    def out_size(self) -> int:
        return int(self.table.shape[1])

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": 1}


@dataclass
class QDense(QNode):
    """Dense synapses with per-output-channel shift (Loihi: 8-bit mantissa with a shared exponent).

    .. math:: acc_o = \\sum_i W_{oi} x_i + b_o, \\qquad y_o = \\mathrm{sat}(\\mathrm{rsh\\_round}(acc_o, k_o), b_{out})

    where W has ``weight_bits`` signed bits, k = ``shift`` [out] (k < 0 shifts left), acc is exact
    (int64; the design rules check it fits the target accumulator), ``out_bits = 0`` means no saturation
    (host-side readout producing logits). ``rounding`` 'floor' replaces rsh_round by an arithmetic shift
    (Lava's Dense). ``delay`` is the synaptic delay in steps (Lava's Dense: 1).
    """

    SATURATES: ClassVar[bool] = True
    weight: np.ndarray = arr(lambda: _i(0, 0), dims=("O", "I"), anchor=True, fits="weight_bits")  # [out, in]
    bias: np.ndarray = arr(lambda: _i(0), dims=("O",))  # [out], in accumulator units
    shift: np.ndarray = arr(lambda: _i(0), dims=("O",))  # [out], bits
    weight_bits: int = bits(8)
    rounding: str = attr("nearest", choices=("nearest", "floor"))  # 'nearest' (rsh_round) | 'floor'
    delay: int = 0  # steps

    def out_size(self) -> int:
        return int(self.weight.shape[0])

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": _dim(self.weight, 1)}

    def state_vars(self) -> tuple[StateVar, ...]:
        # the synaptic delay line: ``delay`` copies of the output, stored even for host-side widths
        return (StateVar("pipe", "out_bits", count="delay", min_width=1),) if self.delay > 0 else ()


@dataclass
class QModeBank(QNode):
    """SSM modes as compartment pairs (re, im), per channel h and mode m.

    .. math::
        in^{re} = \\mathrm{rsh\\_round}(b^{re} u_h, k_b),\\quad in^{im} = \\mathrm{rsh\\_round}(b^{im} u_h, k_b) \\\\
        re_t = \\mathrm{sat}(\\mathrm{rsh\\_trunc}(a^{re} re_{t-1} - a^{im} im_{t-1}, F) + in^{re}, b_s) \\\\
        im_t = \\mathrm{sat}(\\mathrm{rsh\\_trunc}(a^{im} re_{t-1} + a^{re} im_{t-1}, F) + in^{im}, b_s)

    where a has F = ``coef_frac_bits`` fractional bits (Loihi: 12-bit decays), b has ``weight_bits``,
    k_b = ``b_shift`` [H], b_s = ``out_bits`` is the state width. Both products use the previous state.
    Output: the new state, flattened ``(h * M + m) * 2 + {0: re, 1: im}``.
    """

    SATURATES: ClassVar[bool] = True
    STATEFUL: ClassVar[bool] = True
    STATE: ClassVar[tuple[StateVar, ...]] = (StateVar("re", "out_bits", like="a_re"),
                                             StateVar("im", "out_bits", like="a_re"))
    STATE_OPS_PER_UNIT: ClassVar[int] = 2  # the 2x2 rotation: 4 products per (re, im) pair
    OUTPUT_IS_STATE: ClassVar[bool] = True
    a_re: np.ndarray = arr(lambda: _i(0, 0), dims=("H", "M"), anchor=True, unit="coef_frac_bits")  # [H, M], F frac
    a_im: np.ndarray = arr(lambda: _i(0, 0), dims=("H", "M"), unit="coef_frac_bits")  # [H, M], F fractional bits
    b_re: np.ndarray = arr(lambda: _i(0, 0), dims=("H", "M"), fits="weight_bits")  # [H, M]
    b_im: np.ndarray = arr(lambda: _i(0, 0), dims=("H", "M"), fits="weight_bits")  # [H, M]
    b_shift: np.ndarray = arr(lambda: _i(0), dims=("H",))  # [H], bits
    coef_frac_bits: int = bits(12)
    weight_bits: int = bits(8)

    def out_size(self) -> int:
        return int(self.a_re.size * 2)

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": _dim(self.a_re, 0)}


@dataclass
class QModeReadout(QNode):
    """SSM readout plus D skip, one output per channel (a block-diagonal dense connection).

    .. math:: y_h = \\mathrm{sat}(\\mathrm{rsh\\_round}(\\sum_m (c^{re}_{hm} re_{hm} + c^{im}_{hm} im_{hm}) + d_h u_h, k_h), b_{out})

    where c^re = q(2 C^re), c^im = q(-2 C^im), d = q(D) share the per-channel shift k_h = ``shift``.
    Ports: ``state`` (QModeBank output) and ``skip`` (u, the ModeBank's input).
    """

    SATURATES: ClassVar[bool] = True
    PORTS: ClassVar[tuple[str, ...]] = ("state", "skip")
    c_re: np.ndarray = arr(lambda: _i(0, 0), dims=("H", "M"), anchor=True, fits="weight_bits")  # [H, M]
    c_im: np.ndarray = arr(lambda: _i(0, 0), dims=("H", "M"), fits="weight_bits")  # [H, M]
    d: np.ndarray = arr(lambda: _i(0), dims=("H",), fits="weight_bits")  # [H]
    shift: np.ndarray = arr(lambda: _i(0), dims=("H",))  # [H], bits
    weight_bits: int = bits(8)

    def out_size(self) -> int:
        return int(self.d.shape[0])

    def port_sizes(self) -> dict[str, int | None]:
        return {"state": int(self.c_re.size) * 2, "skip": self.out_size()}


@dataclass
class QLIF(QNode):
    """Integer LIF (SpikingSSM; no current stage), per channel.

    .. math::
        v'_t = \\mathrm{sat}(\\mathrm{rsh\\_trunc}(\\delta\\, v_{t-1}, F) + x_t, b_s),\\quad
        s_t = [v'_t \\ge \\theta]\\ (\\text{or} >),\\quad v_t = s_t ? (0 \\text{ or } v'_t - \\theta) : v'_t

    where delta = ``decay`` with F = ``coef_frac_bits`` fractional bits (tau = 0.125 -> 512 of 4096),
    theta = ``vth`` [H] in input units, b_s = ``state_bits``. Output: spikes {0, 1} (out_bits 1).
    """

    STATEFUL: ClassVar[bool] = True
    STATE: ClassVar[tuple[StateVar, ...]] = (StateVar("v", "state_bits"),)
    SPIKES: ClassVar[str] = SPIKE_BINARY
    decay: int = attr(512, unit="coef_frac_bits")
    vth: np.ndarray = arr(lambda: _i(0), dims=("H",), anchor=True, fits="state_bits")  # [H]
    coef_frac_bits: int = bits(12)
    state_bits: int = bits(24)
    reset: str = attr("zero", choices=("zero", "subtract", "none"))  # none: v_t = v'_t (NIR imports without reset)
    compare: str = attr(">=", choices=(">=", ">"))
    out_bits: int = bits(1)

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class QHeaviside(QNode):
    """Stateless integer spike. :math:`s_t = [x_t > \\theta]` (or >=), theta = ``vth`` [H]."""

    SPIKES: ClassVar[str] = SPIKE_BINARY
    vth: np.ndarray = arr(lambda: _i(0), dims=("H",), anchor=True)  # [H]
    compare: str = attr(">", choices=(">", ">="))
    out_bits: int = bits(1)

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class QRefractory(QNode):
    """Integer SPikE-SSM reset-refractory neuron, per channel.

    .. math::
        v_t = \\mathrm{sat}(\\mathrm{rsh\\_trunc}(\\delta v_{t-1}, F) + x_t - \\theta s_{t-1}
              - \\mathrm{rsh\\_round}(\\rho\\, r_{t-1}, R), b_s) \\\\
        s_t = [v_t \\ge \\theta], \\qquad r_t = \\mathrm{sat}(\\mathrm{rsh\\_trunc}(\\lambda r_{t-1}, F) + s_t 2^R, b_s)

    where delta = ``decay`` and lambda = ``lam`` have F fractional bits, theta = ``vth`` [H] and
    rho = ``rho`` [H] are in input units, r has R = ``trace_frac_bits`` fractional bits.
    """

    STATEFUL: ClassVar[bool] = True
    STATE: ClassVar[tuple[StateVar, ...]] = (StateVar("v", "state_bits"), StateVar("s", 1),
                                             StateVar("r", "state_bits"))
    SPIKES: ClassVar[str] = SPIKE_BINARY
    decay: int = attr(512, unit="coef_frac_bits")
    lam: int = attr(2048, unit="coef_frac_bits")
    vth: np.ndarray = arr(lambda: _i(0), dims=("H",), anchor=True, fits="state_bits")  # [H]
    rho: np.ndarray = arr(lambda: _i(0), dims=("H",), fits="state_bits")  # [H]
    coef_frac_bits: int = bits(12)
    trace_frac_bits: int = bits(8)
    state_bits: int = bits(24)
    out_bits: int = bits(1)

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class QLUT(QNode):
    """Elementwise look-up table (sigmoid, GELU, ...).

    .. math:: y = T[\\mathrm{clip}(\\mathrm{rsh\\_round}(x, k) + o, 0, |T| - 1)]

    where T = ``table`` (integers of ``out_bits``), k = ``in_shift``, o = ``offset`` (index of x = 0).
    ``fn`` names the function it tabulates (for reports and error measurement).
    """

    LOOKUPS_PER_STEP: ClassVar[int | str] = "out"
    table: np.ndarray = arr(lambda: _i(0), dims=("N",), anchor=True, fits="out_bits")
    in_shift: int = 0
    offset: int = 0
    fn: str = ""
    size: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class QMul(QNode):
    """Elementwise product. :math:`y = \\mathrm{sat}(\\mathrm{rsh\\_round}(a \\cdot b, k), b_{out})`, k = ``shift``."""

    SATURATES: ClassVar[bool] = True
    PORTS: ClassVar[tuple[str, ...]] = ("a", "b")
    shift: int = 0
    size: int = 0

    def out_size(self) -> int:
        return self.size

    def port_sizes(self) -> dict[str, int | None]:
        return {"a": self.size, "b": self.size}


@dataclass
class QTernarize(QNode):
    """Per-step integer ternarisation (GSU).

    .. math:: t_i = \\mathrm{sign}(x_i)\\,[\\,|x_i| \\cdot q \\ge p \\cdot \\max_j |x_j|\\,],\\ \\max_j|x_j| > 0

    where p/q = ``num``/``den`` is the threshold fraction (0.15 = 3/20). Output in {-1, 0, 1} (out_bits 2).
    """

    SPIKES: ClassVar[str] = SPIKE_TERNARY
    num: int = 3
    den: int = attr(20, range=(1, None))
    size: int = 0
    out_bits: int = bits(2)

    def out_size(self) -> int:
        return self.size


@dataclass
class QAdd(QNode):
    """Saturating sum of all inputs. :math:`y = \\mathrm{sat}(\\sum_i x_i, b_{out})`."""

    SATURATES: ClassVar[bool] = True
    SUMS_INPUTS: ClassVar[bool] = True
    size: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class QAccumulate(QNode):
    """Sequence sum (the integer mean pool; 1/T is folded into the next readout's scale).

    .. math:: acc_t = acc_{t-1} + x_t, \\qquad y = acc_T \\text{ at the sequence end}

    ``out_bits`` is the accumulator width (saturating).
    """

    SATURATES: ClassVar[bool] = True
    STATEFUL: ClassVar[bool] = True
    SEQUENCE_END: ClassVar[bool] = True
    STATE: ClassVar[tuple[StateVar, ...]] = (StateVar("acc", "out_bits"),)
    size: int = 0
    out_bits: int = bits(32)

    def out_size(self) -> int:
        return self.size


@dataclass
class QLavaLIF(QNode):
    """Lava's own fixed-point LIF (``PyLifModelBitAcc``, lava-nc 0.10.0): a current stage u and a voltage v.

    .. math::
        u'_t = \\mathrm{rsh\\_trunc}(u_{t-1} (2^F - d_u - 1), F) + x_t 2^{a},\\quad
        u_t = \\mathrm{wrap}(u'_t) \\\\
        v'_t = \\mathrm{sat}(\\mathrm{rsh\\_trunc}(v_{t-1} (2^F - d_v), F) + u_t + \\beta, b_s),\\quad
        s_t = [v'_t > \\theta 2^{c}],\\quad v_t = s_t ? 0 : v'_t

    where d_u = ``du`` and d_v = ``dv`` are 12-bit decays (F = ``coef_frac_bits``; du = 4095 keeps only this
    step's input, dv = 0 never leaks), a = ``act_shift`` and c = ``vth_shift`` are Loihi's MSB alignments (6),
    theta = ``vth`` [H] the threshold mantissa, beta = ``bias_mant`` shifted by ``bias_exp`` (left if >= 0,
    arithmetic right otherwise), b_s = ``state_bits``; wrap(u) subtracts 2^b_s when u > 2^(b_s-1) and adds it
    when u <= -2^(b_s-1) (one correction, as Lava: u wraps, v saturates). Input x is the synaptic sum of a
    ``QDense`` with ``delay`` 1 and ``rounding`` 'floor' (Lava's Dense). Output: spikes {0, 1}.
    """

    STATEFUL: ClassVar[bool] = True
    STATE: ClassVar[tuple[StateVar, ...]] = (StateVar("u", "state_bits"), StateVar("v", "state_bits"))
    SPIKES: ClassVar[str] = SPIKE_BINARY
    du: int = attr(0, unit="coef_frac_bits")  # 12-bit current decay (Lava du)
    dv: int = attr(0, unit="coef_frac_bits")  # 12-bit voltage decay (Lava dv)
    vth: np.ndarray = arr(lambda: _i(0), dims=("H",), anchor=True, fits="state_bits")  # [H], mantissa (<< vth_shift)
    bias_mant: np.ndarray = arr(lambda: _i(0), dims=("H",), fits=13)  # [H], 13-bit signed mantissa
    bias_exp: np.ndarray = arr(lambda: _i(0), dims=("H",))  # [H], bits
    coef_frac_bits: int = bits(12)
    state_bits: int = bits(24)  # width of u and v
    act_shift: int = 6  # synaptic input MSB alignment (bits)
    vth_shift: int = 6  # threshold MSB alignment (bits)
    out_bits: int = bits(1)

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class QLayerNorm(QNode):
    """Integer LayerNorm over the H channels of one step (one sample), with a look-up-table 1/sqrt.

    .. math::
        \\mu = \\mathrm{rsh\\_round}(m \textstyle\\sum_i x_i, k_m),\\quad d_i = x_i - \\mu,\\quad
        V = \\max(\\mathrm{rsh\\_round}(m \textstyle\\sum_i d_i^2, k_m + k_v) + \\epsilon, 1) \\
        j = \\min\\{j \\ge 0 : V < 2^{L + 2j}\\},\\quad r = T[\\mathrm{rsh\\_round}(V, 2j)],\\quad
        y_i = \\mathrm{sat}(\\mathrm{rsh\\_round}(d_i\\, r\\, w_i, k_i + j) + b_i, b_{out})

    where m / 2^k_m = ``mean_mul`` / 2^``mean_shift`` ~ 1/H (exactly 1/H when H is a power of two),
    k_v = ``var_shift``, epsilon = ``eps`` (in units of V), L = ``index_bits``, T = ``rsqrt_table``
    (2^L + 1 entries, T[i] = round(2^R / sqrt(i)), R = ``rsqrt_frac_bits``; T[0] is never read),
    w = ``weight`` [H] (gain mantissas of ``weight_bits``), k = ``shift`` [H] (includes R), b = ``bias`` [H]
    in output units. The index is floating-point-like: V = idx * 4^j, so 1/sqrt(V) = T[idx] / 2^(R + j) keeps
    L - 2 bits of relative precision over the whole range of V; the 2^-j is folded into the output shift.
    """

    SATURATES: ClassVar[bool] = True
    LOOKUPS_PER_STEP: ClassVar[int | str] = 1  # one 1/sqrt per step
    size: int = 0
    mean_mul: int = attr(1, range=(1, 1 << 40))
    mean_shift: int = attr(0, range=(0, 62))
    var_shift: int = attr(0, range=(0, 62))
    eps: int = attr(0, range=(0, 1 << 62))
    index_bits: int = attr(10, range=(1, 24))
    rsqrt_frac_bits: int = attr(16, range=(0, 40))
    rsqrt_table: np.ndarray = arr(lambda: _i(0))  # [2^index_bits + 1]
    weight: np.ndarray = arr(lambda: _i(0), dims=("size",), fits="weight_bits")  # [H], weight_bits
    bias: np.ndarray = arr(lambda: _i(0), dims=("size",), fits="out_bits")  # [H], output units
    shift: np.ndarray = arr(lambda: _i(0), dims=("size",), range=(-62, 62))  # [H], bits
    weight_bits: int = bits(8)

    def out_size(self) -> int:
        return self.size

    def check_fields(self) -> list[tuple[str, str]]:
        """The table has 2^index_bits + 1 entries in [0, 2^rsqrt_frac_bits]."""
        msgs: list[tuple[str, str]] = []
        t, r = self.rsqrt_table, self.rsqrt_frac_bits
        if isinstance(self.index_bits, int) and 1 <= self.index_bits <= 24 and t.shape != ((1 << self.index_bits) + 1,):
            msgs.append(("shape", f"rsqrt_table has shape {list(t.shape)}, expected [{(1 << self.index_bits) + 1}]"))
        if t.size and t.dtype == np.int64 and isinstance(r, int) and 0 <= r <= 40:
            if int(t.min()) < 0 or int(t.max()) > (1 << r):
                msgs.append(("range", f"rsqrt_table entries must be in [0, 2^rsqrt_frac_bits = {1 << r}]"))
        return msgs


@dataclass
class QSigmaDelta(QNode):
    """Sigma-delta messaging (Loihi 2's graded spikes; Lava's ``Delta`` encoder without cumulative error, and the
    ``Sigma`` decoder of its receivers): a graded value is sent only when it changed by at least ``theta``.

    .. math::
        d_t = x_t - \\hat x_{t-1},\\qquad s_t = [\\,|d_t| \\ge \\theta\\,]\\; d_t,\\qquad \\hat x_t = \\hat x_{t-1} + s_t

    with :math:`\\hat x_{-1} = 0` and theta = ``theta`` >= 0 in input units. The messages are s_t (non-zero only
    where the value changed: ``SENDS_CHANGES``); the output in the IR is :math:`\\hat x_t`, the value every receiver
    holds after adding the messages (its sigma), so a consumer's semantics are unchanged: a linear synapse's sum of
    weighted messages is exactly :math:`W \\hat x_t` in integers. theta = 0 gives :math:`\\hat x_t = x_t` (lossless,
    fewer messages when values repeat); theta > 0 trades accuracy for messages (|x_t - \\hat x_t| < theta).
    ``out_bits`` is the producer's width (:math:`\\hat x_t` is one of its past outputs). Inserted by
    ``export --insert sigma-delta=THETA`` between each S4D state (QModeBank) and its readout.
    """

    STATEFUL: ClassVar[bool] = True
    STATE: ClassVar[tuple[StateVar, ...]] = (StateVar("xhat", "out_bits"),)
    SENDS_CHANGES: ClassVar[bool] = True
    OUTPUT_STAGE: ClassVar[bool] = True  # Loihi 2: the producer's neuron program sends the deltas
    INSERT_OPTION: ClassVar[str] = "sigma-delta"
    INSERT_EDGES: ClassVar[tuple[tuple[str, str], ...]] = (("QModeBank", "QModeReadout"),)
    REGISTRY_EXEMPT: ClassVar[dict[str, str]] = {
        "design-rules": "sends its input's past values: the message-width and connectivity rules cover it",
        "compiled-kernel": "no compiled kernel yet: a graph holding it runs on the NumPy engine (compiled.supports)"}
    theta: int = attr(0, range=(0, 1 << 40))
    size: int = 0

    def out_size(self) -> int:
        return self.size

    @classmethod
    def inserted(cls, producer: QNode, value: int) -> QSigmaDelta:
        """The encoder of ``producer``'s output with threshold ``value`` (input units)."""
        return cls(theta=int(value), size=int(producer.out_size()), out_bits=int(producer.out_bits),
                   out_scale=float(producer.out_scale))


INT_NODES: dict[str, type[Node]] = {
    cls.__name__: cls
    for cls in (
        QInput, QEmbedding, QDense, QModeBank, QModeReadout, QLIF, QHeaviside, QRefractory, QLUT, QMul,
        QTernarize, QAdd, QAccumulate, QLavaLIF, QLayerNorm, QSigmaDelta,
    )
}
