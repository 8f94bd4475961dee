"""Spike functions: exact Heaviside forward, surrogate derivative backward."""

from __future__ import annotations

import math

import torch

__all__ = ["triangle_spike", "atan_spike", "ternarize_ste"]


class _TriangleSpike(torch.autograd.Function):
    """``s = [x >= 0]``; ``ds/dx = max(0, 1 - |x|)`` (SpikingSSM's triangular surrogate)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (1.0 - x.abs()).clamp(min=0.0)


class _AtanSpike(torch.autograd.Function):
    """``s = [x > 0]``; ``ds/dx = (alpha/2) / (1 + (pi/2 alpha x)^2)`` (arctan surrogate, alpha = 2)."""

    alpha = 2.0

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        a = _AtanSpike.alpha
        return grad * (a / 2.0) / (1.0 + (math.pi / 2.0 * a * x) ** 2)


def triangle_spike(x: torch.Tensor) -> torch.Tensor:
    """Heaviside ``[x >= 0]`` with the triangular surrogate gradient."""
    return _TriangleSpike.apply(x)


def atan_spike(x: torch.Tensor) -> torch.Tensor:
    """Heaviside ``[x > 0]`` with the arctan surrogate gradient."""
    return _AtanSpike.apply(x)


class _TernarizeSTE(torch.autograd.Function):
    """Exact ternary forward value, identity (straight-through) backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, threshold: float, dim: int | None) -> torch.Tensor:
        mag = x.abs()
        peak = mag.amax() if dim is None else mag.amax(dim=dim, keepdim=True)
        return torch.sign(x) * (mag >= threshold * peak).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None


def ternarize_ste(x: torch.Tensor, threshold: float, dim: int | None = None) -> torch.Tensor:
    """``sign(x) * [|x| >= threshold * max|x|]`` in {-1, 0, 1} with a straight-through (identity) gradient.

    ``dim=None`` takes the max over the whole tensor (weights), ``dim=-1`` per token over channels (activations).
    An all-zero slice ternarises to zeros.
    """
    return _TernarizeSTE.apply(x, threshold, dim)
