"""Lower: rewrite the units the chip has no neuron for into dense synapses, products and elementwise tables.

After this pass every nonlinearity other than a spiking neuron is an ``Activation`` (sigmoid, GELU, ReLU), which
the quantiser turns into a ``QLUT``, and every product is a ``Mul``.

- GLU(x) = a * sigmoid(b), a = x[:H], b = x[H:]. When the GLU's input is an ``Affine`` (the 1x1 convolution
  H -> 2H) used only by the GLU, that Affine is split into ``<affine>.a`` (rows :H) and ``<affine>.b``
  (rows H:); otherwise two selection Affines pick the halves. Then ``<glu>.sigmoid`` = Activation('sigmoid')
  on b, and the GLU's name becomes ``Mul(a, sigmoid)``, so consumers and reports keep the name.
- GSU pieces (Ternarize, the two Affines, Mul, Activation('gelu')) are already in this form.
- LayerNorm (``Norm(kind='layer')``) divides by the per-step standard deviation over channels. Default
  (``layernorm='integer'``): kept as it is; the quantiser turns it into a ``QLayerNorm`` (integer mean and
  variance, a 1/sqrt look-up table; docs/semantics.md). Option ``layernorm='freeze'`` replaces it by the
  per-channel affine map with the calibration-average statistics y = (x - mean_bar) / std_bar * w + b (an
  approximation; the quantisation report measures its cost); ``layernorm='refuse'`` raises UnsupportedOpError
  naming the node.
"""

from __future__ import annotations

import numpy as np

from neurocompile.errors import UnsupportedOpError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes.common import PassContext, unique_name

NAME = "lower"


def run(graph: Graph, ctx: PassContext) -> Graph:
    g = graph.copy()
    glus = [_lower_glu(g, name) for name in list(g.order()) if isinstance(g.node(name), fl.GLU)]
    norms = [name for name in g.order() if isinstance(g.node(name), fl.Norm) and g.node(name).kind == "layer"]
    if norms:
        _lower_layernorms(g, norms, ctx)
    ctx.note(NAME, glu=glus, layernorm=norms)
    return g


def _lower_glu(g: Graph, name: str) -> str:
    n: fl.GLU = g.node(name)  # type: ignore[assignment]
    h = n.size
    preds = [(p, g.edge(p, name)) for p in g.preds(name)]
    src = g.node(preds[0][0]) if len(preds) == 1 else None
    if isinstance(src, fl.Affine) and g.succs(preds[0][0]) == [name] and preds[0][0] not in g.outputs \
            and not preds[0][1].get("delay", 0):
        aff = preds[0][0]
        halves = {"a": fl.Affine(weight=src.weight[:h].copy(), bias=src.bias[:h].copy()),
                  "b": fl.Affine(weight=src.weight[h:].copy(), bias=src.bias[h:].copy())}
        feeds = [(p, g.edge(p, aff)) for p in g.preds(aff)]
        g.remove(aff)
        names = {}
        for k, node in halves.items():
            names[k] = unique_name(g, f"{aff}.{k}")
            g.add(names[k], node)
            for p, e in feeds:
                g.connect(p, names[k], "in", e.get("delay", 0))
    else:  # select the halves of whatever feeds the GLU
        eye = np.eye(h, dtype=np.float32)
        zero = np.zeros((h, h), np.float32)
        sel = {"a": np.concatenate([eye, zero], 1), "b": np.concatenate([zero, eye], 1)}
        names = {}
        for k, w in sel.items():
            names[k] = unique_name(g, f"{name}.{k}")
            g.add(names[k], fl.Affine(weight=w, bias=np.zeros(h, np.float32)))
            for p, e in preds:
                g.connect(p, names[k], "in", e.get("delay", 0))
        g.g.remove_edges_from([(p, name) for p, _ in preds])
    sig = unique_name(g, f"{name}.sigmoid")
    g.add(sig, fl.Activation(fn="sigmoid", size=h), names["b"])
    g.replace(name, fl.Mul(size=h))
    g.connect(names["a"], name, "a")
    g.connect(sig, name, "b")
    return name


def _lower_layernorms(g: Graph, norms: list[str], ctx: PassContext) -> None:
    if ctx.options.layernorm == "integer":
        ctx.note(NAME, integer_layernorm=list(norms))
        return
    if ctx.options.layernorm != "freeze":
        raise UnsupportedOpError(
            f"node '{norms[0]}' is a LayerNorm ({len(norms)} in the model) and layernorm='refuse' was asked: it "
            f"divides each step by the standard deviation over channels. Compile with layernorm='integer' (the "
            f"default: an integer QLayerNorm with a 1/sqrt table), or layernorm='freeze' (--layernorm freeze) to "
            f"replace it by its calibration-average affine map (approximate; the quantisation report shows the cost), "
            f"or retrain with norm='batch' (folded into the weights) or norm='none'"
        )
    if ctx.calib_x is None:
        raise UnsupportedOpError(f"layernorm='freeze' needs calibration data to freeze node '{norms[0]}'")
    from neurocompile.ir.interpret import interpret

    trace = interpret(g, ctx.calib_x, record=True).trace
    frozen = {}
    for name in norms:
        n: fl.Norm = g.node(name)  # type: ignore[assignment]
        x = sum(trace[p] for p in g.preds(name))
        mu = x.mean(axis=-1)
        std = np.sqrt(((x - mu[..., None]) ** 2).mean(axis=-1) + n.eps)
        m_bar, s_bar = float(mu.mean()), float(std.mean())
        w = n.weight.astype(np.float64) / s_bar
        b = n.bias.astype(np.float64) - m_bar * w
        g.replace(name, fl.Affine(weight=np.diag(w).astype(np.float32), bias=b.astype(np.float32)))
        frozen[name] = {"mean": m_bar, "std": s_bar}
        ctx.warn(f"node '{name}': LayerNorm frozen to a per-channel affine map (mean {m_bar:.4g}, std {s_bar:.4g} "
                 f"averaged over the calibration data); this approximates the model")
    ctx.note(NAME, frozen_layernorm=frozen)

