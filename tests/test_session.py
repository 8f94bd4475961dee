"""Session: token-by-token (and chunked) streaming gives exactly the whole-sequence run's outputs and states."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from test_sim_compiled import all_types_graph, all_types_inputs

from neurocompile import Session
from neurocompile.errors import DatasetError
from neurocompile.sim.engine import simulate

BACKENDS = ["reference", pytest.param("compiled", marks=pytest.mark.skipif(
    __import__("importlib").util.find_spec("numba") is None, reason="numba not installed"))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(2))
def test_step_by_step_equals_whole_sequence(backend: str, seed: int) -> None:
    g = all_types_graph(seed)
    n, steps = 3, 7
    x = all_types_inputs(g, seed, n, steps)
    whole = simulate(g, x, record=True, backend="numpy")
    s = Session(g, backend=backend)
    assert s.backend == backend
    for i in range(n):
        s.reset()
        outs = [s.step({"x": x["x"][i, t], "tok": x["tok"][i, t]}) for t in range(steps)]
        assert np.array_equal(np.stack([o["res"] for o in outs]), whole.outputs["res"][i])  # per-step output
        assert np.array_equal(outs[-1]["head"], whole.outputs["head"][i])  # logits after the last step
        for t in range(steps if i == 0 else 0):  # the logits at step t are those of the sequence cut after t
            cut = simulate(g, {k: v[i:i + 1, :t + 1] for k, v in x.items()}, backend="numpy", counters=False)
            assert np.array_equal(outs[t]["head"], cut.outputs["head"][0]), (i, t)
        for k, d in s.states().items():
            for sk, v in d.items():
                assert np.array_equal(v[0], whole.final_states[k][sk][i]), (k, sk)
        assert s.t == steps


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_chunks_equal_whole_sequence(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from neurocompile.sim import compiled

    monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
    monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 8)  # the chunk of 1 step x 4 streams steps every node in the
    g = all_types_graph(2)  # loop; the others precompute the whole-sequence nodes (enc, emb, ln, tern)
    x = all_types_inputs(g, 2, 4, 9)
    whole = simulate(g, x, record=True, backend="numpy")
    s = Session(SimpleNamespace(int_graph=g), batch=4, backend=backend)  # anything with an int_graph (an Artifact)
    parts = [s.run({k: v[:, a:b] for k, v in x.items()}) for a, b in ((0, 2), (2, 3), (3, 9))]
    assert np.array_equal(np.concatenate([p["res"] for p in parts], axis=1), whole.outputs["res"])
    assert np.array_equal(parts[-1]["head"], whole.outputs["head"])
    assert s.saturations == {k: whole.saturations[k] for k in s.saturations}
    s.reset()
    again = s.run(x)
    assert np.array_equal(again["head"], whole.outputs["head"])


def test_bad_inputs_are_one_clear_error() -> None:
    g = all_types_graph(0)
    s = Session(g)
    with pytest.raises(DatasetError, match="pass a dict"):
        s.step(np.zeros(3))
    with pytest.raises(DatasetError, match=r"input 'x': expected shape \["):
        s.step({"x": np.zeros((2, 9)), "tok": 1})
    with pytest.raises(DatasetError, match="no step has run yet"):
        s.outputs()
