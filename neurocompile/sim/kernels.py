"""Integer step functions of every hardware node: the executable form of docs/semantics.md.

Each kernel works on a batch: inputs are int64 arrays [B, n] (summed per port by the engine), state is a
dict of int64 arrays [B, ...] that the kernel updates in place. ``state["saturations"]`` counts values
clipped by this node (overflow of its declared widths). Sequence-end nodes return their output from
:func:`finish`. Nothing here knows about time, graphs or counters: that is the engine's job.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.sim.fixed import quantize_round, rsh_floor, rsh_round, rsh_trunc, sat

Array = np.ndarray


def init_state(node: hw.QNode, batch: int) -> dict[str, Array | int]:
    """Fresh state at t = -1: every state variable is 0."""
    st: dict[str, Array | int] = {"saturations": 0}
    if isinstance(node, hw.QModeBank):
        h, m = node.a_re.shape
        st["re"] = np.zeros((batch, h, m), np.int64)
        st["im"] = np.zeros((batch, h, m), np.int64)
    elif isinstance(node, hw.QLIF):
        st["v"] = np.zeros((batch, node.out_size()), np.int64)
    elif isinstance(node, hw.QRefractory):
        n = node.out_size()
        st["v"] = np.zeros((batch, n), np.int64)
        st["s"] = np.zeros((batch, n), np.int64)
        st["r"] = np.zeros((batch, n), np.int64)
    elif isinstance(node, hw.QAccumulate):
        st["acc"] = np.zeros((batch, node.out_size()), np.int64)
    elif isinstance(node, hw.QLavaLIF):
        st["u"] = np.zeros((batch, node.out_size()), np.int64)
        st["v"] = np.zeros((batch, node.out_size()), np.int64)
    elif isinstance(node, hw.QDense) and node.delay > 0:
        st["pipe"] = [np.zeros((batch, node.out_size()), np.int64) for _ in range(node.delay)]
    return st


def _sat(st: dict, x: Array, bits: int) -> Array:
    y, n = sat(x, bits)
    st["saturations"] += n
    return y


def _spike(v: Array, vth: Array, compare: str) -> Array:
    return (v >= vth if compare == ">=" else v > vth).astype(np.int64)


def step_input(node: hw.QInput, x: Array, st: dict) -> Array:
    """x: float [B, size] (or int token ids [B, 1])."""
    if node.tokens:
        return np.asarray(x, np.int64)
    return _sat(st, quantize_round(x, node.out_scale), node.out_bits)


def step_embedding(node: hw.QEmbedding, ins: dict[str, Array], st: dict) -> Array:
    ids = ins["in"][:, 0]
    return node.table[ids]


def step_dense(node: hw.QDense, ins: dict[str, Array], st: dict) -> Array:
    acc = ins["in"] @ node.weight.T + node.bias
    shifted = rsh_floor(acc, node.shift) if node.rounding == "floor" else rsh_round(acc, node.shift)
    y = _sat(st, shifted, node.out_bits)
    if node.delay > 0:
        pipe = st["pipe"]
        pipe.append(y)
        return pipe.pop(0)
    return y


def step_modebank(node: hw.QModeBank, ins: dict[str, Array], st: dict) -> Array:
    u = ins["in"][:, :, None]  # [B, H, 1]
    f = node.coef_frac_bits
    re, im = st["re"], st["im"]
    kb = node.b_shift[None, :, None]
    in_re = rsh_round(node.b_re[None] * u, kb)
    in_im = rsh_round(node.b_im[None] * u, kb)
    new_re = rsh_trunc(node.a_re * re - node.a_im * im, f) + in_re
    new_im = rsh_trunc(node.a_im * re + node.a_re * im, f) + in_im
    st["re"] = _sat(st, new_re, node.out_bits)
    st["im"] = _sat(st, new_im, node.out_bits)
    return np.stack([st["re"], st["im"]], axis=-1).reshape(u.shape[0], -1)


def step_modereadout(node: hw.QModeReadout, ins: dict[str, Array], st: dict) -> Array:
    h, m = node.c_re.shape
    state = ins["state"].reshape(-1, h, m, 2)
    acc = (node.c_re * state[..., 0] + node.c_im * state[..., 1]).sum(-1) + node.d * ins["skip"]
    return _sat(st, rsh_round(acc, node.shift), node.out_bits)


def step_lif(node: hw.QLIF, ins: dict[str, Array], st: dict) -> Array:
    v = _sat(st, rsh_trunc(node.decay * st["v"], node.coef_frac_bits) + ins["in"], node.state_bits)
    s = _spike(v, node.vth, node.compare)
    if node.reset != "none":  # 'none': the membrane keeps its value after a spike
        st["v"] = np.where(s == 1, 0 if node.reset == "zero" else v - node.vth, v)
    else:
        st["v"] = v
    return s


def step_lavalif(node: hw.QLavaLIF, ins: dict[str, Array], st: dict) -> Array:
    """Lava's PyLifModelBitAcc: u wraps (one correction of 2^state_bits), v saturates, spike on v > vth << 6."""
    f, half = node.coef_frac_bits, 1 << (node.state_bits - 1)
    u = rsh_trunc(st["u"] * ((1 << f) - (node.du + 1)), f) + (ins["in"] << node.act_shift)
    u = np.where(u > half, u - 2 * half, np.where(u <= -half, u + 2 * half, u))
    bias = rsh_floor(node.bias_mant, -node.bias_exp)
    v = _sat(st, rsh_trunc(st["v"] * ((1 << f) - node.dv), f) + u + bias, node.state_bits)
    s = (v > (node.vth << node.vth_shift)).astype(np.int64)
    st["u"], st["v"] = u, np.where(s == 1, 0, v)
    return s


def step_heaviside(node: hw.QHeaviside, ins: dict[str, Array], st: dict) -> Array:
    return _spike(ins["in"], node.vth, node.compare)


def step_refractory(node: hw.QRefractory, ins: dict[str, Array], st: dict) -> Array:
    f, r_bits = node.coef_frac_bits, node.trace_frac_bits
    v = (rsh_trunc(node.decay * st["v"], f) + ins["in"] - node.vth * st["s"]
         - rsh_round(node.rho * st["r"], r_bits))
    v = _sat(st, v, node.state_bits)
    s = _spike(v, node.vth, ">=")
    st["r"] = _sat(st, rsh_trunc(node.lam * st["r"], f) + (s << r_bits), node.state_bits)
    st["v"], st["s"] = v, s
    return s


def step_lut(node: hw.QLUT, ins: dict[str, Array], st: dict) -> Array:
    idx = rsh_round(ins["in"], node.in_shift) + node.offset
    n = node.table.shape[0]
    st["saturations"] += int(np.count_nonzero((idx < 0) | (idx >= n)))
    return node.table[np.clip(idx, 0, n - 1)]


def step_mul(node: hw.QMul, ins: dict[str, Array], st: dict) -> Array:
    return _sat(st, rsh_round(ins["a"] * ins["b"], node.shift), node.out_bits)


def step_ternarize(node: hw.QTernarize, ins: dict[str, Array], st: dict) -> Array:
    x = ins["in"]
    mag = np.abs(x)
    mx = mag.max(axis=1, keepdims=True)
    keep = (mag * node.den >= node.num * mx) & (mx > 0)
    return np.sign(x) * keep


def step_add(node: hw.QAdd, ins: dict[str, Array], st: dict) -> Array:
    return _sat(st, ins["in"], node.out_bits)


def step_accumulate(node: hw.QAccumulate, ins: dict[str, Array], st: dict) -> None:
    st["acc"] = _sat(st, st["acc"] + ins["in"], node.out_bits)
    return None


def layernorm_octave(v: Array, index_bits: int) -> Array:
    """j = the smallest integer >= 0 with v < 2^(index_bits + 2j), elementwise (v >= 1)."""
    j = np.zeros(np.shape(v), np.int64)
    for t in range(32):
        e = index_bits + 2 * t
        if e >= 63:
            break
        j += v >= (1 << e)
    return j


def step_layernorm(node: hw.QLayerNorm, ins: dict[str, Array], st: dict) -> Array:
    x = ins["in"]
    m, km = node.mean_mul, node.mean_shift
    mean = rsh_round(x.sum(axis=1, keepdims=True) * m, km)
    d = x - mean
    v = rsh_round((d * d).sum(axis=1, keepdims=True) * m, km + node.var_shift)
    v = np.maximum(v + node.eps, 1)
    j = layernorm_octave(v, node.index_bits)
    r = node.rsqrt_table[rsh_round(v, 2 * j)]
    return _sat(st, rsh_round(d * r * node.weight, node.shift + j) + node.bias, node.out_bits)


def finish(node: hw.QNode, st: dict) -> Array:
    """Output of a sequence-end node after the last step."""
    if isinstance(node, hw.QAccumulate):
        return st["acc"]
    raise IRError(f"{type(node).__name__} is not a sequence-end node")


STEP: dict[type, Callable[..., Array | None]] = {
    hw.QEmbedding: step_embedding,
    hw.QDense: step_dense,
    hw.QModeBank: step_modebank,
    hw.QModeReadout: step_modereadout,
    hw.QLIF: step_lif,
    hw.QHeaviside: step_heaviside,
    hw.QRefractory: step_refractory,
    hw.QLUT: step_lut,
    hw.QMul: step_mul,
    hw.QTernarize: step_ternarize,
    hw.QAdd: step_add,
    hw.QAccumulate: step_accumulate,
    hw.QLavaLIF: step_lavalif,
    hw.QLayerNorm: step_layernorm,
}


def step(node: hw.QNode, ins: dict[str, Array], st: dict) -> Array | None:
    """Advance ``node`` one step; ``ins`` maps each port to the summed int64 input [B, n]."""
    try:
        fn = STEP[type(node)]
    except KeyError:
        raise IRError(f"no integer kernel for node type {type(node).__name__}") from None
    return fn(node, ins, st)
