"""QLayerNorm: the integer LayerNorm (docs/semantics.md), by hand, compiled from models, and on Lava."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurocompile.backends.lava import lava_available
from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret
from neurocompile.ir.serialize import graph_from_dict, graph_to_dict
from neurocompile.ir.verify import verify
from neurocompile.passes._intrun import run_int
from neurocompile.passes.pipeline import compile_graph
from neurocompile.sim import kernels
from neurocompile.sim.engine import simulate

I = np.int64
F32 = np.float32

# T[i] = round(2^8 / sqrt(i)), i = 0 .. 16 (index_bits 4; T[0] is never read)
TABLE = [256, 256, 181, 148, 128, 114, 105, 97, 91, 85, 81, 77, 74, 71, 68, 66, 64]


def _tiny() -> hw.QLayerNorm:
    """H = 4 (1/H = 1 / 2^2 exactly), eps 1, a 17-entry table with R = 8, output 6 bits (limit 31)."""
    return hw.QLayerNorm(size=4, mean_mul=1, mean_shift=2, var_shift=0, eps=1, index_bits=4, rsqrt_frac_bits=8,
                         rsqrt_table=np.array(TABLE, I), weight=np.array([1, 2, -3, 120], I),
                         bias=np.array([0, 1, -1, 2], I), shift=np.array([8, 9, 8, 8], I), out_bits=6)


# Hand-computed trace (docs/semantics.md QLayerNorm), one sample, four steps:
# t0 x = [10, 2, -6, 2]: S = 8, mean = (8 + 2) >> 2 = 2, d = [8, 0, -8, 0], sum d^2 = 128,
#    V = (128 + 2) >> 2 = 32, V' = 33 -> j = 1 (33 >= 2^4, 33 < 2^6), idx = (33 + 2) >> 2 = 8, r = T[8] = 91;
#    y0 = (728 + 2^8) >> 9 = 1; y1 = 0 + 1 = 1; y2 = (2184 + 2^8) >> 9 - 1 = 4 - 1 = 3; y3 = 0 + 2 = 2
# t1 x = [100, -100, 100, -100]: mean = (0 + 2) >> 2 = 0, sum d^2 = 40000, V = 10000, V' = 10001 -> j = 5
#    (10001 >= 2^12, < 2^14), idx = (10001 + 2^9) >> 10 = 10, r = T[10] = 81;
#    y0 = (8100 + 2^12) >> 13 = 1; y1 = (-16200 + 2^13) >> 14 + 1 = -1 + 1 = 0;
#    y2 = (-24300 + 2^12) >> 13 - 1 = -3 - 1 = -4; y3 = (-972000 + 2^12) >> 13 + 2 = -119 + 2 = -117 -> sat -31
# t2 x = [5, 5, 5, 5] (zero variance): mean = 22 >> 2 = 5, d = 0, V = 2 >> 2 = 0, V' = max(0 + 1, 1) = 1, j = 0,
#    r = T[1] = 256; y = 0 + b = [0, 1, -1, 2]
# t3 x = [-3, -4, 0, 0] (negative mean rounds half up): S = -7, mean = (-7 + 2) >> 2 = -2, d = [-1, -2, 2, 2],
#    sum d^2 = 13, V = 15 >> 2 = 3, V' = 4, j = 0, idx = 4, r = T[4] = 128;
#    y0 = (-128 + 128) >> 8 = 0; y1 = (-512 + 256) >> 9 + 1 = -1 + 1 = 0; y2 = (-768 + 128) >> 8 - 1 = -3 - 1 = -4;
#    y3 = (30720 + 128) >> 8 + 2 = 120 + 2 = 122 -> sat 31
X_HAND = np.array([[10, 2, -6, 2], [100, -100, 100, -100], [5, 5, 5, 5], [-3, -4, 0, 0]], I)
Y_HAND = np.array([[1, 1, 3, 2], [1, 0, -4, -31], [0, 1, -1, 2], [0, 0, -4, 31]], I)


def test_table_is_round_2r_over_sqrt():
    i = np.arange(17, dtype=np.float64)
    assert TABLE[1:] == np.floor(256 / np.sqrt(i[1:]) + 0.5).astype(int).tolist()


def test_hand_computed_trace():
    node = _tiny()
    st = kernels.init_state(node, 1)
    ys = [kernels.step_layernorm(node, {"in": X_HAND[t][None]}, st)[0] for t in range(len(X_HAND))]
    np.testing.assert_array_equal(np.stack(ys), Y_HAND)
    assert st["saturations"] == 2  # t1 channel 3 and t3 channel 3
    # batched: each row is normalised on its own
    st = kernels.init_state(node, 4)
    np.testing.assert_array_equal(kernels.step_layernorm(node, {"in": X_HAND}, st), Y_HAND)


def test_zero_variance_without_eps_uses_v_equal_one():
    node = _tiny()
    node.eps = 0
    y = kernels.step_layernorm(node, {"in": np.zeros((1, 4), I)}, {"saturations": 0})
    np.testing.assert_array_equal(y[0], node.bias)


def test_octave_index():
    v = np.array([1, 15, 16, 63, 64, 255, 256, (1 << 40) - 1, 1 << 40], I)
    np.testing.assert_array_equal(kernels.layernorm_octave(v, 4), [0, 0, 1, 1, 2, 2, 3, 18, 19])


def _roundtrip(g: Graph) -> tuple[dict, dict]:
    import json

    arrays: dict[str, np.ndarray] = {}
    d = json.loads(json.dumps(graph_to_dict(g, arrays)))
    return d, {k: v.copy() for k, v in arrays.items()}


def _hand_graph() -> Graph:
    g = Graph("ln")
    g.add("x", hw.QInput(size=4, out_scale=1.0, out_bits=10))
    g.inputs = ["x"]
    g.add("ln", _tiny(), "x")
    g.add("out", hw.QAdd(size=4, out_bits=8), "ln")
    g.outputs = ["out"]
    return g


def test_graph_verifies_serialises_and_simulates():
    g = _hand_graph()
    assert verify(g) == []
    back = graph_from_dict(*_roundtrip(g))
    n = back.node("ln")
    assert isinstance(n, hw.QLayerNorm) and n.mean_shift == 2 and n.rsqrt_table.tolist() == TABLE
    x = X_HAND[None].astype(np.float64)
    for arith in ("reference", "auto"):
        res = simulate(back, x, arith=arith, record=True)
        np.testing.assert_array_equal(res.trace["ln"][0], Y_HAND)
        assert res.saturations["ln"] == 2
    lc = simulate(g, x).counts.layer("ln")
    assert lc.lut_ops == 4 and lc.neurons == 4  # one 1/sqrt look-up per step


def test_verifier_rejects_bad_fields():
    node = _tiny()
    node.rsqrt_table = np.array(TABLE[:-1], I)
    node.weight = np.array([1, 2, 3, 300], I)
    g = _hand_graph()
    g.replace("ln", node)
    rules = {(v.rule, v.node) for v in verify(g)}
    assert ("shape", "ln") in rules and ("range", "ln") in rules


# ------------------------------------------------------------------------------------------------ compiled
def _ln_float_graph(h: int, seed: int) -> Graph:
    r = np.random.default_rng(seed)
    g = Graph("lnf")
    g.add("input", fl.Input(size=h))
    g.add("norm", fl.Norm(kind="layer", weight=r.uniform(0.5, 2.0, h).astype(F32), bias=r.normal(0, 0.3, h).astype(F32),
                          mean=np.zeros(0, F32), var=np.zeros(0, F32)), "input")
    g.inputs, g.outputs = ["input"], ["norm"]
    return g


@pytest.mark.parametrize("h", [6, 8])  # 1/H as m / 2^k (H = 6) and as an exact shift (H = 8)
def test_compiled_layernorm_matches_float(h):
    g = _ln_float_graph(h, h)
    r = np.random.default_rng(0)
    x = r.normal(0, 1, (32, 20, h)) * r.uniform(0.05, 3.0, (32, 20, 1)) + r.normal(0, 0.5, (32, 20, 1))
    q, info = compile_graph(g, None, x)
    assert not info["errors"]
    n = q.node("norm")
    assert isinstance(n, hw.QLayerNorm)
    if h == 8:
        assert (n.mean_mul, n.mean_shift) == (1, 3)
    else:
        assert n.mean_mul % 2 == 1 and abs(n.mean_mul / 2 ** n.mean_shift - 1 / h) < 1e-5
    y_f = interpret(g, x).outputs["norm"]
    y_i = run_int(q, x).outputs["norm"] * n.out_scale
    from neurocompile.passes.qmath import sqnr_db

    assert sqnr_db(y_f, y_i) > 40.0
    assert q.meta["quant"]["nodes"]["norm"]["norm_sqnr_db"] > 40.0


@pytest.mark.parametrize("position", ["pre", "post"])
def test_layernorm_model_compiles_for_loihi2(position):
    from neurocompile.datasets import load_dataset
    from neurocompile.frontend import trace, wrap_module
    from neurocompile.models import ModelConfig, SSMClassifier
    from neurocompile.passes.report import quant_report
    from neurocompile.target import load_target

    torch.manual_seed(4)
    model = SSMClassifier(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=2, norm="layer",
                                      norm_position=position)).eval()
    graph = trace(wrap_module(model))
    train = load_dataset("sdigits", "train")
    q, info = compile_graph(graph, load_target("loihi2"), train.x[:64])
    assert not info["errors"], [str(v) for v in info["errors"]]
    norms = [nm for nm in q.order() if isinstance(q.node(nm), hw.QLayerNorm)]
    assert len(norms) == 2
    rep = quant_report(info["float_graph"], q, train.x[64:192], train.y[64:192])
    assert rep["agreement"] >= 0.9
    rows = {r["name"]: r for r in rep["nodes"]}
    for nm in norms:
        assert rows[nm]["local_sqnr_db"] > 40.0, rows[nm]  # the error the integer LayerNorm adds alone
        assert rows[nm]["saturations"] == 0
    assert rows[norms[0]]["sqnr_db"] > 30.0  # end to end (the first norm sees few upstream spike flips)


def test_finetune_runs_on_a_layernorm_model():
    """QAT keeps LayerNorm in float (its integer form is within ~0.1 % of it): fine-tuning still runs."""
    from neurocompile.finetune import finetune
    from neurocompile.models import ModelConfig, SSMClassifier

    torch.manual_seed(5)
    model = SSMClassifier(ModelConfig(family="spikingssm", d_model=8, d_state=4, n_layers=1, norm="layer")).eval()
    x = torch.randn(16, 12, 1)
    y = torch.randint(0, 10, (16,))
    tuned, metrics = finetune(model, None, x, y, epochs=1, batch_size=8, progress=False)
    assert metrics["qat"]["epochs"] == 1


# ------------------------------------------------------------------------------------------------ Lava
@pytest.mark.lava
@pytest.mark.skipif(not lava_available(), reason="lava-nc 0.10.0 not importable")
@pytest.mark.parametrize("batch", [None, 2])
def test_lava_matches_simulator(batch):
    from neurocompile.backends import lava as nl
    from neurocompile.backends.lava.compare import compare, simulate_reference

    rng = np.random.default_rng(21)
    h = 6
    g = Graph("lnlava")
    g.add("x", hw.QInput(size=3, out_scale=0.02, out_bits=12))
    g.inputs = ["x"]
    g.add("enc", hw.QDense(weight=rng.integers(-127, 128, (h, 3)), bias=np.full(h, 160, I),
                           shift=np.full(h, 3, I), out_bits=14), "x")
    table = np.floor(2.0 ** 12 / np.sqrt(np.maximum(np.arange(65), 1)) + 0.5).astype(I)
    g.add("ln", hw.QLayerNorm(size=h, mean_mul=43691, mean_shift=18, var_shift=1, eps=3, index_bits=6,
                              rsqrt_frac_bits=12, rsqrt_table=table, weight=rng.integers(-127, 128, h),
                              bias=rng.integers(-50, 50, h), shift=np.array([11, 12, 10, 13, 11, 9]),
                              out_bits=9), "enc")  # narrow output: saturates at times
    g.add("lif", hw.QLIF(decay=1024, vth=np.full(h, 200, I)), "ln")
    g.add("res", hw.QAdd(size=h, out_bits=10), ["ln", "lif"])
    g.outputs = ["res"]
    assert verify(g) == []
    x = rng.normal(scale=3.0, size=(3, 16, 3))
    x[0, 4] = 0.0  # zero input: every channel equals the common bias, a zero-variance step
    ref = simulate_reference(g, x)
    assert ref.saturations["ln"] > 0
    res = nl.run(nl.load(g, batch=batch), x)
    for engine in (True, False):
        cmp = compare(g, res, simulate_reference(g, x, engine=engine))
        assert cmp.equal, f"engine={engine}: {cmp}"
    sim = nl.simulate_lava(g, x, batch=batch or 1, record=True)
    assert sim.lava_comparison.equal
