r"""S4D: the diagonal state-space layer shared by every spiking-SSM family (parameter layout of state-spaces/s4).

.. math::

    \dot h(t) = A h(t) + B u(t), \qquad y(t) = 2\,\mathrm{Re}(C h(t)) + D u(t)

    \bar A = e^{\Delta A}, \qquad \bar B = (e^{\Delta A} - 1) A^{-1} B  \qquad \text{(zero-order hold)}

    h_t = \bar A h_{t-1} + \bar B u_t, \quad h_{-1} = 0, \qquad y_t = 2\,\mathrm{Re}(C \cdot h_t) + D u_t

where, per channel :math:`h = 1..H` and mode :math:`n = 0..N/2-1`, :math:`A_n = -e^{\text{log\_A\_real}} + i\,
\text{A\_imag}` (complex, 1/step), :math:`\Delta = e^{\text{log\_dt}}` (steps), :math:`B_n, C_n` complex and
:math:`D` real. Only N/2 modes are stored; their conjugates give the factor 2. The parallel (training) form is the
convolution with :math:`K_l = 2\,\mathrm{Re}\sum_n C_n \bar B_n \bar A_n^l`, done with an FFT of length 2L.

Bidirectional (as in state-spaces): a second ``C`` runs over the reversed sequence shifted by one step,
:math:`g_{L-1} = 0,\ g_t = \bar A g_{t+1} + \bar B u_{t+1}`, and :math:`y_t \mathrel{+}= 2\,\mathrm{Re}(C^{(1)} \cdot g_t)`.
It needs the whole sequence, so :meth:`S4D.step` refuses it; :meth:`S4D.forward_recurrent` buffers explicitly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from neurocompile.errors import UnsupportedOpError

__all__ = ["S4D", "expm1_complex"]


def expm1_complex(z: torch.Tensor) -> torch.Tensor:
    """``exp(z) - 1`` for complex ``z`` without the cancellation of the naive form when ``|z|`` is small."""
    re, im = z.real, z.imag
    # exp(re + i im) - 1 = expm1(re) cos(im) + (cos(im) - 1) + i exp(re) sin(im);  cos(im) - 1 = -2 sin^2(im / 2)
    real = torch.expm1(re) * torch.cos(im) - 2.0 * torch.sin(0.5 * im) ** 2
    imag = torch.exp(re) * torch.sin(im)
    return torch.complex(real, imag)


class S4D(nn.Module):
    """Diagonal SSM over ``[B, L, H]`` sequences, with trainable ``dt``, ``A``, ``B``, ``C``, ``D``.

    Parameters (state-spaces layout; complex tensors stored as real views with a trailing dimension of 2):
    ``log_dt`` [H], ``log_A_real`` [H, N/2], ``A_imag`` [H, N/2], ``B`` [H, N/2, 2], ``C`` [H, N/2, 2]
    (bidirectional: [2, H, N/2, 2], index 0 forward, 1 backward), ``D`` [H].
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        init: str = "lin",
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if d_state % 2:
            raise ValueError(f"S4D d_state={d_state} must be even (N/2 complex modes are stored)")
        if init not in ("lin", "inv"):
            raise ValueError(f"S4D init={init!r} is invalid; expected 'lin' or 'inv'")
        self.d_model = H = d_model
        self.d_state = d_state
        self.bidirectional = bidirectional
        n_modes = d_state // 2
        n = torch.arange(n_modes, dtype=torch.float32)

        log_dt = torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        if init == "lin":  # S4D-Lin: A_n = -1/2 + i pi n
            imag = math.pi * n
        else:  # S4D-Inv: A_n = -1/2 + i (N/pi) (N/(2n+1) - 1)
            imag = (d_state / math.pi) * (d_state / (2.0 * n + 1.0) - 1.0)
        c_shape = (2, H, n_modes) if bidirectional else (H, n_modes)

        self.log_dt = nn.Parameter(log_dt)
        self.log_A_real = nn.Parameter(torch.full((H, n_modes), math.log(0.5)))
        self.A_imag = nn.Parameter(imag.repeat(H, 1))
        self.B = nn.Parameter(torch.view_as_real(torch.ones(H, n_modes, dtype=torch.cfloat)).clone())
        self.C = nn.Parameter(torch.view_as_real(torch.randn(c_shape, dtype=torch.cfloat)).clone())
        self.D = nn.Parameter(torch.randn(H))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, d_state={self.d_state}, bidirectional={self.bidirectional}"

    # ------------------------------------------------------------------ continuous and discrete parameters
    @property
    def dt(self) -> torch.Tensor:
        """Step size Delta per channel, [H]."""
        return torch.exp(self.log_dt)

    @property
    def A(self) -> torch.Tensor:
        """Continuous state matrix diagonal, complex [H, N/2]."""
        return torch.complex(-torch.exp(self.log_A_real), self.A_imag)

    def _complex_C(self) -> torch.Tensor:
        return torch.view_as_complex(self.C)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-order hold: ``(dA, dB)``, both complex [H, N/2]."""
        dtA = self.dt.unsqueeze(-1) * self.A
        dA = torch.exp(dtA)
        dB = expm1_complex(dtA) / self.A * torch.view_as_complex(self.B)
        return dA, dB

    def kernel(self, L: int) -> torch.Tensor:
        """Convolution kernel, real [H, L] (bidirectional: [2, H, L], forward then backward)."""
        dtA = self.dt.unsqueeze(-1) * self.A  # [H, N/2]
        dA, dB = self.discretize()
        CB = self._complex_C() * dB  # [H, N/2] or [2, H, N/2]
        steps = torch.arange(L, device=dtA.device, dtype=dtA.real.dtype)
        vandermonde = torch.exp(dtA.unsqueeze(-1) * steps)  # dA^l, [H, N/2, L]
        return 2.0 * torch.einsum("...hn,hnl->...hl", CB, vandermonde).real

    # ------------------------------------------------------------------ parallel form
    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Parallel form: ``u`` [B, L, H] -> ``y`` [B, L, H] (FFT convolution of length 2L, plus ``D*u``)."""
        L = u.shape[1]
        k = self.kernel(L)
        if self.bidirectional:
            k = F.pad(k[0], (0, L)) + F.pad(k[1].flip(-1), (L, 0))  # [H, 2L]; backward half sees u_{t+1..}
        x = u.transpose(1, 2)  # [B, H, L]
        y = torch.fft.irfft(torch.fft.rfft(x, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]
        y = y + self.D.unsqueeze(-1) * x
        return y.transpose(1, 2)

    # ------------------------------------------------------------------ streaming form
    def initial_state(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """Zero state ``h_{-1}``, complex [batch, H, N/2]."""
        dtype = torch.complex128 if self.log_dt.dtype == torch.float64 else torch.complex64
        return torch.zeros(batch, self.d_model, self.d_state // 2, dtype=dtype, device=device or self.D.device)

    def _check_streamable(self) -> None:
        if self.bidirectional:
            raise UnsupportedOpError(
                "S4D.step: a bidirectional S4D is not streamable (its backward half needs future inputs); "
                "use forward() or forward_recurrent(), which buffer the whole sequence"
            )

    def step(self, u_t: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One recurrence step: ``u_t`` [B, H], ``state`` complex [B, H, N/2] (None = zeros) -> ``(y_t, state)``."""
        self._check_streamable()
        if state is None:
            state = self.initial_state(u_t.shape[0], u_t.device)
        dA, dB = self.discretize()
        return self._step(u_t, state, dA, dB, self._complex_C())

    def _step(self, u_t, state, dA, dB, C):
        state = dA * state + dB * u_t.unsqueeze(-1)
        y_t = 2.0 * (C * state).sum(-1).real + self.D * u_t
        return y_t, state

    def forward_recurrent(self, u: torch.Tensor) -> torch.Tensor:
        """Sequential reference of :meth:`forward` (slow; for tests). Bidirectional: explicit reverse recurrence."""
        B, L, _ = u.shape
        dA, dB = self.discretize()
        C = self._complex_C()
        C_fwd = C[0] if self.bidirectional else C
        state = self.initial_state(B, u.device)
        ys = []
        for t in range(L):
            y_t, state = self._step(u[:, t], state, dA, dB, C_fwd)
            ys.append(y_t)
        y = torch.stack(ys, dim=1)
        if self.bidirectional:  # g_{L-1} = 0, g_t = dA g_{t+1} + dB u_{t+1}
            g = self.initial_state(B, u.device)
            back = [torch.zeros_like(y[:, 0])]
            for t in range(L - 2, -1, -1):
                g = dA * g + dB * u[:, t + 1].unsqueeze(-1)
                back.append(2.0 * (C[1] * g).sum(-1).real)
            y = y + torch.stack(back[::-1], dim=1)
        return y
