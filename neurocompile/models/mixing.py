r"""Channel-mixing units applied to the spikes (or, for GSU, the real S4D output) of each block."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neurocompile.models.surrogate import ternarize_ste

__all__ = ["GLUMix", "GSU"]


class GLUMix(nn.Module):
    r"""SpikingSSM / Binary S4D / SPikE-SSM mixing: 1x1 convolution H -> 2H, then a gated linear unit.

    .. math::

        [a, b] = W s_t + w_0, \qquad \mathrm{GLU}(a, b) = a \odot \sigma(b)

    where ``conv.weight`` [2H, H, 1] holds W, ``conv.bias`` [2H] holds w_0, a is the first H output channels.
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model
        self.conv = nn.Conv1d(d_model, 2 * d_model, kernel_size=1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        """``s`` [B, L, H] -> [B, L, H]."""
        z = self.conv(s.transpose(1, 2))
        a, b = z.chunk(2, dim=1)
        return (a * torch.sigmoid(b)).transpose(1, 2)


class GSU(nn.Module):
    r"""Gated Spiking Unit (Stan & Rhodes 2024): two add/subtract-only products sharing one real matrix.

    .. math::

        \mathrm{GSU}(y) = \mathrm{GELU}\big( (\mathrm{Ter}(y) W + b) \odot (y\, \mathrm{Ter}(W) + c) \big),
        \qquad \mathrm{Ter}(x) = \mathrm{sign}(x)\,[|x| \ge \theta \max|x|]

    where y [B, L, H] is the real S4D output (row vectors, so ``W`` [H_in, H_out]), ``b``, ``c`` [H] biases,
    :math:`\theta` = ``ter_threshold`` (0.15); the max is per token over channels for y and over the whole matrix
    for W. Ter uses a straight-through gradient.
    """

    def __init__(self, d_model: int, ter_threshold: float = 0.15) -> None:
        super().__init__()
        self.d_model = d_model
        self.ter_threshold = float(ter_threshold)
        bound = 1.0 / math.sqrt(d_model)
        self.W = nn.Parameter(torch.empty(d_model, d_model).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(d_model))
        self.c = nn.Parameter(torch.zeros(d_model))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, ter_threshold={self.ter_threshold}"

    def ternary_input(self, y: torch.Tensor) -> torch.Tensor:
        """Ter(y): the ternary "spike" copy of the activations, per token."""
        return ternarize_ste(y, self.ter_threshold, dim=-1)

    def ternary_weight(self) -> torch.Tensor:
        """Ter(W) in {-1, 0, 1}."""
        return ternarize_ste(self.W, self.ter_threshold, dim=None)

    def forward(self, y: torch.Tensor, ter_y: torch.Tensor | None = None) -> torch.Tensor:
        """``y`` [B, L, H] -> [B, L, H]; ``ter_y`` may pass a precomputed Ter(y)."""
        if ter_y is None:
            ter_y = self.ternary_input(y)
        gate_a = ter_y @ self.W + self.b
        gate_b = y @ self.ternary_weight() + self.c
        return F.gelu(gate_a * gate_b)
