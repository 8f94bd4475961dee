"""Calibrate: run the float interpreter on calibration data and record every node's output range.

The graph is unchanged; ``graph.meta['calibration']`` gets, per node, the observed ``min``, ``max``, ``absmax``
and the clipping range chosen by the method (``lo``, ``hi``, ``clip`` = max(|lo|, |hi|)):

- ``max``: the observed extremes.
- ``percentile``: the ``p``-th percentile of x (hi) and the (100 - p)-th (lo), p = 99.99 by default: a few
  outliers do not stretch the scale.
- ``mse``: the symmetric clip c minimising E[(x - Q_c(x))^2] for the node's integer width, with
  Q_c(x) = s round(clip(x, -c, c) / s), s = c / (2^(bits-1) - 1) (grid search). It depends on the width, so
  :func:`clip_range` recomputes it for the width the quantiser picks; the stored one assumes 16 bits.

The traces themselves stay in ``ctx.info['calib_trace']`` for the quantiser (LUT error, scale searches).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from neurocompile.errors import QuantizationError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes.common import PassContext, limit

if TYPE_CHECKING:
    from neurocompile.ir.interpret import Result

NAME = "calibrate"
_MSE_SAMPLE = 200_000


def check_calibration_data(graph: Graph, x: object) -> np.ndarray:
    """Return ``x`` as an array if it fits the graph's input, else raise QuantizationError saying what is wrong."""
    if x is None:
        raise QuantizationError("calibration needs data: pass calibration sequences (e.g. --calibration sdigits)")
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()  # a torch tensor
    a = np.asarray(x)
    inp = graph.node(graph.inputs[0])
    tokens = bool(getattr(inp, "tokens", False))
    if a.dtype.kind not in "biuf":
        raise QuantizationError(f"calibration data has dtype {a.dtype}; input '{graph.inputs[0]}' takes "
                                f"{'integer token ids' if tokens else 'real numbers'}")
    if tokens:
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[..., 0]
        if a.ndim != 2:
            raise QuantizationError(f"calibration data has shape {list(a.shape)}; input '{graph.inputs[0]}' takes "
                                    f"token ids [n, T]")
        if a.dtype.kind == "f" and not np.all(a == np.round(a)):
            raise QuantizationError("calibration data: token ids must be integers")
        return a.astype(np.int64)
    size = inp.out_size()
    if a.ndim == 2 and size == 1:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] != size:
        raise QuantizationError(f"calibration data has shape {list(a.shape)}; input '{graph.inputs[0]}' takes "
                                f"[n, T, {size}] (n sequences of T steps of {size} feature(s))")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise QuantizationError(f"calibration data has shape {list(a.shape)}: need at least one sequence of one step")
    if not np.all(np.isfinite(a)):
        raise QuantizationError("calibration data holds NaN or Inf values")
    return a.astype(np.float64)


def mse_clip(values: np.ndarray, bits: int) -> float:
    """The symmetric clip minimising the mean squared quantisation error of ``values`` at ``bits`` bits."""
    v = np.abs(np.asarray(values, np.float64).ravel())
    if v.size > _MSE_SAMPLE:
        v = np.random.default_rng(0).choice(v, _MSE_SAMPLE, replace=False)
    top = float(v.max()) if v.size else 0.0
    if top == 0.0:
        return 0.0
    lim = max(limit(bits), 1)
    best, best_err = top, np.inf
    for r in np.geomspace(1e-3, 1.0, 96):
        c = top * r
        s = c / lim
        q = np.minimum(np.floor(np.minimum(v, c) / s + 0.5), lim) * s
        err = float(np.mean((v - q) ** 2))
        if err < best_err:
            best, best_err = c, err
    return best


def _stats(x: np.ndarray, method: str, p: float) -> dict[str, float]:
    x = np.asarray(x, np.float64)
    lo_obs, hi_obs = float(x.min()), float(x.max())
    out = {"min": lo_obs, "max": hi_obs, "absmax": max(abs(lo_obs), abs(hi_obs))}
    if method == "percentile":
        flat = x.ravel()
        lo, hi = (float(v) for v in np.percentile(flat, [100.0 - p, p]))
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    elif method == "mse":
        c = mse_clip(x, 16)
        lo, hi = max(lo_obs, -c), min(hi_obs, c)
    else:
        lo, hi = lo_obs, hi_obs
    out.update(lo=lo, hi=hi, clip=max(abs(lo), abs(hi)))
    return out


def clip_range(ctx: PassContext, graph: Graph, name: str, bits: int) -> tuple[float, float]:
    """(lo, hi) clipping range of node ``name`` for an integer width of ``bits`` under the chosen method."""
    st = graph.meta["calibration"]["nodes"][name]
    if ctx.options.calibration == "mse":
        c = mse_clip(ctx.info["calib_trace"][name], bits)
        return max(st["min"], -c), min(st["max"], c)
    return st["lo"], st["hi"]


def _runs(graph: Graph, x: np.ndarray, steps: int) -> Iterator[Result]:
    """The float interpreter's record of ``x``: one whole run, or chunks of ``steps`` steps carrying the state."""
    from neurocompile.ir.interpret import interpret, stream

    if steps >= x.shape[1]:
        yield interpret(graph, x, record=True)
        return
    for _, res in stream(graph, x, steps, record=True):
        yield res


def run(graph: Graph, ctx: PassContext) -> Graph:
    x = check_calibration_data(graph, ctx.calib_x)
    x = x[: ctx.options.calib_samples]
    asked = int(x.shape[0])
    x = x[: work_samples(graph, asked, int(x.shape[1]))]
    n, t_len = int(x.shape[0]), int(x.shape[1])
    method, p = ctx.options.calibration, float(ctx.options.percentile)
    plan = chunk_plan(graph, n, t_len, ctx.info.get("memory_budget"))
    order = graph.order()
    banks = [m for m in order if isinstance(graph.node(m), fl.ModeBank)]
    one = plan.chunk >= n and plan.steps >= t_len  # one call: statistics taken on the float64 trace directly
    after = graph.sequence_end_nodes() | {m for m in order if graph.node(m).SEQUENCE_END}
    acc: dict[str, _Stream] = {}
    nodes: dict[str, dict[str, float]] = {}
    kept: dict[str, list[np.ndarray]] = {name: [] for name in order}
    mode_peak: dict[str, np.ndarray] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    for s0 in range(0, n, plan.chunk):
        pieces: dict[str, list[np.ndarray]] = {}  # kept samples' float32 trace, per chunk of time
        outs: dict[str, list[np.ndarray]] = {}
        for res in _runs(graph, x[s0:s0 + plan.chunk], plan.steps):
            for name in order:
                if name not in res.trace:  # a sequence-end node, before the last chunk of time
                    continue
                v = res.trace[name]
                if isinstance(graph.node(name), fl.Input) and graph.node(name).tokens:
                    v = v.astype(np.float64)
                if one:
                    nodes[name] = _stats(v, method, p)
                else:  # [chunk, steps (1 after a sequence end), size]
                    total = n * (1 if name in after else t_len) * int(np.prod(v.shape[2:]))
                    acc.setdefault(name, _Stream(total, p)).add(v)
                if s0 < plan.keep:  # only the kept samples are cast to float32 (a bank's peak casts them all)
                    pieces.setdefault(name, []).append(v[: plan.keep - s0].astype(np.float32))
                if name in mode_peak or name in banks:
                    st = v.astype(np.float32).reshape(*v.shape[:2], -1, 2).astype(np.float64)
                    pk = np.sqrt((st[..., 0] ** 2 + st[..., 1] ** 2).max(axis=(0, 1)))  # sqrt is monotone: exact
                    mode_peak[name] = pk if name not in mode_peak else np.maximum(mode_peak[name], pk)
            if s0 < plan.keep:
                for k, v in res.outputs.items():
                    outs.setdefault(k, []).append(v[: plan.keep - s0])
            del res
        for name, ps in pieces.items():
            kept[name].append(ps[0] if len(ps) == 1 else np.concatenate(ps, axis=1))
        for k, ps in outs.items():
            outputs.setdefault(k, []).append(ps[0] if len(ps) == 1 else np.concatenate(ps, axis=1))
    trace = {name: (parts[0] if len(parts) == 1 else np.concatenate(parts)) for name, parts in kept.items()}
    if not one:
        nodes = {name: acc[name].stats(method, trace[name]) for name in order}
    g = graph.copy()
    g.meta["calibration"] = {"method": method, "percentile": p if method == "percentile" else None,
                             "samples": n, "steps": t_len, "nodes": nodes}
    ctx.info["calib_trace"] = trace
    ctx.info["calib_x"] = x[: plan.keep]
    ctx.info["calib_outputs"] = {k: np.concatenate(v) for k, v in outputs.items()}
    ctx.info["calib_mode_peak"] = mode_peak
    ctx.note(NAME, method=method, samples=n, steps=t_len)
    if n < asked:
        ctx.note(NAME, samples_asked=asked)
    if plan.keep < n:
        ctx.note(NAME, traced_samples=plan.keep, chunk=plan.chunk)
    if plan.steps < t_len:
        ctx.note(NAME, chunk_steps=plan.steps)
    return g


# -- bounded memory --------------------------------------------------------------------------------------------

#: bytes of float32 traces kept for the quantiser (LUT error, SSM state-width search, saturation counts)
TRACE_BYTES = 256 * 2**20
#: bytes the float interpreter may hold for one chunk of samples (float64 traces of every node, and working copies)
CHUNK_BYTES = 1024 * 2**20
#: the exact order statistics kept per tail for a percentile clip; beyond this the kept trace decides
_MAX_TAIL = 4_000_000


@dataclass(frozen=True)
class ChunkPlan:
    """How calibration runs: ``chunk`` samples per interpreter call, ``steps`` time steps per call (the sequence
    length, or fewer when one sequence does not fit: the interpreter carries its state between chunks of time),
    the first ``keep`` samples traced for the quantiser; ``bytes_per_sample`` of the float64 record of one sample
    (all nodes, all steps)."""

    chunk: int
    keep: int
    bytes_per_sample: int
    steps: int = 0


#: node-output values x steps x samples the float interpreter computes at most to calibrate (about 15 s on one
#: core); a large model is calibrated on fewer sequences, never fewer than MIN_SAMPLES
CALIB_WORK = 3e8
MIN_SAMPLES = 8


def work_samples(graph: Graph, n: int, t_len: int) -> int:
    """Calibration sequences used out of ``n``: at most CALIB_WORK / (T x sum of node output sizes), at least
    MIN_SAMPLES (or ``n`` if fewer). Small models use every sequence."""
    width = sum(_out_size(graph, m) for m in graph.order())
    return int(min(n, max(MIN_SAMPLES, CALIB_WORK // max(1, width * t_len))))


def _out_size(graph: Graph, name: str) -> int:
    return int(graph.node(name).out_size())


def chunk_plan(graph: Graph, n: int, t_len: int, budget: int | None = None) -> ChunkPlan:
    """Samples and steps per chunk and samples traced, so that memory stays within ``budget`` bytes (default
    ``CHUNK_BYTES + TRACE_BYTES``) whatever ``n`` and T: one sample-step's record is (sum of node sizes) x 8
    bytes, twice that while the interpreter works; whole sequences when one fits, else one sequence in chunks of
    time. The trace kept is float32. Raises QuantizationError naming the sizes when one step does not fit, or
    (explicit ``budget``) one sequence of a graph that reads the future (bidirectional S4D) does not."""
    width = sum(_out_size(graph, m) for m in graph.order())
    per = max(1, t_len * width * 8)
    chunk_bytes, trace_bytes = CHUNK_BYTES, TRACE_BYTES
    if budget is not None:
        chunk_bytes, trace_bytes = int(budget * 0.6), int(budget * 0.4)
    keep = max(1, min(n, trace_bytes // (per // 2)))
    if 2 * per <= chunk_bytes:
        chunk = max(1, min(n, chunk_bytes // (2 * per)))
        return ChunkPlan(chunk=int(chunk), keep=int(keep), bytes_per_sample=int(per), steps=int(t_len))
    future = any(getattr(graph.node(m), "bidirectional", False) for m in graph.order())
    step = 2 * width * 8
    if future or step > chunk_bytes:
        if budget is None and future:  # no explicit budget: one whole sequence per chunk at least
            return ChunkPlan(chunk=1, keep=int(keep), bytes_per_sample=int(per), steps=int(t_len))
        what = (f"one sequence of {t_len} steps (a bidirectional layer reads all of it)" if future else "one step")
        need = 2 * per if future else step
        raise QuantizationError(
            f"calibration: {what} through {width:,} node outputs needs {need / 2**20:,.2f} MiB, over the "
            f"{chunk_bytes / 2**20:,.2f} MiB allowed for a chunk; raise --max-memory or calibrate on shorter "
            f"sequences")
    steps = max(1, min(t_len, chunk_bytes // step))
    return ChunkPlan(chunk=1, keep=int(keep), bytes_per_sample=int(per), steps=int(steps))


class _Stream:
    """Running min / max and the extreme order statistics a percentile clip needs, over chunks of one node's
    values (``total`` values in all). np.percentile's linear rule reads the order statistics at
    (total - 1) q and the next one; keeping the ``k`` largest and smallest values seen, k just above
    (total - 1)(1 - q) + 2, gives exactly the same number without holding every value."""

    def __init__(self, total: int, p: float) -> None:
        self.total, self.p = int(total), float(p)
        q = max(p, 100.0 - p) / 100.0
        self.k = math.ceil((self.total - 1) * (1.0 - q)) + 2
        self.lo = self.hi = None  # type: np.ndarray | None
        self.vmin, self.vmax = math.inf, -math.inf
        self.seen = 0

    def add(self, v: np.ndarray) -> None:
        flat = np.asarray(v, np.float64).ravel()
        self.seen += flat.size
        if not flat.size:
            return
        self.vmin, self.vmax = min(self.vmin, float(flat.min())), max(self.vmax, float(flat.max()))
        if self.k > _MAX_TAIL:
            return
        # only values beyond the current k-th largest (smallest) can enter a tail: one comparison per value; a
        # full tail that gains nothing stays as it is
        hi = flat if self.hi is None or self.hi.size < self.k else flat[flat > self.hi.min()]
        lo = flat if self.lo is None or self.lo.size < self.k else flat[flat < self.lo.max()]
        if self.hi is None or hi.size:  # the first chunk is the caller's trace: partitioned in a copy
            self.hi = _top(hi if self.hi is None else np.concatenate([self.hi, hi]), self.k, own=self.hi is not None)
        if self.lo is None or lo.size:
            self.lo = -_top(-(lo if self.lo is None else np.concatenate([self.lo, lo])), self.k, own=True)

    def stats(self, method: str, kept: np.ndarray) -> dict[str, float]:
        """The node's calibration record; ``kept``: the traced samples (they decide an mse clip)."""
        if method == "mse" or (method == "percentile" and self.k > _MAX_TAIL):
            out = _stats(kept, method, self.p)  # the traced samples decide the clip
        else:
            out = {"lo": self._percentile(100.0 - self.p), "hi": self._percentile(self.p)} \
                if method == "percentile" else {}
        out.update(min=self.vmin, max=self.vmax, absmax=max(abs(self.vmin), abs(self.vmax)))
        if method == "percentile":
            out.update(lo=min(out["lo"], 0.0), hi=max(out["hi"], 0.0))
        elif method == "mse":
            out.update(lo=max(self.vmin, out["lo"]), hi=min(self.vmax, out["hi"]))
        else:
            out.update(lo=self.vmin, hi=self.vmax)
        out["clip"] = max(abs(out["lo"]), abs(out["hi"]))
        return out

    def _percentile(self, p: float) -> float:
        """np.percentile(all values, p) (method 'linear') from the kept tails."""
        n = self.total
        q = np.true_divide(p, 100)
        virtual = (n - 1) * q  # numpy 1.26, method 'linear'
        prev = int(np.floor(virtual))
        gamma = float(virtual - prev)
        prev = min(max(prev, 0), n - 1)
        nxt = min(prev + 1, n - 1)
        a, b = self._order(prev), self._order(nxt)
        diff = b - a
        return float(b - diff * (1 - gamma)) if gamma >= 0.5 else float(a + diff * gamma)

    def _order(self, i: int) -> float:
        """The i-th smallest value (0-based) of all values, from the kept tails."""
        lo, hi = np.sort(self.lo), np.sort(self.hi)
        if i < lo.size:
            return float(lo[i])
        j = i - (self.total - hi.size)
        if 0 <= j < hi.size:
            return float(hi[j])
        raise AssertionError("percentile outside the kept tails")  # k is chosen so that this cannot happen


def _top(a: np.ndarray, k: int, own: bool = False) -> np.ndarray:
    """The k largest values of ``a`` (a copy, any order: np.partition's); ``own``: ``a`` is scratch, partitioned in
    place instead of in a copy (np.partition copies, then partitions the copy the same way)."""
    if a.size <= k:
        return a if own else a.copy()
    b = a if own else a.copy()
    b.partition(b.size - k)
    return b[b.size - k:].copy()  # a copy: the view would keep the whole partitioned chunk alive
