"""Float interpreter in chunks of time: carrying the state between chunks gives the whole run's values."""

from __future__ import annotations

import numpy as np
import pytest
from test_ir_interpret import s4d_pair
from test_ir_verify import float_graph

from neurocompile.errors import IRError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.ir.interpret import Carry, interpret, stream


def _chunked(g: Graph, x: np.ndarray, steps: int) -> tuple[dict, dict]:
    """Per-step traces (concatenated over chunks) and the last chunk's outputs."""
    parts: dict[str, list] = {}
    last = None
    for _, res in stream(g, x, steps, record=True):
        for k, v in res.trace.items():
            parts.setdefault(k, []).append(v)
        last = res
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}, last.outputs


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.abs(a - b).max() <= 1e-7 * max(1.0, float(np.abs(b).max()))


@pytest.mark.parametrize("steps", [1, 7, 20, 64])
def test_s4d_lif_meanpool_graph_in_chunks(steps):
    g = float_graph()
    x = np.random.default_rng(1).normal(size=(3, 41, 1))
    whole = interpret(g, x, record=True)
    trace, outputs = _chunked(g, x, steps)
    for name, v in whole.trace.items():
        if name == "pool" or name == "decoder":  # sequence-end: one value, from the last chunk
            _close(trace[name], v)
        else:
            _close(trace[name], v)
    _close(outputs["decoder"], whole.logits)
    assert np.array_equal(trace["lif"], whole.trace["lif"])  # spikes identical


def _bank_graph() -> Graph:
    """ModeBank -> ModeReadout -> RefractoryLIF, with a delayed edge."""
    _, s4 = s4d_pair()
    from neurocompile.ir.interpret import s4d_discretize

    dA, dB = s4d_discretize(s4)
    h, m = dA.shape
    g = Graph("bank")
    g.add("x", fl.Input(size=h))
    g.add("bank", fl.ModeBank(dA=dA.astype(np.complex64), dB=dB.astype(np.complex64)), "x")
    g.add("read", fl.ModeReadout(C=s4.C, D=s4.D))
    g.connect("bank", "read", port="state")
    g.connect("x", "read", port="skip", delay=3)
    g.add("spk", fl.RefractoryLIF(vth=np.full(h, 0.3, np.float32), rho=np.full(h, 0.2, np.float32)), "read")
    g.inputs, g.outputs = ["x"], ["spk"]
    return g


def test_modebank_refractory_delay_in_chunks():
    g = _bank_graph()
    x = np.random.default_rng(2).normal(size=(2, 50, 6))
    whole = interpret(g, x, record=True)
    for steps in (1, 2, 5, 17):
        trace, outputs = _chunked(g, x, steps)
        for name, v in whole.trace.items():
            _close(trace[name], v)
        assert np.array_equal(trace["spk"], whole.outputs["spk"])  # spikes identical
        assert np.array_equal(outputs["spk"], whole.outputs["spk"][:, -outputs["spk"].shape[1]:])


def test_carry_is_explicit_and_not_modified():
    g = _bank_graph()
    x = np.random.default_rng(3).normal(size=(1, 30, 6))
    first = interpret(g, x[:, :10], final=False)
    c = first.carry
    assert isinstance(c, Carry) and c.steps == 10 and set(c.nodes) == {"bank", "spk"}
    assert list(c.delays) == [("x", "read")] and c.delays[("x", "read")].shape == (1, 3, 6)
    h = c.nodes["bank"]["h"].copy()
    a = interpret(g, x[:, 10:], carry=c).outputs["spk"]
    b = interpret(g, x[:, 10:], carry=c).outputs["spk"]  # the same state twice: the same answer
    assert np.array_equal(a, b) and np.array_equal(c.nodes["bank"]["h"], h)
    assert np.array_equal(a, interpret(g, x).outputs["spk"][:, 10:])
    # from rest is not the same as from the carried state
    assert not np.allclose(interpret(g, x[:, 10:], record=True).trace["bank"],
                           interpret(g, x[:, 10:], carry=c, record=True).trace["bank"])


def test_open_chunk_has_no_sequence_end_outputs():
    g = float_graph()
    res = interpret(g, np.ones((2, 5, 1)), final=False, record=True)
    assert res.outputs == {} and "pool" not in res.trace and "decoder" not in res.trace
    assert res.carry.nodes["pool"]["sum"].shape == (2, 1, 4)


def test_bidirectional_refused_in_chunks_and_bad_steps():
    _, node = s4d_pair(bidirectional=True)
    g = Graph("bi")
    g.add("x", fl.Input(size=6))
    g.add("s", node, "x")
    g.inputs, g.outputs = ["x"], ["s"]
    with pytest.raises(IRError, match="bidirectional"):
        list(stream(g, np.ones((1, 8, 6)), 4))
    with pytest.raises(IRError, match="at least 1"):
        list(stream(g, np.ones((1, 8, 6)), 0))


def test_shipped_model_in_chunks():
    from neurocompile.frontend import load_model
    from neurocompile.frontend import trace as trace_model
    from neurocompile.passes.pipeline import lower_graph

    g = lower_graph(trace_model(load_model("examples/checkpoints/spikingssm_sdigits.pt")))
    x = np.random.default_rng(4).uniform(size=(2, 60, g.node(g.inputs[0]).out_size()))
    whole = interpret(g, x)
    _, outputs = _chunked(g, x, 13)
    _close(outputs[g.outputs[0]], whole.logits)
