"""Acceptance 1 (float part): every foreign fixture, saved as .pt2, TorchScript and state_dict + config + --layout,
compiles to a float graph equal to the eager model (1e-5 relative logits, 0 spike mismatches; SDN: agreement)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import foreign_models as fm

from neurocompile.datasets import load_dataset
from neurocompile.frontend import load_model, trace
from neurocompile.frontend.layout import load_with_layout
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    return torch.as_tensor(load_dataset("sdigits", split="test").x[:40]).float()


def _write(name: str, model: torch.nn.Module, fmt: str, x: torch.Tensor, tmp: Path) -> tuple[Path, dict]:
    """The fixture saved as format ``fmt``: (model file, the export options it needs: --config, --layout)."""
    if fmt == "pt2":
        torch.export.save(torch.export.export(model, (x[:2],)), tmp / "m.pt2")
        return tmp / "m.pt2", {}
    if fmt == "torchscript":
        fm.save_torchscript(model, x[:2], tmp / "m.pt")
        return tmp / "m.pt", {}
    layout, changes = fm.layout_for(name)
    cfg, _ = fm.shipped("spike_ssm_sdigits" if name == "refractory_own_names" else "spikingssm_sdigits")
    torch.save(model.state_dict(), tmp / "w.pt")
    (tmp / "c.json").write_text(json.dumps({**cfg, **changes, "neuron_mode": "exact"}))
    if "\n" in layout:  # a user's rules file
        (tmp / "rules.toml").write_text(layout)
        layout = str(tmp / "rules.toml")
    return tmp / "w.pt", {"config_path": tmp / "c.json", "layout": layout}


def _save(name: str, model: torch.nn.Module, fmt: str, x: torch.Tensor, tmp: Path):
    """The fixture as a file of format ``fmt``, loaded back the way the CLI loads it."""
    path, kw = _write(name, model, fmt, x, tmp)
    return load_with_layout(path, kw["config_path"], kw["layout"]) if kw else load_model(path)


def _eager_spikes(model: torch.nn.Module, paths: list[str], x: torch.Tensor, H: int) -> list[np.ndarray]:
    """Spikes [B, T, H] each neuron module emits in the eager model (per-step calls stacked over time)."""
    calls: dict[str, list[torch.Tensor]] = {p: [] for p in paths}
    hooks = []
    for p in paths:
        def hook(_m, _i, out, p=p):
            calls[p].append((out[0] if isinstance(out, (tuple, list)) else out).detach())
        hooks.append(model.get_submodule(p).register_forward_hook(hook))
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    out = []
    for p in paths:
        s = torch.stack(calls[p], 1) if len(calls[p]) > 1 else calls[p][0]
        out.append((s if s.shape[-1] == H else s.transpose(1, 2)).double().numpy())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "torchscript", "state_dict"])
@pytest.mark.parametrize("name", sorted(fm.FIXTURES))
def test_fixture_every_format_matches_eager(name, fmt, data, tmp_path):
    fm.needs(name)
    graph = trace(_save(name, fm.FIXTURES[name](), fmt, data, tmp_path))
    ref = fm.reference(name)
    with torch.no_grad():
        want = ref(data).double().numpy()
    res = interpret(graph, data.double().numpy(), record=True)
    rel = float(np.abs(res.logits - want).max() / np.abs(want).max())
    neurons = sorted(n for n in res.trace if n.endswith(".neuron"))
    assert len(neurons) == 2, sorted(res.trace)
    assert all(type(graph.node(n)).__name__ == fm.TEMPLATE[name] for n in neurons)
    assert all(graph.node(n).tau == 0.125 for n in neurons)  # snapped to the model's decay, not a float32 fit
    # the neuron modules of the reference model, in block order (their own paths, whatever the format)
    paths = [n for n, m in ref.named_modules() if n.rsplit(".", 1)[-1] in ("activation", "neuron", "spike", "fire")
             and not isinstance(m, torch.nn.Identity)]
    H = graph.node(neurons[0]).vth.shape[0]
    eager = _eager_spikes(ref, paths, data, H)
    bad = sum(int((res.trace[n] != e).sum()) for n, e in zip(neurons, eager))
    total = sum(e.size for e in eager)
    extra = ""
    if name == "spikingssm_sdn":
        agree = [p["agreement"] for p in graph.recognised if "agreement" in p]
        extra = f", SDN vs exact LIF spike agreement {', '.join(f'{a:.5f}' for a in agree) or 'n/a (layout)'}"
        assert all(a > 0.99 for a in agree)
    print(f"{name} ({fmt}): relative logit error {rel:.2e}, spike mismatches {bad} of {total}{extra}")
    assert rel <= 1e-5
    assert bad == 0
    for p in graph.recognised:  # each recognition carries its numeric proof
        if "max_error" in p:
            assert p["max_error"] <= 1e-4 * p["scale"]
        elif name != "spikingssm_sdn":
            assert p["mismatches"] == 0 and p["agreement"] == 1.0


def test_library_neurons_cannot_be_scripted():
    """torch.jit.script refuses all three libraries' neurons: a fact of the libraries, hence torch.jit.trace."""
    nt = pytest.importorskip("norse.torch")
    import snntorch as snn
    from spikingjelly.activation_based import neuron

    for mod in (snn.Leaky(beta=0.125), neuron.LIFNode(step_mode="s"), nt.LIFBoxCell()):
        with pytest.raises(Exception):  # noqa: B017 - each library fails with its own error type
            torch.jit.script(mod)


def test_snntorch_default_surrogate_cannot_be_saved(tmp_path):
    """snnTorch's default ATan surrogate is a Python autograd.Function: a trace of it cannot be saved."""
    model = fm.step_net("snntorch")
    with pytest.raises(RuntimeError, match="Could not export Python function"):
        torch.jit.save(torch.jit.trace(model, torch.zeros(2, 16, 1)), tmp_path / "m.pt")


def _impulse_response(layer, L: int) -> np.ndarray:
    """Closed form of a bilinear diagonal SSM from the module's own parameters: K[l] = 2 Re(sum_n C dB dA^l) (+D)."""
    k = layer.kernel
    dt = np.exp(k.log_dt.detach().double().numpy())[:, None]
    A = -np.exp(k.log_A_real.detach().double().numpy()) + 1j * k.A_imag.detach().double().numpy()
    C = k.C.detach().double().numpy()
    C = C[..., 0] + 1j * C[..., 1]
    dA = (1 + dt * A / 2) / (1 - dt * A / 2)
    dB = dt / (1 - dt * A / 2)
    K = 2 * np.einsum("hn,hnl->hl", C * dB, dA[..., None] ** np.arange(L)).real
    K[:, 0] += layer.D.detach().double().numpy()
    return K.T  # [L, H]


def test_bilinear_s4d_recognised_by_its_impulse_response(tmp_path):
    torch.manual_seed(0)
    model = fm.SSSeqModel(1, 6, 8, 1, 3, bilinear=True).eval()
    with torch.no_grad():
        k = model.s4_layers[0].kernel
        k.log_dt.copy_(torch.linspace(-3.0, -1.0, 6))
        k.log_A_real.copy_(torch.log(0.5 * torch.ones(6, 4)))
        k.A_imag.copy_(torch.pi * torch.arange(4.0).repeat(6, 1))
        k.C.copy_(torch.randn(6, 4, 2) * 0.5)
        model.s4_layers[0].D.copy_(torch.randn(6))
    torch.export.save(torch.export.export(model, (torch.zeros(2, 32, 1),)), tmp_path / "b.pt2")
    graph = trace(load_model(tmp_path / "b.pt2"))
    proof = next(p for p in graph.recognised if p["recognised"].startswith("S4D"))
    assert proof["recognised"] == "S4D (bilinear)" and proof["max_error"] <= 1e-4 * proof["scale"]
    s4d = next(n for _, n in graph.items() if type(n).__name__ == "S4D")
    g = Graph("impulse")
    g.add("u", fl.Input(size=6))
    g.add("s", s4d, "u")
    g.inputs, g.outputs = ["u"], ["s"]
    L = 48
    u = np.zeros((6, L, 6))
    u[np.arange(6), 0, np.arange(6)] = 1.0  # one impulse per channel
    got = np.stack([interpret(g, u).outputs["s"][h, :, h] for h in range(6)], 1)
    want = _impulse_response(model.s4_layers[0], L)
    err = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"bilinear S4D: impulse response of the IR node vs the closed form, max relative error {err:.2e}")
    assert err <= 1e-5
    x = torch.randn(4, 32, 1)
    with torch.no_grad():
        ref = model(x).double().numpy()
    assert np.abs(interpret(graph, x.double().numpy()).logits - ref).max() <= 1e-5 * np.abs(ref).max()


def _int_nodes(art: Path) -> dict[str, dict]:
    from neurocompile.ir.serialize import load_graph

    g = load_graph(art / "int")
    return {name: {f: getattr(n, f) for f in n.__dataclass_fields__} for name, n in g.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(fm.FIXTURES))
def test_fixture_exports_same_integer_network_from_every_format(name, tmp_path):
    """`export` runs from each saved form, and the three forms give the same integer network."""
    from neurocompile import api

    fm.needs(name)
    model = fm.FIXTURES[name]()
    nets = {}
    for fmt in ("pt2", "torchscript", "state_dict"):
        (tmp_path / fmt).mkdir()
        path, kw = _write(name, model, fmt, torch.zeros(2, 64, 1), tmp_path / fmt)
        art = api.export(path, "loihi2", out=tmp_path / fmt / "art", calibration="sdigits", calibration_samples=64,
                         allow_precision_loss=True, console=False, **kw)
        nets[fmt] = _int_nodes(art)
    for fmt in ("torchscript", "state_dict"):
        assert sorted(nets[fmt]) == sorted(nets["pt2"]), fmt
        differ = [(n, f) for n, fields in nets["pt2"].items() for f, v in fields.items()
                  if not np.array_equal(np.asarray(v), np.asarray(nets[fmt][n][f]))]
        print(f"{name}: {fmt} vs pt2 integer network, {len(differ)} differing field(s) {differ[:4]}")
        assert not differ
