"""Loader: every accepted format, and every kind of bad file fails with one clear ModelLoadError."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from neurocompile.errors import ModelLoadError, NeurocompileError
from neurocompile.frontend import load_model, save_exported, save_torchscript, trace
from neurocompile.models import ModelConfig, SSMClassifier, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def _model(**kw):
    torch.manual_seed(0)
    return SSMClassifier(ModelConfig(**{"d_model": 8, "d_state": 4, "n_layers": 2, **kw})).eval()


@pytest.fixture()
def ckpt(tmp_path):
    p = tmp_path / "model.pt"
    save_checkpoint(_model(), p, metrics={"acc": 0.5})
    return p


def test_checkpoint_loads(ckpt):
    loaded = load_model(ckpt)
    assert loaded.format == "checkpoint" and not loaded.module.training
    assert loaded.config["d_model"] == 8 and loaded.metrics == {"acc": 0.5}
    assert len(loaded.sha256) == 64 and loaded.source()["path"] == str(ckpt)


def test_bare_state_dict_with_config(tmp_path):
    model = _model(family="gsu")
    p = tmp_path / "weights.pt"
    torch.save(model.state_dict(), p)
    with pytest.raises(ModelLoadError, match="bare state_dict.*config="):
        load_model(p)
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(model.config.to_dict()))
    for cfg in (model.config, model.config.to_dict(), cfg_file, str(cfg_file)):
        loaded = load_model(p, config=cfg)
        assert loaded.format == "state_dict" and loaded.config["family"] == "gsu"
    x = torch.rand(2, 8, 1)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), model(x))


def test_shape_mismatch_names_tensor(tmp_path):
    p = tmp_path / "weights.pt"
    torch.save(_model().state_dict(), p)
    with pytest.raises(ModelLoadError, match=r"tensor 'encoder.weight' has shape \[8, 1\].*needs \[16, 1\]"):
        load_model(p, config=ModelConfig(d_model=16, d_state=4, n_layers=2))
    with pytest.raises(ModelLoadError, match="missing"):
        load_model(p, config=ModelConfig(d_model=8, d_state=4, n_layers=3))


def test_nan_and_inf_weights_named(tmp_path):
    model = _model()
    with torch.no_grad():
        model.blocks[1].s4d.C[0, 0, 0] = float("nan")
    save_checkpoint(model, tmp_path / "nan.pt")
    with pytest.raises(ModelLoadError, match="blocks.1.s4d.C.*NaN/Inf"):
        load_model(tmp_path / "nan.pt")
    model = _model()
    with torch.no_grad():
        model.decoder.bias[0] = float("inf")
    save_torchscript(model, tmp_path / "inf_ts.pt", torch.rand(1, 4, 1))
    with pytest.raises(ModelLoadError, match="decoder.bias"):
        load_model(tmp_path / "inf_ts.pt")


def test_pickled_module_refused_unless_trusted(tmp_path):
    p = tmp_path / "pickled.pt"
    torch.save(_model(), p)
    with pytest.raises(ModelLoadError) as exc:
        load_model(p)
    msg = str(exc.value)
    for needle in ("pickled", "SSMClassifier", "run code", "trust_pickle=True", "Refused"):
        assert needle in msg, msg
    loaded = load_model(p, trust_pickle=True)
    assert loaded.format == "pickle" and loaded.config["d_model"] == 8
    assert len(trace(loaded)) > 5
    torch.save(nn.Sequential(), tmp_path / "empty.pt")
    with pytest.raises(ModelLoadError, match="empty model"):
        load_model(tmp_path / "empty.pt", trust_pickle=True)


def test_pickled_non_module_refused_even_when_trusted(tmp_path):
    p = tmp_path / "obj.pt"
    torch.save({"x": ModelConfig()}, p)
    with pytest.raises(ModelLoadError, match="ModelConfig"):
        load_model(p)
    with pytest.raises(ModelLoadError, match="not a torch nn.Module"):
        load_model(p, trust_pickle=True)


def _write(path, data):
    path.write_bytes(data)
    return path


BAD = [
    ("missing", lambda t, c: t / "nope.pt", "no such file"),
    ("directory", lambda t, c: t, "is a directory"),
    ("empty file", lambda t, c: _write(t / "e.pt", b""), "empty"),
    ("truncated", lambda t, c: _write(t / "tr.pt", c.read_bytes()[: len(c.read_bytes()) // 2]), "truncated"),
    ("random bytes", lambda t, c: _write(t / "r.pt", bytes(random.Random(0).randrange(256) for _ in range(999))),
     "not a loadable model file"),
    ("text file", lambda t, c: _write(t / "t.pt", b"hello world\n"), "not a loadable model file"),
    ("tensor", lambda t, c: (torch.save(torch.ones(3), t / "x.pt"), t / "x.pt")[1], "holds a Tensor"),
    ("list", lambda t, c: (torch.save([1, 2], t / "l.pt"), t / "l.pt")[1], "holds a list"),
    ("empty dict", lambda t, c: (torch.save({}, t / "d.pt"), t / "d.pt")[1], "empty"),
    ("other format", lambda t, c: (torch.save({"format": "onnx", "x": 1}, t / "f.pt"), t / "f.pt")[1], "'onnx'"),
    ("bad version", lambda t, c: (torch.save({**torch.load(c, weights_only=True), "version": 7}, t / "v.pt"),
                                  t / "v.pt")[1], "version 7"),
    ("bad config", lambda t, c: (torch.save({**torch.load(c, weights_only=True),
                                             "config": {"family": "transformer"}}, t / "c.pt"), t / "c.pt")[1],
     "invalid model config"),
    ("empty state_dict", lambda t, c: (torch.save({**torch.load(c, weights_only=True), "state_dict": {}}, t / "s.pt"),
                                       t / "s.pt")[1], "empty model"),
]


@pytest.mark.parametrize("label,make,needle", BAD, ids=[b[0] for b in BAD])
def test_bad_files(tmp_path, ckpt, label, make, needle):
    path = make(tmp_path, ckpt)
    with pytest.raises(ModelLoadError) as exc:
        load_model(path)
    msg = str(exc.value)
    assert needle in msg, msg
    assert "\n" not in msg


def test_corrupt_torchscript_and_export(tmp_path):
    model = _model()
    x = torch.rand(1, 4, 1)
    for name, save in (("m_ts.pt", save_torchscript), ("m.pt2", save_exported)):
        p = save(model, tmp_path / name, x)
        data = p.read_bytes()
        cut = _write(tmp_path / ("cut_" + name), data[: len(data) * 2 // 3])
        with pytest.raises(ModelLoadError):
            load_model(cut)


def test_torch_load_always_weights_only():
    """The only weights_only=False load is the explicit trust_pickle branch."""
    calls = []
    for py in (ROOT / "neurocompile" / "frontend").glob("*.py"):
        calls += [(py.name, m) for m in re.findall(r"torch\.load\(([^)]*)\)", py.read_text())]
    assert calls, "no torch.load call found"
    unsafe = [c for c in calls if "weights_only=True" not in c[1]]
    assert len(unsafe) == 1 and "weights_only=False" in unsafe[0][1] and unsafe[0][0] == "load.py"


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(3)
    if kind == 0:
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:
        b = b[: rng.randrange(len(b))]
    else:
        i = rng.randrange(len(b))
        b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
    return bytes(b)


def test_fuzz_checkpoint_bytes(tmp_path, ckpt):
    """200 seeded mutations of a checkpoint: loading and tracing raise only NeurocompileError subclasses."""
    good = ckpt.read_bytes()
    # Mutations concentrated on the pickle (config, names, shapes) and spread over the whole file.
    start = good.find(b"data.pkl")
    rng = random.Random(2024)
    results = {"ok": 0, "error": 0}
    for i in range(200):
        if i % 2 and start > 0:
            data = good[:start] + _mutate(good[start:start + 2000], rng) + good[start + 2000:]
        else:
            data = _mutate(good, rng)
        p = _write(tmp_path / f"f{i}.pt", data)
        try:
            trace(load_model(p))
            results["ok"] += 1
        except NeurocompileError:
            results["error"] += 1
    assert results["error"] > 100, results
