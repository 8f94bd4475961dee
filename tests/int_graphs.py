"""Small integer graphs for the tests: one holding every integer node type (with an edge delay and a dense
delay; insertable node types inserted where they declare), and a token-input graph for QEmbedding."""

from __future__ import annotations

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph
from neurocompile.passes.pipeline import insert_nodes, insert_options

H = 4


def _w(rng: np.random.Generator, *shape: int, lim: int = 100) -> np.ndarray:
    return rng.integers(-lim, lim + 1, shape).astype(np.int64)


def every_node_graph(seed: int = 0) -> Graph:
    """One graph with every integer node type but QEmbedding (see token_graph), an edge delay and a dense delay."""
    rng = np.random.default_rng(seed)
    z = np.zeros(H, np.int64)
    g = Graph("every-node")
    g.add("x", hw.QInput(size=3, out_bits=8, out_scale=0.02))
    g.add("d1", hw.QDense(weight=_w(rng, H, 3), bias=_w(rng, H), shift=np.full(H, 3, np.int64), out_bits=12), "x")
    g.add("bank", hw.QModeBank(a_re=rng.integers(2000, 4000, (H, 2)), a_im=_w(rng, H, 2, lim=900),
                               b_re=_w(rng, H, 2), b_im=_w(rng, H, 2), b_shift=np.full(H, 2, np.int64),
                               out_bits=16), "d1")
    g.add("ro", hw.QModeReadout(c_re=_w(rng, H, 2), c_im=_w(rng, H, 2), d=_w(rng, H),
                                shift=np.full(H, 8, np.int64), out_bits=12), {"state": ["bank"], "skip": ["d1"]})
    g.add("lif", hw.QLIF(vth=np.full(H, 300, np.int64), reset="subtract", state_bits=16), "ro")
    g.add("hv", hw.QHeaviside(vth=z.copy()), "ro")
    g.add("ref", hw.QRefractory(vth=np.full(H, 200, np.int64), rho=np.full(H, 50, np.int64), state_bits=16), "ro")
    g.add("syn", hw.QDense(weight=_w(rng, H, H), bias=z.copy(), shift=z.copy(), rounding="floor", delay=1,
                           out_bits=16), "ro")
    g.add("llif", hw.QLavaLIF(du=3000, dv=400, vth=np.full(H, 40, np.int64), bias_mant=_w(rng, H),
                              bias_exp=np.zeros(H, np.int64), state_bits=24), "syn")
    g.add("lut", hw.QLUT(table=_w(rng, 64, lim=127), in_shift=4, offset=32, size=H, out_bits=8), "ro")
    g.add("mul", hw.QMul(shift=4, size=H, out_bits=12), {"a": ["lut"], "b": ["ro"]})
    g.add("tern", hw.QTernarize(size=H), "mul")
    r_bits, l_bits = 12, 4
    table = np.array([0] + [round(2 ** r_bits / np.sqrt(i)) for i in range(1, (1 << l_bits) + 1)], np.int64)
    g.add("ln", hw.QLayerNorm(size=H, mean_mul=1, mean_shift=2, index_bits=l_bits, rsqrt_frac_bits=r_bits,
                              rsqrt_table=table, weight=_w(rng, H), bias=_w(rng, H), shift=np.full(H, 12, np.int64),
                              out_bits=10), "mul")
    g.add("add", hw.QAdd(size=H, out_bits=12), ["lif", "hv", "ref", "llif", "tern"])
    g.connect("ln", "add", delay=2)
    g.add("acc", hw.QAccumulate(size=H, out_bits=20), "add")
    g.add("out", hw.QDense(weight=_w(rng, 3, H), bias=np.zeros(3, np.int64), shift=np.zeros(3, np.int64),
                           out_bits=0), "acc")
    g.inputs, g.outputs = ["x"], ["out"]
    # every insertable node type goes on the edges it declares (value 2: a threshold that drops small changes)
    return insert_nodes(g, {opt: 2 for opt in insert_options()})


def token_graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("tokens")
    g.add("tok", hw.QInput(size=1, tokens=True, vocab=5, out_bits=0))
    g.add("emb", hw.QEmbedding(table=_w(rng, 5, H), out_bits=8), "tok")
    g.add("out", hw.QDense(weight=_w(rng, 2, H), bias=np.zeros(2, np.int64), shift=np.ones(2, np.int64),
                           out_bits=16), "emb")
    g.inputs, g.outputs = ["tok"], ["out"]
    return g
