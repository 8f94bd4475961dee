"""Foreign-style spiking SSM models for the open-frontend tests (written for these tests, not imported from anywhere).

Each class mimics how a user of another code base writes the model: the state-spaces S4D layout (``D`` on the layer,
``log_dt``/``log_A_real``/``A_imag``/``C`` on a ``.kernel`` child, [B, H, L] inside the layer, FFT convolution),
the SpikingSSM (SDN) layout (``ln_vth`` [H, 1] on the layer, ``C`` [1, H, N/2, 2], ``D`` [1, H], an SDN neuron),
snnTorch / SpikingJelly neurons called step by step, and a refractory neuron with its own names. Weights come from
the shipped checkpoints (``examples/checkpoints``) mapped into each layout, so no training is needed.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

CKPT = Path(__file__).resolve().parents[1] / "examples" / "checkpoints"


# ------------------------------------------------------------------------------------------------ SSM layers
class DiagKernel(nn.Module):
    """state-spaces style kernel generator: K[h, l] = 2 Re(sum_n C dB dA^l), B folded into C."""

    def __init__(self, H: int, N: int, channels: int | None = None, bilinear: bool = False) -> None:
        super().__init__()
        shape = (H, N // 2) if channels is None else (channels, H, N // 2)
        self.C = nn.Parameter(torch.zeros(*shape, 2))
        self.log_dt = nn.Parameter(torch.zeros(H))
        self.log_A_real = nn.Parameter(torch.zeros(H, N // 2))
        self.A_imag = nn.Parameter(torch.zeros(H, N // 2))
        self.bilinear = bilinear

    def forward(self, L: int) -> torch.Tensor:
        dt = torch.exp(self.log_dt)
        C = torch.view_as_complex(self.C)
        A = -torch.exp(self.log_A_real) + 1j * self.A_imag
        dtA = A * dt.unsqueeze(-1)
        if self.bilinear:
            dA = (1 + dtA / 2) / (1 - dtA / 2)
            CB = C * dt.unsqueeze(-1) / (1 - dtA / 2)
            powers = torch.exp(torch.log(dA).unsqueeze(-1) * torch.arange(L))
        else:
            CB = C * (torch.exp(dtA) - 1.0) / A
            powers = torch.exp(dtA.unsqueeze(-1) * torch.arange(L))
        return 2 * torch.einsum("...hn,hnl->...hl", CB, powers).real


def fft_conv(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Causal convolution over the last axis with an FFT of size 2L."""
    L = u.shape[-1]
    return torch.fft.irfft(torch.fft.rfft(u, n=2 * L) * torch.fft.rfft(k, n=2 * L), n=2 * L)[..., :L]


class SpikeThreshold(nn.Module):
    """LIF on the raw membrane over the last axis: u = tau*u + x; s = [u >= vth]; u = u*(1-s)."""

    def __init__(self, H: int, tau: float = 0.125) -> None:
        super().__init__()
        self.tau = tau
        self.vth = nn.Parameter(torch.ones(H, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, H, L]
        u = torch.zeros_like(x[..., 0])
        out = []
        for t in range(x.shape[-1]):
            u = u * self.tau + x[..., t]
            s = (u >= self.vth[:, 0]).to(x.dtype)
            out.append(s)
            u = u * (1 - s)
        return torch.stack(out, -1)


class SSConvLayer(nn.Module):
    """state-spaces S4D layer with the activation replaced by a spiking neuron; [B, H, L] in and out."""

    def __init__(self, H: int, N: int, neuron: nn.Module, bilinear: bool = False) -> None:
        super().__init__()
        self.D = nn.Parameter(torch.zeros(H))
        self.kernel = DiagKernel(H, N, bilinear=bilinear)
        self.activation = neuron
        self.dropout = nn.Dropout(0.1)
        self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, kernel_size=1), nn.GLU(dim=-2))

    def forward(self, u: torch.Tensor):
        k = self.kernel(u.shape[-1])
        y = fft_conv(u, k) + u * self.D.unsqueeze(-1)
        y = self.dropout(self.activation(y))
        return self.output_linear(y), None


class SSSeqModel(nn.Module):
    """state-spaces example layout: encoder, s4_layers, dropouts, decoder (mean pooling)."""

    def __init__(self, d_in: int, H: int, N: int, n_layers: int, n_out: int, neuron=SpikeThreshold,
                 bilinear: bool = False) -> None:
        super().__init__()
        self.encoder = nn.Linear(d_in, H)
        self.s4_layers = nn.ModuleList(SSConvLayer(H, N, neuron(H), bilinear) for _ in range(n_layers))
        self.dropouts = nn.ModuleList(nn.Dropout(0.1) for _ in range(n_layers))
        self.decoder = nn.Linear(H, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x).transpose(-1, -2)
        for layer, drop in zip(self.s4_layers, self.dropouts):
            z, _ = layer(x)
            x = drop(z) + x
        return self.decoder(x.transpose(-1, -2).mean(dim=1))


# ------------------------------------------------------------------------------------------------ SDN layout
class SurrogateNet(nn.Module):
    """The SDN's three convolutions (strictly causal first layer), predicting tau * u_{t-1}."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 8)
        self.conv2 = nn.Conv1d(8, 8, 1)
        self.conv3 = nn.Conv1d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [M, 1, L]
        z = F.pad(x, (8, 0))[..., :-1]
        h = F.relu(self.conv1(z))
        h = F.relu(self.conv2(h) + h)
        return self.conv3(h)


class SDNSpike(nn.Module):
    """SpikingSSM's SDN neuron: s = [x + sdn(x) - 1 >= 0] over the last axis, all steps at once."""

    def __init__(self, H: int) -> None:
        super().__init__()
        self.model = SurrogateNet()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        mem = self.model(x.reshape(-1, 1, shape[-1])).reshape(shape)
        return (mem + x - 1.0 >= 0).to(x.dtype)


class BPTTSpike(nn.Module):
    """SpikingSSM's exact neuron (threshold 1, input already divided by V_th), over the last axis."""

    def __init__(self, H: int, tau: float = 0.125) -> None:
        super().__init__()
        self.tau = tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(x[..., 0])
        out = []
        for i in range(x.size(-1)):
            u = u * self.tau + x[..., i]
            s = (u - 1.0 >= 0).to(x.dtype)
            out.append(s)
            u = (1 - s) * u
        return torch.stack(out, -1)


class SpikingS4Layer(nn.Module):
    """SDN-repository layer layout: D [1, H], ln_vth [H, 1], kernel.C [1, H, N/2, 2], neuron, output_linear."""

    def __init__(self, H: int, N: int, neuron=SDNSpike) -> None:
        super().__init__()
        self.D = nn.Parameter(torch.zeros(1, H))
        self.ln_vth = nn.Parameter(torch.zeros(H, 1))
        self.kernel = DiagKernel(H, N, channels=1)
        self.neuron = neuron(H)
        self.dropout = nn.Identity()
        self.output_linear = nn.Sequential(nn.Conv1d(H, 2 * H, kernel_size=1), nn.GLU(dim=-2))

    def forward(self, u: torch.Tensor):
        L = u.size(-1)
        k = self.kernel(L)  # [1, H, L]
        y = torch.fft.irfft(torch.einsum("bhl,chl->bchl", torch.fft.rfft(u, n=2 * L), torch.fft.rfft(k, n=2 * L)),
                            n=2 * L)[..., :L]
        y = y + torch.einsum("bhl,ch->bchl", u, self.D)
        y = y.reshape(y.shape[0], -1, L) / torch.exp(self.ln_vth)
        y = self.dropout(self.neuron(y))
        return self.output_linear(y), None


class SpikingSSMBackbone(nn.Module):
    def __init__(self, H: int, N: int, n_layers: int, neuron=SDNSpike) -> None:
        super().__init__()
        self.s4_layers = nn.ModuleList(SpikingS4Layer(H, N, neuron) for _ in range(n_layers))
        self.dropouts = nn.ModuleList(nn.Dropout(0.2) for _ in range(n_layers))

    def forward(self, x: torch.Tensor):
        x = x.transpose(-1, -2)
        for layer, dropout in zip(self.s4_layers, self.dropouts):
            z, _ = layer(x)
            x = dropout(z) + x
        return x.transpose(-1, -2), None


class SpikingSSMNet(nn.Module):
    """Sequence model wrapper of the SDN repository's training framework: encoder, model, decoder (mean pool)."""

    def __init__(self, d_in: int, H: int, N: int, n_layers: int, n_out: int, neuron=SDNSpike) -> None:
        super().__init__()
        self.encoder = nn.Linear(d_in, H)
        self.model = SpikingSSMBackbone(H, N, n_layers, neuron)
        self.decoder = nn.Linear(H, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.model(self.encoder(x))
        return self.decoder(h.mean(1))


# ------------------------------------------------------------------------------------------------ step neurons
class StepBlock(nn.Module):
    """[B, L, H] block: S4D (FFT) -> per-step neuron called in a Python loop -> Linear(H, 2H) -> GLU -> residual."""

    def __init__(self, H: int, N: int, neuron: nn.Module, scale_by_vth: bool = True) -> None:
        super().__init__()
        self.ssm = SSConvLayer(H, N, nn.Identity())
        self.ssm.output_linear = nn.Identity()
        self.ln_vth = nn.Parameter(torch.zeros(H))
        self.spike = neuron
        self.proj = nn.Linear(H, 2 * H)

    def run_neuron(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.ssm(x.transpose(1, 2))
        y = y.transpose(1, 2) / torch.exp(self.ln_vth)
        s = self.run_neuron(y)
        a, b = self.proj(s).chunk(2, dim=-1)
        return x + a * torch.sigmoid(b)


class SnnTorchBlock(StepBlock):
    def __init__(self, H: int, N: int) -> None:
        import snntorch as snn

        super().__init__(H, N, snn.Leaky(beta=0.125, threshold=1.0, reset_mechanism="subtract"))

    def run_neuron(self, y: torch.Tensor) -> torch.Tensor:
        mem = torch.zeros_like(y[:, 0])
        spikes = []
        for t in range(y.shape[1]):
            spk, mem = self.spike(y[:, t], mem)
            spikes.append(spk)
        return torch.stack(spikes, dim=1)


class JellyBlock(StepBlock):
    """SpikingJelly LIFNode in single-step mode, called once per time step (decay 1 - 1/tau = 0.125, hard reset)."""

    def __init__(self, H: int, N: int) -> None:
        from spikingjelly.activation_based import neuron

        super().__init__(H, N, neuron.LIFNode(tau=8.0 / 7.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
                                              step_mode="s"))

    def run_neuron(self, y: torch.Tensor) -> torch.Tensor:
        self.spike.reset()
        self.spike.v = torch.zeros_like(y[:, 0])
        return torch.stack([self.spike(y[:, t]) for t in range(y.shape[1])], dim=1)


class NorseBlock(StepBlock):
    """Norse ``LIFBoxCell`` (current-free LIF, Euler step dt = 1 ms): v' = v + dt/tau_mem (x - v), i.e.
    v' = 0.125 v + 0.875 x for 1/tau_mem = 875 /s; v_th = 0.875 makes it the LIF of threshold 1 on x."""

    def __init__(self, H: int, N: int) -> None:
        import norse.torch as nt

        p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(875.0), v_th=torch.tensor(0.875),
                                   v_leak=torch.tensor(0.0), v_reset=torch.tensor(0.0), method="heaviside")
        super().__init__(H, N, nt.LIFBoxCell(p, dt=0.001))

    def run_neuron(self, y: torch.Tensor) -> torch.Tensor:
        state = None
        spikes = []
        for t in range(y.shape[1]):
            z, state = self.spike(y[:, t], state)
            spikes.append(z)
        return torch.stack(spikes, dim=1)


def plain_heaviside(x: torch.Tensor) -> torch.Tensor:
    """snnTorch-compatible spike function without a Python autograd.Function (so TorchScript can save it)."""
    return (x > 0).to(x.dtype)


class StepNet(nn.Module):
    def __init__(self, d_in: int, H: int, N: int, n_layers: int, n_out: int, block) -> None:
        super().__init__()
        self.embed = nn.Linear(d_in, H)
        self.body = nn.ModuleList(block(H, N) for _ in range(n_layers))
        self.head = nn.Linear(H, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        for blk in self.body:
            x = blk(x)
        return self.head(x.mean(dim=1))


# ------------------------------------------------------------------------------------------------ refractory
class Refractory(nn.Module):
    """Reset-refractory LIF on raw units over [B, L, H]: u = tau u + x - vth s' - rho r'; r = lam r' + s."""

    def __init__(self, H: int, tau: float = 0.125, lam: float = 0.5) -> None:
        super().__init__()
        self.tau, self.lam = tau, lam
        self.threshold = nn.Parameter(torch.ones(H))
        self.refractory = nn.Parameter(torch.full((H,), 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(x[:, 0])
        s = torch.zeros_like(u)
        r = torch.zeros_like(u)
        out = []
        for t in range(x.shape[1]):
            u = self.tau * u + x[:, t] - self.threshold * s - self.refractory * r
            s = (u >= self.threshold).to(x.dtype)
            r = self.lam * r + s
            out.append(s)
        return torch.stack(out, 1)


class RefractoryNet(nn.Module):
    """Own names throughout: stem, stages (ssm on [B, L, H] as an explicit complex recurrence), fire, gate, head."""

    def __init__(self, d_in: int, H: int, N: int, n_layers: int, n_out: int) -> None:
        super().__init__()
        self.stem = nn.Linear(d_in, H)
        self.stages = nn.ModuleList(nn.ModuleDict({
            "ssm": RecurrentDiag(H, N), "fire": Refractory(H), "gate": nn.Conv1d(H, 2 * H, 1)})
            for _ in range(n_layers))
        self.head = nn.Linear(H, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for st in self.stages:
            s = st["fire"](st["ssm"](x))
            g = st["gate"](s.transpose(1, 2)).transpose(1, 2)
            x = x + F.glu(g, dim=-1)
        return self.head(x.mean(1))


class RecurrentDiag(nn.Module):
    """Diagonal SSM run as an explicit recurrence on [B, L, H] with complex B and C, inverse-softplus A."""

    def __init__(self, H: int, N: int) -> None:
        super().__init__()
        self.log_dt = nn.Parameter(torch.zeros(H))
        self.inv_A_real = nn.Parameter(torch.zeros(H, N // 2))
        self.A_imag = nn.Parameter(torch.zeros(H, N // 2))
        self.B = nn.Parameter(torch.zeros(H, N // 2, dtype=torch.cfloat))
        self.C = nn.Parameter(torch.zeros(H, N // 2, dtype=torch.cfloat))
        self.D = nn.Parameter(torch.zeros(H))

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        A = torch.complex(-F.softplus(self.inv_A_real), self.A_imag)
        dtA = A * torch.exp(self.log_dt).unsqueeze(-1)
        dA = torch.exp(dtA)
        dB = (dA - 1) / A * self.B
        h = torch.zeros(u.shape[0], *A.shape, dtype=dA.dtype)
        ys = []
        for t in range(u.shape[1]):
            h = dA * h + dB * u[:, t].unsqueeze(-1)
            ys.append(2 * (self.C * h).sum(-1).real + self.D * u[:, t])
        return torch.stack(ys, 1)


# ------------------------------------------------------------------------------------------------ weights
def shipped(name: str) -> tuple[dict, dict]:
    ck = torch.load(CKPT / f"{name}.pt", weights_only=True)
    return ck["config"], ck["state_dict"]


def _cb(sd: dict, i: int) -> torch.Tensor:
    """C * B of block i as a real view [H, M, 2] (the layouts without B fold it into C)."""
    C = torch.view_as_complex(sd[f"blocks.{i}.s4d.C"].contiguous())
    B = torch.view_as_complex(sd[f"blocks.{i}.s4d.B"].contiguous())
    return torch.view_as_real(C * B).contiguous()


def _ssm_kernel(sd: dict, i: int, pre: str, channels: bool = False) -> dict:
    cb = _cb(sd, i)
    return {f"{pre}.C": cb.unsqueeze(0) if channels else cb, f"{pre}.log_dt": sd[f"blocks.{i}.s4d.log_dt"],
            f"{pre}.log_A_real": sd[f"blocks.{i}.s4d.log_A_real"], f"{pre}.A_imag": sd[f"blocks.{i}.s4d.A_imag"]}


def state_spaces_lif(seed_sd: dict | None = None) -> SSSeqModel:
    cfg, sd = shipped("spikingssm_sdigits")
    n = cfg["n_layers"]
    m = SSSeqModel(1, cfg["d_model"], cfg["d_state"], n, cfg["n_classes"])
    new = {"encoder.weight": sd["encoder.weight"], "encoder.bias": sd["encoder.bias"],
           "decoder.weight": sd["decoder.weight"], "decoder.bias": sd["decoder.bias"]}
    for i in range(n):
        p = f"s4_layers.{i}"
        new.update(_ssm_kernel(sd, i, f"{p}.kernel"))
        new[f"{p}.D"] = sd[f"blocks.{i}.s4d.D"]
        new[f"{p}.activation.vth"] = torch.exp(sd[f"blocks.{i}.neuron.ln_vth"]).unsqueeze(-1)
        new[f"{p}.output_linear.0.weight"] = sd[f"blocks.{i}.mix.conv.weight"]
        new[f"{p}.output_linear.0.bias"] = sd[f"blocks.{i}.mix.conv.bias"]
    m.load_state_dict(new)
    return m.eval()


def sdn_state_dict(sd: dict, n: int) -> dict:
    """The shipped spikingssm weights in the SDN-repository layout (SpikingSSMNet keys)."""
    new = {"encoder.weight": sd["encoder.weight"], "encoder.bias": sd["encoder.bias"],
           "decoder.weight": sd["decoder.weight"], "decoder.bias": sd["decoder.bias"]}
    for i in range(n):
        p = f"model.s4_layers.{i}"
        new.update(_ssm_kernel(sd, i, f"{p}.kernel", channels=True))
        new[f"{p}.D"] = sd[f"blocks.{i}.s4d.D"].unsqueeze(0)
        new[f"{p}.ln_vth"] = sd[f"blocks.{i}.neuron.ln_vth"].unsqueeze(-1)
        new[f"{p}.output_linear.0.weight"] = sd[f"blocks.{i}.mix.conv.weight"]
        new[f"{p}.output_linear.0.bias"] = sd[f"blocks.{i}.mix.conv.bias"]
    return new


def spikingssm_sdn(exact: bool = False) -> SpikingSSMNet:
    from neurocompile.models.sdn import load_sdn

    cfg, sd = shipped("spikingssm_sdigits")
    n = cfg["n_layers"]
    m = SpikingSSMNet(1, cfg["d_model"], cfg["d_state"], n, cfg["n_classes"], BPTTSpike if exact else SDNSpike)
    new = sdn_state_dict(sd, n)
    if not exact:
        sdn = load_sdn(CKPT / "sdn_tau0.125.pt").state_dict()
        for i in range(n):
            new.update({f"model.s4_layers.{i}.neuron.model.{k}": v for k, v in sdn.items()})
    m.load_state_dict(new)
    return m.eval()


STEP_BLOCKS = {"snntorch": SnnTorchBlock, "jelly": JellyBlock, "norse": NorseBlock}


def step_net(kind: str) -> StepNet:
    """S4D + per-step library neuron (``snntorch``, ``jelly`` or ``norse``) with the shipped spikingssm weights."""
    cfg, sd = shipped("spikingssm_sdigits")
    n = cfg["n_layers"]
    m = StepNet(1, cfg["d_model"], cfg["d_state"], n, cfg["n_classes"], STEP_BLOCKS[kind])
    new = {"embed.weight": sd["encoder.weight"], "embed.bias": sd["encoder.bias"],
           "head.weight": sd["decoder.weight"], "head.bias": sd["decoder.bias"]}
    for i in range(n):
        p = f"body.{i}"
        new.update(_ssm_kernel(sd, i, f"{p}.ssm.kernel"))
        new[f"{p}.ssm.D"] = sd[f"blocks.{i}.s4d.D"]
        new[f"{p}.ln_vth"] = sd[f"blocks.{i}.neuron.ln_vth"]
        new[f"{p}.proj.weight"] = sd[f"blocks.{i}.mix.conv.weight"][:, :, 0]
        new[f"{p}.proj.bias"] = sd[f"blocks.{i}.mix.conv.bias"]
    m.load_state_dict(new, strict=False)
    return m.eval()


def refractory_net() -> RefractoryNet:
    cfg, sd = shipped("spike_ssm_sdigits")
    n = cfg["n_layers"]
    m = RefractoryNet(1, cfg["d_model"], cfg["d_state"], n, cfg["n_classes"])
    new = {"stem.weight": sd["encoder.weight"], "stem.bias": sd["encoder.bias"],
           "head.weight": sd["decoder.weight"], "head.bias": sd["decoder.bias"]}
    for i in range(n):
        p, q = f"stages.{i}", f"blocks.{i}"
        new[f"{p}.ssm.log_dt"] = sd[f"{q}.s4d.log_dt"]
        # inverse softplus of exp(log_A_real), so that -softplus(inv) = -exp(log_A_real)
        a = torch.exp(sd[f"{q}.s4d.log_A_real"].double())
        new[f"{p}.ssm.inv_A_real"] = (a + torch.log(-torch.expm1(-a))).float()
        new[f"{p}.ssm.A_imag"] = sd[f"{q}.s4d.A_imag"]
        new[f"{p}.ssm.B"] = torch.view_as_complex(sd[f"{q}.s4d.B"].contiguous())
        new[f"{p}.ssm.C"] = torch.view_as_complex(sd[f"{q}.s4d.C"].contiguous())
        new[f"{p}.ssm.D"] = sd[f"{q}.s4d.D"]
        vth = torch.exp(sd[f"{q}.neuron.ln_vth"])
        new[f"{p}.fire.threshold"] = vth
        new[f"{p}.fire.refractory"] = vth * torch.exp(sd[f"{q}.neuron.ln_rho"])
        new[f"{p}.gate.weight"] = sd[f"{q}.mix.conv.weight"]
        new[f"{p}.gate.bias"] = sd[f"{q}.mix.conv.bias"]
    m.load_state_dict(new)
    return m.eval()


# ------------------------------------------------------------------------------------------------ renamed shipped
def renamed_spikingssm() -> nn.Module:
    """The shipped spikingssm_sdigits model with every module and class renamed (same weights, same maths)."""
    from neurocompile.models.neurons import LIF
    from neurocompile.models.s4d import S4D

    class Resonator(S4D):
        pass

    class Spiker(LIF):
        pass

    class Gate(nn.Module):
        def __init__(self, H: int) -> None:
            super().__init__()
            self.pointwise = nn.Conv1d(H, 2 * H, 1)

        def forward(self, s):
            z = self.pointwise(s.transpose(1, 2))
            a, b = z.chunk(2, dim=1)
            return (a * torch.sigmoid(b)).transpose(1, 2)

    class Stage(nn.Module):
        def __init__(self, H: int, N: int) -> None:
            super().__init__()
            self.resonator = Resonator(H, N)
            self.spiker = Spiker(H)
            self.drop = nn.Dropout(0.0)
            self.gate = Gate(H)

        def forward(self, x):
            s = self.spiker(self.resonator(x))
            return x + self.drop(self.gate(self.drop(s)))

    class DigitNet(nn.Module):
        def __init__(self, H: int, N: int, n: int, n_out: int) -> None:
            super().__init__()
            self.lift = nn.Linear(1, H)
            self.stages = nn.ModuleList(Stage(H, N) for _ in range(n))
            self.readout = nn.Linear(H, n_out)

        def forward(self, x):
            h = self.lift(x.to(self.lift.weight.dtype))
            for st in self.stages:
                h = st(h)
            return self.readout(h.mean(dim=1))

    cfg, sd = shipped("spikingssm_sdigits")
    m = DigitNet(cfg["d_model"], cfg["d_state"], cfg["n_layers"], cfg["n_classes"])
    ren = {"encoder.": "lift.", "decoder.": "readout.", "blocks.": "stages.", ".s4d.": ".resonator.",
           ".neuron.": ".spiker.", ".mix.conv.": ".gate.pointwise."}
    new = {}
    for k, v in sd.items():
        for a, b in ren.items():
            k = k.replace(a, b)
        new[k] = v
    m.load_state_dict(new)
    return m.eval()


def finetune(model: nn.Module, epochs: int, seed: int = 0) -> nn.Module:
    """A few epochs of Adam on sdigits (SSM kernels frozen): adapts mapped weights to a different neuron."""
    from neurocompile.datasets import load_dataset

    tr = load_dataset("sdigits", split="train")
    x, y = torch.as_tensor(tr.x).float(), torch.as_tensor(tr.y).long()
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if "kernel" not in n], lr=3e-3)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


# ------------------------------------------------------------------------------------------------ state_dict layouts
# Rules files a user of each fixture's own code base writes for ``--layout`` (the public layouts are built in).
_STEP_RULES = r"""
name = "step-net"
[[rule]]
match = 'embed\.(weight|bias)'
to = 'encoder.\1'
[[rule]]
match = 'head\.(weight|bias)'
to = 'decoder.\1'
[[rule]]
match = 'body\.(\d+)\.ssm\.kernel\.(log_dt|log_A_real|A_imag|C)'
to = 'blocks.\1.s4d.\2'
[[rule]]
match = 'body\.(\d+)\.ssm\.D'
to = 'blocks.\1.s4d.D'
[[rule]]
match = 'body\.(\d+)\.ln_vth'
to = 'blocks.\1.neuron.ln_vth'
[[rule]]
match = 'body\.(\d+)\.proj\.weight'
to = 'blocks.\1.mix.conv.weight'
unsqueeze = -1
[[rule]]
match = 'body\.(\d+)\.proj\.bias'
to = 'blocks.\1.mix.conv.bias'
[[rule]]
match = 'body\.(\d+)\.spike\.(beta|threshold|graded_spikes_factor|reset_mechanism_val)'
drop = "snnTorch neuron constants (beta 0.125, threshold 1, subtract reset): given by the config"
[[fill]]
key = 'blocks.{i}.s4d.B'
like = 'blocks.{i}.s4d.C'
value = "complex_one"
"""

# snnTorch's subtract reset is the reset-refractory LIF with rho = 0: exp(-120) underflows to 0 in float32
_SNNTORCH_FILL = """
[[fill]]
key = 'blocks.{i}.neuron.ln_rho'
like = 'blocks.{i}.neuron.ln_vth'
value = -120.0
"""

_REFRACTORY_RULES = r"""
name = "refractory-own-names"
[[rule]]
match = 'stem\.(weight|bias)'
to = 'encoder.\1'
[[rule]]
match = 'head\.(weight|bias)'
to = 'decoder.\1'
[[rule]]
match = 'stages\.(\d+)\.ssm\.(log_dt|A_imag|B|C|D)'
to = 'blocks.\1.s4d.\2'
[[rule]]
match = 'stages\.(\d+)\.ssm\.inv_A_real'
to = 'blocks.\1.s4d.log_A_real'
transform = "log_softplus"
[[rule]]
match = 'stages\.(\d+)\.fire\.threshold'
to = 'blocks.\1.neuron.ln_vth'
transform = "log"
[[rule]]
match = 'stages\.(\d+)\.fire\.refractory'
to = 'blocks.\1.neuron.ln_rho'
divide_by = 'stages.\1.fire.threshold'
transform = "log"
[[rule]]
match = 'stages\.(\d+)\.gate\.(weight|bias)'
to = 'blocks.\1.mix.conv.\2'
"""


def layout_for(name: str) -> tuple[str, dict]:
    """(--layout: built-in name or rules TOML text, config changes) for each fixture's state_dict."""
    if name == "state_spaces_lif":
        return "state-spaces-s4d", {}
    if name.startswith("spikingssm"):
        return "spikingssm-sdn", {}
    if name == "refractory_own_names":
        return _REFRACTORY_RULES, {"family": "spike_ssm"}
    if name == "snntorch_leaky":
        return _STEP_RULES + _SNNTORCH_FILL, {"family": "spike_ssm", "refractory_decay": 0.0}  # no trace: lam 0
    return _STEP_RULES, {"family": "spikingssm"}


# ------------------------------------------------------------------------------------------------ registry
#: the acceptance fixtures: name -> eager model (trained weights mapped into each layout)
FIXTURES = {
    "state_spaces_lif": state_spaces_lif,
    "spikingssm_sdn": lambda: spikingssm_sdn(exact=False),
    "spikingssm_exact": lambda: spikingssm_sdn(exact=True),
    "snntorch_leaky": lambda: step_net("snntorch"),
    "spikingjelly_lif": lambda: step_net("jelly"),
    "norse_lif": lambda: step_net("norse"),
    "refractory_own_names": refractory_net,
}
#: neuron template each fixture's neuron is recognised as
TEMPLATE = {"state_spaces_lif": "LIF", "spikingssm_sdn": "LIF", "spikingssm_exact": "LIF",
            "snntorch_leaky": "RefractoryLIF", "spikingjelly_lif": "LIF", "norse_lif": "LIF",
            "refractory_own_names": "RefractoryLIF"}


def needs(name: str) -> None:
    """Skip the calling test when the fixture's neuron library is not installed (Norse is test-only)."""
    import pytest

    if name == "norse_lif":
        pytest.importorskip("norse.torch")


def reference(name: str) -> nn.Module:
    """The eager model the compiled graph must equal (the SDN model compiles to its exact LIF)."""
    return FIXTURES["spikingssm_exact" if name == "spikingssm_sdn" else name]()


def save_torchscript(model: nn.Module, x: torch.Tensor, path: Path) -> None:
    """torch.jit.trace + save; snnTorch's default surrogate (a Python autograd.Function) is swapped for
    :func:`plain_heaviside`, the same forward, because TorchScript cannot save a Python function."""
    import snntorch as snn

    for m in model.modules():
        if isinstance(m, snn.Leaky):
            m.spike_grad = plain_heaviside
    torch.jit.save(torch.jit.trace(model, x), path)
