"""Fold: remove what the chip does not need to compute separately (float IR -> float IR, exact).

1. Identity removal: ``Activation('identity')`` nodes (dropout and other training remnants) and ``Affine``
   nodes that are exactly the identity map are removed; their inputs are wired to their consumers.
2. BatchNorm folding: ``Norm(kind='batch')`` is the per-channel affine map y = g x + c with
   g = w / sqrt(var + eps), c = b - mean g. It is folded, in this order of preference, into
   (a) the preceding ``Affine`` when the norm is its only consumer: W' = diag(g) W, b' = g b + c;
   (b) every following ``Affine`` when all consumers are Affines fed by the norm alone: W' = W diag(g), b' = b + W c;
   (c) every following ``S4D`` when c = 0 (an S4D has no bias input): B' = g B, D' = g D.
   Otherwise (e.g. a pre-norm on the residual stream, whose input also feeds the residual add) the norm is kept,
   rewritten as the equal diagonal ``Affine`` (one synapse per channel), which the quantiser handles like any
   dense layer.
3. Threshold folding: a neuron (``LIF``, ``RefractoryLIF``, or ``Heaviside`` with a non-zero threshold) whose
   only input is an ``S4D`` or ``Affine`` used by that neuron alone gets its per-channel threshold V_th divided
   into the producer (C, D, C2 of the S4D; rows of W and b of the Affine; and rho of a RefractoryLIF), and a
   threshold of 1. The neuron's dynamics are homogeneous in (x, V_th, rho) (reset to 0 or by V_th), so the spikes
   are unchanged, and every channel then fires at the same level: one per-tensor integer scale serves all
   channels equally well (otherwise a channel with a small V_th gets few integer levels below its threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.traits import SPIKE_BINARY, field_meta
from neurocompile.passes.common import PassContext, rewire

NAME = "fold"


def run(graph: Graph, ctx: PassContext) -> Graph:
    g = graph.copy()
    removed = _remove_identities(g)
    norms = _fold_batchnorms(g)
    thresholds = _fold_thresholds(g)
    ctx.note(NAME, removed_identities=removed, batchnorm=norms, folded_thresholds=thresholds)
    return g


# ------------------------------------------------------------------------------------------------ identities
def _affine_identity(n: fl.Affine) -> bool:
    if n.weight.ndim == 2 and n.weight.shape[0] == n.weight.shape[1]:
        return bool(np.array_equal(n.weight, np.eye(n.weight.shape[0], dtype=n.weight.dtype))
                    and not np.any(n.bias))
    return False


#: node type -> whether a node of it is exactly the identity map (types absent never are).
IDENTITY: dict[type, Callable[[Any], bool]] = {
    fl.Activation: lambda n: n.fn == "identity",
    fl.Affine: _affine_identity,
}


def _is_identity(n: fl.Node) -> bool:
    test = IDENTITY.get(type(n))
    return bool(test is not None and test(n))


def _bypass(g: Graph, name: str) -> bool:
    """Wire ``name``'s inputs straight to its consumers and remove it; False when that is not possible."""
    preds = [(p, g.edge(p, name)) for p in g.preds(name)]
    succs = [(s, g.edge(name, s)) for s in g.succs(name)]
    if not preds or name in g.inputs:
        return False
    if name in g.outputs and len(preds) != 1:
        return False
    for p, pe in preds:
        for s, se in succs:
            if g.g.has_edge(p, s) or pe.get("delay", 0):
                return False  # one edge per node pair: keep the node
    for s, se in succs:
        g.g.remove_edge(name, s)
        for p, _ in preds:
            g.connect(p, s, se["port"], se.get("delay", 0))
    if name in g.outputs:
        g.outputs = [preds[0][0] if n == name else n for n in g.outputs]
    g.remove(name)
    return True


def _remove_identities(g: Graph) -> list[str]:
    done = []
    for name in list(g.order()):
        if _is_identity(g.node(name)) and _bypass(g, name):
            done.append(name)
    return done


# ------------------------------------------------------------------------------------------------ batchnorm
def _norm_affine(n: fl.Norm) -> tuple[np.ndarray, np.ndarray]:
    g = n.weight.astype(np.float64) / np.sqrt(n.var.astype(np.float64) + n.eps)
    c = n.bias.astype(np.float64) - n.mean.astype(np.float64) * g
    return g, c


def _only_consumer(g: Graph, src: str, dst: str) -> bool:
    return g.succs(src) == [dst] and src not in g.outputs


def _fold_batchnorms(g: Graph) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in list(g.order()):
        n = g.node(name)
        if not (isinstance(n, fl.Norm) and n.kind == "batch"):
            continue
        gain, c = _norm_affine(n)
        preds = g.preds(name)
        succs = g.succs(name)
        # (a) into the preceding Affine
        if len(preds) == 1 and isinstance(g.node(preds[0]), fl.Affine) and _only_consumer(g, preds[0], name):
            a = g.node(preds[0])
            a.weight = (gain[:, None] * a.weight.astype(np.float64)).astype(np.float32)
            a.bias = (gain * a.bias.astype(np.float64) + c).astype(np.float32)
            g.g.remove_edge(preds[0], name)
            rewire(g, name, preds[0])
            g.remove(name)
            out[name] = f"folded into preceding Affine '{preds[0]}'"
            continue
        if len(preds) == 1 and succs and name not in g.outputs and all(len(g.preds(s)) == 1 for s in succs):
            kinds = {type(g.node(s)) for s in succs}
            # (b) into every following Affine
            if kinds == {fl.Affine}:
                for s in succs:
                    a = g.node(s)
                    w = a.weight.astype(np.float64)
                    a.bias = (a.bias.astype(np.float64) + w @ c).astype(np.float32)
                    a.weight = (w * gain[None, :]).astype(np.float32)
                _bypass(g, name)
                out[name] = f"folded into following Affine(s) {succs}"
                continue
            # (c) into every following S4D (needs c = 0: an S4D has no bias input)
            if kinds == {fl.S4D} and np.all(np.abs(c) <= 1e-12 * max(1.0, float(np.abs(gain).max()))):
                for s in succs:
                    s4 = g.node(s)
                    s4.B = (s4.B.astype(np.complex128) * gain[:, None]).astype(np.complex64)
                    s4.D = (s4.D.astype(np.float64) * gain).astype(np.float32)
                _bypass(g, name)
                out[name] = f"folded into following S4D(s) {succs}"
                continue
        g.replace(name, fl.Affine(weight=np.diag(gain).astype(np.float32), bias=c.astype(np.float32)))
        out[name] = "kept as a diagonal Affine (no legal fold)"
    return out


# ------------------------------------------------------------------------------------------------ thresholds
def _fold_thresholds(g: Graph) -> list[str]:
    done = []
    for name in list(g.order()):
        n = g.node(name)
        if n.SPIKES != SPIKE_BINARY:  # the neurons, whose dynamics are homogeneous in (x, vth)
            continue
        vth = n.vth.astype(np.float64)  # type: ignore[attr-defined]
        if not np.any(vth):  # a zero threshold (Heaviside's default) has nothing to fold
            continue
        if not (vth.size and np.all(vth > 0) and np.all(np.isfinite(vth))) or np.all(vth == 1.0):
            continue
        preds = g.preds(name)
        if len(preds) != 1 or not _only_consumer(g, preds[0], name):
            continue
        p = g.node(preds[0])
        divide = DIVIDE_OUTPUT.get(type(p))
        if divide is None:
            continue
        divide(p, vth)
        for f, meta in field_meta(type(n)).items():
            if f != "vth" and meta.get("input_units"):
                setattr(n, f, (getattr(n, f).astype(np.float64) / vth).astype(np.float32))
        n.vth = np.ones_like(n.vth, dtype=np.float32)  # type: ignore[attr-defined]
        done.append(name)
    return done


def _divide_s4d(p: fl.S4D, k: np.ndarray) -> None:
    p.C = (p.C.astype(np.complex128) / k[:, None]).astype(np.complex64)
    if p.C2.size:
        p.C2 = (p.C2.astype(np.complex128) / k[:, None]).astype(np.complex64)
    p.D = (p.D.astype(np.float64) / k).astype(np.float32)


def _divide_affine(p: fl.Affine, k: np.ndarray) -> None:
    p.weight = (p.weight.astype(np.float64) / k[:, None]).astype(np.float32)
    p.bias = (p.bias.astype(np.float64) / k).astype(np.float32)


#: producer type -> divide its output channels by k [H] in place (types absent cannot take a folded threshold).
DIVIDE_OUTPUT: dict[type, Callable[[Any, np.ndarray], None]] = {fl.S4D: _divide_s4d, fl.Affine: _divide_affine}
