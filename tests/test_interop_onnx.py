"""ONNX export (streaming step model) vs the float interpreter, on every shipped sdigits checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend import load_model, trace
from neurocompile.interop.onnx import export_onnx, run_onnx
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import interpret
from neurocompile.passes.pipeline import lower_graph

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = sorted((ROOT / "examples" / "checkpoints").glob("*_sdigits.pt"))


@pytest.fixture(scope="module")
def held_out() -> np.ndarray:
    from neurocompile.models.data import load_sdigits

    return load_sdigits("test")[0][:32].numpy()


def test_checkpoints_found() -> None:
    assert len(CHECKPOINTS) >= 4


@pytest.mark.parametrize("ckpt", CHECKPOINTS, ids=lambda p: p.stem)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_and_spikes_match_interpreter(ckpt: Path, dtype: str, held_out: np.ndarray, tmp_path: Path) -> None:
    graph = lower_graph(trace(load_model(ckpt)))
    ref = interpret(graph, held_out, record=True)
    path = export_onnx(graph, tmp_path / "m.onnx", spikes=True, dtype=dtype)
    out = run_onnx(path, held_out, return_all=True)
    logits = out[graph.outputs[0]]
    assert logits.shape == ref.logits.shape
    scale = np.abs(ref.logits).max()
    assert np.abs(logits - ref.logits).max() <= 1e-4 * scale
    assert np.array_equal(logits.argmax(1), ref.logits.argmax(1))
    assert np.allclose(run_onnx(path, held_out), logits)  # default return: the first output
    spiking = [n for n, node in graph.items() if isinstance(node, (fl.LIF, fl.RefractoryLIF, fl.Heaviside))]
    assert sorted(k for k in out if k != graph.outputs[0]) == sorted(spiking)
    for name in spiking:  # spikes identical, step by step
        assert out[name].shape == ref.trace[name].shape
        assert np.array_equal(out[name], ref.trace[name]), name


def test_export_is_deterministic(tmp_path: Path) -> None:
    ckpt = ROOT / "examples" / "checkpoints" / "spikingssm_sdigits.pt"
    a = export_onnx(lower_graph(trace(load_model(ckpt))), tmp_path / "a.onnx")
    b = export_onnx(lower_graph(trace(load_model(ckpt))), tmp_path / "b.onnx")
    assert Path(a).read_bytes() == Path(b).read_bytes()


def _tiny(node_name: str, node: fl.Node, size: int = 3) -> Graph:
    g = Graph("tiny")
    g.add("input", fl.Input(size=size))
    g.add(node_name, node, "input")
    g.inputs, g.outputs = ["input"], [node_name]
    return g


def test_unlowered_s4d_and_lif_with_delay(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    h, m = 3, 2
    s4d = fl.S4D(log_dt=np.log(np.full(h, 0.1, np.float32)), A_re=-np.full((h, m), 0.5, np.float32),
                 A_im=rng.normal(size=(h, m)).astype(np.float32),
                 B=(rng.normal(size=(h, m)) + 1j * rng.normal(size=(h, m))).astype(np.complex64),
                 C=(rng.normal(size=(h, m)) + 1j * rng.normal(size=(h, m))).astype(np.complex64),
                 D=rng.normal(size=h).astype(np.float32))
    g = _tiny("s4d", s4d, h)
    g.add("lif", fl.LIF(tau=0.5, vth=np.full(h, 0.3, np.float32), reset="subtract"))
    g.connect("s4d", "lif", delay=2)
    g.add("pool", fl.MeanPool(size=h), "lif")
    g.outputs = ["pool", "s4d"]
    x = rng.normal(size=(4, 9, h))
    ref = interpret(g, x)
    out = run_onnx(export_onnx(g, tmp_path / "s.onnx", dtype="float64"), x, return_all=True)
    assert np.allclose(out["pool"], ref.outputs["pool"], atol=1e-12)
    assert np.allclose(out["s4d"], ref.outputs["s4d"], atol=1e-12)


def test_unsupported_node_error_names_it(tmp_path: Path) -> None:
    h, m = 2, 1
    z = np.zeros((h, m), np.float32)
    bidir = fl.S4D(log_dt=np.zeros(h, np.float32), A_re=z - 1, A_im=z, B=z.astype(np.complex64),
                   C=z.astype(np.complex64), D=np.zeros(h, np.float32), C2=np.ones((h, m), np.complex64))
    with pytest.raises(UnsupportedOpError, match=r"node 'ssm' \(S4D\).*bidirectional.*supports"):
        export_onnx(_tiny("ssm", bidir, h), tmp_path / "x.onnx")
    with pytest.raises(UnsupportedOpError, match=r"node 'act' \(Activation\).*'tanh'"):
        export_onnx(_tiny("act", fl.Activation(fn="tanh", size=3)), tmp_path / "y.onnx")
    assert not (tmp_path / "x.onnx").exists()
