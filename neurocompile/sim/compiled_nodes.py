"""Per-node-type entries of the compiled step: how each integer node type becomes rows of flat int64 tables.

:data:`KERNELS` (a :class:`~neurocompile.ir.registry.Registry` of family ``"int"``) maps every hardware node class
to a :class:`Kernel`: the op code of its numba update in :mod:`neurocompile.sim.compiled_kernels`, its parameter
arrays and op-specific scalars, the shapes of its per-sample state, its scratch words, and the traits the
scheduler of :mod:`neurocompile.sim.compiled` needs (feed-forward in time, Loihi's event-driven update rule).
Entries are filled by the :func:`kernel` decorator, one per node type; tests/test_registry_coverage.py fails
when a new node type has none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.registry import Registry
from neurocompile.sim import kernels
from neurocompile.sim.fixed import limit, rsh_floor

Array = np.ndarray
Params = tuple[list[Array], list[int]]


def _lim(bits: int) -> int:
    """Saturation limit of ``bits`` (-1: no saturation, for bits <= 0)."""
    return limit(int(bits)) if int(bits) > 0 else -1


def _i64(a: Any) -> Array:
    return np.asarray(a, np.int64).reshape(-1)


def _per(a: Any, n: int) -> Array:
    """A scalar or per-channel parameter as n int64 values."""
    v = _i64(a)
    return np.broadcast_to(v, (n,)).copy() if v.size == 1 else v


@dataclass(frozen=True)
class Kernel:
    """How one node type runs in the compiled step.

    ``op``: op code name in compiled_kernels; ``params(node)``: (parameter arrays, op-specific scalars);
    ``states(node)``: per-sample state parts [(name, shape)] in arena order; ``scratch(node)``: int64 scratch
    words per sample; ``chunked(node, path)``: for a node stateless and feed-forward in time that is faster as
    one array operation over a whole chunk of steps than in the loop, its work per row (multiply-adds; 0: keep
    it in the loop), computed by ``whole(node, ins, path, out, cache) -> saturations``, default
    :func:`kernels.step`;
    ``event_rule``: its active count includes Loihi's synaptic events from synapse-only dense layers;
    ``always_active``: counts active compartments whatever its role; ``pipe``: state is a delay pipeline
    [delay, B, out] read in rotation; ``check(p, name)``: why the compiled step cannot run it (None: it can).
    """

    op: str
    params: Callable[[Any], Params]
    states: Callable[[Any], list[tuple[str, tuple[int, ...]]]]
    scratch: Callable[[Any], int]
    chunked: Callable[[Any, str], int] | None = None
    event_rule: bool = False
    always_active: bool = False
    pipe: bool = False
    whole: Callable[[Any, dict[str, Array], str, Array, dict[str, Any], Any], int] | None = None
    check: Callable[[Any, str], str | None] | None = None

    def words(self, node: Any) -> int:
        """State words per sample."""
        return int(sum(int(np.prod(s)) for _, s in self.states(node)))


KERNELS: Registry[Kernel] = Registry("compiled-kernel", family="int")


@dataclass
class Tally:
    """Counts a whole-chunk node may take in its own pass over the rows (``counted`` set when it did; else the
    caller counts): non-zero outputs per index into ``nz[z:]``, and where ``events`` is given [rows, n_out],
    Loihi's synaptic events (1 where a stored weight, ``stored[i, o]`` = W[o, i] != 0, got a non-zero input)."""

    nz: Array
    z: int
    stored: Array | None = None
    events: Array | None = None
    counted: bool = False


def _none(node: Any) -> list:
    return []


def _zero(node: Any) -> int:
    return 0


def kernel(*types: type, op: str, states: Callable[[Any], list] = _none, scratch: Callable[[Any], int] = _zero,
           **traits: Any) -> Callable[[Callable[[Any], Params]], Callable[[Any], Params]]:
    """Decorator on a node type's ``params`` function: registers its :class:`Kernel` for ``types``."""
    def deco(params: Callable[[Any], Params]) -> Callable[[Any], Params]:
        KERNELS.register(*types)(Kernel(op=op, params=params, states=states, scratch=scratch, **traits))
        return params
    return deco


def _vector(name: str) -> Callable[[Any], list]:
    return lambda node: [(name, (node.out_size(),))]


# ----------------------------------------------------------------------------------------------- node types

@kernel(hw.QInput, op="INPUT")
def _input(node: hw.QInput) -> Params:
    return [], []


def _embedding_check(p: Any, name: str) -> str | None:
    srcs = dict(p.ports[name])["in"]
    if len(srcs) != 1 or srcs[0][1] or not getattr(p.graph.node(srcs[0][0]), "tokens", False):
        return f"node '{name}': embedding not fed directly by a token input"
    return None


@kernel(hw.QEmbedding, op="EMBEDDING", chunked=lambda n, path: n.out_size(), event_rule=True, check=_embedding_check)
def _embedding(node: hw.QEmbedding) -> Params:
    return [_i64(node.table)], [int(node.table.shape[0])]


BLAS = {"float32-blas": np.float32, "float64-blas": np.float64}  # plan paths whose float products are exact
# a whole dense whose first SPARSE_SAMPLE rows have at most SPARSE_MAX of their inputs non-zero adds weight rows per
# input (compiled_whole.dense_sparse) instead of a BLAS product: measured on 2048 rows of 256 inputs, 2.1 against
# 3.6 ms at 20 % (256 outputs), even at about 30 %, 4.1 against 3.6 ms at 40 % (int32 weights; the weight rows'
# reads bound it: 8-bit weights stored as int8 take 1.5 against 2.1 ms at 20 %)
SPARSE_SAMPLE, SPARSE_MAX = 256, 0.25


def _whole_dense(node: hw.QDense, ins: dict[str, Array], path: str, out: Array, cache: dict[str, Any],
                 tally: Tally | None = None) -> int:
    """kernels.step_dense over all rows at once into ``out``: the product in float BLAS where the plan proved it
    exact (|sum| < 2^24 or 2^53), else in int64, then bias, shift and saturation in one compiled pass; sparse
    inputs under the 2^24 bound (spikes) add the weight rows of their non-zero inputs instead, in int32.

    ``cache`` keeps the node's float weights; the cast input and the product are scratch of the pool, given
    back at once, so that every dense layer of a chunk writes the same cached buffers (fresh multi-megabyte
    arrays cost a page fault per 4 KiB)."""
    from neurocompile.sim.compiled_whole import dense_finish, dense_sparse
    from neurocompile.sim.host import POOL

    x = ins["in"]
    if "bias" not in cache:
        n = node.out_size()
        cache.update(bias=_i64(node.bias), shift=_per(node.shift, n), lim=_lim(node.out_bits))
    dt = BLAS.get(path)
    if dt is None:
        return int(dense_finish(x @ np.asarray(node.weight, np.int64).T, cache["bias"], cache["shift"],
                                node.rounding == "floor", cache["lim"], out))
    rows, n_out = x.shape[0], node.out_size()
    if dt is np.float32 and np.count_nonzero(x[:SPARSE_SAMPLE]) <= SPARSE_MAX * min(rows, SPARSE_SAMPLE) * x.shape[1]:
        if "wi" not in cache:  # event-driven: exact in int32 by the same bound; weights in the narrowest type
            w = np.asarray(node.weight)
            cache["wi"] = np.ascontiguousarray(w.T.astype(next(t for t in (np.int8, np.int16, np.int32) if (
                w.size == 0 or np.iinfo(t).min <= int(w.min()) and int(w.max()) <= np.iinfo(t).max))))
        t = tally or Tally(np.zeros(0, np.int64), -1)
        none = np.zeros((0, 0), np.int64)
        t.counted = tally is not None  # counted in the same pass: the rows are in cache there
        return int(dense_sparse(x, cache["wi"], cache["bias"], cache["shift"], node.rounding == "floor",
                                cache["lim"], out, t.nz, t.z, none if t.stored is None else t.stored,
                                none if t.events is None else t.events))
    if "w" not in cache:
        cache["w"] = np.ascontiguousarray(np.asarray(node.weight, dt).T)
    xb, acc = POOL.take(x.size, dt).reshape(x.shape), POOL.take(rows * n_out, dt).reshape(rows, n_out)
    try:
        np.copyto(xb, x, casting="unsafe")  # exact: the plan bounded every input and partial sum
        np.matmul(xb, cache["w"], out=acc)
        return int(dense_finish(acc, cache["bias"], cache["shift"], node.rounding == "floor", cache["lim"], out))
    finally:
        POOL.give(xb, acc)


def _dense_chunked(node: hw.QDense, path: str) -> int:
    # an int64 product is faster in the compiled loop, which skips zero inputs
    return int(node.weight.size) if path in BLAS else 0


@kernel(hw.QDense, op="DENSE", states=lambda n: [("pipe", (int(n.delay), n.out_size()))],
        scratch=lambda n: 2 * n.out_size(), chunked=_dense_chunked, pipe=True, whole=_whole_dense)
def _dense(node: hw.QDense) -> Params:
    w = np.asarray(node.weight, np.int64)
    half, left, right = _shift_parts(_per(node.shift, w.shape[0]), node.rounding != "floor")
    return ([_i64(w.T.copy()), _i64(node.bias), half, left, right],
            [int(w.shape[1]), int(node.rounding == "floor"), int(node.delay)])


def _shift_parts(shift: Array, nearest: bool) -> tuple[Array, Array, Array]:
    """rsh_round (``nearest``) or rsh_floor by per-channel ``shift`` as ((x + half) << left) >> right."""
    half = np.where(shift > 0, np.left_shift(np.int64(1), np.maximum(shift - 1, 0)), 0) if nearest else \
        np.zeros_like(shift)
    return _i64(half), _i64(np.maximum(-shift, 0)), _i64(np.maximum(shift, 0))


def mode_stride(n: int) -> int:
    """Words from one of a QModeBank's mode-major arrays of n words to the next (parameters, counters): n rounded
    up so that consecutive arrays start 576 bytes apart modulo 4 KiB. Arrays a multiple of 4 KiB apart (H*M*8
    bytes, M a power of two) make the loads of one alias the stores of another in the load/store unit: 7.1 to 10.8
    against 5.9 us per step of a 4096-mode bank (4 banks in turn), measured."""
    return n + ((72 - n) & 511)


def _mode_major(a: Any, h: int, m: int) -> Array:
    """[H, M] values mode-major (index m*H + h) and padded to compiled_ops.stride(H*M) words: the bank's kernel
    runs over the channels of one mode at a time (long vectorised loops; no per-mode copy of u)."""
    out = np.zeros(mode_stride(h * m), np.int64)
    out[: h * m] = np.broadcast_to(np.asarray(a, np.int64).reshape(h, -1), (h, m)).T.reshape(-1)
    return out


@kernel(hw.QModeBank, op="MODEBANK", always_active=True, scratch=lambda n: 2 * n.a_re.shape[0],
        states=lambda n: [("re", tuple(n.a_re.shape)), ("im", tuple(n.a_re.shape))])
def _modebank(node: hw.QModeBank) -> Params:
    """a_re, a_im, b_re, b_im and the b shift's half, left, right per mode, each mode-major and padded. Scalars:
    H, M, F, one shift (1, half, left, right; else 0s), the fused readout's scratch and parameters and whether the
    output is written (set by the layout), the arrays' stride."""
    h, m = node.a_re.shape
    half, left, right = _shift_parts(_per(node.b_shift, h), True)
    # one shift for every channel (the usual case): scalars, three fewer loads per mode and step
    uni = [1, int(half[0]), int(left[0]), int(right[0])] if h and np.all(left == left[0]) and \
        np.all(right == right[0]) and np.all(half == half[0]) else [0, 0, 0, 0]
    arrays = [_mode_major(a, h, m) for a in (node.a_re, node.a_im, node.b_re, node.b_im, half, left, right)]
    return arrays, [h, m, int(node.coef_frac_bits), *uni, -1, -1, 1, mode_stride(h * m)]


def readout_modes_at(node: hw.QModeReadout) -> int:
    """Offset in the readout's parameters of its mode-major, padded c_re and c_im (what a fused bank reads)."""
    h = node.c_re.shape[0]
    return 2 * node.c_re.size + 4 * h


@kernel(hw.QModeReadout, op="READOUT", scratch=lambda n: 2 * max(n.c_re.size, n.c_re.shape[0]))
def _readout(node: hw.QModeReadout) -> Params:
    """c_re, c_im [H*M], d, the shift's half, left, right [H], then c_re and c_im mode-major for a fused bank."""
    h, m = node.c_re.shape
    # the third scalar: the state offset of a QModeBank read directly (set per chunk by the layout; -1: none)
    return [_i64(node.c_re), _i64(node.c_im), _i64(node.d), *_shift_parts(_per(node.shift, h), True),
            _mode_major(node.c_re, h, m), _mode_major(node.c_im, h, m)], [h, m, -1]


_RESETS = {"zero": 0, "subtract": 1, "none": 2}  # QLIF.reset as the compiled kernel's code


@kernel(hw.QLIF, op="LIF", states=_vector("v"), event_rule=True)
def _lif(node: hw.QLIF) -> Params:
    return ([_i64(node.vth)], [int(node.decay), int(node.coef_frac_bits), _lim(node.state_bits),
                               _RESETS[node.reset], int(node.compare == ">=")])


@kernel(hw.QRefractory, op="REFRACTORY", event_rule=True,
        states=lambda n: [(k, (n.out_size(),)) for k in ("v", "s", "r")])
def _refractory(node: hw.QRefractory) -> Params:
    return ([_i64(node.vth), _i64(node.rho)], [int(node.decay), int(node.lam), int(node.coef_frac_bits),
                                               int(node.trace_frac_bits), _lim(node.state_bits)])


@kernel(hw.QLavaLIF, op="LAVALIF", event_rule=True, states=lambda n: [(k, (n.out_size(),)) for k in ("u", "v")])
def _lavalif(node: hw.QLavaLIF) -> Params:
    n = node.out_size()
    bias = np.broadcast_to(rsh_floor(_i64(node.bias_mant), -_i64(node.bias_exp)), (n,))
    f = int(node.coef_frac_bits)
    return ([_i64(node.vth), _i64(bias)], [f, int(node.state_bits), (1 << f) - (int(node.du) + 1),
                                           (1 << f) - int(node.dv), int(node.act_shift), int(node.vth_shift)])


@kernel(hw.QHeaviside, op="HEAVISIDE", event_rule=True)
def _heaviside(node: hw.QHeaviside) -> Params:
    return [_i64(node.vth)], [int(node.compare == ">=")]


@kernel(hw.QLUT, op="LUT", event_rule=True)
def _lut(node: hw.QLUT) -> Params:
    return [_i64(node.table)], [int(node.in_shift), int(node.offset), int(np.asarray(node.table).shape[0])]


@kernel(hw.QMul, op="MUL", event_rule=True)
def _mul(node: hw.QMul) -> Params:
    return [], [int(node.shift)]


@kernel(hw.QTernarize, op="TERNARIZE", event_rule=True)
def _ternarize(node: hw.QTernarize) -> Params:
    return [], [int(node.num), int(node.den)]


@kernel(hw.QAdd, op="ADD", event_rule=True)
def _add(node: hw.QAdd) -> Params:
    return [], []


@kernel(hw.QAccumulate, op="ACCUMULATE", states=_vector("acc"), event_rule=True)
def _accumulate(node: hw.QAccumulate) -> Params:
    return [], []


@kernel(hw.QLayerNorm, op="LAYERNORM", event_rule=True)
def _layernorm(node: hw.QLayerNorm) -> Params:
    n = node.size
    return ([_per(node.weight, n), _per(node.bias, n), _per(node.shift, n), _i64(node.rsqrt_table)],
            [int(node.mean_mul), int(node.mean_shift), int(node.var_shift), int(node.eps), int(node.index_bits)])


def whole(kern: Kernel, node: Any, ins: dict[str, Array], path: str, out: Array, cache: dict[str, Any],
          tally: Tally | None = None) -> int:
    """A time-free node over many rows (samples x steps) at once into ``out`` (int64 [rows, size]); returns its
    saturations. ``cache``: the node's own buffers, kept between calls by the caller; ``tally``: counts it may
    take on the way."""
    if kern.whole is not None:
        return kern.whole(node, ins, path, out, cache, tally)
    st = kernels.init_state(node, next(iter(ins.values())).shape[0])
    out[...] = kernels.step(node, ins, st)
    return int(st["saturations"])
