"""Model assembly, surrogate gradients to every parameter, tiny training runs, the data loaders, train.py."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocompile.errors import DatasetError
from neurocompile.models import ModelConfig, SSMClassifier, load_checkpoint
from neurocompile.models.data import LISTOPS_VOCAB_SIZE, load_listops, load_sdigits
from neurocompile.models.listops import ListOpsSpec, encode, evaluate, generate_listops, tokens
from neurocompile.models.training import TrainSettings, train_model
from neurocompile.models.training import evaluate as evaluate_acc

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = [
    ("spikingssm", "sdn"),
    ("spikingssm", "exact"),
    ("binary_s4d", "exact"),
    ("gsu", "exact"),
    ("spike_ssm", "pmbc"),
    ("spike_ssm", "exact"),
]


def _model(family, mode, **kw):
    torch.manual_seed(0)
    return SSMClassifier(ModelConfig(family=family, neuron_mode=mode, d_model=8, d_state=8, **kw))


@pytest.mark.parametrize("family,mode", FAMILIES)
def test_gradients_reach_every_parameter(family, mode):
    model = _model(family, mode)
    model.train()
    x = torch.rand(6, 32, 1)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(6) % 10)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or float(p.grad.abs().sum()) == 0.0]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("family,mode", FAMILIES)
def test_tiny_training_run_and_learned_neuron_parameters(family, mode):
    model = _model(family, mode)
    x, y = load_sdigits("train")
    x, y = x[:96], y[:96]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    history = train_model(model, x, y, TrainSettings(epochs=1, batch_size=32, lr=1e-2, max_steps=3, warmup_steps=1))
    assert history and np.isfinite(history[0]["loss"])
    assert not model.training
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    for name in before:
        if name.endswith(("ln_vth", "ln_rho")):
            assert name in changed, f"{name} did not change after 3 optimiser steps"
    assert len(changed) >= len(before) - 1
    assert 0.0 <= evaluate_acc(model, x, y) <= 1.0


def test_trace_keys_and_exact_default_in_eval():
    model = _model("spikingssm", "sdn", n_layers=2)
    x = torch.rand(2, 40, 1)
    model.eval()
    logits, trace = model(x, return_trace=True)
    assert logits.shape == (2, 10)
    assert set(trace) == {"encoder"} | {f"block{i}.{k}" for i in range(2) for k in ("s4d", "spikes", "out")}
    assert all(v.shape == (2, 40, 8) for v in trace.values())
    assert set(trace["block0.spikes"].unique().tolist()) <= {0.0, 1.0}
    # eval default = exact neurons; streaming() forces them in training mode too
    exact_logits = model(x, exact=True)
    assert torch.equal(logits, exact_logits)
    model.train()
    with model.streaming():
        assert torch.equal(model(x), exact_logits)
    with pytest.raises(RuntimeError, match="eval"):
        model.forward_streaming(x)


def test_gsu_trace_holds_ternary_copy():
    model = _model("gsu", "exact").eval()
    _, trace = model(torch.rand(2, 10, 1), return_trace=True)
    assert set(trace["block0.spikes"].unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert model.blocks[0].neuron is None


def test_bidirectional_and_norm_variants_run():
    for norm, pos in [("batch", "pre"), ("layer", "post")]:
        model = _model("spikingssm", "exact", norm=norm, norm_position=pos, bidirectional=True).eval()
        assert model(torch.rand(2, 16, 1)).shape == (2, 10)


def test_embedding_encoder_input_checks():
    model = _model("binary_s4d", "exact", encoder="embedding", vocab_size=LISTOPS_VOCAB_SIZE).eval()
    assert model(torch.randint(0, LISTOPS_VOCAB_SIZE, (3, 12))).shape == (3, 10)
    with pytest.raises(ValueError, match="token ids"):
        model(torch.rand(3, 12, 1))
    lin = _model("binary_s4d", "exact").eval()
    with pytest.raises(ValueError, match="linear encoder"):
        lin(torch.rand(3, 12, 2))


def test_sdigits_loader():
    x, y = load_sdigits("train")
    xt, yt = load_sdigits("test")
    assert x.shape == (1347, 64, 1) and xt.shape == (450, 64, 1)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(load_sdigits("test")[0], xt)
    assert sorted(torch.bincount(yt).tolist())[0] >= 43  # stratified (smallest class: 174 * 0.25)
    with pytest.raises(DatasetError):
        load_sdigits("validation")


def test_listops_grammar_and_determinism():
    tree = ("[MAX", [3, ("[MIN", [7, 2]), ("[SM", [9, 4, 1]), ("[MED", [1, 8, 5, 6])])
    assert evaluate(tree) == 5  # max(3, 2, 4, int(median(1,5,6,8)) = 5)
    assert tokens(tree) == "[MAX 3 [MIN 7 2 ] [SM 9 4 1 ] [MED 1 8 5 6 ] ]".split()
    assert encode(["<pad>", "0", "]"]) == [0, 1, LISTOPS_VOCAB_SIZE - 1]
    spec = ListOpsSpec(max_length=64, min_length=16)
    x1, y1 = generate_listops(50, seed=3, spec=spec)
    x2, y2 = generate_listops(50, seed=3, spec=spec)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    lengths = (x1 > 0).sum(1)
    assert lengths.min() >= 16 and lengths.max() <= 64
    assert set(np.unique(y1)) <= set(range(10))
    xtr, _ = load_listops("train", n=20, max_length=64, min_length=16)
    xte, _ = load_listops("test", n=20, max_length=64, min_length=16)
    assert xtr.shape == (20, 64) and not torch.equal(xtr, xte)


def test_train_script_writes_checkpoint_and_metrics(tmp_path):
    spec = importlib.util.spec_from_file_location("nc_train_example", ROOT / "examples" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "tiny.pt"
    metrics = module.main(["--family", "binary_s4d", "--task", "sdigits", "--epochs", "1", "--d-model", "8",
                           "--d-state", "4", "--layers", "1", "--out", str(out)])
    saved = json.loads((tmp_path / "tiny.metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    for key in ("train_accuracy", "spike_rates", "n_params", "config", "majority_rate"):
        assert key in saved
    model, ckpt = load_checkpoint(out)
    assert ckpt["metrics"]["n_params"] == model.num_parameters()
