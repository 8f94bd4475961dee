"""Tracing: the IR float interpreter reproduces the PyTorch models (logits to 1e-5, spikes up to counted ties).

Every family is tested on random-weight models (always), and every shipped classifier checkpoint in
examples/checkpoints on its held-out split. Random-weight models use 128 held-out sdigits sequences: enough for
~2^19 spike decisions per model while keeping each case under a second.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend import load_model, trace
from neurocompile.frontend.check import compare_to_model
from neurocompile.ir import nodes as fl
from neurocompile.ir.interpret import interpret
from neurocompile.models import ModelConfig, SSMClassifier
from neurocompile.models.data import load_sdigits

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ["spikingssm", "binary_s4d", "gsu", "spike_ssm"]


@pytest.fixture(scope="module")
def sdigits_test():
    x, y = load_sdigits("test")
    return x[:128], y[:128]


def random_model(seed: int = 0, **kw) -> SSMClassifier:
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"d_model": 16, "d_state": 8, "n_layers": 2, **kw})
    model = SSMClassifier(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):  # non-trivial running statistics
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return model.eval()


def assert_matches(model, graph, x, max_tie_fraction=0.02):
    c = compare_to_model(model, graph, x)
    assert c.real_mismatches == 0, c
    assert c.tie_samples <= max_tie_fraction * c.samples, c
    assert c.rel_diff <= 1e-5, c
    assert c.spikes_compared > 0
    return c


CASES = [
    dict(norm="none"),
    dict(norm="batch", norm_position="pre"),
    dict(norm="layer", norm_position="post"),
]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['norm']}-{c.get('norm_position', 'pre')}")
def test_random_models_match(family, case, sdigits_test):
    model = random_model(family=family, **case)
    g = trace(model)
    assert g.meta["family"] == family
    assert g.inputs == ["input"] and g.outputs == ["decoder"]
    c = assert_matches(model, g, sdigits_test[0])
    assert c.spike_mismatches, "no spiking node was compared"
    if c.tie_samples == 0:  # a mismatch is allowed only where a float tie decides the spike
        assert sum(c.spike_mismatches.values()) == 0, c


def test_node_names_and_types():
    g = trace(random_model(family="spikingssm", norm="layer"))
    assert g.order() == [
        "input", "encoder", "blocks.0.norm", "blocks.0.s4d", "blocks.0.neuron", "blocks.0.mix.conv",
        "blocks.0.mix.glu", "blocks.0.add", "blocks.1.norm", "blocks.1.s4d", "blocks.1.neuron",
        "blocks.1.mix.conv", "blocks.1.mix.glu", "blocks.1.add", "pool", "decoder",
    ]
    lif = g.node("blocks.0.neuron")
    assert isinstance(lif, fl.LIF) and lif.tau == 0.125 and lif.compare == ">=" and lif.reset == "zero"
    s4d = g.node("blocks.0.s4d")
    assert s4d.A_re.dtype == np.float32 and s4d.C.dtype == np.complex64 and np.all(s4d.A_re < 0)
    assert g.meta["trace_map"]["block1.out"] == "blocks.1.add"


def test_gsu_decomposition():
    model = random_model(family="gsu")
    g = trace(model)
    for suffix, cls in (("ter", fl.Ternarize), ("gate_a", fl.Affine), ("gate_b", fl.Affine), ("mul", fl.Mul),
                        ("gelu", fl.Activation)):
        assert isinstance(g.node(f"blocks.0.mix.{suffix}"), cls)
    w = g.node("blocks.0.mix.gate_b").weight
    assert set(np.unique(w).tolist()) <= {-1.0, 0.0, 1.0}
    assert g.preds("blocks.0.mix.gate_b") == ["blocks.0.s4d"]
    assert g.meta["trace_map"]["block0.spikes"] == "blocks.0.mix.ter"


def test_embedding_encoder_matches():
    model = random_model(family="spikingssm", encoder="embedding", vocab_size=12, norm="layer")
    g = trace(model)
    assert g.node("input").tokens and g.node("input").vocab == 12
    x = torch.randint(0, 12, (64, 40))
    assert_matches(model, g, x)


def test_bidirectional_traced_and_buffered(sdigits_test):
    model = random_model(family="spikingssm", bidirectional=True)
    g = trace(model)
    assert g.node("blocks.0.s4d").bidirectional
    assert_matches(model, g, sdigits_test[0])


def test_training_only_parts_stripped_and_listed():
    model = random_model(family="spikingssm", dropout=0.1, neuron_mode="sdn")
    stripped = trace(model).meta["stripped"]
    kinds = {(s["module"], s["kind"]) for s in stripped}
    assert ("blocks.0.dropout", "Dropout") in kinds and ("blocks.1.neuron", "SDN") in kinds
    model = random_model(family="spike_ssm", neuron_mode="pmbc")
    assert ("blocks.0.neuron", "PMBC") in {(s["module"], s["kind"]) for s in trace(model).meta["stripped"]}


def _shipped():
    out = []
    # the 784-step (s/ps)MNIST checkpoints have their own tests (test_smnist_models.py)
    for p in sorted(q for q in (ROOT / "examples" / "checkpoints").glob("*.pt") if "mnist" not in q.stem):
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:
            continue
        if isinstance(obj, dict) and obj.get("format") == "neurocompile-checkpoint":
            out.append(p)
    return out or [pytest.param(None, marks=pytest.mark.skip(reason="no shipped classifier checkpoint yet"))]


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: p.name if p else "none")
def test_shipped_checkpoints_match_on_held_out_split(path):
    loaded = load_model(path)
    g = trace(loaded)
    if loaded.config["encoder"] == "embedding":
        from neurocompile.models.data import load_listops

        x, _ = load_listops("test", n=128)  # ListOps sequences are long: 128 held-out samples
    else:
        x, _ = load_sdigits("test")  # the whole held-out split (450)
    c = assert_matches(loaded, g, x)
    print(f"{path.name}: {c.as_dict()}")


# ---------------------------------------------------------------------------------------------------------------
# An S4D layer written independently, in the style of state-spaces/s4 (models/s4/s4d.py): parameters log_dt,
# log_A_real (or A_real), A_imag, C as a real view, D; the convolution kernel computed with an FFT.
class StateSpacesS4D(nn.Module):
    def __init__(self, d_model, d_state=16, dt_min=1e-3, dt_max=1e-1, a_param="log_A_real", with_B=False,
                 transposed=True):
        super().__init__()
        H, N = d_model, d_state // 2
        self.h, self.n, self.transposed = H, N, transposed
        self.log_dt = nn.Parameter(torch.rand(H) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, N, dtype=torch.cfloat)))
        if a_param == "log_A_real":
            self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, N)))
        else:
            self.A_real = nn.Parameter(-0.5 * torch.ones(H, N) - 0.2 * torch.rand(H, N))
        self.A_imag = nn.Parameter(math.pi * torch.arange(N).float().repeat(H, 1))
        if with_B:
            self.B = nn.Parameter(torch.view_as_real(torch.randn(H, N, dtype=torch.cfloat) * 0.5 + 1))
        self.D = nn.Parameter(torch.randn(H))

    def kernel(self, L):
        dt = torch.exp(self.log_dt)
        C = torch.view_as_complex(self.C)
        a_re = -torch.exp(self.log_A_real) if hasattr(self, "log_A_real") else self.A_real
        A = a_re + 1j * self.A_imag
        dtA = A * dt.unsqueeze(-1)
        K = dtA.unsqueeze(-1) * torch.arange(L, device=A.device)
        C = C * (torch.exp(dtA) - 1.0) / A
        if hasattr(self, "B"):
            C = C * torch.view_as_complex(self.B)
        return 2 * torch.einsum("hn,hnl->hl", C, torch.exp(K)).real

    def forward(self, u):
        if not self.transposed:
            u = u.transpose(-1, -2)  # (B, L, H) -> (B, H, L)
        L = u.size(-1)
        k_f = torch.fft.rfft(self.kernel(L), n=2 * L)
        u_f = torch.fft.rfft(u, n=2 * L)
        y = torch.fft.irfft(u_f * k_f, n=2 * L)[..., :L] + u * self.D.unsqueeze(-1)
        if not self.transposed:
            return y.transpose(-1, -2)
        return y, None  # state-spaces layers return (output, state)


@pytest.mark.parametrize("a_param,with_B", [("log_A_real", False), ("A_real", True)])
def test_state_spaces_layer_alone(a_param, with_B):
    torch.manual_seed(3)
    layer = StateSpacesS4D(6, 8, a_param=a_param, with_B=with_B)
    g = trace(layer)
    assert isinstance(g.node("s4d"), fl.S4D)
    u = torch.randn(4, 50, 6)
    with torch.no_grad():
        want = layer(u.transpose(1, 2))[0].transpose(1, 2).double().numpy()
    got = interpret(g, u.numpy()).outputs["s4d"]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_state_spaces_layer_inside_classifier(sdigits_test):
    model = random_model(family="spikingssm", norm="layer")
    torch.manual_seed(4)
    for block in model.blocks:
        block.s4d = StateSpacesS4D(16, 8, transposed=False)
    g = trace(model)
    assert_matches(model, g, sdigits_test[0])


def test_sequential_model_with_state_spaces_layer():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(2, 8), StateSpacesS4D(8, 4, transposed=False), nn.GELU(), nn.Dropout(0.2),
                          nn.Linear(8, 3)).eval()
    g = trace(model)
    assert [type(g.node(n)).__name__ for n in g.order()] == ["Input", "Affine", "S4D", "Activation", "Affine"]
    assert g.meta["stripped"][0]["kind"] == "Dropout"
    x = torch.randn(3, 30, 2)
    with torch.no_grad():
        want = model(x).double().numpy()
    got = interpret(g, x.numpy()).outputs[g.outputs[0]]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_wrong_discretisation_detected():
    class BilinearS4D(StateSpacesS4D):
        def kernel(self, L):  # bilinear transform instead of ZOH: same parameters, different model
            dt = torch.exp(self.log_dt).unsqueeze(-1)
            A = -torch.exp(self.log_A_real) + 1j * self.A_imag
            dA = (1 + dt * A / 2) / (1 - dt * A / 2)
            dB = dt / (1 - dt * A / 2)
            K = dA.unsqueeze(-1) ** torch.arange(L)
            return 2 * torch.einsum("hn,hnl->hl", torch.view_as_complex(self.C) * dB, K).real

    torch.manual_seed(6)
    with pytest.raises(UnsupportedOpError, match="does not compute the ZOH S4D"):
        trace(BilinearS4D(4, 4, dt_min=0.3, dt_max=0.9))


def test_unsupported_module_error_names_everything():
    model = random_model(family="spikingssm")
    model.blocks[1].neuron = nn.Tanh()
    with pytest.raises(UnsupportedOpError) as exc:
        trace(model)
    msg = str(exc.value)
    for needle in ("blocks.1.neuron", "Tanh", "LIF", "Heaviside", "RefractoryLIF", "IR node"):
        assert needle in msg, msg


def test_unsupported_root_and_layers():
    with pytest.raises(UnsupportedOpError, match="LSTM"):
        trace(nn.LSTM(4, 4))
    with pytest.raises(UnsupportedOpError, match=r"GELU\(approximate='tanh'\)"):
        trace(nn.Sequential(nn.Linear(1, 4), nn.GELU(approximate="tanh")))
    with pytest.raises(UnsupportedOpError, match="Tanh"):
        trace(nn.Sequential(nn.Linear(1, 4), nn.Tanh()))
    with pytest.raises(UnsupportedOpError, match="empty"):
        trace(nn.Sequential())


def test_example_input_validation_recorded(sdigits_test):
    model = random_model(family="binary_s4d")
    g = trace(model, example_input=sdigits_test[0][:8])
    assert g.meta["validation"]["rel_diff"] < 1e-5
