r"""PMBC: parallel max-min boundary compression for the SPikE-SSM refractory neuron (training-time only).

The exact neuron (normalised units, see :class:`~neurocompile.models.neurons.RefractoryLIF`) is

.. math::

    v_t = \tau v_{t-1} + x_t - s_{t-1} - \rho\, r_{t-1}, \qquad s_t = [v_t \ge 1], \qquad r_t = \lambda r_{t-1} + s_t

Unrolled, it is linear in the spikes with a non-negative causal kernel:

.. math::

    v_t = P_t - \sum_{j<t} w_{t-j} s_j, \qquad P_t = \sum_{k \le t} \tau^{t-k} x_k, \qquad
    w_d = \tau^{d-1} + \rho \sum_{m=0}^{d-1} \tau^{d-1-m} \lambda^m \quad (d \ge 1)

so :math:`F(s) = [P - w * s \ge 1]` is anti-monotone (more spikes, lower potentials, fewer spikes) and causal, and
the exact spike train is its unique fixed point. Starting from :math:`s^{(0)} = 0`, the iterates
:math:`s^{(k)} = F(s^{(k-1)})` alternate between upper bounds (odd k; :math:`s^{(1)}` fires wherever the no-reset
potential P crosses 1) and lower bounds (even k) on the exact train, and every iterate is exact on a prefix that
grows by at least one step per iteration, so at most L+1 iterations reach the fixed point (in practice few).
``iters`` counts evaluations of F; each is a parallel convolution (FFT, computed in float64).
"""

from __future__ import annotations

import torch

from neurocompile.models.surrogate import triangle_spike

__all__ = ["refractory_kernel", "no_reset_potential", "pmbc_bounds", "pmbc_spikes", "pmbc_agreement"]


def _causal_conv(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``y[..., t] = sum_{d<=t} k[..., d] x[..., t-d]`` via an FFT of length 2L. x [B, H, L], k [H, L]."""
    L = x.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(x, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]


def refractory_kernel(length: int, tau: float, lam: float, rho: torch.Tensor) -> torch.Tensor:
    """``w`` [H, length]: effect of a spike at step j on v_{j+d}; ``w[:, 0] = 0`` (a spike acts from the next step)."""
    d = torch.arange(length, dtype=rho.dtype, device=rho.device)
    tau_pow = torch.where(d >= 1, tau ** (d - 1).clamp(min=0), torch.zeros_like(d))
    # g_d = sum_{m=0}^{d-1} tau^{d-1-m} lam^m, via the recurrence g_1 = 1, g_{d+1} = tau g_d + lam^d
    g = torch.zeros(length, dtype=rho.dtype, device=rho.device)
    acc = 0.0
    for step in range(1, length):
        acc = tau * acc + lam ** (step - 1)
        g[step] = acc
    return tau_pow.unsqueeze(0) + rho.unsqueeze(-1) * g.unsqueeze(0)


def no_reset_potential(x: torch.Tensor, tau: float) -> torch.Tensor:
    """``P_t = sum_{k<=t} tau^{t-k} x_k`` for x [B, H, L] (the potential if the neuron never spiked)."""
    d = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device)
    return _causal_conv(x, (tau**d).unsqueeze(0).expand(x.shape[1], -1))


@torch.no_grad()
def pmbc_bounds(
    x: torch.Tensor, tau: float, lam: float, rho: torch.Tensor, iters: int | None
) -> tuple[torch.Tensor, int]:
    """Iterate F from zero spikes: returns ``(s^(iters), k)`` for x [B, H, L] (float64), k = iterations run.

    Stops early at the fixed point (then the result is exact); ``iters=None`` runs to the fixed point.
    """
    L = x.shape[-1]
    P = no_reset_potential(x, tau)
    w = refractory_kernel(L, tau, lam, rho)
    s = torch.zeros_like(x)
    limit = L + 1 if iters is None else iters
    k = 0
    while k < limit:
        new = (P - _causal_conv(s, w) >= 1.0).to(x.dtype)
        k += 1
        if torch.equal(new, s):
            break
        s = new
    else:
        return s, k
    return new, k


def pmbc_spikes(
    x: torch.Tensor, tau: float, lam: float, rho: torch.Tensor, iters: int | None
) -> torch.Tensor:
    """Spikes [B, L, H] of the refractory neuron for normalised input x [B, L, H], in parallel, with gradient.

    The spike estimate after ``iters - 1`` iterations is held fixed (no gradient) and the final iteration is
    differentiable: ``s = H(P - w * s_prev - 1)`` with the triangular surrogate, so gradients reach the input
    (hence V_th) through P and the refractory magnitude rho through w.
    """
    xt = x.transpose(1, 2).to(torch.float64)  # [B, H, L]
    rho64 = rho.to(torch.float64)
    prev_iters = None if iters is None else max(iters - 1, 0)
    if prev_iters == 0:
        s_prev = torch.zeros_like(xt)
    else:
        s_prev, _ = pmbc_bounds(xt.detach(), tau, lam, rho64.detach(), prev_iters)
    L = xt.shape[-1]
    v = no_reset_potential(xt, tau) - _causal_conv(s_prev, refractory_kernel(L, tau, lam, rho64))
    return triangle_spike((v - 1.0).to(x.dtype)).transpose(1, 2)


@torch.no_grad()
def pmbc_agreement(neuron, y: torch.Tensor, iters: int | None) -> float:
    """Fraction of [B, L, H] entries where PMBC after ``iters`` iterations matches the exact sequential neuron.

    ``neuron`` is a :class:`~neurocompile.models.neurons.RefractoryLIF`; ``y`` its input (the S4D output).
    """
    exact = neuron(y, exact=True)
    parallel = pmbc_spikes(y / neuron.vth, neuron.tau, neuron.lam, neuron.rho, iters)
    return float((exact == parallel).double().mean())
