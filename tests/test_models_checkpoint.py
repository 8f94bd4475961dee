"""Config and checkpoint round trips, rejection of foreign files, and the shipped checkpoints' recorded metrics."""

import json
import pickle
from pathlib import Path

import pytest
import torch

from neurocompile.errors import ModelLoadError
from neurocompile.models import (
    CheckpointFormatError,
    ConfigError,
    ModelConfig,
    SSMClassifier,
    load_checkpoint,
    save_checkpoint,
)
from neurocompile.models.data import load_sdigits
from neurocompile.models.training import evaluate

CKPT_DIR = Path(__file__).resolve().parents[1] / "examples" / "checkpoints"
# float held-out accuracy targets (exact neurons)
TARGETS = {
    "spikingssm_sdigits.pt": 0.95,
    "spike_ssm_sdigits.pt": 0.95,
    "binary_s4d_sdigits.pt": 0.90,
    "gsu_sdigits.pt": 0.90,
}


def test_config_round_trip_and_unknown_key():
    cfg = ModelConfig(family="spike_ssm", d_model=8, neuron_mode="pmbc", norm="layer")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="'d_modle'"):
        ModelConfig.from_dict({**cfg.to_dict(), "d_modle": 3})
    with pytest.raises(ConfigError, match="family"):
        ModelConfig(family="mamba")
    with pytest.raises(ConfigError, match="neuron_mode"):
        ModelConfig(family="gsu", neuron_mode="sdn")
    with pytest.raises(ConfigError, match="d_state"):
        ModelConfig(d_state=7)
    with pytest.raises(ConfigError, match="vocab_size"):
        ModelConfig(encoder="embedding")


@pytest.mark.parametrize("family", ["spikingssm", "binary_s4d", "gsu", "spike_ssm"])
def test_checkpoint_round_trip(tmp_path, family):
    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family=family, d_model=8, d_state=4, norm="batch"))
    model.eval()
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, {"test_accuracy": 0.5})
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert set(raw) == {"format", "version", "config", "state_dict", "metrics"}
    assert raw["format"] == "neurocompile-checkpoint" and raw["version"] == 1
    loaded, ckpt = load_checkpoint(path)
    assert not loaded.training
    assert ckpt["metrics"] == {"test_accuracy": 0.5}
    assert loaded.config == model.config
    x = torch.rand(3, 20, 1)
    assert torch.equal(loaded(x), model(x))
    # deterministic bytes (torch.save names the archive after the file, so compare same-named files)
    save_checkpoint(model, tmp_path / "again" / "m.pt", {"test_accuracy": 0.5})
    assert path.read_bytes() == (tmp_path / "again" / "m.pt").read_bytes()


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_foreign_files_are_rejected(tmp_path):
    wrong_format = tmp_path / "wrong.pt"
    torch.save({"format": "something-else", "version": 1}, wrong_format)
    with pytest.raises(CheckpointFormatError, match="not a neurocompile checkpoint"):
        load_checkpoint(wrong_format)
    bare = tmp_path / "bare_state_dict.pt"
    torch.save(SSMClassifier(ModelConfig(d_model=4, d_state=2)).state_dict(), bare)
    with pytest.raises(CheckpointFormatError):
        load_checkpoint(bare)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointFormatError):
        load_checkpoint(garbage)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": "neurocompile-checkpoint", "x": _Evil()}, f)
    with pytest.raises(CheckpointFormatError, match="weights_only"):
        load_checkpoint(evil)
    future = tmp_path / "future.pt"
    torch.save({"format": "neurocompile-checkpoint", "version": 99, "config": {}, "state_dict": {}}, future)
    with pytest.raises(CheckpointFormatError, match="version"):
        load_checkpoint(future)
    bad_config = tmp_path / "bad_config.pt"
    torch.save({"format": "neurocompile-checkpoint", "version": 1, "config": {"colour": 1}, "state_dict": {}},
               bad_config)
    with pytest.raises(CheckpointFormatError, match="colour"):
        load_checkpoint(bad_config)
    assert issubclass(CheckpointFormatError, ValueError) and issubclass(CheckpointFormatError, ModelLoadError)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_shipped_sdigits_checkpoints_meet_targets(name):
    path = CKPT_DIR / name
    assert path.exists(), f"shipped checkpoint missing: {path}"
    assert path.stat().st_size < 5 * 1024 * 1024
    model, ckpt = load_checkpoint(path)
    metrics = ckpt["metrics"]
    assert metrics["test_accuracy"] >= TARGETS[name]
    assert json.loads(path.with_suffix(".metrics.json").read_text())["test_accuracy"] == metrics["test_accuracy"]
    assert set(metrics["spike_rates"]) == {f"block{i}" for i in range(model.config.n_layers)}
    assert metrics["n_params"] == model.num_parameters()


def test_shipped_listops_checkpoint_beats_majority():
    path = CKPT_DIR / "spikingssm_listops.pt"
    assert path.exists(), f"shipped checkpoint missing: {path}"
    model, ckpt = load_checkpoint(path)
    m = ckpt["metrics"]
    assert m["test_accuracy"] >= m["majority_rate"] + 0.08
    assert model.config.encoder == "embedding"


def test_foundation_checkpoint_shape_and_reproduced_accuracy():
    model, ckpt = load_checkpoint(CKPT_DIR / "spikingssm_sdigits.pt")
    cfg = model.config
    assert (cfg.family, cfg.d_model, cfg.d_state, cfg.n_layers, cfg.encoder, cfg.d_input, cfg.norm) == (
        "spikingssm", 32, 16, 2, "linear", 1, "none")
    x, y = load_sdigits("test")
    acc = evaluate(model, x, y, exact=True)
    # same data, same exact neurons: at most one prediction may flip from float rounding across thread counts
    assert abs(acc - ckpt["metrics"]["test_accuracy"]) <= 1.0 / len(y) + 1e-12


def test_foundation_streaming_reference_matches_forward():
    model, _ = load_checkpoint(CKPT_DIR / "spikingssm_sdigits.pt")
    x, _ = load_sdigits("test")
    x = x[:64]
    with torch.no_grad():
        logits, trace = model(x, return_trace=True)
        logits_s, trace_s = model.forward_streaming(x, return_trace=True)
    for i in range(model.config.n_layers):
        agree = float((trace[f"block{i}.spikes"] == trace_s[f"block{i}.spikes"]).float().mean())
        assert agree >= 0.999
    assert float((logits.argmax(-1) == logits_s.argmax(-1)).float().mean()) >= 0.98
