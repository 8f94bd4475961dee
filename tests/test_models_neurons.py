"""Neurons: exact semantics on hand-computed sequences, SDN and PMBC agreement, surrogates, GLU and GSU."""

import math

import pytest
import torch

from neurocompile.models import GSU, LIF, GLUMix, Heaviside, RefractoryLIF, pmbc_agreement, pmbc_bounds
from neurocompile.models.sdn import SDN, default_sdn_path, lif_reference, load_sdn, sdn_spike_agreement

TAU = 0.125


def _lif_by_hand(ys, vth, tau=TAU):
    u, out = 0.0, []
    for y in ys:
        u = tau * u + y
        s = 1.0 if u >= vth else 0.0
        u = u * (1 - s)
        out.append(s)
    return out


def test_lif_matches_hand_computation_and_fires_at_equality():
    n = LIF(1, tau=TAU, vth_init=1.0)
    ys = [0.5, 0.6, 1.0, 1.0, 0.0, 0.95, 0.2, -3.0, 4.0]
    spikes = n(torch.tensor(ys).view(1, -1, 1), exact=True).flatten().tolist()
    assert spikes == _lif_by_hand(ys, 1.0) == [0, 0, 1, 1, 0, 0, 0, 0, 1]
    # threshold applied as y / V_th: with V_th = 2 the same inputs doubled give the same spikes
    n2 = LIF(1, tau=TAU, vth_init=2.0)
    doubled = n2(torch.tensor(ys).view(1, -1, 1) * 2, exact=True).flatten().tolist()
    assert doubled == spikes


def test_lif_step_state_is_normalised_membrane():
    n = LIF(2, vth_init=2.0)
    s, u = n.step(torch.tensor([[1.0, 4.0]]))
    assert s.tolist() == [[0.0, 1.0]]
    assert torch.allclose(u, torch.tensor([[0.5, 0.0]]))  # 1.0 / V_th; the spiking channel resets to 0


def test_heaviside_is_strict():
    n = Heaviside(3)
    y = torch.tensor([[[-1.0, 0.0, 1e-6]]])
    assert n(y).flatten().tolist() == [0.0, 0.0, 1.0]
    assert n.step(y[:, 0])[0].flatten().tolist() == [0.0, 0.0, 1.0]
    assert not list(n.parameters())


def test_refractory_matches_hand_computation():
    tau, lam, rho = 0.5, 0.5, 0.25
    n = RefractoryLIF(1, tau=tau, vth_init=1.0, rho_init=rho, lam=lam)
    ys = [1.2, 0.9, 0.9, 2.0, 0.0, 1.5]
    u = s = r = 0.0
    ref = []
    for y in ys:
        u = tau * u + y - s - rho * r
        s = 1.0 if u >= 1.0 else 0.0
        r = lam * r + s
        ref.append(s)
    got = n(torch.tensor(ys).view(1, -1, 1), exact=True).flatten().tolist()
    assert got == ref == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def shipped_sdn():
    path = default_sdn_path(TAU)
    assert path.exists(), f"shipped SDN missing: {path}"
    return load_sdn(path, TAU)


def test_shipped_sdn_is_153_parameters_and_agrees_with_exact_lif(shipped_sdn):
    assert sum(p.numel() for p in shipped_sdn.parameters()) == 153
    agreement = sdn_spike_agreement(shipped_sdn, TAU, n=64, length=1024, seed=7)
    assert agreement >= 0.995
    ckpt = torch.load(default_sdn_path(TAU), weights_only=True)
    assert ckpt["metrics"]["spike_agreement_normal01"] >= 0.995


def test_lif_sdn_mode_uses_the_sdn_in_training_only(shipped_sdn):
    torch.manual_seed(0)
    n = LIF(4, mode="sdn", sdn=shipped_sdn)
    y = torch.randn(2, 200, 4)
    n.train()
    parallel = n(y)
    exact = n(y, exact=True)
    assert 0.99 <= float((parallel == exact).float().mean()) < 1.0 + 1e-9
    n.eval()
    assert torch.equal(n(y), exact)
    assert not any("sdn" in k for k in n.state_dict())


def test_lif_reference_attenuated_membrane():
    x = torch.tensor([[0.5, 0.6, 1.0]])
    m, s = lif_reference(x, TAU)
    assert torch.allclose(m, torch.tensor([[0.0, 0.0625, 0.0828125]]))
    assert s.tolist() == [[0.0, 0.0, 1.0]]
    sdn = SDN()
    assert sdn(x).shape == x.shape
    z = torch.randn(3, 5, 40)
    assert torch.allclose(sdn(z), sdn.forward_conv(z), atol=1e-5)


def test_pmbc_reaches_exact_and_bounds_alternate():
    torch.manual_seed(0)
    n = RefractoryLIF(16, rho_init=0.5, lam=0.5).double()
    with torch.no_grad():
        n.ln_vth.uniform_(-0.5, 0.5)
        n.ln_rho.uniform_(-2.0, 1.0)
    y = 1.5 * torch.randn(4, 512, 16, dtype=torch.float64)
    assert pmbc_agreement(n, y, None) == 1.0
    a3 = pmbc_agreement(n, y, 3)
    assert 0.97 < a3 < 1.0
    exact = n(y, exact=True).transpose(1, 2)
    x = (y / n.vth).transpose(1, 2)
    for k in range(1, 7):
        s_k, _ = pmbc_bounds(x, n.tau, n.lam, n.rho.detach(), k)
        if k % 2:  # upper bound
            assert bool((s_k >= exact).all())
        else:
            assert bool((s_k <= exact).all())
    # float32 too (float64 internally): reaches the exact float32 neuron on this input
    n32 = RefractoryLIF(16).float()
    n32.load_state_dict({k: v.float() for k, v in n.state_dict().items()})
    assert pmbc_agreement(n32, y.float(), None) == 1.0


def test_pmbc_training_form_matches_forward_value():
    torch.manual_seed(1)
    n = RefractoryLIF(8, mode="pmbc", iters=50)
    y = torch.randn(2, 128, 8) * 2
    n.train()
    assert torch.equal(n(y), n(y, exact=True))


@pytest.mark.parametrize(
    "neuron",
    [LIF(6), Heaviside(6), RefractoryLIF(6), RefractoryLIF(6, mode="pmbc")],
    ids=["lif", "heaviside", "refractory", "refractory-pmbc"],
)
def test_surrogate_gradient_reaches_input(neuron):
    torch.manual_seed(0)
    y = (torch.randn(2, 30, 6) + 0.8).requires_grad_(True)
    neuron.train()
    neuron(y).sum().backward()
    assert y.grad is not None and float(y.grad.abs().sum()) > 0
    for name, p in neuron.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_glu_mix_shapes_and_formula():
    torch.manual_seed(0)
    mix = GLUMix(4)
    assert tuple(mix.conv.weight.shape) == (8, 4, 1)
    s = (torch.rand(2, 5, 4) > 0.5).float()
    z = torch.einsum("blh,oh->blo", s, mix.conv.weight[:, :, 0]) + mix.conv.bias
    assert torch.allclose(mix(s), z[..., :4] * torch.sigmoid(z[..., 4:]), atol=1e-6)


def test_gsu_ternarisation_and_formula():
    torch.manual_seed(0)
    gsu = GSU(4, ter_threshold=0.15)
    y = torch.tensor([[[1.0, -0.1, 0.2, -0.5]]])
    ty = gsu.ternary_input(y)
    assert ty.tolist() == [[[1.0, 0.0, 1.0, -1.0]]]  # |x| >= 0.15 * 1.0
    tw = gsu.ternary_weight()
    assert set(tw.unique().tolist()) <= {-1.0, 0.0, 1.0}
    thr = 0.15 * gsu.W.abs().max()
    assert torch.equal(tw, torch.sign(gsu.W) * (gsu.W.abs() >= thr).float())
    expected = torch.nn.functional.gelu((ty @ gsu.W + gsu.b) * (y @ tw + gsu.c))
    assert torch.allclose(gsu(y), expected)
    # straight-through: gradients reach W, b, c and the input
    y2 = torch.randn(3, 7, 4, requires_grad=True)
    gsu(y2).sum().backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in gsu.parameters())
    assert float(y2.grad.abs().sum()) > 0
    assert math.isclose(gsu.ter_threshold, 0.15)
