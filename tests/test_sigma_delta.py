"""QSigmaDelta (sigma-delta messaging, docs/semantics.md): the kernel's rule, the export option that inserts it
between an S4D state and its readout, the counters (messages = changes sent), the engine against the reference
runner, Lava bit for bit, and a shipped model exported with the option."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_lava_nodes import needs_lava
from test_sim_reference import assert_engine_equals_reference

from neurocompile.errors import IRError, NeurocompileError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.passes.pipeline import insert_nodes, insert_options, parse_inserts
from neurocompile.sim import reference
from neurocompile.sim.engine import simulate

ROOT = Path(__file__).resolve().parents[1]
I = np.int64


def _ssm(seed: int = 0, h: int = 3, m: int = 2) -> Graph:
    """input -> encoder -> modes -> readout (state, skip) -> head."""
    rng = np.random.default_rng(seed)
    g = Graph("sd")
    g.add("x", hw.QInput(size=2, out_scale=0.02, out_bits=8))
    g.add("enc", hw.QDense(weight=rng.integers(-100, 100, (h, 2)), bias=np.zeros(h, I), shift=np.full(h, 2, I),
                           out_bits=12), "x")
    g.add("mb", hw.QModeBank(a_re=rng.integers(3000, 4000, (h, m)), a_im=rng.integers(-600, 600, (h, m)),
                             b_re=rng.integers(-100, 100, (h, m)), b_im=rng.integers(-100, 100, (h, m)),
                             b_shift=np.full(h, 3, I), out_bits=16), "enc")
    g.add("ro", hw.QModeReadout(c_re=rng.integers(-100, 100, (h, m)), c_im=rng.integers(-100, 100, (h, m)),
                                d=rng.integers(-100, 100, h), shift=np.full(h, 9, I), out_bits=14),
          {"state": "mb", "skip": "enc"})
    g.add("head", hw.QDense(weight=rng.integers(-50, 50, (4, h)), bias=np.zeros(4, I), shift=np.zeros(4, I),
                            out_bits=0), "ro")
    g.inputs, g.outputs = ["x"], ["head"]
    return g


def _x(seed: int = 0, n: int = 3, t: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1.5, (n, t, 2))


def test_kernel_sends_a_change_only_when_it_reaches_theta() -> None:
    node = hw.QSigmaDelta(theta=3, size=2, out_bits=8)
    x = np.array([[[5, 0], [6, 2], [8, 3], [8, 3], [4, -1], [2, -1]]], I)  # [B=1, T=6, 2]
    got = reference.run_node(node, {"in": x})[0]
    # x_hat moves to x where |x - x_hat| >= 3 (Lava's |delta| >= vth), else keeps the last value sent
    assert got.tolist() == [[5, 0], [5, 0], [8, 3], [8, 3], [4, -1], [4, -1]]
    lossless = reference.run_node(hw.QSigmaDelta(theta=0, size=2, out_bits=8), {"in": x})
    assert np.array_equal(lossless, x)


def test_insert_puts_the_node_between_modes_and_readout() -> None:
    assert insert_options() == {"sigma-delta": hw.QSigmaDelta}
    g = insert_nodes(_ssm(), {"sigma-delta": 5})
    sd = g.node("mb.sigma-delta")
    assert isinstance(sd, hw.QSigmaDelta) and (sd.theta, sd.size, sd.out_bits) == (5, 12, 16)
    assert g.preds("mb.sigma-delta") == ["mb"] and g.preds("ro", "state") == ["mb.sigma-delta"]
    assert g.preds("ro", "skip") == ["enc"] and "ro" not in g.succs("mb")
    with pytest.raises(IRError, match="unknown insert option 'sigma'"):
        insert_nodes(_ssm(), {"sigma": 0})


def test_cli_option_parsing() -> None:
    assert parse_inserts(["sigma-delta=7"]) == {"sigma-delta": 7}
    assert parse_inserts(["sigma-delta"]) == {"sigma-delta": 0}
    for bad, why in (("sd=1", "unknown node option 'sd'"), ("sigma-delta=x", "must be an integer"),
                     ("sigma-delta=-1", ">= 0")):
        with pytest.raises(NeurocompileError, match=why):
            parse_inserts([bad])


def test_theta_zero_is_lossless_and_theta_bounds_the_error() -> None:
    x = _x()
    base = reference.run(_ssm(), x, record=True)
    r0 = reference.run(insert_nodes(_ssm(), {"sigma-delta": 0}), x, record=True)
    assert np.array_equal(r0.outputs["head"], base.outputs["head"])
    r = reference.run(insert_nodes(_ssm(), {"sigma-delta": 40}), x, record=True)
    err = np.abs(r.trace["mb.sigma-delta"] - r.trace["mb"])
    assert err.max() < 40 and err.max() > 0  # lossy, within theta
    assert r.states["mb.sigma-delta"]["xhat"].shape == (3, 12)


@pytest.mark.parametrize("theta", [0, 1, 40])
def test_engine_equals_reference(theta: int) -> None:
    assert_engine_equals_reference(insert_nodes(_ssm(theta), {"sigma-delta": theta}), _x(theta),
                                   ("auto", "int64", "reference"))


def test_messages_are_the_changes_sent() -> None:
    """The node's graded messages are the steps where x_hat changed (a zero delta is no message), and the
    readout's synaptic operations follow them; theta = 0 changes no output."""
    x = _x(1, n=4, t=20)
    base = simulate(_ssm(), x, counters=True, target="loihi2")
    for theta in (0, 40):
        g = insert_nodes(_ssm(), {"sigma-delta": theta})
        r = simulate(g, x, counters=True, target="loihi2", record=True)
        xhat = r.trace["mb.sigma-delta"]
        prev = np.concatenate([np.zeros_like(xhat[:, :1]), xhat[:, :-1]], axis=1)
        layers = {lc.name: lc for lc in r.counts.layers}
        sd = layers["mb.sigma-delta"]
        assert sd.graded_messages == int(np.count_nonzero(xhat != prev))
        assert sd.graded_messages < int(np.count_nonzero(r.trace["mb"]))  # the modes' values that were non-zero
        # the encoder is the modes' output stage: no compartments or updates of its own, their messages are its
        assert (sd.neurons, sd.neuron_updates, sd.messages_in, layers["mb"].graded_messages) == (0, 0, 0, 0)
        if theta == 0:
            assert np.array_equal(r.outputs["head"], base.outputs["head"])
    lossy = {lc.name: lc for lc in r.counts.layers}
    plain = {lc.name: lc for lc in base.counts.layers}
    assert lossy["ro"].synops_effective_mac < plain["ro"].synops_effective_mac


@needs_lava
@pytest.mark.parametrize("theta,batch", [(0, None), (40, 3)])
def test_lava_bit_identical(theta: int, batch: int | None) -> None:
    from neurocompile.backends.lava import load, run
    from neurocompile.backends.lava.compare import compare, simulate_reference

    g = insert_nodes(_ssm(2), {"sigma-delta": theta})
    x = _x(2, n=3, t=14)
    res = run(load(g, batch=batch), x)
    assert res.plan["mb.sigma-delta"] == "QSigmaDeltaProc"
    cmp = compare(g, res, simulate_reference(g, x))
    assert cmp.equal, cmp
    assert np.array_equal(res.states["mb.sigma-delta"]["act"] - res.states["mb.sigma-delta"]["residue"],
                          res.states["mb.sigma-delta"]["xhat"])


def test_shipped_model_exported_with_the_option(tmp_path: Path) -> None:
    """binary_s4d_sdigits with --insert sigma-delta=0: one encoder per S4D layer, the option in the manifest,
    the same predictions as without it, fewer messages from the encoders than values from the modes."""
    from neurocompile.api import export
    from neurocompile.artifact import load_artifact
    from neurocompile.datasets import load_dataset

    ckpt = ROOT / "examples" / "checkpoints" / "binary_s4d_sdigits.pt"
    base = load_artifact(export(ckpt, "loihi2", out=tmp_path / "base", console=False))
    art = load_artifact(export(ckpt, "loihi2", out=tmp_path / "sd", console=False, insert={"sigma-delta": 0}))
    sd = [n for n, o in art.int_graph.items() if isinstance(o, hw.QSigmaDelta)]
    assert sd == ["blocks.0.s4d.modes.sigma-delta", "blocks.1.s4d.modes.sigma-delta"]
    assert art.manifest["options"]["insert"] == {"sigma-delta": 0}
    x = load_dataset("sdigits", split="test").x[:8]
    a = simulate(base.int_graph, x, counters=True, target="loihi2")
    b = simulate(art.int_graph, x, counters=True, target="loihi2")
    assert np.array_equal(a.outputs[base.int_graph.outputs[0]], b.outputs[art.int_graph.outputs[0]])
    before = {lc.name: lc for lc in a.counts.layers}
    after = {lc.name: lc for lc in b.counts.layers}
    for n in sd:
        assert 0 < after[n].graded_messages <= before[n.removesuffix(".sigma-delta")].graded_messages
    assert b.counts.total("graded_messages") <= a.counts.total("graded_messages")
