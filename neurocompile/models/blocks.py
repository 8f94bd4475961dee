r"""One residual spiking-SSM block; the family decides the neuron and the mixing unit.

.. math::

    z = \mathrm{norm}(x) \text{ (pre)}, \quad y = \mathrm{S4D}(z), \quad s = \mathrm{neuron}(y), \quad
    x' = x + \mathrm{drop}(\mathrm{mix}(\mathrm{drop}(s))), \quad x' \leftarrow \mathrm{norm}(x') \text{ (post)}

| family     | neuron          | mix     | what ``spikes`` holds       |
|------------|-----------------|---------|-----------------------------|
| spikingssm | LIF             | GLUMix  | binary spikes               |
| binary_s4d | Heaviside       | GLUMix  | binary spikes               |
| spike_ssm  | RefractoryLIF   | GLUMix  | binary spikes               |
| gsu        | none (``None``) | GSU     | Ter(y) in {-1, 0, 1}         |
"""

from __future__ import annotations

import torch
from torch import nn

from neurocompile.models.config import ModelConfig
from neurocompile.models.mixing import GSU, GLUMix
from neurocompile.models.neurons import LIF, Heaviside, RefractoryLIF, SpikingNeuron
from neurocompile.models.s4d import S4D

__all__ = ["SSMBlock", "ChannelBatchNorm", "make_norm", "make_neuron"]


class ChannelBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the H channels of a [B, L, H] (or [B, H]) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return super().forward(x)
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(config: ModelConfig) -> nn.Module:
    if config.norm == "batch":
        return ChannelBatchNorm(config.d_model)
    if config.norm == "layer":
        return nn.LayerNorm(config.d_model)
    return nn.Identity()


def make_neuron(config: ModelConfig) -> SpikingNeuron | None:
    H = config.d_model
    if config.family == "spikingssm":
        return LIF(H, tau=config.tau, vth_init=config.vth_init, mode=config.neuron_mode)
    if config.family == "spike_ssm":
        return RefractoryLIF(
            H, tau=config.tau, vth_init=config.vth_init, rho_init=config.rho_init, lam=config.refractory_decay,
            mode=config.neuron_mode, iters=config.pmbc_iters,
        )
    if config.family == "binary_s4d":
        return Heaviside(H)
    return None  # gsu: the GSU ternarises internally


class SSMBlock(nn.Module):
    """Residual block over [B, L, H]; submodules ``norm``, ``s4d``, ``neuron`` (None for gsu), ``dropout``, ``mix``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.family = config.family
        self.norm_position = config.norm_position
        self.norm = make_norm(config)
        self.s4d = S4D(
            config.d_model, config.d_state, init=config.s4d_init, dt_min=config.dt_min, dt_max=config.dt_max,
            bidirectional=config.bidirectional,
        )
        self.neuron = make_neuron(config)
        self.dropout = nn.Dropout(config.dropout)
        self.mix = GSU(config.d_model, config.gsu_ter_threshold) if config.family == "gsu" else GLUMix(config.d_model)

    def forward(self, x: torch.Tensor, exact: bool | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``x`` [B, L, H] -> ``(out, {'s4d': y, 'spikes': s})``; ``exact`` as in the neurons' ``forward``."""
        z = self.norm(x) if self.norm_position == "pre" else x
        y = self.s4d(z)
        if self.neuron is None:  # gsu: the GSU consumes the real y and its ternary copy
            y_in = self.dropout(y)
            spikes = self.mix.ternary_input(y_in)
            m = self.mix(y_in, ter_y=spikes)
        else:
            spikes = self.neuron(y, exact=exact)
            m = self.mix(self.dropout(spikes))
        out = x + self.dropout(m)
        if self.norm_position == "post":
            out = self.norm(out)
        return out, {"s4d": y, "spikes": spikes}

    def step(self, x_t: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, dict, tuple]:
        """Exact streaming step (eval semantics): ``x_t`` [B, H] -> ``(out_t, {'s4d', 'spikes'}, state)``."""
        s4d_state, neuron_state = (None, None) if state is None else state
        z = self.norm(x_t) if self.norm_position == "pre" else x_t
        y_t, s4d_state = self.s4d.step(z, s4d_state)
        if self.neuron is None:
            s_t = self.mix.ternary_input(y_t)
            m = self.mix(y_t, ter_y=s_t)
        else:
            s_t, neuron_state = self.neuron.step(y_t, neuron_state)
            m = self.mix(s_t.unsqueeze(1)).squeeze(1)
        out = x_t + m
        if self.norm_position == "post":
            out = self.norm(out)
        return out, {"s4d": y_t, "spikes": s_t}, (s4d_state, neuron_state)
