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

import numpy as np

from neurocompile.errors import QuantizationError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes.common import PassContext, limit

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


def run(graph: Graph, ctx: PassContext) -> Graph:
    from neurocompile.ir.interpret import interpret

    x = check_calibration_data(graph, ctx.calib_x)
    x = x[: ctx.options.calib_samples]
    res = interpret(graph, x, record=True)
    method, p = ctx.options.calibration, float(ctx.options.percentile)
    nodes = {}
    trace = {}
    for name in graph.order():
        v = res.trace[name]
        if isinstance(graph.node(name), fl.Input) and graph.node(name).tokens:
            v = v.astype(np.float64)
        trace[name] = v.astype(np.float32)
        nodes[name] = _stats(v, method, p)
    g = graph.copy()
    g.meta["calibration"] = {"method": method, "percentile": p if method == "percentile" else None,
                             "samples": int(x.shape[0]), "steps": int(x.shape[1]), "nodes": nodes}
    ctx.info["calib_trace"] = trace
    ctx.info["calib_x"] = x
    ctx.info["calib_outputs"] = res.outputs
    ctx.note(NAME, method=method, samples=int(x.shape[0]), steps=int(x.shape[1]))
    return g
