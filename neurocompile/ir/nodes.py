"""Float-level IR nodes: what the frontend produces and the float interpreter runs.

Every node is a dataclass. Arrays are NumPy (float32 for weights, complex64 for SSM parameters). A node's
per-step input is the sum of the messages on its in-edges of each port; ports are named in ``PORTS``.
Vectors are per time step and per sample: the graph is evaluated once per step, in topological order,
with zero delay along edges unless the edge carries a ``delay`` (see docs/semantics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from neurocompile.ir.traits import SPIKE_BINARY, SPIKE_NONE, SPIKE_TERNARY, StateVar, arr, attr


@dataclass
class Node:
    """Base class. Subclasses set ``PORTS`` (input port names) and implement ``out_size``; their traits
    (:mod:`neurocompile.ir.traits`) are ``STATE``, ``SPIKES``, field metadata and :meth:`port_sizes`."""

    PORTS: ClassVar[tuple[str, ...]] = ("in",)
    STATEFUL: ClassVar[bool] = False
    #: ``True`` for nodes that emit one value at the end of a sequence (readouts), not every step.
    SEQUENCE_END: ClassVar[bool] = False
    #: State variables (integer nodes: what the kernel keeps between steps).
    STATE: ClassVar[tuple[StateVar, ...]] = ()
    #: How the output is a spike: 'none' (graded), 'binary' ({0, 1}) or 'ternary' ({-1, 0, 1}).
    SPIKES: ClassVar[str] = SPIKE_NONE
    #: 'float' (what the frontend produces) or 'int' (hardware nodes, :mod:`neurocompile.ir.hw`).
    FAMILY: ClassVar[str] = "float"
    #: ``True`` for graph inputs (the nodes listed in ``graph.inputs``; they take no edges).
    IS_INPUT: ClassVar[bool] = False
    #: Counters: table look-ups per step ('out': one per output unit) and state-update operations per output unit.
    LOOKUPS_PER_STEP: ClassVar[int | str] = 0
    STATE_OPS_PER_UNIT: ClassVar[int] = 0
    #: ``True`` when the output is the node's new state, its ``STATE`` variables interleaved on the last axis.
    OUTPUT_IS_STATE: ClassVar[bool] = False
    #: ``True`` when the output ends with ``sat(., out_bits)`` (integer nodes: |output| <= limit(out_bits) when
    #: out_bits > 0; the simulator's exactness bounds rely on it).
    SATURATES: ClassVar[bool] = False
    #: ``True`` when the output is the sum of the inputs (a residual add: inputs and output share one scale).
    SUMS_INPUTS: ClassVar[bool] = False

    @property
    def op(self) -> str:
        return type(self).__name__

    def out_size(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def port_sizes(self) -> dict[str, int | None]:
        """The input size each port expects (None: not determined by the node's own fields)."""
        return {p: self.out_size() for p in self.PORTS}

    def state_vars(self) -> tuple[StateVar, ...]:
        """This node's state variables (``STATE``; a node whose state depends on a field overrides this)."""
        return self.STATE

    def must_lower(self) -> bool:
        """True for a float node the lowering passes (fold, discretize, lower) replace before quantisation."""
        return False

    def check_fields(self) -> list[tuple[str, str]]:
        """(rule, message) for invariants that field metadata cannot state (none by default)."""
        return []

    def params(self) -> dict[str, np.ndarray]:
        """The node's array fields (weights, tables), by field name."""
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}

    def attrs(self) -> dict[str, object]:
        """The node's scalar and string fields, by field name."""
        return {k: v for k, v in vars(self).items() if not isinstance(v, np.ndarray)}

    def param_count(self) -> int:
        return int(sum(v.size for v in self.params().values()))


@dataclass
class Input(Node):
    """Sequence input, one vector per time step.

    .. math:: x_t \\in \\mathbb{R}^{size}\\ (\\text{or token ids when ``tokens``})

    where ``size`` is the feature count per step (tokens: 1 id per step, ``vocab`` ids).
    """

    PORTS: ClassVar[tuple[str, ...]] = ()
    IS_INPUT: ClassVar[bool] = True
    size: int = 1  # features per step
    tokens: bool = False  # True: integer token ids in [0, vocab)
    vocab: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class Embedding(Node):
    """Token embedding. :math:`y_t = E[x_t]`, E of shape [vocab, H]."""

    weight: np.ndarray = arr(lambda: np.zeros((0, 0), np.float32), dims=("V", "H"), anchor=True)  # [vocab, H]

    def out_size(self) -> int:
        return int(self.weight.shape[1])

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": 1}


@dataclass
class Affine(Node):
    """Dense synapses (Linear, Conv1d with kernel 1). :math:`y_t = W x_t + b`.

    where W is [out, in] and b is [out] (zeros when the module had no bias).
    """

    weight: np.ndarray = arr(lambda: np.zeros((0, 0), np.float32), dims=("O", "I"), anchor=True)  # [out, in]
    bias: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("O",))  # [out]

    def out_size(self) -> int:
        return int(self.weight.shape[0])

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": _dim(self.weight, 1)}


@dataclass
class S4D(Node):
    """Continuous diagonal SSM, per channel h and complex mode n (N/2 modes stored).

    .. math::
        A_{hn} = A^{re}_{hn} + i A^{im}_{hn},\\quad \\Delta_h = e^{\\log\\Delta_h} \\\\
        \\bar A = e^{\\Delta A},\\quad \\bar B = (e^{\\Delta A} - 1) / A \\cdot B \\quad (\\text{ZOH}) \\\\
        h_t = \\bar A h_{t-1} + \\bar B u_t,\\quad y_t = 2\\,\\mathrm{Re}(C h_t) + D u_t

    where u, y are [H]; A_re < 0 (stable); ``C2`` is the reverse-direction C of a bidirectional layer
    (empty when unidirectional): the reverse half runs over the time-reversed sequence shifted one step.
    """

    STATEFUL: ClassVar[bool] = True
    log_dt: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",))  # [H], log seconds-free step
    A_re: np.ndarray = arr(lambda: np.zeros((0, 0), np.float32), dims=("H", "M"), anchor=True)  # [H, M], negative
    A_im: np.ndarray = arr(lambda: np.zeros((0, 0), np.float32), dims=("H", "M"))  # [H, M]
    B: np.ndarray = arr(lambda: np.zeros((0, 0), np.complex64), dims=("H", "M"))  # [H, M]
    C: np.ndarray = arr(lambda: np.zeros((0, 0), np.complex64), dims=("H", "M"))  # [H, M]
    D: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",))  # [H]
    C2: np.ndarray = arr(lambda: np.zeros((0, 0), np.complex64), dims=("H", "M"), optional=True)  # [H, M] or empty

    @property
    def bidirectional(self) -> bool:
        return self.C2.size > 0

    def must_lower(self) -> bool:
        return True  # discretize: a ModeBank and a ModeReadout

    def out_size(self) -> int:
        return int(self.D.shape[0])

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": self.out_size()}


@dataclass
class ModeBank(Node):
    """Discretised SSM modes: pairs of compartments (re, im) with a 2x2 decay-rotation update.

    .. math::
        \\begin{pmatrix} re_t \\\\ im_t \\end{pmatrix} =
        \\begin{pmatrix} a^{re} & -a^{im} \\\\ a^{im} & a^{re} \\end{pmatrix}
        \\begin{pmatrix} re_{t-1} \\\\ im_{t-1} \\end{pmatrix} + \\begin{pmatrix} b^{re} \\\\ b^{im} \\end{pmatrix} u_{h,t}

    where a = exp(dt*A) and b = dB for channel h, mode m. The output is the new state, flattened as
    index ``(h * M + m) * 2 + {0: re, 1: im}`` (size H*M*2).
    """

    STATEFUL: ClassVar[bool] = True
    dA: np.ndarray = arr(lambda: np.zeros((0, 0), np.complex64), dims=("H", "M"), anchor=True)  # [H, M]
    dB: np.ndarray = arr(lambda: np.zeros((0, 0), np.complex64), dims=("H", "M"))  # [H, M]

    def out_size(self) -> int:
        return int(self.dA.size * 2)

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": _dim(self.dA, 0)}


@dataclass
class ModeReadout(Node):
    """SSM readout of a ModeBank plus the D skip connection.

    .. math:: y_{h,t} = \\sum_m 2\\,\\mathrm{Re}(C_{hm} h_{hm,t}) + D_h u_{h,t}
              = \\sum_m (2C^{re}_{hm} re_{hm,t} - 2C^{im}_{hm} im_{hm,t}) + D_h u_{h,t}

    Ports: ``state`` (from the ModeBank, size H*M*2) and ``skip`` (u, size H).
    """

    PORTS: ClassVar[tuple[str, ...]] = ("state", "skip")
    C: np.ndarray = arr(lambda: np.zeros((0, 0), np.complex64), dims=("H", "M"), anchor=True)  # [H, M]
    D: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",))  # [H]

    def out_size(self) -> int:
        return int(self.D.shape[0])

    def port_sizes(self) -> dict[str, int | None]:
        return {"state": int(self.C.size) * 2, "skip": self.out_size()}


@dataclass
class LIF(Node):
    """SpikingSSM leaky integrate-and-fire neuron (no current stage), per channel.

    .. math::
        v'_t = \\tau v_{t-1} + x_t,\\quad s_t = [v'_t \\ge V_{th}],\\quad
        v_t = v'_t (1 - s_t)\\ (\\text{reset 'zero'}) \\ \\text{or}\\ v'_t - s_t V_{th}\\ (\\text{'subtract'})

    where tau is a decay factor in [0, 1) (SpikingSSM: 0.125), V_th is [H] (positive);
    ``compare`` is '>=' (SpikingSSM) or '>' (Lava's LIF).
    """

    STATEFUL: ClassVar[bool] = True
    SPIKES: ClassVar[str] = SPIKE_BINARY
    tau: float = 0.125  # decay factor per step
    vth: np.ndarray = arr(lambda: np.ones((0,), np.float32), dims=("H",), anchor=True, input_units=True)  # [H]
    reset: str = attr("zero", choices=("zero", "subtract"))
    compare: str = attr(">=", choices=(">=", ">"))

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class Heaviside(Node):
    """Stateless spike (Binary S4D). :math:`s_t = [x_t > V_{th}]` with V_th = 0 by default, per channel."""

    SPIKES: ClassVar[str] = SPIKE_BINARY
    vth: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",), anchor=True, input_units=True)  # [H]
    compare: str = attr(">", choices=(">", ">="))

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class RefractoryLIF(Node):
    """SPikE-SSM reset-refractory neuron (reading fixed in docs/semantics.md), per channel c.

    .. math::
        v_t = \\tau v_{t-1} + x_t - V_{th,c} s_{t-1} - \\rho_c r_{t-1},\\quad
        s_t = [v_t \\ge V_{th,c}],\\quad r_t = \\lambda r_{t-1} + s_t

    where tau and lambda are decay factors in [0, 1), rho >= 0 is the refractory magnitude.
    """

    STATEFUL: ClassVar[bool] = True
    SPIKES: ClassVar[str] = SPIKE_BINARY
    tau: float = 0.125
    lam: float = 0.5
    vth: np.ndarray = arr(lambda: np.ones((0,), np.float32), dims=("H",), anchor=True, input_units=True)  # [H]
    rho: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",), input_units=True)  # [H]

    def out_size(self) -> int:
        return int(self.vth.shape[0])


@dataclass
class GLU(Node):
    """Gated linear unit over a 2H input. :math:`y = a \\cdot \\sigma(b)`, a = x[:H], b = x[H:]."""

    size: int = 0  # H (output)

    def out_size(self) -> int:
        return self.size

    def port_sizes(self) -> dict[str, int | None]:
        return {"in": 2 * self.size}

    def must_lower(self) -> bool:
        return True  # lower: Affine halves, a sigmoid table and a Mul


@dataclass
class Ternarize(Node):
    """Per-step ternarisation (GSU). :math:`t = \\mathrm{sign}(x) [|x| \\ge \\theta \\max_j |x_j|]`."""

    SPIKES: ClassVar[str] = SPIKE_TERNARY
    size: int = 0
    threshold: float = 0.15  # theta, fraction of the per-step max |x|

    def out_size(self) -> int:
        return self.size


@dataclass
class Mul(Node):
    """Elementwise product of ports ``a`` and ``b``. :math:`y = a \\odot b`."""

    PORTS: ClassVar[tuple[str, ...]] = ("a", "b")
    size: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class Activation(Node):
    """Elementwise nonlinearity: ``fn`` in {'sigmoid', 'gelu', 'relu', 'identity'}. :math:`y = f(x)`."""

    fn: str = attr("identity", choices=("sigmoid", "gelu", "relu", "identity"))
    size: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class Norm(Node):
    """Per-step normalisation over channels.

    .. math:: y = (x - \\mu) / \\sqrt{\\sigma^2 + \\epsilon} \\cdot w + b

    ``kind`` 'batch': mu, var are fixed running statistics [H] (foldable into weights);
    ``kind`` 'layer': mu, var are computed over the H channels of each step (``mean``/``var`` empty).
    """

    kind: str = attr("batch", choices=("batch", "layer"))
    weight: np.ndarray = arr(lambda: np.ones((0,), np.float32), dims=("H",), anchor=True)  # [H]
    bias: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",))  # [H]
    mean: np.ndarray = arr(lambda: np.zeros((0,), np.float32), dims=("H",), when=("kind", "batch"))  # [H] (batch)
    var: np.ndarray = arr(lambda: np.ones((0,), np.float32), dims=("H",), when=("kind", "batch"))  # [H] (batch)
    eps: float = 1e-5

    def out_size(self) -> int:
        return int(self.weight.shape[0])

    def must_lower(self) -> bool:
        return self.kind != "layer"  # fold: batch statistics go into the neighbouring weights


@dataclass
class Add(Node):
    """Sum of all inputs (residual add). :math:`y = \\sum_i x_i`."""

    SUMS_INPUTS: ClassVar[bool] = True
    size: int = 0

    def out_size(self) -> int:
        return self.size


@dataclass
class MeanPool(Node):
    """Mean over time, emitted at the sequence end. :math:`y = \\frac{1}{T} \\sum_t x_t`."""

    STATEFUL: ClassVar[bool] = True
    SEQUENCE_END: ClassVar[bool] = True
    size: int = 0

    def out_size(self) -> int:
        return self.size


def _dim(a: np.ndarray, i: int) -> int | None:
    return int(a.shape[i]) if a.ndim > i else None


FLOAT_NODES: dict[str, type[Node]] = {
    cls.__name__: cls
    for cls in (
        Input, Embedding, Affine, S4D, ModeBank, ModeReadout, LIF, Heaviside, RefractoryLIF, GLU,
        Ternarize, Mul, Activation, Norm, Add, MeanPool,
    )
}
