"""Compare a traced IR graph with the PyTorch model it came from: logits and spikes, with ties counted.

The float interpreter works in float64, the model in float32, so a spike decision can differ where the
membrane (or, for Heaviside and Ternarize, the input) lies within float32 rounding of the threshold: a *tie*.
After a tie flips a spike, that sample's later values legitimately diverge. :func:`compare_to_model` therefore
looks, per sample, for the *first* spike mismatch (in layer order, then time): it must be a tie (margin below
``tie_tol`` relative to the threshold scale), otherwise it is a real disagreement. Logits are compared on the
samples without any spike mismatch, relative to the largest |logit|.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neurocompile.frontend.load import LoadedModel, wrap_module
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret
from neurocompile.ir.registry import Registry

__all__ = ["Comparison", "compare_to_model"]


@dataclass
class Comparison:
    """Result of :func:`compare_to_model` (JSON-able through :meth:`as_dict`)."""

    samples: int
    logit_scale: float  # max |logit| of the model over the compared samples
    max_abs_diff: float  # max |logit difference| over samples without spike mismatches
    rel_diff: float  # max_abs_diff / logit_scale
    spike_mismatches: dict[str, int] = field(default_factory=dict)  # per spiking node, all mismatches
    tie_samples: int = 0  # samples whose first mismatch is a threshold tie (excluded from rel_diff)
    real_mismatches: int = 0  # samples whose first mismatch is NOT a tie: a compiler bug
    spikes_compared: int = 0  # number of spike decisions compared

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


_NO_DECISION = "makes no spike decision: compared through the logits"
#: node class -> margin(node, name, interpreter result, input trace) [B, T, H]: |distance to threshold| / scale
MARGIN: Registry = Registry("spike-margin", family="float", exempt={
    n: _NO_DECISION for n in ("Input", "Embedding", "Affine", "S4D", "ModeBank", "ModeReadout", "GLU", "Mul",
                              "Activation", "Norm", "Add", "MeanPool")})


@MARGIN.register(fl.LIF, fl.RefractoryLIF)
def _membrane_margin(node: fl.Node, name: str, res, src_trace: np.ndarray) -> np.ndarray:
    vth = node.vth.astype(np.float64)
    return np.abs(res.state[name] - vth) / np.maximum(np.abs(vth), 1e-12)


@MARGIN.register(fl.Heaviside)
def _input_margin(node: fl.Heaviside, name: str, res, src_trace: np.ndarray) -> np.ndarray:
    return np.abs(src_trace - node.vth.astype(np.float64)) / np.maximum(np.abs(src_trace).max(), 1e-12)


@MARGIN.register(fl.Ternarize)
def _ternary_margin(node: fl.Ternarize, name: str, res, src_trace: np.ndarray) -> np.ndarray:
    mag = np.abs(src_trace)
    peak = mag.max(axis=-1, keepdims=True)
    return np.abs(mag - node.threshold * peak) / np.maximum(peak, 1e-12)


def compare_to_model(model: Any, graph: Graph, x: Any, tie_tol: float = 1e-4, batch_size: int = 256) -> Comparison:
    """Run the model (``forward(x, return_trace=True)`` when it has it) and the IR interpreter on ``x``.

    ``x``: [B, T, d] floats or [B, T] token ids (tensor or array). Spikes are compared for every
    ``block{i}.spikes`` entry of ``graph.meta['trace_map']`` when the model returns a trace.
    """
    loaded = model if isinstance(model, LoadedModel) else wrap_module(model)
    xt = torch.as_tensor(np.asarray(x))
    trace_map = graph.meta.get("trace_map", {})
    spike_keys = sorted((k for k in trace_map if k.endswith(".spikes")), key=lambda k: int(k[5:].split(".")[0]))
    logits_ref, logits_ir, mism, first_kind = [], [], {trace_map[k]: 0 for k in spike_keys}, []
    compared = 0
    for start in range(0, xt.shape[0], batch_size):
        xb = xt[start:start + batch_size]
        with torch.no_grad():
            try:
                out = loaded.module(xb, return_trace=True)
                ref, tr = out
            except TypeError:
                ref, tr = loaded.module(xb), None
        xin = xb.numpy()
        inp = graph.node(graph.inputs[0])
        if xin.ndim == 2 and not inp.tokens:
            xin = xin[..., None]
        res = interpret(graph, xin, record=True, record_state=True)
        logits_ref.append(ref.detach().double().numpy())
        logits_ir.append(res.logits)
        kinds = np.zeros(xb.shape[0], np.int8)  # 0 clean, 1 tie first, 2 real mismatch first
        if tr is not None:
            decided = np.zeros(xb.shape[0], bool)
            for k in spike_keys:
                name = trace_map[k]
                node = graph.node(name)
                got = res.trace[name]
                want = tr[k].detach().double().numpy()
                diff = got != want
                compared += diff.size
                mism[name] += int(diff.sum())
                if not diff.any():
                    continue
                src = graph.preds(name)[0]
                margin = MARGIN[node](node, name, res, res.trace[src])
                for b in np.nonzero(diff.any(axis=(1, 2)) & ~decided)[0]:
                    t_idx, c_idx = np.argwhere(diff[b])[0]
                    kinds[b] = 1 if margin[b, t_idx, c_idx] <= tie_tol else 2
                    decided[b] = True
        first_kind.append(kinds)
    ref_all, ir_all, kinds_all = np.concatenate(logits_ref), np.concatenate(logits_ir), np.concatenate(first_kind)
    clean = kinds_all == 0
    scale = float(np.abs(ref_all).max()) if ref_all.size else 0.0
    err = float(np.abs(ref_all[clean] - ir_all[clean].reshape(ref_all[clean].shape)).max()) if clean.any() else 0.0
    return Comparison(
        samples=int(ref_all.shape[0]), logit_scale=scale, max_abs_diff=err, rel_diff=err / max(scale, 1e-12),
        spike_mismatches=mism, tie_samples=int((kinds_all == 1).sum()), real_mismatches=int((kinds_all == 2).sum()),
        spikes_compared=compared,
    )
