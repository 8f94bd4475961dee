"""The compiled step (numba) is bit-identical to the NumPy engine and to the reference kernels.

Every node type, in random graphs with random widths, shifts, roundings, delays and saturating inputs, and every
shipped checkpoint compiled for loihi2: outputs, traces, final states, saturations, spikes per step and every
counter must be equal. Also: the backend option and its fallback.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from neurocompile.errors import IRError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.sim import compiled
from neurocompile.sim.engine import plan, simulate
from neurocompile.sim.fixed import limit

pytest.importorskip("numba")

ROOT = Path(__file__).resolve().parent.parent
I = np.int64
ALL_TYPES = {"QInput", "QEmbedding", "QDense", "QModeBank", "QModeReadout", "QLIF", "QHeaviside", "QRefractory",
             "QLUT", "QMul", "QTernarize", "QAdd", "QAccumulate", "QLavaLIF", "QLayerNorm"}


def _w(rng: np.random.Generator, *shape: int, bits: int = 8) -> np.ndarray:
    lim = limit(bits)
    return rng.integers(-lim, lim + 1, size=shape).astype(I)


def all_types_graph(seed: int) -> Graph:
    """A random valid graph with every integer node type, two inputs (features, tokens), pipelines and edge delays."""
    rng = np.random.default_rng(seed)
    d, h, m, vocab = (int(v) for v in (rng.integers(1, 5), rng.integers(2, 7), rng.integers(1, 4), rng.integers(3, 9)))
    bits = lambda lo, hi: int(rng.integers(lo, hi))
    shifts = lambda n, lo, hi: rng.integers(lo, hi, n).astype(I)
    g = Graph(f"all{seed}")
    g.add("x", hw.QInput(size=d, out_scale=float(rng.choice([0.05, 0.5, 1.0])), out_bits=bits(2, 14)))
    g.add("tok", hw.QInput(size=1, tokens=True, vocab=vocab, out_bits=0))
    g.inputs = ["x", "tok"]
    g.add("enc", hw.QDense(weight=_w(rng, h, d, bits=bits(4, 12)), bias=_w(rng, h, bits=10), shift=shifts(h, -1, 8),
                           rounding=str(rng.choice(["nearest", "floor"])),
                           delay=0 if seed % 2 == 0 else int(rng.integers(1, 3)), out_bits=bits(8, 16)), "x")
    g.add("emb", hw.QEmbedding(table=_w(rng, vocab, h, bits=10), out_bits=10), "tok")
    table = np.floor(2.0 ** 12 / np.sqrt(np.maximum(np.arange(65), 1)) + 0.5).astype(I)
    g.add("ln", hw.QLayerNorm(size=h, mean_mul=round(2 ** 18 / h), mean_shift=18, var_shift=1, eps=3, index_bits=6,
                              rsqrt_frac_bits=12, rsqrt_table=table, weight=_w(rng, h), bias=_w(rng, h, bits=6),
                              shift=shifts(h, 9, 14), out_bits=bits(8, 14)), ["enc", "emb"])
    mag = rng.uniform(0.3, 1.0, (h, m))
    ang = rng.uniform(-np.pi, np.pi, (h, m))
    g.add("ssm", hw.QModeBank(a_re=np.round(mag * np.cos(ang) * 4096).astype(I),
                              a_im=np.round(mag * np.sin(ang) * 4096).astype(I), b_re=_w(rng, h, m), b_im=_w(rng, h, m),
                              b_shift=shifts(h, -2, 6), out_bits=bits(10, 26)), "ln")
    g.add("ro", hw.QModeReadout(c_re=_w(rng, h, m), c_im=_w(rng, h, m), d=_w(rng, h), shift=shifts(h, 0, 12),
                                out_bits=bits(6, 17)), {"state": "ssm", "skip": "ln"})
    g.add("lif", hw.QLIF(decay=int(rng.integers(0, 4097)), vth=rng.integers(1, 60, h).astype(I),
                         compare=str(rng.choice([">=", ">"])), reset=str(rng.choice(["zero", "subtract"])),
                         state_bits=bits(6, 24)), "ro")
    g.add("rf", hw.QRefractory(decay=int(rng.integers(0, 4097)), lam=int(rng.integers(0, 4097)),
                               vth=rng.integers(1, 60, h).astype(I), rho=rng.integers(0, 20, h).astype(I),
                               trace_frac_bits=int(rng.integers(0, 6)), state_bits=bits(8, 24)), "ro")
    g.add("hv", hw.QHeaviside(vth=rng.integers(-3, 20, h).astype(I), compare=str(rng.choice([">", ">="]))), "ro")
    g.add("tern", hw.QTernarize(num=3, den=20, size=h), "enc")
    g.add("ld", hw.QDense(weight=_w(rng, h, h, bits=6), bias=np.zeros(h, I), shift=np.zeros(h, I), rounding="floor",
                          delay=1, out_bits=12), "hv")
    g.add("llif", hw.QLavaLIF(du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)),
                              vth=rng.integers(1, 40, h).astype(I), bias_mant=_w(rng, h, bits=8),
                              bias_exp=rng.integers(-2, 3, h).astype(I)), "ld")
    g.add("da", hw.QDense(weight=_w(rng, h, h), bias=_w(rng, h, bits=6), shift=shifts(h, 0, 4), out_bits=bits(6, 16)),
          ["lif", "rf", "tern"])
    g.add("db", hw.QDense(weight=_w(rng, h, h), bias=_w(rng, h, bits=6), shift=shifts(h, 0, 4), out_bits=bits(6, 16)),
          ["hv"])
    g.connect("llif", "db", delay=2)
    n_tab = int(rng.integers(2, 40))
    g.add("lut", hw.QLUT(table=_w(rng, n_tab, bits=9), in_shift=int(rng.integers(-1, 4)),
                         offset=int(rng.integers(0, n_tab)), size=h, out_bits=9), "db")
    g.add("mul", hw.QMul(shift=int(rng.integers(0, 8)), size=h, out_bits=bits(6, 16)), {"a": "da", "b": "lut"})
    g.add("res", hw.QAdd(size=h, out_bits=bits(6, 16)), ["mul", "enc"])
    g.add("pool", hw.QAccumulate(size=h, out_bits=bits(8, 32)), "res")
    g.add("head", hw.QDense(weight=_w(rng, 3, h), bias=np.zeros(3, I), shift=np.zeros(3, I), out_bits=0), "pool")
    g.outputs = ["head", "res"]
    return g


def all_types_inputs(g: Graph, seed: int, n: int, steps: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1000 + seed)
    vocab = g.node("emb").table.shape[0]
    return {"x": rng.standard_normal((n, steps, g.node("x").size)) * float(rng.choice([3.0, 300.0])),
            "tok": rng.integers(0, vocab, (n, steps))}


def assert_identical(a, b, what: str) -> None:
    """Everything a run produces, equal bit for bit."""
    assert a.outputs.keys() == b.outputs.keys()
    for k in a.outputs:
        assert np.array_equal(a.outputs[k], b.outputs[k]), (what, "output", k)
    assert np.array_equal(a.predictions, b.predictions), what
    if a.trace is not None:
        assert a.trace.keys() == b.trace.keys()
        for k in a.trace:
            assert np.array_equal(a.trace[k], b.trace[k]), (what, "trace", k)
        assert a.final_states.keys() == b.final_states.keys(), what
        for k, d in a.final_states.items():
            assert d.keys() == b.final_states[k].keys(), (what, k)
            for sk, v in d.items():
                assert np.array_equal(b.final_states[k][sk], v), (what, "state", k, sk)
    if a.sample_trace is not None:
        for k, v in a.sample_trace.items():
            assert np.array_equal(b.sample_trace[k], v), (what, "sample", k)
    assert a.saturations == b.saturations, what
    assert a.spikes == b.spikes, what
    for k, v in a.spikes_per_step.items():
        assert np.array_equal(b.spikes_per_step[k], v), (what, k)
    if a.counts is not None:
        for la, lb in zip(a.counts.layers, b.counts.layers):
            assert la == lb, (what, la.name)
    assert a.counts == b.counts, what


@pytest.mark.parametrize("seed", range(4))
def test_every_node_type_compiled_equals_numpy_and_reference(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    g = all_types_graph(seed)
    assert {type(n).__name__ for _, n in g.items()} == ALL_TYPES
    rng = np.random.default_rng(seed)
    n, steps = int(rng.integers(1, 6)), int(rng.integers(1, 10))
    x = all_types_inputs(g, seed, n, steps)
    # dense layers fed without delays, with exact float products, run over whole chunks (and the embedding);
    # enc has a pipeline when seed is odd, db a delayed input
    whole = compiled.program(plan(g)).whole
    assert whole == {"emb", "da"} | ({"enc"} if seed % 2 == 0 else set())
    for counters in (False, True):  # with counters: Loihi's event-driven update rule behind synapse-only denses
        kw = {"record": True, "record_sample": int(rng.integers(0, n)), "batch_size": int(rng.integers(1, 4)),
              "target": "loihi2", "counters": counters}
        monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 1)  # every chunk runs them over all its rows ...
        monkeypatch.setattr(compiled, "WHOLE_MIN_WORK", 1)
        monkeypatch.setattr(compiled, "CHUNK_ROWS", int(rng.integers(1, 12)))  # ... in chunks of a few steps
        comp = simulate(g, x, backend="compiled", **kw)
        monkeypatch.setattr(compiled, "WHOLE_MIN_ROWS", 10 ** 9)  # ... or none: every node steps in the loop
        stepped = simulate(g, x, backend="compiled", **kw)
        assert comp.backend == stepped.backend == "compiled"
        ref = simulate(g, x, arith="reference", **kw)  # every node through kernels.step
        fast = simulate(g, x, backend="numpy", **kw)  # the NumPy engine's fused / floating-point paths
        assert ref.backend == fast.backend == "numpy"
        assert any(v > 0 for v in comp.saturations.values())  # the widths do bite
        assert_identical(ref, comp, f"compiled (whole-chunk nodes) vs reference, counters {counters}")
        assert_identical(ref, stepped, f"compiled (all nodes stepped) vs reference, counters {counters}")
        assert_identical(ref, fast, f"numpy vs reference, counters {counters}")


def _shipped_graph(path: Path) -> tuple[Graph, np.ndarray]:
    """The checkpoint traced and quantised for loihi2 (calibrated on random data: any integer graph will do)."""
    from neurocompile.api import _input_spec
    from neurocompile.frontend import load_model, trace
    from neurocompile.passes.pipeline import CompileOptions, compile_graph
    from neurocompile.target import load_target

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fg = trace(load_model(path))
        size, tokens = _input_spec(fg)
        calib = rng.integers(0, 10, (8, 24)) if tokens else rng.standard_normal((8, 24, size)).astype(np.float32)
        g, _ = compile_graph(fg, load_target("loihi2"), calib, CompileOptions(on_precision="warn"))
    x = rng.integers(0, 10, (5, 20)) if tokens else rng.standard_normal((5, 20, size)) * 2.0
    return g, x


SHIPPED = sorted(p for p in (ROOT / "examples" / "checkpoints").glob("*.pt") if not p.stem.startswith("sdn")
                 and "mnist" not in p.stem)  # 784-step models: tests/test_smnist_models.py


def test_shipped_checkpoints_found() -> None:
    assert len(SHIPPED) >= 5


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_models_compiled_equals_numpy_and_reference(path: Path) -> None:
    g, x = _shipped_graph(path)
    assert compiled.program(plan(g)).whole  # at least the input encoder runs whole-chunk
    kw = {"record": True, "record_sample": 1, "batch_size": 2, "target": "loihi2"}
    auto = simulate(g, x, **kw)  # counters on (as the CLI runs): the compiled step counts them itself
    assert auto.backend == "compiled"
    assert_identical(simulate(g, x, arith="reference", **kw), auto, f"{path.stem}: compiled vs reference")
    assert_identical(simulate(g, x, backend="numpy", **kw), auto, f"{path.stem}: compiled vs numpy")
    kw["counters"] = False
    assert_identical(simulate(g, x, backend="numpy", **kw), simulate(g, x, **kw), f"{path.stem}: no counters")


def test_backend_option_and_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    g = all_types_graph(0)
    x = all_types_inputs(g, 0, 2, 3)
    assert simulate(g, x, counters=False).backend == "compiled"  # 'auto' with numba installed
    assert simulate(g, x, arith="int64").backend == "numpy"  # an explicit NumPy arithmetic path
    with pytest.raises(ValueError, match="backend must be one of"):
        simulate(g, x, backend="gpu")
    monkeypatch.setattr(compiled, "available", lambda: False)
    assert simulate(g, x, counters=False).backend == "numpy"  # auto falls back without numba
    with pytest.raises(IRError, match="numba is not installed"):
        simulate(g, x, backend="compiled", counters=False)


def test_token_ids_outside_the_table_are_not_read() -> None:
    g = all_types_graph(1)
    x = all_types_inputs(g, 1, 2, 3)
    x["tok"][1, 2] = 10 ** 6
    with pytest.raises(IRError, match="outside the"):
        simulate(g, x, backend="compiled")
    with pytest.raises(IndexError):  # the NumPy engine (auto falls back to it) raises as before
        simulate(g, x)


def test_cli_sim_backend_option_reaches_the_engine() -> None:
    from types import SimpleNamespace

    from click.testing import CliRunner

    from neurocompile import api
    from neurocompile.cli import main
    from neurocompile.target import load_target

    g = all_types_graph(2)
    art = SimpleNamespace(target="loihi2", target_spec=load_target("loihi2"), int_graph=g)
    ds = SimpleNamespace(x=all_types_inputs(g, 2, 2, 3))
    runs = {b: api._run(art, ds, "sim", 1, None, progress=False, sim_backend=b) for b in ("numpy", "auto")}
    # counters are on in the CLI: 'auto' runs the compiled step, which counts exactly what the NumPy engine counts
    assert runs["numpy"].backend == "numpy" and runs["auto"].backend == "compiled"
    assert runs["numpy"].counts == runs["auto"].counts
    help_text = CliRunner().invoke(main, ["simulate", "--help"]).output
    assert "--sim-backend [auto|compiled|numpy]" in help_text


def _choice_variants() -> list[tuple[str, str, str]]:
    """(node class, field, value) for every allowed string of every integer node field (the traits' choices)."""
    import dataclasses

    out = []
    for name, cls in sorted(hw.INT_NODES.items()):
        for f in dataclasses.fields(cls):
            out += [(name, f.name, v) for v in f.metadata.get("choices", ())]
    return out


@pytest.mark.parametrize("cls_name,field,value", _choice_variants())
def test_every_mode_of_every_node_compiled_equals_reference(cls_name: str, field: str, value: str) -> None:
    """Each declared mode (reset, compare, rounding, ...) runs the same on the compiled step as on the reference."""
    import dataclasses

    g = all_types_graph(1)
    hits = [n for n, node in g.items() if type(node).__name__ == cls_name]
    if not hits:
        pytest.skip(f"{cls_name} is not in the every-type graph")
    for n in hits:
        g.replace(n, dataclasses.replace(g.node(n), **{field: value}))
    x = all_types_inputs(g, 1, 3, 9)
    kw = {"record": True, "target": "loihi2", "counters": True}
    assert_identical(simulate(g, x, arith="reference", **kw), simulate(g, x, backend="compiled", **kw),
                     f"{cls_name}.{field} = {value!r}")
