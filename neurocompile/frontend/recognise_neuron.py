"""Identify a spiking module by its behaviour: probe it, fit the IR's neuron templates, check the fit.

``run(x)`` drives the module with a designed input x [B, T, H] (in the units the module receives) and returns its
spikes [B, T, H]. Every search below is a per-channel bisection on an input amplitude, so only spike times are
observed (no membrane is read):

1. threshold: a single pulse a at t=0 fires iff a >= V (V per channel);
2. leak: 0.5 V at t=0 then b at t=1 fires iff tau * 0.5 V + b >= V, so tau = (V - b*) / (0.5 V);
3. reset: 1.5 V at t=0 (a spike) then b at t=1; the threshold b* separates reset to zero (b* = V), subtract
   at once (b* = V - 0.5 tau V, ``LIF(reset='subtract')``) and subtract on the next step with a refractory
   term (b* = 2V - 1.5 tau V + rho, ``RefractoryLIF``; rho = 0 is snnTorch's subtract reset);
4. refractory decay: as 3 with b at t=2 gives lambda.

Each fitted value is snapped to a tensor or literal of the module when one matches to 1e-4 relative (V = exp(p),
V = p, tau = a float literal of the module's ops or 1 - 1/literal), so that a model gives the same IR whatever its class names.
The candidates are then run on random sequences next to the module; a fit is accepted when no spike differs
outside threshold ties (|v - V| < 1e-5 V). A network-approximated neuron (SDN) is accepted with the measured
agreement, which is recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from neurocompile.errors import UnsupportedOpError
from neurocompile.ir import nodes as fl

__all__ = ["NeuronFit", "fit_neuron", "simulate"]

Run = Callable[[np.ndarray], np.ndarray]


@dataclass
class NeuronFit:
    node: fl.Node
    template: str
    agreement: float  # fraction of equal spikes on the check probe
    mismatches: int  # spikes that differ outside ties
    probes: int  # module evaluations used
    notes: list[str] = field(default_factory=list)


def simulate(node: fl.Node, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spikes and the distance of the pre-reset membrane to threshold, for x [B, T, H] (float64).

    The IR's float interpreter is the one definition of each template's dynamics, so it runs the candidate here.
    """
    from neurocompile.ir.graph import Graph
    from neurocompile.ir.interpret import interpret

    g = Graph("probe")
    g.add("x", fl.Input(size=x.shape[2]))
    g.add("n", node, "x")
    g.inputs, g.outputs = ["x"], ["n"]
    res = interpret(g, x, record_state=True)
    pre = (res.state or {}).get("n", x)  # a stateless neuron (Heaviside) compares its input itself
    return res.outputs["n"], np.abs(pre - np.asarray(node.vth, np.float64))


class _Prober:
    def __init__(self, run: Run, shape: tuple[int, int, int]) -> None:
        self.run, self.shape, self.calls = run, shape, 0

    def fires(self, pulses: list[tuple[int, np.ndarray]], at: int) -> np.ndarray:
        x = np.zeros(self.shape)
        for t, a in pulses:
            x[:, t, :] = a
        self.calls += 1
        return self.run(x)[0, at, :] > 0.5

    def bisect(self, make: Callable[[np.ndarray], list[tuple[int, np.ndarray]]], at: int, lo: np.ndarray,
               hi: np.ndarray, what: str, iters: int = 40) -> np.ndarray:
        """Per channel, the smallest amplitude that fires at step ``at`` (lo must not fire, hi must)."""
        lo, hi = lo.astype(np.float64).copy(), hi.astype(np.float64).copy()
        for _ in range(60):
            f = self.fires(make(hi), at)
            if f.all():
                break
            hi = np.where(f, hi, hi * 2 + 1)
        else:
            raise _NoFit(f"no spike for any {what} amplitude up to {float(hi.max()):.3g}")
        if self.fires(make(lo), at).any():
            raise _NoFit(f"spikes already at the lowest {what} amplitude {float(lo.min()):.3g}")
        for _ in range(iters):
            mid = (lo + hi) / 2
            f = self.fires(make(mid), at)
            hi, lo = np.where(f, mid, hi), np.where(f, lo, mid)
        return hi


class _NoFit(Exception):
    pass


def _snap(value: np.ndarray, options: list[tuple[str, np.ndarray]], tol: float = 1e-4) -> tuple[np.ndarray, str]:
    for label, cand in options:
        c = np.broadcast_to(np.asarray(cand, np.float64).reshape(-1) if np.size(cand) != 1 else
                            np.asarray(cand, np.float64).reshape(()), value.shape)
        if np.all(np.abs(c - value) <= tol * np.maximum(np.abs(value), 1e-3)):
            return np.asarray(c, np.float64).copy(), label
    return value, "fitted"


def _scalar(values: np.ndarray, literals: list[float], what: str, tol: float = 1e-4) -> tuple[float, str]:
    v = float(np.median(values))
    if np.ptp(values) > max(1e-3, 1e-3 * abs(v), 4 * tol):
        raise _NoFit(f"{what} differs between channels ({values.min():.4g}..{values.max():.4g}); the IR's neuron "
                     f"templates have one {what} per layer")
    for lit in literals:
        if abs(lit - v) <= tol * max(abs(v), 1e-3):
            return float(lit), "literal"
    return v, "fitted"


def fit_neuron(run: Run, shape: tuple[int, int, int], path: str, tensors: dict[str, np.ndarray],
               literals: list[float], approximate: bool = False, seed: int = 0) -> NeuronFit:
    """Fit LIF (zero / subtract reset), RefractoryLIF or Heaviside to the module behind ``run``.

    ``tensors``: the module's own per-channel values ([H]; label -> values, e.g. ``exp(ln_vth)``) used to snap
    thresholds and refractory magnitudes; ``literals``: float
    constants of its ops; ``approximate``: accept the best template with its measured agreement (SDN).
    """
    pr = _Prober(run, shape)
    H = shape[2]
    zero, one = np.zeros(H), np.ones(H)
    try:
        tol = 2e-2 if approximate else 1e-4  # a network-approximated neuron only approximates its threshold
        V = pr.bisect(lambda a: [(0, a)], 0, zero, one, "pulse")
        Vopts = list(tensors.items()) + [(f"literal {lit:g}", np.float64(lit)) for lit in literals if lit > 0]
        V_s, v_src = _snap(V, Vopts, tol)
        b1 = pr.bisect(lambda b: [(0, 0.5 * V), (1, b)], 1, zero - 1e-9, V * 1.000001, "second-step")
        tau_ch = (V - b1) / (0.5 * V)
        if np.all(np.abs(tau_ch) < 1e-5):
            node: fl.Node = fl.Heaviside(vth=V_s.astype(np.float32), compare=">=")
            return _check(pr, node, "Heaviside", approximate, seed, [f"threshold {v_src}"])
        # a decay is written as a literal or as a time constant tau_m (decay 1 - 1/tau_m, SpikingJelly's LIFNode)
        decays = literals + [1.0 - 1.0 / lit for lit in literals if lit > 1.0]
        tau, tau_src = _scalar(tau_ch, decays, "leak tau", tol)
        if tau_src == "fitted" and abs(round(tau * 4096) / 4096 - tau) <= 4e-6 * abs(tau):
            # float32 probes resolve a decay to ~1e-6: one this close to k/4096 is that fraction (1 - 0.875 = 0.125)
            tau, tau_src = round(tau * 4096) / 4096, "fitted, within float32 resolution of k/4096"
        if approximate and tau_src == "fitted" and abs(round(tau * 64) / 64 - tau) < 1e-2:
            tau, tau_src = round(tau * 64) / 64, "fitted, rounded to 1/64"
        b3 = pr.bisect(lambda b: [(0, 1.5 * V), (1, b)], 1, -4 * V - 1, 4 * V + 1, "after-spike")
        cands: list[tuple[str, fl.Node]] = []
        zero_err = np.abs(b3 - V).max() / V.max()
        sub_err = np.abs(b3 - (V - 0.5 * tau * V)).max() / V.max()
        rho = b3 - 2 * V + 1.5 * tau * V
        if zero_err < 1e-3:
            cands.append(("LIF(reset=zero)", fl.LIF(tau=tau, vth=V_s.astype(np.float32), reset="zero", compare=">=")))
        if sub_err < 1e-3:
            cands.append(("LIF(reset=subtract)", fl.LIF(tau=tau, vth=V_s.astype(np.float32), reset="subtract",
                                                        compare=">=")))
        if np.all(rho > -1e-4 * V):
            rho = np.maximum(rho, 0.0)
            lam = 0.0
            if np.any(rho > 1e-3 * V):
                v1 = 1.5 * tau * V - V - rho
                b4 = pr.bisect(lambda b: [(0, 1.5 * V), (2, b)], 2, -8 * V - 1, 8 * V + 1, "refractory")
                lam_ch = (b4 - V + tau * v1) / np.where(rho > 1e-3 * V, rho, 1.0)
                lam, _ = _scalar(lam_ch[rho > 1e-3 * V], literals, "refractory decay")
            ropts = list(tensors.items()) + [(f"V*{k}", V_s * t) for k, t in tensors.items() if k.startswith("exp(")]
            rho_s, _ = _snap(rho, ropts) if np.any(rho > 1e-3 * V) else (np.zeros(H), "zero")
            cands.append(("RefractoryLIF", fl.RefractoryLIF(tau=tau, lam=float(lam), vth=V_s.astype(np.float32),
                                                            rho=rho_s.astype(np.float32))))
        if approximate and not cands:
            cands.append(("LIF(reset=zero)", fl.LIF(tau=tau, vth=V_s.astype(np.float32), reset="zero", compare=">=")))
    except _NoFit as exc:
        raise UnsupportedOpError(f"module '{path}': a spiking module whose behaviour matches no IR neuron template "
                                 f"({exc}); supported: LIF (reset to zero or subtract), reset-refractory LIF, "
                                 f"Heaviside") from None
    if not cands:
        raise UnsupportedOpError(
            f"module '{path}': spikes after a spike need {float(np.median(b3 / V)):.4g} x threshold at the next step, "
            f"which no IR neuron template gives (reset to zero: 1, subtract: {1 - 0.5 * tau:.4g}, delayed subtract: "
            f"{2 - 1.5 * tau:.4g}); supported: LIF, reset-refractory LIF, Heaviside")
    notes = [f"threshold {v_src}", f"tau {tau_src} {tau:.6g}"]
    best = None
    for label, node in cands:
        fit = _check(pr, node, label, approximate, seed, notes)
        if fit.mismatches == 0 and not approximate:
            return fit
        if best is None or fit.agreement > best.agreement:
            best = fit
    assert best is not None
    if approximate:
        return best
    raise UnsupportedOpError(
        f"module '{path}': fitted {best.template} but {best.mismatches} spike(s) differ from the module on a random "
        f"probe (agreement {best.agreement:.5f}); its dynamics are not an IR neuron template")


def _check(pr: _Prober, node: fl.Node, label: str, approximate: bool, seed: int, notes: list[str]) -> NeuronFit:
    rng = np.random.default_rng(seed)
    B, T, H = pr.shape
    vth = np.asarray(node.vth, np.float64)
    scale = np.where(vth > 0, vth, 1.0)
    agree = total = bad = 0
    for k in range(4):
        x = rng.standard_normal((B, T, H)) * scale * (0.4 + 0.3 * k)
        got = pr.run(x) > 0.5
        pr.calls += 1
        want, margin = simulate(node, x)
        diff = got != (want > 0.5)
        agree += int((~diff).sum())
        total += diff.size
        # A difference is a tie when the first differing step of that channel sits at the threshold.
        for b, h in zip(*np.nonzero(diff.any(axis=1))):
            t0 = int(np.argmax(diff[b, :, h]))
            if margin[b, t0, h] > 1e-5 * scale[h]:
                bad += 1
    return NeuronFit(node, label, agree / max(total, 1), bad, pr.calls, list(notes))
