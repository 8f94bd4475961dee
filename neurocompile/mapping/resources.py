"""The node resource model of placement: roles (host, synapses only, compute), placement units, compartments,
synapses and state bits per node. See :mod:`neurocompile.mapping.placement` and docs/simulator.md section 5.

Each integer node class has a :class:`NodeResources` entry in :data:`RESOURCES` (a
:class:`~neurocompile.ir.registry.Registry` filled by ``@RESOURCES.register``); the functions below look the
node's entry up instead of testing its class, so a new node type adds one entry here and nothing else.
"""

from __future__ import annotations

import numpy as np

from neurocompile.ir import hw, traits
from neurocompile.ir.graph import Graph
from neurocompile.ir.registry import Registry

HOST = "host"
SYNAPSE = "synapse"
COMPUTE = "compute"

#: Kinds a node's entry declares: 'host' (always off chip), 'dense' (weights: synapses only, a relay or host, as
#: its successors decide) or 'neuron' (compartments on cores).
KINDS = ("host", "dense", "neuron")


class NodeResources:
    """Resource model of one node class; the defaults describe an elementwise neuron (one compartment per output,
    no synapses, no persistent state). Entries override what differs; every method is a classmethod on the node."""

    kind = "neuron"
    #: True for a bank whose whole state one reader consumes channel by channel (placed together, per channel)
    pairs_with_state_reader = False
    #: the input port through which a reader consumes a bank's whole state ('' when the node reads none)
    state_port = ""

    @classmethod
    def storage(cls, node: hw.QNode) -> str:
        """'dense' or 'sparse': how the node's synapses are stored (the price of a look-up); '' when none."""
        return ""

    @classmethod
    def unit_size(cls, node: hw.QNode) -> int:
        """Compartments per placement unit (never split over two cores)."""
        return 1

    @classmethod
    def state_bits(cls, node: hw.QNode) -> int:
        """Persistent state bits per compartment (for targets whose neurons and synapses share memory): by
        default the node's declared state variables (``STATE`` traits) spread over its outputs."""
        return traits.state_bits_per_unit(node)

    @classmethod
    def synapses(cls, node: hw.QNode) -> int:
        """Synapses (non-zero weights) the node stores."""
        return 0

    @classmethod
    def synops_dense(cls, node: hw.QNode) -> int:
        """NeuroBench dense synaptic operations of one step of one sample."""
        return 0

    @classmethod
    def fanout_nnz(cls, node: hw.QNode, port: str) -> np.ndarray | None:
        """Non-zero synapses driven by input index i of ``port`` ([in_size] int), or None (no synapses)."""
        return None

    @classmethod
    def own_rows(cls, node: hw.QNode) -> np.ndarray | None:
        """Per unit: synapses the COMPUTE node stores itself (None: it stores none)."""
        return None

    @classmethod
    def input_unit_map(cls, node: hw.QNode, port: str, in_size: int) -> np.ndarray:
        """The unit that receives input index i on ``port`` ([in_size] int): elementwise by default."""
        return np.arange(in_size, dtype=np.int64)

    @classmethod
    def direct_fan_in(cls, node: hw.QNode, port: str, n_in: int, units: int) -> np.ndarray:
        """[units] input axons each unit needs for a non-synapse source of ``n_in`` outputs on ``port``."""
        return np.bincount(cls.input_unit_map(node, port, n_in), minlength=units)[:units].astype(np.int64)


RESOURCES: Registry[type[NodeResources]] = Registry("resources", family="int")
# a node type without its own entry is an elementwise neuron whose state its traits declare
RESOURCES.add(hw.QNode, NodeResources)


@RESOURCES.register(hw.QInput, hw.QEmbedding)
class _Host(NodeResources):
    kind = "host"


@RESOURCES.register(hw.QDense)
class _Dense(NodeResources):
    kind = "dense"
    #: a weight matrix with fewer than this fraction of non-zero weights is stored in the sparse format
    SPARSE_BELOW = 0.5

    @classmethod
    def storage(cls, node: hw.QDense) -> str:
        w = node.weight
        return "dense" if w.size and np.count_nonzero(w) >= cls.SPARSE_BELOW * w.size else "sparse"

    @classmethod
    def state_bits(cls, node: hw.QDense) -> int:
        return int(node.delay) * max(int(node.out_bits), 1)  # the delay line

    @classmethod
    def synapses(cls, node: hw.QDense) -> int:
        return int(np.count_nonzero(node.weight))

    @classmethod
    def synops_dense(cls, node: hw.QDense) -> int:
        return int(node.weight.shape[0]) * int(node.weight.shape[1])  # every weight, zero or not

    @classmethod
    def fanout_nnz(cls, node: hw.QDense, port: str) -> np.ndarray:
        return np.count_nonzero(node.weight, axis=0).astype(np.int64)

    @classmethod
    def direct_fan_in(cls, node: hw.QDense, port: str, n_in: int, units: int) -> np.ndarray:
        return np.count_nonzero(node.weight, axis=1).astype(np.int64)  # a relay: its own rows


@RESOURCES.register(hw.QModeBank)
class _ModeBank(NodeResources):
    pairs_with_state_reader = True

    @classmethod
    def storage(cls, node: hw.QModeBank) -> str:
        return "sparse"  # block-diagonal

    @classmethod
    def unit_size(cls, node: hw.QModeBank) -> int:
        return 2 * int(node.a_re.shape[1])  # a channel: re and im of each mode

    @classmethod
    def state_bits(cls, node: hw.QModeBank) -> int:
        return int(node.out_bits)

    @classmethod
    def synapses(cls, node: hw.QModeBank) -> int:
        return int(np.count_nonzero(node.b_re) + np.count_nonzero(node.b_im))

    @classmethod
    def synops_dense(cls, node: hw.QModeBank) -> int:
        return cls.synapses(node)  # block-diagonal: the non-zero weights

    @classmethod
    def fanout_nnz(cls, node: hw.QModeBank, port: str) -> np.ndarray:
        return (np.count_nonzero(node.b_re, axis=1) + np.count_nonzero(node.b_im, axis=1)).astype(np.int64)

    @classmethod
    def own_rows(cls, node: hw.QModeBank) -> np.ndarray:
        return np.count_nonzero(node.b_re, axis=1) + np.count_nonzero(node.b_im, axis=1)


@RESOURCES.register(hw.QModeReadout)
class _ModeReadout(NodeResources):
    state_port = "state"

    @classmethod
    def storage(cls, node: hw.QModeReadout) -> str:
        return "sparse"  # block-diagonal

    @classmethod
    def synapses(cls, node: hw.QModeReadout) -> int:
        return int(np.count_nonzero(node.c_re) + np.count_nonzero(node.c_im) + np.count_nonzero(node.d))

    @classmethod
    def synops_dense(cls, node: hw.QModeReadout) -> int:
        return cls.synapses(node)

    @classmethod
    def fanout_nnz(cls, node: hw.QModeReadout, port: str) -> np.ndarray:
        if port == "state":
            return np.stack([node.c_re != 0, node.c_im != 0], axis=-1).reshape(-1).astype(np.int64)
        return (node.d != 0).astype(np.int64)

    @classmethod
    def own_rows(cls, node: hw.QModeReadout) -> np.ndarray:
        return np.count_nonzero(node.c_re, axis=1) + np.count_nonzero(node.c_im, axis=1) + (node.d != 0)

    @classmethod
    def input_unit_map(cls, node: hw.QModeReadout, port: str, in_size: int) -> np.ndarray:
        idx = np.arange(in_size, dtype=np.int64)
        return idx // (2 * int(node.c_re.shape[1])) if port == "state" else idx

    @classmethod
    def direct_fan_in(cls, node: hw.QModeReadout, port: str, n_in: int, units: int) -> np.ndarray:
        if port == "state":  # a channel's own modes with a non-zero c
            return (np.count_nonzero(node.c_re, axis=1) + np.count_nonzero(node.c_im, axis=1)).astype(np.int64)
        return (node.d != 0).astype(np.int64)


@RESOURCES.register(hw.QLIF)
class _LIF(NodeResources):
    @classmethod
    def state_bits(cls, node: hw.QLIF) -> int:
        return int(node.state_bits)


@RESOURCES.register(hw.QRefractory)
class _Refractory(NodeResources):
    @classmethod
    def state_bits(cls, node: hw.QRefractory) -> int:
        return 2 * int(node.state_bits) + 1  # voltage, refractory counter and flag


@RESOURCES.register(hw.QLavaLIF)
class _LavaLIF(NodeResources):
    @classmethod
    def state_bits(cls, node: hw.QLavaLIF) -> int:
        return 2 * int(node.state_bits)  # current u and voltage v


@RESOURCES.register(hw.QAccumulate)
class _Accumulate(NodeResources):
    @classmethod
    def state_bits(cls, node: hw.QAccumulate) -> int:
        return int(node.out_bits)


@RESOURCES.register(hw.QLayerNorm)
class _LayerNorm(NodeResources):
    @classmethod
    def direct_fan_in(cls, node: hw.QLayerNorm, port: str, n_in: int, units: int) -> np.ndarray:
        return np.full(units, n_in, np.int64)  # every output reads the whole vector (its mean and variance)


@RESOURCES.register(hw.QHeaviside, hw.QLUT, hw.QMul, hw.QTernarize, hw.QAdd)
class _Elementwise(NodeResources):
    """Stateless elementwise neurons: the defaults."""


# -- node resource model ---------------------------------------------------------------------------------------

def roles(graph: Graph) -> dict[str, str]:
    """Role of every node: HOST (no core), SYNAPSE (weights on its destinations' cores) or COMPUTE."""
    seq = graph.sequence_end_nodes()
    out: dict[str, str] = {}
    for name in reversed(graph.order()):
        kind = RESOURCES[graph.node(name)].kind
        if name in seq or kind == "host":
            out[name] = HOST
        elif kind == "dense":
            succ = graph.succs(name)
            if any(RESOURCES[graph.node(s)].kind == "dense" and out[s] != HOST for s in succ):
                out[name] = COMPUTE  # relay: a dense feeding a dense needs neurons in between
            elif any(out[s] == COMPUTE for s in succ):
                out[name] = SYNAPSE
            else:
                out[name] = HOST
        else:
            out[name] = COMPUTE
    return out


def unit_size(node: hw.QNode) -> int:
    """Compartments per placement unit (a QModeBank channel: 2M; otherwise one neuron: 1)."""
    return RESOURCES[node].unit_size(node)


def compartments(node: hw.QNode, role: str) -> int:
    """Compartments a node occupies: 0 unless COMPUTE, or when it is an output stage computed in its producer's
    compartments (``OUTPUT_STAGE``, e.g. a sigma-delta encoder); 2 per mode for QModeBank, 1 per output otherwise."""
    return int(node.out_size()) if role == COMPUTE and not getattr(node, "OUTPUT_STAGE", False) else 0


def _units(node: hw.QNode) -> int:
    return int(node.out_size()) // unit_size(node)


def input_unit_map(node: hw.QNode, port: str, in_size: int) -> np.ndarray:
    """For a COMPUTE node: the unit that receives input index i on ``port`` ([in_size] int)."""
    return RESOURCES[node].input_unit_map(node, port, in_size)


def _state_bits(node: hw.QNode) -> int:
    """Persistent state bits per compartment (for targets whose neurons and synapses share memory)."""
    return RESOURCES[node].state_bits(node)


def synapse_count(node: hw.QNode) -> int:
    """Synapses (non-zero weights) a node stores: QDense W, QModeBank b, QModeReadout c and d."""
    return RESOURCES[node].synapses(node)


def synops_dense_per_step(node: hw.QNode) -> int:
    """NeuroBench dense synaptic operations of one step of one sample.

    QDense: fan_in x fan_out (every weight, zero or not); QModeBank and QModeReadout (block-diagonal): their
    non-zero weights. Elementwise (one-to-one) connections carry no synaptic operation.
    """
    return RESOURCES[node].synops_dense(node)


def fanout_nnz(node: hw.QNode, port: str) -> np.ndarray | None:
    """Non-zero synapses driven by input index i of ``port`` ([in_size] int), or None (no synapses)."""
    return RESOURCES[node].fanout_nnz(node, port)


def _own_synapse_rows(node: hw.QNode) -> np.ndarray | None:
    """Per unit: synapses the COMPUTE node stores itself (ModeBank b, ModeReadout c and d)."""
    return RESOURCES[node].own_rows(node)


def synapse_storage(node: hw.QNode) -> str:
    """Storage format of a node's synapses, which sets the price of a look-up: 'dense', 'sparse' or ''."""
    return RESOURCES[node].storage(node)
