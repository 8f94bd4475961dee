"""Quantisation-aware fine-tuning: the fake quantisers match the compiler, and QAT recovers a degraded export."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from neurocompile import finetune as ft
from neurocompile.datasets import load_dataset
from neurocompile.errors import NeurocompileError
from neurocompile.frontend import load_model, trace, wrap_module
from neurocompile.ir.interpret import interpret
from neurocompile.models import ModelConfig, SSMClassifier
from neurocompile.passes import qmath
from neurocompile.passes._intrun import run_int
from neurocompile.passes.binarize import ternarize_rows
from neurocompile.passes.pipeline import CompileOptions, compile_graph
from neurocompile.target import load_target

ROOT = Path(__file__).resolve().parents[1]
CKPT = ROOT / "examples" / "checkpoints" / "spikingssm_sdigits.pt"


def test_fake_quant_is_straight_through():
    w = torch.tensor([0.26, -0.74], requires_grad=True)
    q = ft.fake_quant(w, torch.tensor(0.25), 7)
    assert q.tolist() == [0.25, -0.75]
    q.sum().backward()
    assert w.grad.tolist() == [1.0, 1.0]


def test_ternary_fake_quant_equals_the_binarize_pass():
    w = torch.randn(6, 5)
    got = ft._TernaryQuant(binary=False, dim=0)(w).detach().numpy()
    np.testing.assert_allclose(got, ternarize_rows(w.numpy()), rtol=1e-6, atol=1e-7)
    got = ft._TernaryQuant(binary=False, dim=1)(w).detach().numpy()  # GSU's W: output channels are columns
    np.testing.assert_allclose(got, ternarize_rows(w.numpy().T).T, rtol=1e-6, atol=1e-7)


def test_row_quant_is_the_quantisers_rounding_on_its_grid():
    # 2.5 / 64 sits exactly half-way between two steps of the first row's grid (peak 1.0 -> step 2^-6): the
    # quantiser rounds it away from zero, round-half-to-even would not
    w = torch.tensor([[1.0, 2.5 / 64, -0.3], [0.71, -0.5, 0.125]], dtype=torch.float64)
    q = ft._RowQuant(8, 0)(w).numpy()
    rq = qmath.quantize_rows(w.numpy(), wmax=127, acc_limit=math.inf, in_limit=1.0)
    np.testing.assert_array_equal(q, rq.weight * np.exp2(-rq.shift.astype(np.float64))[:, None])
    assert q[0, 1] == 3 / 64


def test_s4d_emulation_is_exact_at_high_precision():
    torch.manual_seed(0)
    m = SSMClassifier(ModelConfig(d_model=4, d_state=4, n_layers=1)).eval()
    s4d = m.blocks[0].s4d
    u = torch.randn(2, 16, 4)
    q = ft._S4DQuant(s4d, bits=24, decay_bits=30)
    q.u = u
    q.calibrate()
    torch.testing.assert_close(q.forward(u), s4d(u), rtol=1e-4, atol=1e-4)


def test_finetune_returns_a_clean_copy():
    torch.manual_seed(0)
    m = SSMClassifier(ModelConfig(d_model=4, d_state=4, n_layers=1)).eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    x, y = torch.rand(8, 10, 1), torch.randint(0, 10, (8,))
    tuned, metrics = ft.finetune(m, None, x, y, epochs=1, weight_bits=4, progress=False)
    assert set(tuned.state_dict()) == set(before)  # no parametrisation left behind
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())  # input untouched
    assert "forward" not in vars(tuned.blocks[0].s4d)
    assert metrics["qat"]["weight_bits"] == 4 and len(metrics["qat"]["history"]) == 1
    trace(wrap_module(tuned))  # still traceable
    with pytest.raises(NeurocompileError, match="labels"):
        ft.finetune(m, None, x, y[:3], epochs=1, progress=False)


@pytest.mark.slow
@pytest.mark.skipif(not CKPT.exists(), reason="shipped checkpoint not present")
def test_finetuning_recovers_a_ternary_export():
    """Ternary mixing weights cost the shipped SpikingSSM ~20 points; 10 epochs of QAT bring it within 1 point."""
    torch.set_num_threads(2)
    target = load_target("loihi2")
    model = load_model(CKPT).module
    train, test = load_dataset("sdigits", "train"), load_dataset("sdigits", "test")
    opts = CompileOptions(weights="ternary")

    def accuracy(mod) -> tuple[float, float]:
        g = trace(wrap_module(mod))
        q, _ = compile_graph(g, target, train.x[:512], opts)
        f = interpret(g, test.x).logits.argmax(-1)
        i = run_int(q, test.x).outputs[q.outputs[0]].argmax(-1)
        return float(np.mean(f == test.y)), float(np.mean(i == test.y))

    float_acc = float(np.mean(interpret(trace(wrap_module(model)), test.x).logits.argmax(-1) == test.y))
    _, degraded = accuracy(model)
    tuned, _ = ft.finetune(model, target, train.x, train.y, epochs=10, lr=3e-3, weights="ternary",
                           progress=False, seed=0)
    _, recovered = accuracy(tuned)
    print(f"\nSpikingSSM sdigits, ternary mixing weights: float {100 * float_acc:.2f} %, "
          f"post-training {100 * degraded:.2f} %, after QAT {100 * recovered:.2f} %")
    assert degraded < float_acc - 0.05
    assert recovered >= float_acc - 0.01
