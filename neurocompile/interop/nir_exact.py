"""Exact import of integer-weight NIR spiking networks straight into a hardware (integer) graph.

:func:`from_nir_exact` skips the float quantiser: when every weight is an integer (after NIR's input scaling
``dt R / tau``) the network runs on Loihi as it is, so nothing is re-quantised:

- **weights kept**: an Affine / Linear becomes a ``QDense`` with the same integer weights, shifted left by
  ``STATE_SHIFT`` (6) bits into the membrane's units, as Loihi aligns a synaptic input to its 1/64-resolution
  membrane (Davies et al. 2018; SANA-FE's Loihi model truncates the membrane to 1/64 the same way);
- **threshold in the neuron**: ``vth_int = floor(v_threshold * 64)``; with the membrane a multiple of 1/64,
  ``v > v_threshold`` exactly when ``v_int > vth_int``;
- **leak**: the per-step retention ``1 - dt/tau`` becomes a 12-bit decay (unity 4096), truncated toward zero
  after the multiply as Loihi does; a retention that is not a multiple of 1/4096 is refused (not exact);
- **state range sized from the network**: the membrane width holds the largest reachable magnitude: the
  threshold plus the largest input over the leak's memory ``1 / (1 - retention)`` steps, or over
  ``horizon_steps`` steps without a leak (nothing bounds an inhibited membrane from below), so no saturation is
  introduced where the source model has none;
- **synaptic delay**: NIR's edges are instantaneous (a spike reaches the next layer in the same step).
  Loihi delivers a spike one step later per layer; ``synaptic_delay=1`` (the default, Loihi's timing) gives
  every Affine one step of delay, ``synaptic_delay=0`` keeps NIR's semantics;
- **reset**: NIR's LIF / IF reset to ``v_reset`` = 0 (hard). A node's metadata ``{"reset": "subtract"}`` or
  ``{"reset": "none"}`` selects the soft reset (v - threshold) or no reset, which NIR 1.0 cannot express;
- **CubaLIF**: the synaptic current ``I`` is a ``QModeBank`` with one real mode per neuron (retention
  ``1 - dt/tau_syn``, exact when it is a multiple of 1/4096) feeding the LIF.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurocompile.errors import NeurocompileError, UnsupportedOpError
from neurocompile.interop.nir import _vec as nir_vec
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph

__all__ = ["STATE_SHIFT", "from_nir_exact"]

#: Bits a synaptic input is shifted left into the membrane's units (Loihi: the membrane has 1/64 resolution).
STATE_SHIFT = 6
_ONE = 4096  # unity of a 12-bit decay


def _vec(name: str, v: Any, size: int) -> np.ndarray:
    """A per-neuron parameter as ``size`` float64 values (a scalar is broadcast), as the float import reads it."""
    return nir_vec(name, "exact import", v, size)


def _retention(name: str, what: str, dt: float, tau: Any, size: int) -> int:
    a = 1.0 - dt / _vec(name, tau, size)
    if not np.allclose(a, a[0], rtol=0, atol=1e-12):
        raise UnsupportedOpError(f"NIR node '{name}': {what} differs between neurons; split the population")
    q = a[0] * _ONE
    if not 0 <= q <= _ONE or abs(q - round(q)) > 1e-6:
        raise UnsupportedOpError(f"NIR node '{name}': per-step retention 1 - dt/{what} = {a[0]!r} is not a multiple "
                                 f"of 1/{_ONE} in [0, 1] (dt = {dt}); exact import needs a 12-bit decay")
    return int(round(q))


def _int_matrix(name: str, w: np.ndarray) -> np.ndarray:
    r = np.rint(w)
    if not np.allclose(w, r, rtol=0, atol=1e-6):
        bad = float(np.abs(w - r).max())
        raise UnsupportedOpError(f"NIR node '{name}': weights are not integers (off by up to {bad:.3g}); exact "
                                 f"import needs integer weights (use from_nir and the quantiser instead)")
    return r.astype(np.int64)


def _bits(m: float) -> int:
    """Signed width holding +-m."""
    return max(2, int(math.ceil(math.log2(m + 1))) + 1)


def from_nir_exact(nir_graph: Any, dt: float | None = None, synaptic_delay: int = 1, horizon_steps: int = 1 << 20,
                   name: str = "nir") -> Graph:
    """Import a feed-forward NIR graph of Input, Affine / Linear, IF / LIF / CubaLIF and Output nodes with integer
    weights as a hardware graph, exactly (module docstring). ``dt`` defaults to the graph's ``metadata['dt']``
    (else 1e-4, snnTorch's). Raises :class:`UnsupportedOpError` naming the node when it is not exact."""
    import nir

    meta = getattr(nir_graph, "metadata", None) or {}
    dt = float(dt if dt is not None else meta.get("dt", 1e-4))
    if synaptic_delay not in (0, 1):
        raise NeurocompileError(f"from_nir_exact: synaptic_delay must be 0 (NIR) or 1 (Loihi), got {synaptic_delay}")
    g = Graph(str(meta.get("name", name)))
    preds: dict[str, list[str]] = {}
    for s, d in nir_graph.edges:
        preds.setdefault(d, []).append(s)
    order = _topo(nir_graph)
    made: dict[str, str] = {}
    in_bound: dict[str, float] = {}  # per made node: largest |output| (dense: largest |sum| in membrane units)
    outputs: list[str] = []
    for nname in order:
        node = nir_graph.nodes[nname]
        kind = type(node).__name__
        src = [made[p] for p in preds.get(nname, []) if p in made]
        if isinstance(node, nir.Input):
            size = int(np.prod(node.input_type["input"]))
            made[nname] = g.add(nname, hw.QInput(size=size, out_scale=1.0, out_bits=2))  # spikes {0, 1}
            g.inputs.append(nname)
            in_bound[nname] = 1.0
        elif isinstance(node, nir.Output):
            outputs.extend(src)
        elif isinstance(node, (nir.Affine, nir.Linear)):
            w = _int_matrix(nname, np.asarray(node.weight, np.float64))
            b = np.zeros(w.shape[0]) if isinstance(node, nir.Linear) else np.asarray(node.bias, np.float64)
            if np.any(b != 0):
                raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): a bias is not supported by exact import "
                                         f"(give it to the neuron as v_leak instead)")
            if len(src) != 1:
                raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): needs exactly one input, got {len(src)}")
            peak = float(np.abs(w).sum(axis=1).max(initial=0)) * in_bound[src[0]] * (1 << STATE_SHIFT)
            d = hw.QDense(weight=w, bias=np.zeros(w.shape[0], np.int64), shift=np.full(w.shape[0], -STATE_SHIFT),
                          weight_bits=_bits(float(np.abs(w).max(initial=1))), rounding="floor",
                          delay=synaptic_delay, out_bits=_bits(peak))
            made[nname] = g.add(nname, d, src[0])
            in_bound[nname] = peak
        elif isinstance(node, (nir.IF, nir.LIF, nir.CubaLIF)):
            made[nname], in_bound[nname] = _neuron(g, nir, nname, node, src, dt, in_bound, horizon_steps)
        else:
            raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): exact import supports Input, Affine, Linear, IF, "
                                     f"LIF, CubaLIF and Output")
    g.outputs.extend(dict.fromkeys(outputs))
    if not g.inputs:
        raise UnsupportedOpError("the NIR graph has no Input node")
    g.meta["source"] = {"format": "nir", "dt": dt, "exact": True, "synaptic_delay": synaptic_delay}
    return g


def _topo(ng: Any) -> list[str]:
    indeg = {n: 0 for n in ng.nodes}
    succ: dict[str, list[str]] = {n: [] for n in ng.nodes}
    for s, d in ng.edges:
        indeg[d] += 1
        succ[s].append(d)
    ready = [n for n in ng.nodes if indeg[n] == 0]
    out: list[str] = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for d in succ[n]:
            indeg[d] -= 1
            if indeg[d] == 0:
                ready.append(d)
    if len(out) != len(indeg):
        raise UnsupportedOpError("the NIR graph is recurrent; exact import supports feed-forward graphs")
    return out


def _neuron(g: Graph, nir: Any, nname: str, node: Any, src: list[str], dt: float, in_bound: dict[str, float],
            horizon: int) -> tuple[str, float]:
    kind = type(node).__name__
    size = int(np.asarray(node.v_threshold).size)
    if len(src) != 1:
        raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): needs exactly one input, got {len(src)}")
    if np.any(_vec(nname, getattr(node, "v_reset", 0.0), size) != 0):
        raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): v_reset != 0; Loihi resets to zero")
    r = _vec(nname, node.r, size)
    if isinstance(node, nir.IF):
        decay, k = _ONE, dt * r
    else:
        tau = node.tau if isinstance(node, nir.LIF) else node.tau_mem
        decay = _retention(nname, "tau_mem" if isinstance(node, nir.CubaLIF) else "tau", dt, tau, size)
        k = dt * r / _vec(nname, tau, size)
        if np.any(_vec(nname, node.v_leak, size) != 0):
            raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): v_leak != 0 is not supported by exact import")
    if not np.allclose(k, 1.0, rtol=0, atol=1e-9):
        raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): input scale dt*R/tau = {float(k[0])!r} is not 1; "
                                 f"exact import keeps the weights as they are (scale them in the Affine)")
    md = dict(getattr(node, "metadata", None) or {})
    reset = {"zero": "zero", "hard": "zero", "subtract": "subtract", "soft": "subtract", "none": "none"}.get(
        str(md.get("reset", "zero")))
    if reset is None:
        raise UnsupportedOpError(f"NIR node '{nname}' ({kind}): metadata reset {md.get('reset')!r} is not one of "
                                 f"zero, subtract, none")
    pre, bound_in = src[0], in_bound[src[0]]
    if isinstance(node, nir.CubaLIF):
        a_syn = _retention(nname, "tau_syn", dt, node.tau_syn, size)
        w_in = _vec(nname, getattr(node, "w_in", 1.0), size) * (1.0 - a_syn / _ONE)
        w_int = _int_matrix(nname + ".w_in", w_in.reshape(-1, 1)).reshape(-1)
        i_peak = bound_in * float(np.abs(w_int).max(initial=1)) / max(1.0 - a_syn / _ONE, 1.0 / _ONE)
        bank = hw.QModeBank(a_re=np.full((size, 1), a_syn), a_im=np.zeros((size, 1), np.int64),
                            b_re=w_int.reshape(size, 1), b_im=np.zeros((size, 1), np.int64),
                            b_shift=np.zeros(size, np.int64), coef_frac_bits=12,
                            weight_bits=_bits(float(np.abs(w_int).max(initial=1))), out_bits=_bits(i_peak))
        cur = g.add(f"{nname}.syn", bank, pre)
        sel = np.zeros((size, 2 * size), np.int64)
        sel[np.arange(size), 2 * np.arange(size)] = 1  # the real part of each one-mode bank is the current
        pre = g.add(f"{nname}.current", hw.QDense(weight=sel, bias=np.zeros(size, np.int64),
                                                  shift=np.zeros(size, np.int64), weight_bits=2, rounding="floor",
                                                  out_bits=_bits(i_peak)), cur)
        bound_in = i_peak
    vth = np.floor(_vec(nname, node.v_threshold, size) * (1 << STATE_SHIFT)).astype(np.int64)
    top = float(np.abs(vth).max(initial=0))
    if decay == _ONE:  # no leak: nothing bounds the membrane below (no reverse threshold) but the run length
        peak = top + bound_in * horizon
    elif decay < _ONE:
        peak = top + bound_in / (1.0 - decay / _ONE)
    else:
        peak = top + bound_in
    lif = hw.QLIF(decay=decay, vth=vth, coef_frac_bits=12, state_bits=min(62, _bits(peak)), reset=reset,
                  compare=">")
    return g.add(nname, lif, pre), 1.0
