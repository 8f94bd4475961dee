"""S4D: initialisation, discretisation, parallel (FFT) form vs streaming recurrence (both directions)."""

import math

import numpy as np
import pytest
import torch

from neurocompile.errors import UnsupportedOpError
from neurocompile.models import S4D


def _numpy_reference(m: S4D, u: np.ndarray) -> np.ndarray:
    """Independent float64 recurrence from the raw parameters (ZOH written out again here)."""
    dt = np.exp(m.log_dt.detach().double().numpy())[:, None]
    A = -np.exp(m.log_A_real.detach().double().numpy()) + 1j * m.A_imag.detach().double().numpy()
    Bc = m.B.detach().double().numpy() @ np.array([1.0, 1j])
    Cc = m.C.detach().double().numpy() @ np.array([1.0, 1j])
    D = m.D.detach().double().numpy()
    dA = np.exp(dt * A)
    dB = (np.exp(dt * A) - 1.0) / A * Bc
    Bsz, L, H = u.shape
    C_fwd = Cc[0] if m.bidirectional else Cc
    y = np.zeros((Bsz, L, H))
    h = np.zeros((Bsz, H, A.shape[1]), dtype=complex)
    for t in range(L):
        h = dA * h + dB * u[:, t, :, None]
        y[:, t] = 2.0 * (C_fwd * h).sum(-1).real + D * u[:, t]
    if m.bidirectional:  # reverse pass over the buffered sequence, shifted one step
        g = np.zeros_like(h)
        for t in range(L - 2, -1, -1):
            g = dA * g + dB * u[:, t + 1, :, None]
            y[:, t] += 2.0 * (Cc[1] * g).sum(-1).real
    return y


@pytest.mark.parametrize("init", ["lin", "inv"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_parallel_matches_recurrence_L1024(init, bidirectional):
    torch.manual_seed(0)
    m = S4D(8, 16, init=init, bidirectional=bidirectional)
    u = torch.randn(2, 1024, 8)
    with torch.no_grad():
        y_fft = m(u)
        y_rec = m.forward_recurrent(u)
    y_ref = _numpy_reference(m, u.double().numpy())
    scale = float(np.abs(y_ref).max())
    assert float((y_fft - y_rec).abs().max()) <= 1e-5 * scale
    assert float(np.abs(y_fft.double().numpy() - y_ref).max()) <= 1e-5 * scale
    assert float(np.abs(y_rec.double().numpy() - y_ref).max()) <= 1e-5 * scale


def test_step_matches_forward_recurrent():
    torch.manual_seed(1)
    m = S4D(4, 8)
    u = torch.randn(3, 50, 4)
    state = None
    ys = []
    with torch.no_grad():
        for t in range(u.shape[1]):
            y_t, state = m.step(u[:, t], state)
            ys.append(y_t)
        assert torch.equal(torch.stack(ys, 1), m.forward_recurrent(u))
    assert state.shape == (3, 4, 4) and state.is_complex()


def test_bidirectional_step_refuses():
    m = S4D(4, 8, bidirectional=True)
    with pytest.raises(UnsupportedOpError, match="bidirectional"):
        m.step(torch.zeros(1, 4))


def test_bidirectional_backward_half_sees_only_the_future():
    torch.manual_seed(2)
    m = S4D(3, 8, bidirectional=True)
    with torch.no_grad():
        m.C[0].zero_()
        m.D.zero_()
        u = torch.zeros(1, 20, 3)
        u[0, 10] = 1.0
        y = m(u)
    assert float(y[0, 10:].abs().max()) < 1e-6  # an input at t=10 reaches only t < 10
    assert float(y[0, 9].abs().max()) > 1e-3


def test_parameter_layout_and_init():
    torch.manual_seed(0)
    H, N = 5, 16
    m = S4D(H, N, init="lin", dt_min=1e-3, dt_max=1e-1)
    assert m.log_dt.shape == (H,)
    assert m.log_A_real.shape == m.A_imag.shape == (H, N // 2)
    assert m.B.shape == m.C.shape == (H, N // 2, 2)
    assert m.D.shape == (H,)
    assert torch.allclose(m.A.real, torch.full((H, N // 2), -0.5))
    assert torch.allclose(m.A_imag[0], math.pi * torch.arange(N // 2, dtype=torch.float32))
    assert bool((m.dt >= 1e-3 - 1e-9).all() and (m.dt <= 1e-1 + 1e-9).all())
    inv = S4D(H, N, init="inv")
    n = torch.arange(N // 2, dtype=torch.float32)
    assert torch.allclose(inv.A_imag[0], (N / math.pi) * (N / (2 * n + 1) - 1))
    assert S4D(H, N, bidirectional=True).C.shape == (2, H, N // 2, 2)
    assert {name for name, p in m.named_parameters() if p.requires_grad} == {
        "log_dt", "log_A_real", "A_imag", "B", "C", "D"}


def test_discretize_is_accurate_for_small_steps():
    m = S4D(2, 4, dt_min=1e-4, dt_max=1e-4)
    with torch.no_grad():
        dA, dB = m.discretize()
    A = m.A.detach().to(torch.complex128)
    dt = m.dt.detach().double()[:, None]
    dB_ref = (torch.exp(dt * A) - 1) / A  # float64 is accurate enough here
    assert torch.allclose(dA.to(torch.complex128), torch.exp(dt * A), rtol=1e-6)
    assert float(((dB.to(torch.complex128) - dB_ref).abs() / dB_ref.abs()).max()) < 1e-5


def test_kernel_matches_formula():
    torch.manual_seed(3)
    m = S4D(2, 8)
    L = 16
    dA, dB = m.discretize()
    C = torch.view_as_complex(m.C)
    ref = torch.stack([2 * (C * dB * dA**l).sum(-1).real for l in range(L)], -1)
    assert torch.allclose(m.kernel(L), ref, atol=1e-6)
