"""Plain Lava networks (Lava's own ``Dense`` + ``LIF``, tag ``fixed_pt``) as neurocompile graphs.

:func:`from_lava_dense_lif` turns the parameters of Lava ``Dense`` -> ``LIF`` layers into integer nodes
that reproduce Lava 0.10.0 bit for bit in neurocompile's simulator:

- ``Dense`` (``PyDenseModelBitAcc``) becomes a :class:`~neurocompile.ir.hw.QDense` with ``delay`` 1 and
  ``rounding`` 'floor'. Lava first clips the weights to 8 bits in their sign mode ([-256, 255] mixed,
  [0, 255] excitatory, [-255, 0] inhibitory), then drops ``8 - num_weight_bits + mixed`` low bits
  (toward -inf; inhibitory weights toward 0). What remains is ``mantissa << k``; the QDense stores the
  mantissa (``weight_bits`` = num_weight_bits + 1) and folds k into its shift:
  ``shift = -(weight_exp + k)``, so ``rsh_floor(W x, shift)`` is Lava's ``(W_eff x) << weight_exp``.
- ``LIF`` (``PyLifModelBitAcc``) becomes a :class:`~neurocompile.ir.hw.QLavaLIF`.

Pure NumPy: works without Lava installed (only running the result on Lava needs it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocompile.errors import UnsupportedOpError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph

#: Lava 0.10.0 LIF / Dense fixed-point constants (PyLifModelBitAcc, PyDenseModelBitAcc).
DECAY_BITS = 12  # du, dv are 12-bit; unity = 4096
UV_BITS = 24  # u and v widths
ACT_SHIFT = 6  # a_in << 6
VTH_SHIFT = 6  # vth << 6
MAX_WEIGHT_BITS = 8
SIGN_MODES = ("mixed", "excitatory", "inhibitory")


@dataclass
class LavaLayer:
    """Parameters of one Lava ``Dense`` (``weights`` [out, in] integers) followed by one ``LIF``.

    ``sign_mode`` None lets Lava decide from the weights (``determine_sign_mode``); ``num_message_bits``
    0 means binary input spikes (as Lava's Dense default). ``vth``, ``bias_mant``, ``bias_exp`` are scalars
    or [out] arrays; ``du``, ``dv`` are scalars (Lava's LIF takes one decay per population).
    """

    weights: Any
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: str | None = None
    num_message_bits: int = 0
    du: int = 0
    dv: int = 0
    vth: Any = 10
    bias_mant: Any = 0
    bias_exp: Any = 0


def _sign_mode_name(mode: Any) -> str | None:
    if mode is None:
        return None
    name = getattr(mode, "name", mode)  # accepts lava.utils.weightutils.SignMode members too
    name = str(name).lower()
    if name not in SIGN_MODES:
        raise UnsupportedOpError(f"sign_mode {mode!r} is not one of {', '.join(SIGN_MODES)} "
                                 "(or None: decided from the weights)")
    return name


def lava_sign_mode(weights: np.ndarray) -> str:
    """Lava's ``determine_sign_mode``: excitatory if all w >= 0, inhibitory if all w <= 0, else mixed."""
    if weights.min() >= 0:
        return "excitatory"
    if weights.max() <= 0:
        return "inhibitory"
    return "mixed"


def lava_weight_mantissa(weights: np.ndarray, num_weight_bits: int = 8,
                         sign_mode: str | None = None) -> tuple[np.ndarray, int, str]:
    """(mantissa, k, sign_mode): Lava's effective fixed-point weights are ``mantissa << k``.

    Reproduces ``clip_weights(w, mode, 8)`` then ``truncate_weights(w, mode, num_weight_bits)`` of Lava 0.10.0.
    """
    w = np.asarray(weights)
    if w.ndim != 2:
        raise UnsupportedOpError(f"Lava Dense weights must be a 2-D [out, in] matrix, got shape {list(w.shape)}")
    if not np.issubdtype(w.dtype, np.integer):
        if not np.all(np.isfinite(w)) or np.any(w != np.trunc(w)):
            raise UnsupportedOpError("Lava Dense weights must be integers in fixed_pt mode (got non-integer values)")
    w = w.astype(np.int64)
    if not 1 <= int(num_weight_bits) <= MAX_WEIGHT_BITS:
        raise UnsupportedOpError(f"num_weight_bits={num_weight_bits} must be in [1, {MAX_WEIGHT_BITS}]")
    mode = _sign_mode_name(sign_mode) or lava_sign_mode(w)
    mixed = int(mode == "mixed")
    top = (1 << MAX_WEIGHT_BITS) - 1
    k = MAX_WEIGHT_BITS - int(num_weight_bits) + mixed
    if mode == "inhibitory":
        mag = np.clip(-w, 0, top)
        return -(mag >> k), k, mode
    lo = -(1 << MAX_WEIGHT_BITS) if mixed else 0
    return np.clip(w, lo, top) >> k, k, mode


def _per_neuron(x: Any, n: int, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 0:
        a = np.full(n, a)
    if a.shape != (n,):
        raise UnsupportedOpError(f"{what} must be a scalar or have shape [{n}], got {list(a.shape)}")
    if not np.issubdtype(a.dtype, np.integer) and np.any(a != np.trunc(a)):
        raise UnsupportedOpError(f"{what} must hold integers in fixed_pt mode")
    return a.astype(np.int64)


def _check_range(what: str, a: np.ndarray | int, lo: int, hi: int) -> None:
    a = np.asarray(a)
    if a.size and (a.min() < lo or a.max() > hi):
        bad = a.max() if a.max() > hi else a.min()
        raise UnsupportedOpError(f"{what}={int(bad)} is outside Lava's fixed-point range [{lo}, {hi}]")


def from_lava_layers(layers: list[LavaLayer | dict], name: str = "lava_dense_lif",
                     in_limit: int | None = None) -> Graph:
    """Graph ``x -> dense0 -> lif0 -> dense1 -> lif1 ...`` reproducing Lava Dense + LIF layers.

    ``in_limit`` is the largest |input| of the first layer (default 1: binary spikes; required for graded
    input, ``num_message_bits`` > 0). Raises UnsupportedOpError when a parameter is outside Lava's ranges or
    when a layer's synaptic input could leave the range in which Lava's int32 arithmetic is exact
    (|x << 6| < 2^24, see docs/semantics.md QLavaLIF).
    """
    layers = [LavaLayer(**ly) if isinstance(ly, dict) else ly for ly in layers]
    if not layers:
        raise UnsupportedOpError("from_lava_layers needs at least one layer")
    g = Graph(name)
    first = layers[0]
    n_in = int(np.asarray(first.weights).shape[1])
    graded = first.num_message_bits > 0
    if graded and in_limit is None:
        raise UnsupportedOpError("graded input (num_message_bits > 0) needs in_limit, the largest |input| value")
    limit = 1 if in_limit is None else int(in_limit)
    in_bits = 2 if not graded else int(limit).bit_length() + 1
    prev = g.add("x", hw.QInput(size=n_in, out_scale=1.0, out_bits=in_bits))
    g.inputs = ["x"]
    g.meta["source"] = "lava Dense + LIF (from_lava_layers)"
    for i, ly in enumerate(layers):
        m, k, mode = lava_weight_mantissa(ly.weights, ly.num_weight_bits, ly.sign_mode)
        n_out, n_prev = m.shape
        if i > 0 and ly.num_message_bits > 0:
            raise UnsupportedOpError(f"layer {i}: LIF outputs binary spikes; set num_message_bits=0")
        shift = -(int(ly.weight_exp) + k)
        acc_bound = int(np.abs(m << k).sum(axis=1).max(initial=0)) * limit
        out_bound = acc_bound << int(ly.weight_exp) if ly.weight_exp >= 0 else -((-acc_bound) >> -int(ly.weight_exp))
        if out_bound << ACT_SHIFT >= 1 << UV_BITS:
            raise UnsupportedOpError(
                f"layer {i}: Lava Dense output can reach {out_bound} "
                f"(sum |w| * {limit} << weight_exp={ly.weight_exp}); "
                f"Lava's LIF computes (a_in << {ACT_SHIFT}) + u in int32 and wraps u once, which is exact only while "
                f"|a_in| < 2^{UV_BITS - ACT_SHIFT}: lower weight_exp or the weights")
        du, dv = int(ly.du), int(ly.dv)
        _check_range(f"layer {i} du", du, 0, (1 << DECAY_BITS) - 1)
        _check_range(f"layer {i} dv", dv, 0, (1 << DECAY_BITS) - 1)
        vth = _per_neuron(ly.vth, n_out, f"layer {i} vth")
        bias_mant = _per_neuron(ly.bias_mant, n_out, f"layer {i} bias_mant")
        bias_exp = _per_neuron(ly.bias_exp, n_out, f"layer {i} bias_exp")
        _check_range(f"layer {i} vth", vth, 0, (1 << 17) - 1)
        _check_range(f"layer {i} bias_mant", bias_mant, -(1 << 12), (1 << 12) - 1)
        _check_range(f"layer {i} bias_exp", bias_exp, -7, 7)
        dense = hw.QDense(
            weight=m, bias=np.zeros(n_out, np.int64), shift=np.full(n_out, shift, np.int64),
            weight_bits=int(ly.num_weight_bits) + 1, rounding="floor", delay=1, out_bits=32, out_scale=1.0,
        )
        d_name = g.add(f"dense{i}", dense, prev)
        lif = hw.QLavaLIF(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp, coef_frac_bits=DECAY_BITS,
                          state_bits=UV_BITS, act_shift=ACT_SHIFT, vth_shift=VTH_SHIFT, out_bits=1, out_scale=1.0)
        prev = g.add(f"lif{i}", lif, d_name)
        g.meta.setdefault("lava_sign_modes", []).append(mode)
        limit = 1
    g.outputs = [prev]
    return g


def from_lava_dense_lif(weights: Any, weight_exp: int = 0, num_weight_bits: int = 8, *, du: int = 0, dv: int = 0,
                        vth: Any = 10, bias_mant: Any = 0, bias_exp: Any = 0, sign_mode: str | None = None,
                        num_message_bits: int = 0, in_limit: int | None = None, name: str = "lava_dense_lif") -> Graph:
    """One Lava ``Dense(weights, weight_exp, num_weight_bits)`` -> ``LIF(du, dv, vth, bias_mant, bias_exp)``.

    Same arguments as Lava's Process constructors; see :func:`from_lava_layers` for the checks.
    """
    layer = LavaLayer(weights=weights, weight_exp=weight_exp, num_weight_bits=num_weight_bits, sign_mode=sign_mode,
                      num_message_bits=num_message_bits, du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    return from_lava_layers([layer], name=name, in_limit=in_limit)
