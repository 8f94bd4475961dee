r"""SDN, the surrogate dynamic network of SpikingSSMs (Shen et al., AAAI 2025): a training-time device only.

The exact LIF neuron (threshold normalised to 1, see :class:`~neurocompile.models.neurons.LIF`) is

.. math::

    v'_t = \tau v_{t-1} + x_t, \qquad s_t = [v'_t \ge 1], \qquad v_t = v'_t (1 - s_t), \qquad v_{-1} = 0

It is sequential. The SDN is a 153-parameter causal CNN that predicts the *attenuated membrane*
:math:`m_t = \tau v_{t-1}` from the input sequence, so that in training the spikes
:math:`s_t = [x_t + \hat m_t \ge 1]` are computed for all t at once. Layers:
Conv1d(1->8, kernel 8, causal) -> ReLU -> Conv1d(8->8, kernel 1) + residual -> ReLU -> Conv1d(8->1, kernel 1).
Our first convolution is *strictly* causal (it sees :math:`x_{t-8..t-1}`), because :math:`m_t` does not depend on
:math:`x_t`. As in the authors' repository, it is trained on inputs :math:`x_t \sim \mathcal N(0, 1)`.

``python -m neurocompile.models.sdn --out examples/checkpoints/sdn_tau0.125.pt`` trains and saves one.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from neurocompile.errors import ModelLoadError

__all__ = [
    "SDN",
    "SDNFormatError",
    "lif_reference",
    "generate_lif_data",
    "train_sdn",
    "sdn_spike_agreement",
    "save_sdn",
    "load_sdn",
    "default_sdn_path",
    "get_default_sdn",
]

SDN_FORMAT = "neurocompile-sdn"
SDN_VERSION = 1


class SDNFormatError(ModelLoadError, ValueError):
    """A file is not an SDN checkpoint written by :func:`save_sdn`, or its tau does not match."""


class SDN(nn.Module):
    """153-parameter causal CNN: input current [..., L] -> predicted attenuated membrane tau*v_{t-1} [..., L]."""

    kernel_size = 8

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, self.kernel_size)
        self.conv2 = nn.Conv1d(channels, channels, 1)
        self.conv3 = nn.Conv1d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Same maths as conv1 -> relu -> conv2 + residual -> relu -> conv3, written as matmuls over the unfolded
        # windows: several times faster on CPU than Conv1d with one input channel and a huge batch.
        shape = x.shape
        z = F.pad(x.reshape(-1, shape[-1]), (self.kernel_size, 0))[:, :-1]  # strictly causal: sees x_{t-8..t-1}
        windows = z.unfold(-1, self.kernel_size, 1)  # [M, L, 8]
        h = F.relu(F.linear(windows, self.conv1.weight[:, 0, :], self.conv1.bias))
        h = F.relu(F.linear(h, self.conv2.weight[:, :, 0], self.conv2.bias) + h)
        return F.linear(h, self.conv3.weight[:, :, 0], self.conv3.bias).reshape(shape)

    def forward_conv(self, x: torch.Tensor) -> torch.Tensor:
        """Reference form of :meth:`forward` with the Conv1d layers themselves (tests)."""
        shape = x.shape
        z = F.pad(x.reshape(-1, 1, shape[-1]), (self.kernel_size, 0))[..., :-1]
        h = F.relu(self.conv1(z))
        h = F.relu(self.conv2(h) + h)
        return self.conv3(h).reshape(shape)


def lif_reference(x: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact normalised LIF over the last axis: returns ``(m, s)`` with ``m_t = tau*v_{t-1}`` and spikes ``s_t``."""
    v = torch.zeros_like(x[..., 0])
    mems, spikes = [], []
    for t in range(x.shape[-1]):
        m = tau * v
        v_pre = m + x[..., t]
        s = (v_pre >= 1.0).to(x.dtype)
        v = v_pre * (1.0 - s)
        mems.append(m)
        spikes.append(s)
    return torch.stack(mems, -1), torch.stack(spikes, -1)


def generate_lif_data(
    n: int, length: int, tau: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x, m, s)``, each [n, length]: inputs x ~ N(0, 1), attenuated membrane and exact spikes."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, generator=gen)
    m, s = lif_reference(x, tau)
    return x, m, s


@torch.no_grad()
def sdn_spike_agreement(
    sdn: SDN, tau: float, n: int = 512, length: int = 1024, seed: int = 12345, x: torch.Tensor | None = None
) -> float:
    """Fraction of time steps where the SDN's spikes ``[x + sdn(x) >= 1]`` equal the exact LIF's.

    ``x`` [..., L] gives the inputs (normalised currents y/V_th); by default fresh N(0, 1) sequences.
    """
    if x is None:
        x = generate_lif_data(n, length, tau, seed)[0]
    _, s_exact = lif_reference(x, tau)
    s_sdn = (x + sdn(x) >= 1.0).to(x.dtype)
    return float((s_sdn == s_exact).double().mean())


def train_sdn(
    tau: float = 0.125,
    steps: int = 16000,
    batch: int = 128,
    length: int = 256,
    n_train: int = 4096,
    lr: float = 2e-2,
    seed: int = 0,
    log_every: int = 0,
) -> SDN:
    """Train an SDN by MSE regression of the attenuated membrane on N(0, 1) inputs (cosine-decayed Adam)."""
    torch.manual_seed(seed)
    x, m, _ = generate_lif_data(n_train, length, tau, seed)
    sdn = SDN()
    opt = torch.optim.Adam(sdn.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        idx = torch.randint(0, n_train, (batch,), generator=gen)
        loss = F.mse_loss(sdn(x[idx]), m[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:5d}  mse {loss.item():.3e}")
    sdn.eval()
    for p in sdn.parameters():
        p.requires_grad_(False)
    return sdn


def save_sdn(sdn: SDN, path: str | Path, tau: float, metrics: dict | None = None) -> None:
    """Write ``{'format', 'version', 'tau', 'state_dict', 'metrics'}`` (loadable with ``weights_only=True``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in sdn.state_dict().items()}
    torch.save(
        {"format": SDN_FORMAT, "version": SDN_VERSION, "tau": float(tau), "state_dict": state,
         "metrics": metrics or {}},
        path,
    )


def load_sdn(path: str | Path, tau: float | None = None) -> SDN:
    """Load an SDN saved by :func:`save_sdn` (``weights_only=True``); with ``tau``, check it was trained for it."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # unpickling refused or corrupt file
        raise SDNFormatError(f"{path}: not a readable SDN checkpoint ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != SDN_FORMAT:
        raise SDNFormatError(f"{path}: not an SDN checkpoint (expected format {SDN_FORMAT!r})")
    if ckpt.get("version") != SDN_VERSION:
        raise SDNFormatError(f"{path}: SDN checkpoint version {ckpt.get('version')!r}, expected {SDN_VERSION}")
    if tau is not None and not math.isclose(float(ckpt["tau"]), tau):
        raise SDNFormatError(f"{path}: SDN trained for tau={ckpt['tau']}, but the neuron has tau={tau}")
    sdn = SDN()
    sdn.load_state_dict(ckpt["state_dict"])
    sdn.eval()
    for p in sdn.parameters():
        p.requires_grad_(False)
    return sdn


def default_sdn_path(tau: float) -> Path:
    """Where the repository ships the SDN for ``tau``: ``examples/checkpoints/sdn_tau<tau>.pt``."""
    return Path(__file__).resolve().parents[2] / "examples" / "checkpoints" / f"sdn_tau{tau:g}.pt"


@lru_cache(maxsize=4)
def get_default_sdn(tau: float) -> SDN:
    """The shipped SDN for ``tau`` (cached); a clear error says how to train one if it is missing."""
    path = default_sdn_path(tau)
    if not path.exists():
        raise FileNotFoundError(
            f"no SDN for tau={tau:g} at {path}; train one with "
            f"'python -m neurocompile.models.sdn --tau {tau:g} --out {path}' or use neuron_mode='exact'"
        )
    return load_sdn(path, tau)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the SpikingSSM surrogate dynamic network (SDN).")
    parser.add_argument("--out", required=True, help="checkpoint path, e.g. examples/checkpoints/sdn_tau0.125.pt")
    parser.add_argument("--tau", type=float, default=0.125)
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.time()
    sdn = train_sdn(tau=args.tau, steps=args.steps, seed=args.seed, log_every=500)
    agreement = sdn_spike_agreement(sdn, args.tau)
    metrics = {
        "spike_agreement_normal01": agreement,
        "eval": "512 sequences x 1024 steps, x ~ N(0,1), seed 12345",
        "n_params": sum(p.numel() for p in sdn.parameters()),
        "train_steps": args.steps,
        "seed": args.seed,
    }
    save_sdn(sdn, args.out, args.tau, metrics)
    print(json.dumps(metrics, indent=2))
    print(f"trained in {time.time() - start:.0f} s; saved {args.out}")


if __name__ == "__main__":
    main()
