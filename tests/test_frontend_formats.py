"""TorchScript and torch.export files give the same IR as the checkpoint of the same model.

Our models' spike functions are ``torch.autograd.Function`` s: ``torch.jit.script`` cannot compile them and a
``torch.jit.trace`` archive cannot save them, so the TorchScript files here are made with ``torch.jit.trace`` under
:func:`inference_spike_functions` (forward-only spike functions; see ``save_torchscript``). ``torch.export`` runs
on the unmodified model. Sequences are 8 steps long to keep the unrolled traces small.
"""

from __future__ import annotations

import zipfile

import pytest
import torch

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend import load_model, save_exported, save_torchscript, trace
from neurocompile.ir.serialize import graph_to_dict
from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint

FAMILY_CASES = [
    ("spikingssm", dict(norm="layer", norm_position="pre")),
    ("binary_s4d", dict(norm="batch", norm_position="post")),
    ("gsu", dict(norm="layer", norm_position="post")),
    ("spike_ssm", dict(norm="none", refractory_decay=0.75, tau=0.25)),
]


def _model(family, **kw):
    torch.manual_seed(0)
    return SSMClassifier(ModelConfig(family=family, d_model=8, d_state=4, n_layers=2, **kw)).eval()


def _ir(path, **kw):
    d = graph_to_dict(trace(load_model(path, **kw)))
    d.pop("name")
    d["meta"].pop("source")
    return d


def _strip_config(src, dst):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for item in zi.infolist():
            if "extra/neurocompile" not in item.filename:
                zo.writestr(item, zi.read(item.filename))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = {}
    x = torch.rand(2, 8, 1)
    for family, kw in FAMILY_CASES:
        d = tmp_path_factory.mktemp(family)
        model = _model(family, **kw)
        save_checkpoint(model, d / "model.pt")
        save_torchscript(model, d / "model_ts.pt", x)
        save_exported(model, d / "model.pt2", x)
        _strip_config(d / "model_ts.pt", d / "bare_ts.pt")
        _strip_config(d / "model.pt2", d / "bare.pt2")
        out[family] = (d, model, x)
    return out


@pytest.mark.parametrize("family", [f for f, _ in FAMILY_CASES])
def test_same_ir_from_every_format(saved, family):
    d, model, x = saved[family]
    ref = _ir(d / "model.pt")
    assert load_model(d / "model_ts.pt").format == "torchscript"
    assert load_model(d / "model.pt2").format == "export"
    assert _ir(d / "model_ts.pt") == ref
    assert _ir(d / "model.pt2") == ref


@pytest.mark.parametrize("family", [f for f, _ in FAMILY_CASES])
def test_same_ir_without_embedded_config(saved, family):
    """Hyper-parameters (tau, lambda, eps, norm position, GSU threshold) read from the file's own graph."""
    d, model, x = saved[family]
    ref = _ir(d / "model.pt")
    for name in ("bare_ts.pt", "bare.pt2"):
        loaded = load_model(d / name)
        assert loaded.config is None
        got = _ir(d / name)
        assert got["nodes"] == ref["nodes"] and got["edges"] == ref["edges"], name
        assert got["meta"]["family"] == family


def test_loaded_modules_run_like_the_model(saved):
    d, model, x = saved["spikingssm"]
    with torch.no_grad():
        want = model(x)
        for name in ("model_ts.pt", "model.pt2"):
            got = load_model(d / name)(x)
            assert torch.allclose(got, want, atol=1e-6), name


def test_explicit_config_overrides_and_missing_evidence(tmp_path):
    """A one-step trace has no 'v * tau' product: without a config the error asks for one."""
    model = _model("spikingssm")
    save_exported(model, tmp_path / "one.pt2", torch.rand(1, 1, 1))
    _strip_config(tmp_path / "one.pt2", tmp_path / "bare.pt2")
    with pytest.raises(UnsupportedOpError, match="LIF tau.*config="):
        trace(load_model(tmp_path / "bare.pt2"))
    g = trace(load_model(tmp_path / "bare.pt2", config=model.config.to_dict()))
    assert g.node("blocks.0.neuron").tau == 0.125
