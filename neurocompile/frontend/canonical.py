"""Canonical node names for graphs traced from a program's dataflow.

When the traced graph has the residual-classifier shape (input -> encoder -> blocks -> mean pool -> decoder, each
block ``[norm] -> S4D -> neuron -> Affine(2H) -> GLU -> add(x, .) [-> norm]``), its nodes get the names
neurocompile's own ``SSMClassifier`` gives them (``encoder``, ``blocks.<i>.s4d``, ``blocks.<i>.neuron``,
``blocks.<i>.mix.conv``, ``blocks.<i>.mix.glu``, ``blocks.<i>.add``, ``blocks.<i>.norm``, ``pool``, ``decoder``),
together with the same ``trace_map`` and per-block ``stripped`` entries. The IR then depends only on what the model
computes, not on its module or class names. Other graphs keep their module-path names.
"""

from __future__ import annotations

from typing import Any

from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph

__all__ = ["canonicalise"]

_NEURONS = (fl.LIF, fl.RefractoryLIF, fl.Heaviside)


def _one(g: Graph, name: str) -> str | None:
    s = g.succs(name)
    return s[0] if len(s) == 1 else None


def _blocks(g: Graph) -> tuple[dict[str, str], list[dict[str, str]]] | None:
    if g.inputs != ["input"] or len(g.outputs) != 1:
        return None
    names: dict[str, str] = {"input": "input"}
    enc = _one(g, "input")
    if enc is None or not isinstance(g.node(enc), (fl.Affine, fl.Embedding)):
        return None
    names[enc] = "encoder"
    x, i, blocks = enc, 0, []
    while True:
        succ = g.succs(x)
        nodes = {s: g.node(s) for s in succ}
        pools = [s for s, n in nodes.items() if isinstance(n, fl.MeanPool)]
        if pools and len(succ) == 1:
            dec = _one(g, pools[0])
            if dec is None or not isinstance(g.node(dec), fl.Affine) or g.outputs != [dec]:
                return None
            names[pools[0]], names[dec] = "pool", "decoder"
            return names, blocks
        adds = [s for s, n in nodes.items() if isinstance(n, fl.Add)]
        rest = [s for s in succ if s not in adds]
        if len(adds) != 1 or len(rest) != 1:
            return None
        add, cur, base = adds[0], rest[0], f"blocks.{i}"
        block = {"add": add}
        if isinstance(g.node(cur), fl.Norm):
            block["norm"], cur = cur, _one(g, cur)
        for key, kind in (("s4d", fl.S4D), ("neuron", _NEURONS), ("mix.conv", fl.Affine), ("mix.glu", fl.GLU)):
            if cur is None or not isinstance(g.node(cur), kind):
                return None
            block[key] = cur
            cur = _one(g, cur)
        if cur != add or sorted(g.preds(add)) != sorted([x, block["mix.glu"]]):
            return None
        out = add
        if "norm" not in block:
            nxt = _one(g, add)
            if nxt is not None and isinstance(g.node(nxt), fl.Norm):
                block["norm"], out = nxt, nxt
        for key, node in block.items():
            names[node] = f"{base}.{key}"
        blocks.append({"s4d": f"{base}.s4d", "spikes": f"{base}.neuron", "out": f"{base}.add"})
        x, i = out, i + 1


def canonicalise(g: Graph, stripped: list[dict[str, str]]) -> tuple[Graph, dict, list]:
    """(graph, trace_map, stripped) with canonical names, or with module-path names when the shape differs.

    Each ``stripped`` entry carries ``_at``, the IR node whose output the stripped module acted on; inside a
    block it is renamed ``blocks.<i>.dropout`` (or ``blocks.<i>.neuron`` for an SDN).
    """
    found = _blocks(g)
    if found is None or len(found[0]) != len(g):
        return g, {}, [{k: v for k, v in s.items() if k != "_at"} for s in stripped]
    names, blocks = found
    new = Graph(g.name)
    for old in g.g.nodes:  # insertion order
        srcs: dict[str, list[str]] = {}
        for p in g.preds(old):
            srcs.setdefault(g.edge(p, old)["port"], []).append(names[p])
        new.add(names[old], g.node(old), srcs or None)
    new.inputs = [names[n] for n in g.inputs]
    new.outputs = [names[n] for n in g.outputs]
    trace_map: dict[str, Any] = {"encoder": "encoder"}
    for i, b in enumerate(blocks):
        trace_map.update({f"block{i}.{k}": v for k, v in b.items()})
    out: list[dict[str, str]] = []
    for s in stripped:
        at = names.get(s.get("_at", ""), "")
        if not at.startswith("blocks."):
            entry = {k: v for k, v in s.items() if k != "_at"}
        else:
            block = ".".join(at.split(".")[:2])
            entry = {"module": f"{block}.{'neuron' if s['kind'] == 'SDN' else 'dropout'}", "kind": s["kind"],
                     "reason": s["reason"]}
        if entry not in out:
            out.append(entry)
    return new, trace_map, out
