"""The layers lava-dl's netx can express, written as a netx network file (HDF5, read by ``netx.hdf5.Network``).

Layout (netx's): ``layer/<i>/{type, shape, inFeatures, outFeatures, weight | weight/real + weight/imag,
neuron/{type, iDecay, vDecay, vThMant, refDelay, gradedSpike, bias}}``, integers as netx reads them
(``type`` an ASCII string, weights the integer synaptic values, which netx splits into mantissa and
exponent itself). Each layer group also carries the attributes ``neurocompile_node`` (the graph node(s)
it stands for), ``neurocompile_exact`` (True when netx's Lava network computes exactly what neurocompile's
simulator computes) and ``neurocompile_note`` (why not). The file's attributes list the nodes netx cannot
express at all (``neurocompile_skipped``). Needs h5py only, not Lava. Files are byte-deterministic. A large
QModeBank's block-diagonal ``weight/real`` and ``weight/imag`` are chunked datasets of which only the diagonal
chunks are stored (:meth:`_Writer.block_diagonal`); h5py and netx read them back as the same dense matrices.

What netx can express, and how exactly (see docs/lava.md):

=========================  =========================  ==========================================================
graph                      netx layer                 exact?
=========================  =========================  ==========================================================
QInput                     ``input``                  no: netx's Input block applies its own neuron/transform
QDense + QLavaLIF          ``dense`` + ``CUBA``        yes when the dense has delay 1, no bias, one shift <= 0,
                                                      weights in [-256, 254] after the shift, and the LIF's bias
                                                      is a multiple of 2^6 (netx fixes bias_exp = 6)
QDense + QLIF              ``dense`` + ``CUBA``        no: Lava's v carries 6 more fractional bits (decays round
                                                      differently), netx adds one step of synaptic delay
other QDense               ``dense`` (no neuron)       no: netx puts a non-leaky CUBA integrator behind it
QModeBank                  ``dense`` complex + ``RF``  no: weight/real + weight/imag carry B; Lava's RF truncates
                                                      each product (neurocompile truncates the sum) and spikes
QModeReadout, QLUT, QMul,  --                         not expressible (skip paths, tables, products, ternary,
QTernarize, QAdd,                                     per-channel shifts, sequence pooling)
QAccumulate, QHeaviside,
QRefractory, QEmbedding
=========================  =========================  ==========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neurocompile.errors import BackendError
from neurocompile.ir import hw
from neurocompile.ir.graph import Graph

NETX_BIAS_EXP = 6  # netx builds every CUBA/LOIHI neuron with bias_exp = 6
NETX_WEIGHT_RANGE = (-256, 254)  # what netx's optimize_weight_bits keeps without clipping
_DENSE_BYTES = 1 << 20  # a QModeBank's block-diagonal input matrix up to this size is written dense (bytes)
_DIAG_TILE = 8  # channels per chunk of a larger one: 1/8 of each written chunk is non-zero


@dataclass
class NetxLayer:
    index: int
    kind: str  # 'input' | 'dense'
    nodes: list[str]
    exact: bool
    note: str = ""


@dataclass
class NetxReport:
    """What :func:`write_netx` wrote: the layers, the nodes it left out (with the reason), the file."""

    path: Path
    layers: list[NetxLayer] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        """True when every node is in the file and every layer is exact."""
        return not self.skipped and all(ly.exact for ly in self.layers)


class _Writer:
    """h5py with object times switched off, so the same graph always gives the same bytes."""

    def __init__(self, f: Any) -> None:
        import h5py

        self.h5py = h5py
        self.f = f

    def group(self, parent: Any, name: str) -> Any:
        h5py = self.h5py
        gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
        gcpl.set_obj_track_times(False)
        return h5py.Group(h5py.h5g.create(parent.id, name.encode(), gcpl=gcpl))

    def data(self, parent: Any, name: str, value: Any) -> None:
        if isinstance(value, str):
            value = np.bytes_(value)
        else:
            value = np.asarray(value)
        parent.create_dataset(name, data=value, track_times=False)

    def block_diagonal(self, parent: Any, name: str, diag: np.ndarray) -> None:
        """The dense [H*M, H] int64 matrix whose row r holds ``diag.flat[r]`` at column r // M (zeros elsewhere).

        Small matrices are written whole. Large ones are chunked in [M*K, K] tiles so that only the H/K tiles on
        the diagonal are written (gzip level 1): HDF5 returns an unwritten chunk as the fill value 0, so a reader
        (h5py, netx) sees the same dense matrix while the file holds H*M*K entries instead of H*M*H.
        """
        h, m = diag.shape
        if h * m * h * 8 <= _DENSE_BYTES:
            dense = np.zeros((h * m, h), np.int64)
            rows = np.arange(h * m)
            dense[rows, rows // m] = diag.reshape(-1)
            self.data(parent, name, dense)
            return
        k = min(h, _DIAG_TILE)
        ds = parent.create_dataset(name, shape=(h * m, h), dtype=np.int64, chunks=(m * k, k), fillvalue=0,
                                   compression="gzip", compression_opts=1, shuffle=True, track_times=False)
        cols = np.arange(m * k) // m
        for c0 in range(0, h, k):
            c1 = min(h, c0 + k)
            tile = np.zeros(((c1 - c0) * m, c1 - c0), np.int64)
            tile[np.arange(tile.shape[0]), cols[:tile.shape[0]]] = diag[c0:c1].reshape(-1)
            ds[c0 * m:c1 * m, c0:c1] = tile


def _single_consumer(graph: Graph, name: str) -> str | None:
    succ = graph.succs(name)
    if len(succ) == 1 and graph.preds(succ[0]) == [name]:
        return succ[0]
    return None


def _dense_weight(node: hw.QDense) -> tuple[np.ndarray, bool, str]:
    """Integer synaptic weights netx can hold, whether they reproduce the node exactly, and why not."""
    notes = []
    s = node.shift
    uniform = s.size > 0 and np.all(s == s[0])
    if uniform and int(s[0]) <= 0:
        w = node.weight << int(-s[0])
    else:
        # netx has no per-channel or right shift: write the real-valued weights rounded (approximate)
        w = np.round(node.weight / np.power(2.0, s)[:, None]).astype(np.int64)
        notes.append("per-channel or right shifts rounded into the weights")
    lo, hi = NETX_WEIGHT_RANGE
    if w.size and (w.min() < lo or w.max() > hi):
        notes.append(f"weights outside netx's [{lo}, {hi}] are clipped by netx")
    if np.any(node.bias != 0):
        notes.append("synaptic bias has no netx form")
    if node.delay != 1:
        notes.append(f"netx's Dense has 1 step of delay, this node {node.delay}")
    if node.rounding != "floor" and not (uniform and int(s[0]) <= 0):
        notes.append("rounding is half-up, netx's Dense floors")
    return w, not notes, "; ".join(notes)


#: spiking node class -> writer of the netx ``neuron/`` group of the dense layer before it: ``(w, ng, node) ->
#: (exact, note)``; a dense layer followed by anything else gets netx's graded integrator.
NEURONS: dict[type, Callable[[Any, Any, Any], tuple[bool, str]]] = {}


def _neuron(w: _Writer, grp: Any, node: hw.QNode | None) -> tuple[bool, str]:
    """Write ``neuron/`` for the node after a dense layer; (exact, note)."""
    ng = w.group(grp, "neuron")
    write = NEURONS.get(type(node))
    return write(w, ng, node) if write is not None else _graded(w, ng)


def _lava_lif_neuron(w: _Writer, ng: Any, node: hw.QLavaLIF) -> tuple[bool, str]:
    bias = np.where(node.bias_exp >= 0, node.bias_mant << np.maximum(node.bias_exp, 0),
                    node.bias_mant >> np.maximum(-node.bias_exp, 0))
    notes = []
    if np.any(bias % (1 << NETX_BIAS_EXP)):
        notes.append(f"bias not a multiple of 2^{NETX_BIAS_EXP} (netx's bias_exp)")
    if np.any(node.vth != node.vth[0]):
        notes.append("per-neuron thresholds (netx has one)")
    if (node.coef_frac_bits, node.state_bits, node.act_shift, node.vth_shift) != (12, 24, 6, 6):
        notes.append("non-Loihi widths")
    w.data(ng, "type", "CUBA")
    w.data(ng, "iDecay", int(node.du) + 1)  # netx: du = iDecay - 1
    w.data(ng, "vDecay", int(node.dv))
    w.data(ng, "vThMant", int(node.vth[0]) if node.vth.size else 0)
    w.data(ng, "refDelay", 1)
    w.data(ng, "gradedSpike", False)
    w.data(ng, "bias", bias >> NETX_BIAS_EXP)
    return not notes, "; ".join(notes)


def _lif_neuron(w: _Writer, ng: Any, node: hw.QLIF) -> tuple[bool, str]:
    w.data(ng, "type", "CUBA")
    w.data(ng, "iDecay", 4096)  # du = 4095: u is this step's input only
    w.data(ng, "vDecay", (1 << node.coef_frac_bits) - int(node.decay))
    vth = node.vth - 1 if node.compare == ">=" else node.vth  # Lava fires on v > vth
    w.data(ng, "vThMant", int(vth.max()) if vth.size else 0)
    w.data(ng, "refDelay", 1)
    w.data(ng, "gradedSpike", False)
    note = ("Lava's v keeps 6 more fractional bits than QLIF's (decay rounding differs), "
            "saturates at 24 bits of that")
    if node.reset != "zero":
        note += "; subtractive reset has no netx form"
    if vth.size and np.any(vth != vth[0]):
        note += "; per-neuron thresholds (netx has one: the largest written)"
    return False, note


NEURONS.update({hw.QLavaLIF: _lava_lif_neuron, hw.QLIF: _lif_neuron})


def _graded(w: _Writer, ng: Any) -> tuple[bool, str]:
    """Graded output: netx's default non-leaky integrator."""
    w.data(ng, "type", "CUBA")
    w.data(ng, "iDecay", 0)
    w.data(ng, "vDecay", 4096)
    w.data(ng, "vThMant", (1 << 17) - 1)
    w.data(ng, "refDelay", 1)
    w.data(ng, "gradedSpike", True)
    return False, "graded output: netx integrates it in a CUBA neuron instead of passing it on"


def write_netx(graph: Graph | str | Path, path: str | Path | None = None) -> NetxReport:
    """Write the netx-expressible layers of ``graph`` (or of an artifact directory's integer graph) to ``path``.

    ``path`` defaults to ``<artifact>/network.net.h5`` for an artifact. Returns a :class:`NetxReport`.
    """
    try:
        import h5py  # noqa: F401
    except ImportError as e:  # pragma: no cover - h5py is a dependency
        raise BackendError(f"writing netx files needs h5py: {e}") from e
    if not isinstance(graph, Graph):
        art = Path(graph)
        from neurocompile.backends.lava.network import _load_artifact_graph

        graph = _load_artifact_graph(art)
        if path is None:
            path = art / "network.net.h5"
    if path is None:
        raise BackendError("write_netx needs an output path for a graph")
    path = Path(path)
    report = NetxReport(path)
    consumed: set[str] = set()
    import h5py

    with h5py.File(path, "w", libver=("earliest", "v110")) as f:
        w = _Writer(f)
        layers = w.group(f, "layer")
        i = 0
        for name in graph.order():
            if name in consumed:
                continue
            node = graph.node(name)
            if node.IS_INPUT:
                grp = w.group(layers, str(i))
                w.data(grp, "type", "input")
                w.data(grp, "shape", [node.size])
                ng = w.group(grp, "neuron")
                w.data(ng, "type", "CUBA")
                w.data(ng, "iDecay", 4096)
                w.data(ng, "vDecay", 4096)
                w.data(ng, "vThMant", 0)
                w.data(ng, "refDelay", 1)
                w.data(ng, "gradedSpike", node.out_bits > 2)
                _tag(grp, [name], False, "netx's Input block applies its own neuron and transform to the input")
                report.layers.append(NetxLayer(i, "input", [name], False, "input block"))
                i += 1
            elif isinstance(node, hw.QDense):
                nxt = _single_consumer(graph, name)
                neuron = graph.node(nxt) if nxt and type(graph.node(nxt)) in NEURONS else None
                weight, exact, note = _dense_weight(node)
                grp = w.group(layers, str(i))
                w.data(grp, "type", "dense")
                w.data(grp, "shape", [node.out_size()])
                w.data(grp, "inFeatures", int(node.weight.shape[1]))
                w.data(grp, "outFeatures", int(node.weight.shape[0]))
                w.data(grp, "weight", weight)
                n_exact, n_note = _neuron(w, grp, neuron)
                nodes = [name] + ([nxt] if neuron is not None else [])
                note = "; ".join(x for x in (note, n_note) if x)
                _tag(grp, nodes, exact and n_exact, note)
                report.layers.append(NetxLayer(i, "dense", nodes, exact and n_exact, note))
                if neuron is not None:
                    consumed.add(nxt)
                i += 1
            elif isinstance(node, hw.QModeBank):
                h, m = node.a_re.shape
                grp = w.group(layers, str(i))
                w.data(grp, "type", "dense")
                w.data(grp, "shape", [h * m])
                w.data(grp, "inFeatures", h)
                w.data(grp, "outFeatures", h * m)
                wg = w.group(grp, "weight")
                w.block_diagonal(wg, "real", np.asarray(node.b_re, np.int64))
                w.block_diagonal(wg, "imag", np.asarray(node.b_im, np.int64))
                ng = w.group(grp, "neuron")
                w.data(ng, "type", "RF_PHASE")
                w.data(ng, "cosDecay", node.a_re.reshape(-1))
                w.data(ng, "sinDecay", node.a_im.reshape(-1))
                w.data(ng, "vThMant", 0)
                w.data(ng, "gradedSpike", True)
                note = ("complex modes as netx ComplexDense + RF: Lava's RF truncates each product (neurocompile the "
                        "sum), saturates differently and emits phase spikes, not the (re, im) state; b_shift is not "
                        "expressible")
                _tag(grp, [name], False, note)
                report.layers.append(NetxLayer(i, "dense", [name], False, note))
                i += 1
            else:
                report.skipped[name] = f"{type(node).__name__} has no netx layer"
        f.attrs["neurocompile_graph"] = graph.name
        f.attrs["neurocompile_exact"] = report.exact
        f.attrs["neurocompile_skipped"] = ", ".join(f"{k} ({v})" for k, v in report.skipped.items())
    return report


def _tag(grp: Any, nodes: list[str], exact: bool, note: str) -> None:
    grp.attrs["neurocompile_node"] = ",".join(nodes)
    grp.attrs["neurocompile_exact"] = bool(exact)
    grp.attrs["neurocompile_note"] = note
