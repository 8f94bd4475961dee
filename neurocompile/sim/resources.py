"""The node resource model of placement: roles (host, synapses only, compute), placement units, compartments,
synapses and state bits per node. See :mod:`neurocompile.sim.placement` and docs/simulator.md section 5."""

from __future__ import annotations

import numpy as np

from neurocompile.ir import hw
from neurocompile.ir.graph import Graph

HOST = "host"
SYNAPSE = "synapse"
COMPUTE = "compute"


# -- node resource model ---------------------------------------------------------------------------------------

def roles(graph: Graph) -> dict[str, str]:
    """Role of every node: HOST (no core), SYNAPSE (weights on its destinations' cores) or COMPUTE."""
    seq = graph.sequence_end_nodes()
    out: dict[str, str] = {}
    for name in reversed(graph.order()):
        node = graph.node(name)
        if name in seq or isinstance(node, (hw.QInput, hw.QEmbedding)):
            out[name] = HOST
        elif isinstance(node, hw.QDense):
            succ = [out[s] for s in graph.succs(name)]
            if any(isinstance(graph.node(s), hw.QDense) and out[s] != HOST for s in graph.succs(name)):
                out[name] = COMPUTE  # relay: a dense feeding a dense needs neurons in between
            elif any(r == COMPUTE for r in succ):
                out[name] = SYNAPSE
            else:
                out[name] = HOST
        else:
            out[name] = COMPUTE
    return out


def unit_size(node: hw.QNode) -> int:
    """Compartments per placement unit (a QModeBank channel: 2M; otherwise one neuron: 1)."""
    if isinstance(node, hw.QModeBank):
        return 2 * int(node.a_re.shape[1])
    return 1


def compartments(node: hw.QNode, role: str) -> int:
    """Compartments a node occupies: 0 unless COMPUTE; 2 per mode for QModeBank, 1 per output otherwise."""
    return int(node.out_size()) if role == COMPUTE else 0


def _units(node: hw.QNode) -> int:
    return int(node.out_size()) // unit_size(node)


def input_unit_map(node: hw.QNode, port: str, in_size: int) -> np.ndarray:
    """For a COMPUTE node: the unit that receives input index i on ``port`` ([in_size] int)."""
    idx = np.arange(in_size, dtype=np.int64)
    if isinstance(node, hw.QModeReadout) and port == "state":
        return idx // (2 * int(node.c_re.shape[1]))
    return idx


def _state_bits(node: hw.QNode) -> int:
    """Persistent state bits per compartment (for targets whose neurons and synapses share memory)."""
    if isinstance(node, hw.QModeBank):
        return int(node.out_bits)
    if isinstance(node, hw.QLIF):
        return int(node.state_bits)
    if isinstance(node, hw.QRefractory):
        return 2 * int(node.state_bits) + 1
    if isinstance(node, hw.QLavaLIF):
        return 2 * int(node.state_bits)
    if isinstance(node, hw.QAccumulate):
        return int(node.out_bits)
    if isinstance(node, hw.QDense):
        return int(node.delay) * max(int(node.out_bits), 1)
    return 0


def synapse_count(node: hw.QNode) -> int:
    """Synapses (non-zero weights) a node stores: QDense W, QModeBank b, QModeReadout c and d."""
    if isinstance(node, hw.QDense):
        return int(np.count_nonzero(node.weight))
    if isinstance(node, hw.QModeBank):
        return int(np.count_nonzero(node.b_re) + np.count_nonzero(node.b_im))
    if isinstance(node, hw.QModeReadout):
        return int(np.count_nonzero(node.c_re) + np.count_nonzero(node.c_im) + np.count_nonzero(node.d))
    return 0


def synops_dense_per_step(node: hw.QNode) -> int:
    """NeuroBench dense synaptic operations of one step of one sample.

    QDense: fan_in x fan_out (every weight, zero or not); QModeBank and QModeReadout (block-diagonal): their
    non-zero weights. Elementwise (one-to-one) connections carry no synaptic operation.
    """
    if isinstance(node, hw.QDense):
        return int(node.weight.shape[0]) * int(node.weight.shape[1])
    if isinstance(node, (hw.QModeBank, hw.QModeReadout)):
        return synapse_count(node)
    return 0


def fanout_nnz(node: hw.QNode, port: str) -> np.ndarray | None:
    """Non-zero synapses driven by input index i of ``port`` ([in_size] int), or None (no synapses)."""
    if isinstance(node, hw.QDense):
        return np.count_nonzero(node.weight, axis=0).astype(np.int64)
    if isinstance(node, hw.QModeBank):
        return (np.count_nonzero(node.b_re, axis=1) + np.count_nonzero(node.b_im, axis=1)).astype(np.int64)
    if isinstance(node, hw.QModeReadout):
        if port == "state":
            return np.stack([node.c_re != 0, node.c_im != 0], axis=-1).reshape(-1).astype(np.int64)
        return (node.d != 0).astype(np.int64)
    return None


def _own_synapse_rows(node: hw.QNode) -> np.ndarray | None:
    """Per unit: synapses the COMPUTE node stores itself (ModeBank b, ModeReadout c and d)."""
    if isinstance(node, hw.QModeBank):
        return np.count_nonzero(node.b_re, axis=1) + np.count_nonzero(node.b_im, axis=1)
    if isinstance(node, hw.QModeReadout):
        return np.count_nonzero(node.c_re, axis=1) + np.count_nonzero(node.c_im, axis=1) + (node.d != 0)
    return None
