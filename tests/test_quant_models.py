"""Acceptance: the shipped checkpoints, every model family, ternary export (integer vs float accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocompile.datasets import load_dataset
from neurocompile.frontend import load_model, trace, wrap_module
from neurocompile.ir import hw
from neurocompile.ir.interpret import interpret
from neurocompile.models import ModelConfig, SSMClassifier
from neurocompile.passes._intrun import run_int
from neurocompile.passes.pipeline import CompileOptions, compile_graph
from neurocompile.passes.report import quant_report
from neurocompile.target import load_target

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted(p for p in (ROOT / "examples" / "checkpoints").glob("*.pt") if not p.name.startswith("sdn")
                     and "mnist" not in p.stem)  # 784-step models: tests/test_smnist_models.py


def _task(path: Path) -> str:
    meta = path.with_suffix(".metrics.json")
    if meta.exists():
        return json.loads(meta.read_text()).get("task", "sdigits")
    return "sdigits"


@pytest.fixture(scope="module")
def loihi2():
    return load_target("loihi2")


def accuracies(graph, int_graph, x, y) -> tuple[float, float]:
    f = interpret(graph, x).logits.argmax(-1)
    i = run_int(int_graph, x).outputs[int_graph.outputs[0]].argmax(-1)
    return float(np.mean(f == y)), float(np.mean(i == y))


@pytest.mark.parametrize("path", CHECKPOINTS, ids=[p.stem for p in CHECKPOINTS])
def test_shipped_checkpoint_integer_accuracy_within_one_point(path, loihi2):
    """Default export for loihi2 (512 training sequences to calibrate, as the CLI): held-out accuracy."""
    task = _task(path)
    train, test = load_dataset(task, "train"), load_dataset(task, "test").limit(1000)
    graph = trace(load_model(path))
    int_graph, info = compile_graph(graph, loihi2, train.x[:512], CompileOptions())
    assert not info["errors"], [str(v) for v in info["errors"]]
    acc_f, acc_i = accuracies(graph, int_graph, test.x, test.y)
    print(f"\n{path.name} on {task} ({len(test)} held-out): float {100 * acc_f:.2f} %, "
          f"integer {100 * acc_i:.2f} % (loihi2, {len(int_graph)} integer nodes)")
    assert abs(acc_i - acc_f) <= 0.01 + 1e-9


@pytest.mark.parametrize("family", ["spikingssm", "binary_s4d", "gsu", "spike_ssm"])
def test_every_family_compiles_and_agrees_with_float(family, loihi2):
    torch.manual_seed(0)
    model = SSMClassifier(ModelConfig(family=family, d_model=8, d_state=4, n_layers=2)).eval()
    graph = trace(wrap_module(model))
    train = load_dataset("sdigits", "train")
    int_graph, info = compile_graph(graph, loihi2, train.x[:64], CompileOptions())
    assert not info["errors"]
    x = train.x[64:128]
    f = interpret(graph, x).logits.argmax(-1)
    i = run_int(int_graph, x).outputs[int_graph.outputs[0]].argmax(-1)
    assert np.mean(f == i) >= 0.9


def _rows_ternary(w: np.ndarray) -> bool:
    """Each row is m_o * {-1, 0, 1}: one non-zero magnitude per row."""
    return all(len(set(np.abs(row[row != 0]).tolist())) <= 1 for row in w)


def test_ternary_export_of_gsu(loihi2):
    path = ROOT / "examples" / "checkpoints" / "gsu_sdigits.pt"
    if path.exists():
        graph = trace(load_model(path))
    else:
        torch.manual_seed(0)
        graph = trace(wrap_module(SSMClassifier(ModelConfig(family="gsu")).eval()))
    train, test = load_dataset("sdigits", "train"), load_dataset("sdigits", "test")
    int_graph, info = compile_graph(graph, loihi2, train.x[:512], CompileOptions(weights="ternary"))
    assert not info["errors"]
    mixing = [n for n in int_graph.order() if ".mix.gate_" in n]
    assert mixing and all(isinstance(int_graph.node(n), hw.QDense) for n in mixing)
    for n in mixing:
        w = int_graph.node(n).weight
        assert _rows_ternary(w), n
        if n.endswith("gate_b"):  # GSU's Ter(W) has no per-row scale: the integers are exactly {-1, 0, 1}
            assert set(np.unique(w).tolist()) <= {-1, 0, 1}
    acc_f, acc_i = accuracies(graph, int_graph, test.x, test.y)
    rep = quant_report(info["float_graph"], int_graph, test.x[:64], test.y[:64])
    print(f"\nGSU ternary export: float {100 * acc_f:.2f} %, integer (ternary mixing weights) {100 * acc_i:.2f} %; "
          f"costliest layers {rep['costliest'][:3]}")
    assert acc_i > 0.5  # post-training ternarisation costs accuracy (fine-tuning recovers it)


@pytest.mark.parametrize("norm,position", [("batch", "pre"), ("batch", "post")])
def test_batchnorm_models_fold_and_compile(norm, position, loihi2):
    torch.manual_seed(1)
    model = SSMClassifier(ModelConfig(d_model=8, d_state=4, n_layers=2, norm=norm, norm_position=position))
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    graph = trace(wrap_module(model.eval()))
    train = load_dataset("sdigits", "train")
    int_graph, info = compile_graph(graph, loihi2, train.x[:64], CompileOptions())
    assert not info["errors"]
    assert all(k.startswith(("kept", "folded")) for k in info["passes"]["fold"]["batchnorm"].values())
    assert not any(type(n).__name__ == "Norm" for _, n in info["float_graph"].items())
    x = train.x[64:128]
    f = interpret(graph, x).logits.argmax(-1)
    i = run_int(int_graph, x).outputs[int_graph.outputs[0]].argmax(-1)
    assert np.mean(f == i) >= 0.9


def test_layernorm_model_is_integer_by_default_or_refused_or_frozen(loihi2):
    from neurocompile.errors import UnsupportedOpError

    torch.manual_seed(2)
    graph = trace(wrap_module(SSMClassifier(ModelConfig(d_model=8, d_state=4, n_layers=1, norm="layer")).eval()))
    x = load_dataset("sdigits", "train").x[:32]
    int_graph, info = compile_graph(graph, loihi2, x)  # default: layernorm='integer'
    assert not info["errors"]
    assert isinstance(int_graph.node("blocks.0.norm"), hw.QLayerNorm)
    with pytest.raises(UnsupportedOpError, match=r"'blocks\.0\.norm' is a LayerNorm"):
        compile_graph(graph, loihi2, x, CompileOptions(layernorm="refuse"))
    with pytest.warns(UserWarning, match="frozen"):
        int_graph, info = compile_graph(graph, loihi2, x, CompileOptions(layernorm="freeze"))
    assert not info["errors"]


def test_token_model_compiles(loihi2):
    torch.manual_seed(3)
    model = SSMClassifier(ModelConfig(d_model=8, d_state=4, n_layers=1, encoder="embedding", vocab_size=20,
                                      d_input=1)).eval()
    graph = trace(wrap_module(model))
    x = np.random.default_rng(0).integers(0, 20, (48, 30))
    int_graph, info = compile_graph(graph, loihi2, x[:32], CompileOptions())
    assert not info["errors"]
    assert int_graph.node("input").tokens and isinstance(int_graph.node("encoder"), hw.QEmbedding)
    f = interpret(graph, x[32:]).logits.argmax(-1)
    i = run_int(int_graph, x[32:]).outputs[int_graph.outputs[0]].argmax(-1)
    assert np.mean(f == i) >= 0.9
