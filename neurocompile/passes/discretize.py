"""Discretize: continuous S4D -> ``ModeBank`` (the recurrence) + ``ModeReadout`` (2 Re(C h) + D u).

Zero-order hold, per channel h and mode m (computed in complex128, stored complex64):

    dA = exp(dt A),    dB = (exp(dt A) - 1) / A * B,    dt = exp(log_dt)

Wiring: the S4D's inputs feed the ModeBank (``<s4d>.modes``, port ``in``) and the readout's ``skip`` port; the
ModeBank feeds the readout's ``state`` port. The readout keeps the S4D's name, so its consumers and the
graph outputs are unchanged.

Bidirectional S4D (a second C over the time-reversed sequence) is refused: a chip processes the sequence as it
arrives, so the reverse half needs the whole sequence buffered and a second pass over it. Dropping it silently
would change the model; compiling it causally is impossible.
"""

from __future__ import annotations

import numpy as np

from neurocompile.errors import UnsupportedOpError
from neurocompile.ir import nodes as fl
from neurocompile.ir.graph import Graph
from neurocompile.passes.common import PassContext, unique_name

NAME = "discretize"


def zoh(node: fl.S4D) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order hold of ``node`` in complex128: ``(dA, dB)``, each [H, M]."""
    dt = np.exp(node.log_dt.astype(np.float64))[:, None]
    A = node.A_re.astype(np.float64) + 1j * node.A_im.astype(np.float64)
    dtA = dt * A
    # exp(z) - 1 without cancellation for small |z|
    expm1 = (np.expm1(dtA.real) * np.cos(dtA.imag) - 2.0 * np.sin(0.5 * dtA.imag) ** 2) \
        + 1j * (np.exp(dtA.real) * np.sin(dtA.imag))
    return np.exp(dtA), expm1 / A * node.B.astype(np.complex128)


def run(graph: Graph, ctx: PassContext) -> Graph:
    g = graph.copy()
    done = []
    for name in list(g.order()):
        n = g.node(name)
        if not isinstance(n, fl.S4D):
            continue
        if n.bidirectional:
            raise UnsupportedOpError(
                f"node '{name}' is a bidirectional S4D: its reverse half reads the sequence backwards, so a chip "
                f"would have to buffer all T steps and run a second, reverse pass (latency of a whole sequence); "
                f"neurocompile compiles streaming (causal) models only and will not drop the reverse half silently. "
                f"Retrain with bidirectional=False (an explicit buffered reverse pass, --allow-buffered-reverse, "
                f"is not supported yet)"
            )
        dA, dB = zoh(n)
        preds = [(p, g.edge(p, name)) for p in g.preds(name)]
        bank = unique_name(g, f"{name}.modes")
        g.g.remove_edges_from([(p, name) for p, _ in preds])
        g.add(bank, fl.ModeBank(dA=dA.astype(np.complex64), dB=dB.astype(np.complex64)))
        g.replace(name, fl.ModeReadout(C=n.C.astype(np.complex64), D=n.D.astype(np.float32)))
        for p, e in preds:
            g.connect(p, bank, "in", e.get("delay", 0))
            g.connect(p, name, "skip", e.get("delay", 0))
        g.connect(bank, name, "state")
        done.append(name)
    ctx.note(NAME, s4d=done)
    return g
