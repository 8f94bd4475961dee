"""Integer step functions of every hardware node: the executable form of docs/semantics.md.

Each kernel works on a batch: inputs are int64 arrays [B, n] (summed per port by the engine), state is a
dict of int64 arrays [B, ...] that the kernel updates in place. ``state["saturations"]`` counts values
clipped by this node (overflow of its declared widths). Sequence-end nodes return their output from
:func:`finish`. Nothing here knows about time, graphs or counters: that is the runner's job
(:mod:`neurocompile.sim.reference`). Every kernel registers itself in :data:`KERNELS` by decorator; the state it
keeps is the node's ``STATE`` trait (:mod:`neurocompile.ir.traits`), allocated by :func:`init_state`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.registry import Registry
from neurocompile.sim.fixed import quantize_round, rsh_floor, rsh_round, rsh_trunc, sat

Array = np.ndarray


Kernel = Callable[..., "Array | None"]

#: node class -> its step function ``(node, ins, st) -> output [B, n]`` (None for sequence-end nodes).
KERNELS: Registry[Kernel] = Registry("sim-kernel", family="int", exempt={
    "QInput": "graph inputs are quantised from the caller's data by step_input, not stepped from ports"})
#: sequence-end node class -> the state variable holding its output after the last step.
FINISH: dict[type, str] = {}


def init_state(node: hw.QNode, batch: int) -> dict[str, Any]:
    """Fresh state at t = -1: every state variable of ``node.state_vars()`` at its ``init`` value, [B, ...];
    a variable with a field-sized ``count`` (a delay line) is a list of that many arrays, oldest first."""
    st: dict[str, Array | int | list[Array]] = {"saturations": 0}
    for v in node.state_vars():
        shape = (batch, *v.shape(node))
        if isinstance(v.count, str):
            st[v.name] = [np.full(shape, v.init, np.int64) for _ in range(v.copies(node))]
        else:
            st[v.name] = np.full(shape, v.init, np.int64)
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


@KERNELS.register(hw.QEmbedding)
def step_embedding(node: hw.QEmbedding, ins: dict[str, Array], st: dict) -> Array:
    ids = ins["in"][:, 0]
    return node.table[ids]


@KERNELS.register(hw.QDense)
def step_dense(node: hw.QDense, ins: dict[str, Array], st: dict) -> Array:
    acc = ins["in"] @ node.weight.T + node.bias
    shifted = rsh_floor(acc, node.shift) if node.rounding == "floor" else rsh_round(acc, node.shift)
    y = _sat(st, shifted, node.out_bits)
    if node.delay > 0:
        pipe = st["pipe"]
        pipe.append(y)
        return pipe.pop(0)
    return y


@KERNELS.register(hw.QModeBank)
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


@KERNELS.register(hw.QModeReadout)
def step_modereadout(node: hw.QModeReadout, ins: dict[str, Array], st: dict) -> Array:
    h, m = node.c_re.shape
    state = ins["state"].reshape(-1, h, m, 2)
    acc = (node.c_re * state[..., 0] + node.c_im * state[..., 1]).sum(-1) + node.d * ins["skip"]
    return _sat(st, rsh_round(acc, node.shift), node.out_bits)


@KERNELS.register(hw.QLIF)
def step_lif(node: hw.QLIF, ins: dict[str, Array], st: dict) -> Array:
    v = _sat(st, rsh_trunc(node.decay * st["v"], node.coef_frac_bits) + ins["in"], node.state_bits)
    s = _spike(v, node.vth, node.compare)
    if node.reset != "none":  # 'none': the membrane keeps its value after a spike
        st["v"] = np.where(s == 1, 0 if node.reset == "zero" else v - node.vth, v)
    else:
        st["v"] = v
    return s


@KERNELS.register(hw.QLavaLIF)
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


@KERNELS.register(hw.QHeaviside)
def step_heaviside(node: hw.QHeaviside, ins: dict[str, Array], st: dict) -> Array:
    return _spike(ins["in"], node.vth, node.compare)


@KERNELS.register(hw.QRefractory)
def step_refractory(node: hw.QRefractory, ins: dict[str, Array], st: dict) -> Array:
    f, r_bits = node.coef_frac_bits, node.trace_frac_bits
    v = (rsh_trunc(node.decay * st["v"], f) + ins["in"] - node.vth * st["s"]
         - rsh_round(node.rho * st["r"], r_bits))
    v = _sat(st, v, node.state_bits)
    s = _spike(v, node.vth, ">=")
    st["r"] = _sat(st, rsh_trunc(node.lam * st["r"], f) + (s << r_bits), node.state_bits)
    st["v"], st["s"] = v, s
    return s


@KERNELS.register(hw.QLUT)
def step_lut(node: hw.QLUT, ins: dict[str, Array], st: dict) -> Array:
    idx = rsh_round(ins["in"], node.in_shift) + node.offset
    n = node.table.shape[0]
    st["saturations"] += int(np.count_nonzero((idx < 0) | (idx >= n)))
    return node.table[np.clip(idx, 0, n - 1)]


@KERNELS.register(hw.QMul)
def step_mul(node: hw.QMul, ins: dict[str, Array], st: dict) -> Array:
    return _sat(st, rsh_round(ins["a"] * ins["b"], node.shift), node.out_bits)


@KERNELS.register(hw.QTernarize)
def step_ternarize(node: hw.QTernarize, ins: dict[str, Array], st: dict) -> Array:
    x = ins["in"]
    mag = np.abs(x)
    mx = mag.max(axis=1, keepdims=True)
    keep = (mag * node.den >= node.num * mx) & (mx > 0)
    return np.sign(x) * keep


@KERNELS.register(hw.QAdd)
def step_add(node: hw.QAdd, ins: dict[str, Array], st: dict) -> Array:
    return _sat(st, ins["in"], node.out_bits)


@KERNELS.register(hw.QAccumulate)
def step_accumulate(node: hw.QAccumulate, ins: dict[str, Array], st: dict) -> None:
    st["acc"] = _sat(st, st["acc"] + ins["in"], node.out_bits)
    return None


FINISH[hw.QAccumulate] = "acc"


@KERNELS.register(hw.QSigmaDelta)
def step_sigma_delta(node: hw.QSigmaDelta, ins: dict[str, Array], st: dict) -> Array:
    """x_hat moves to x where |x - x_hat| >= theta (a message of x - x_hat is sent there), else stays."""
    x = ins["in"]
    st["xhat"] = np.where(np.abs(x - st["xhat"]) >= node.theta, x, st["xhat"])
    return st["xhat"]


def layernorm_octave(v: Array, index_bits: int) -> Array:
    """j = the smallest integer >= 0 with v < 2^(index_bits + 2j), elementwise (v >= 1)."""
    j = np.zeros(np.shape(v), np.int64)
    for t in range(32):
        e = index_bits + 2 * t
        if e >= 63:
            break
        j += v >= (1 << e)
    return j


@KERNELS.register(hw.QLayerNorm)
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


def finish_var(node: hw.QNode) -> str:
    """The state variable holding a sequence-end node's output after the last step."""
    var = next((FINISH[c] for c in type(node).__mro__ if c in FINISH), None)
    if var is None:
        raise IRError(f"{type(node).__name__} is not a sequence-end node")
    return var


def finish(node: hw.QNode, st: dict) -> Array:
    """Output of a sequence-end node after the last step."""
    return st[finish_var(node)]


def step(node: hw.QNode, ins: dict[str, Array], st: dict) -> Array | None:
    """Advance ``node`` one step; ``ins`` maps each port to the summed int64 input [B, n]."""
    fn = KERNELS.get(node)
    if fn is None:
        raise IRError(f"no integer kernel for node type {type(node).__name__}")
    return fn(node, ins, st)
