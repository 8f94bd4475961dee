r"""Spiking nonlinearities placed after the S4D layer: LIF (SpikingSSM), Heaviside (Binary S4D), RefractoryLIF
(SPikE-SSM).

Every neuron maps ``y`` [B, L, H] (the S4D output) to spikes [B, L, H] (float 0/1, surrogate gradient in training)
and has an exact streaming ``step``. ``forward(y, exact=None)`` runs the exact sequential neuron when ``exact`` is
true or, by default, in eval mode; in training mode it runs the configured parallel form (``mode``), if any.

Thresholds are applied as in the SpikingSSM code: the input is divided by :math:`V_{th} = e^{\text{ln\_vth}}` and
the neuron fires at 1. The membrane in ``step``'s state is therefore in units of :math:`V_{th}`
(:math:`v = u / V_{th}`); this is exactly equivalent to comparing the raw membrane with :math:`V_{th}` because
every reset is either to 0 or by the threshold itself.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from neurocompile.models import pmbc
from neurocompile.models.surrogate import atan_spike, triangle_spike

if TYPE_CHECKING:  # sdn is imported lazily so that `python -m neurocompile.models.sdn` runs cleanly
    from neurocompile.models.sdn import SDN

__all__ = ["SpikingNeuron", "LIF", "Heaviside", "RefractoryLIF"]


class SpikingNeuron(nn.Module):
    """Common driver: ``forward`` loops ``step`` (exact) or calls ``_parallel`` (training-time form)."""

    mode = "exact"

    def forward(self, y: torch.Tensor, exact: bool | None = None) -> torch.Tensor:
        if exact is None:
            exact = not self.training
        if exact or self.mode == "exact":
            return self.forward_exact(y)
        return self._parallel(y)

    def forward_exact(self, y: torch.Tensor) -> torch.Tensor:
        """Exact sequential neuron over [B, L, H] (differentiable through the surrogate: BPTT)."""
        state = None
        spikes = []
        for t in range(y.shape[1]):
            s, state = self.step(y[:, t], state)
            spikes.append(s)
        return torch.stack(spikes, dim=1)

    def _parallel(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden where a mode exists
        raise NotImplementedError(f"{type(self).__name__} has no parallel form for mode {self.mode!r}")

    def step(self, y_t: torch.Tensor, state=None):
        raise NotImplementedError


class LIF(SpikingNeuron):
    r"""SpikingSSM LIF neuron with hard reset, per channel:

    .. math::

        v'_t = \tau v_{t-1} + y_t / V_{th}, \qquad s_t = [v'_t \ge 1], \qquad v_t = v'_t (1 - s_t), \qquad v_{-1} = 0

    where :math:`\tau` is the per-step decay (0.125), :math:`V_{th} = e^{\text{ln\_vth}}` (learnable, [H]) and
    :math:`v = u / V_{th}` the normalised membrane. Surrogate: :math:`\partial s / \partial v' = \max(0, 1 - |v' - 1|)`.
    ``mode='sdn'``: in training, :math:`v'_t = y_t/V_{th} + \mathrm{SDN}(y/V_{th})_t` for all t at once.
    """

    def __init__(
        self, d_model: int, tau: float = 0.125, vth_init: float = 1.0, mode: str = "exact", sdn: SDN | None = None
    ) -> None:
        super().__init__()
        if mode not in ("exact", "sdn"):
            raise ValueError(f"LIF mode={mode!r} is invalid; expected 'exact' or 'sdn'")
        self.d_model = d_model
        self.tau = float(tau)
        self.mode = mode
        self.ln_vth = nn.Parameter(torch.full((d_model,), math.log(vth_init)))
        # The SDN is a frozen training device: kept out of parameters() and state_dict() on purpose.
        self._sdn = [sdn] if sdn is not None else []

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, tau={self.tau}, mode={self.mode!r}"

    @property
    def vth(self) -> torch.Tensor:
        """Firing threshold V_th [H]."""
        return torch.exp(self.ln_vth)

    def sdn(self) -> SDN:
        """The SDN used by ``mode='sdn'`` (the shipped one for this tau unless one was given)."""
        if not self._sdn:
            from neurocompile.models.sdn import get_default_sdn

            self._sdn.append(get_default_sdn(self.tau))
        return self._sdn[0]

    def step(self, y_t: torch.Tensor, u: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``y_t`` [B, H], normalised membrane ``u`` [B, H] (None = 0) -> ``(s_t, u)``."""
        x = y_t / self.vth
        v = x if u is None else self.tau * u + x
        s = triangle_spike(v - 1.0)
        return s, v * (1.0 - s)

    def _parallel(self, y: torch.Tensor) -> torch.Tensor:
        x = y / self.vth
        sdn = self.sdn().to(device=x.device, dtype=x.dtype)
        m = sdn(x.transpose(1, 2)).transpose(1, 2)  # predicted tau * v_{t-1}
        return triangle_spike(x + m - 1.0)


class Heaviside(SpikingNeuron):
    r"""Binary S4D's stateless spike: :math:`s_t = [y_t > 0]` (strict, so a zero input gives no spike).

    Surrogate: arctan, :math:`\partial s / \partial y = (\alpha/2) / (1 + (\pi \alpha y / 2)^2)` with
    :math:`\alpha = 2`. No parameters (``d_model`` is kept for shape checks).
    """

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.d_model = d_model

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}"

    def forward(self, y: torch.Tensor, exact: bool | None = None) -> torch.Tensor:
        return atan_spike(y)  # stateless: the parallel and the exact form are the same

    def step(self, y_t: torch.Tensor, state=None) -> tuple[torch.Tensor, None]:
        return atan_spike(y_t), None


class RefractoryLIF(SpikingNeuron):
    r"""SPikE-SSM neuron: LIF with soft reset and a decaying refractory trace, per channel (normalised units):

    .. math::

        v_t = \tau v_{t-1} + y_t / V_{th} - s_{t-1} - \rho\, r_{t-1}, \qquad s_t = [v_t \ge 1],
        \qquad r_t = \lambda r_{t-1} + s_t, \qquad v_{-1} = s_{-1} = r_{-1} = 0

    where :math:`V_{th} = e^{\text{ln\_vth}}` [H] and :math:`\rho = e^{\text{ln\_rho}}` [H] (non-negative refractory
    magnitude, in units of :math:`V_{th}`; the raw-unit equation's :math:`\rho_c` is :math:`V_{th,c}\,\rho`) are
    learnable, :math:`\tau` and :math:`\lambda` fixed. Multiplying by :math:`V_{th}` gives the reference equation
    :math:`u_t = \tau u_{t-1} + y_t - V_{th} s_{t-1} - \rho_c r_{t-1}`. ``mode='pmbc'`` trains with
    :func:`~neurocompile.models.pmbc.pmbc_spikes` (``iters`` iterations).
    """

    def __init__(
        self,
        d_model: int,
        tau: float = 0.125,
        vth_init: float = 1.0,
        rho_init: float = 0.5,
        lam: float = 0.5,
        mode: str = "exact",
        iters: int = 3,
    ) -> None:
        super().__init__()
        if mode not in ("exact", "pmbc"):
            raise ValueError(f"RefractoryLIF mode={mode!r} is invalid; expected 'exact' or 'pmbc'")
        self.d_model = d_model
        self.tau = float(tau)
        self.lam = float(lam)
        self.mode = mode
        self.iters = iters
        self.ln_vth = nn.Parameter(torch.full((d_model,), math.log(vth_init)))
        self.ln_rho = nn.Parameter(torch.full((d_model,), math.log(rho_init)))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, tau={self.tau}, lam={self.lam}, mode={self.mode!r}, iters={self.iters}"

    @property
    def vth(self) -> torch.Tensor:
        """Firing threshold V_th [H]."""
        return torch.exp(self.ln_vth)

    @property
    def rho(self) -> torch.Tensor:
        """Refractory magnitude rho [H] (units of V_th)."""
        return torch.exp(self.ln_rho)

    def step(self, y_t: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """``y_t`` [B, H], ``state = (v, s, r)`` each [B, H] (None = zeros) -> ``(s_t, (v, s, r))``."""
        x = y_t / self.vth
        if state is None:
            v = x
            r_prev = None
        else:
            v_prev, s_prev, r_prev = state
            v = self.tau * v_prev + x - s_prev - self.rho * r_prev
        s = triangle_spike(v - 1.0)
        r = s if r_prev is None else self.lam * r_prev + s
        return s, (v, s, r)

    def _parallel(self, y: torch.Tensor) -> torch.Tensor:
        return pmbc.pmbc_spikes(y / self.vth, self.tau, self.lam, self.rho, self.iters)
