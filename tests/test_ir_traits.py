"""Node traits (ir/traits.py) agree with what the code does: state variables with the kernels' state and the
placement model's state bits, the spiking kind with the values the kernels emit, field metadata with the verifier."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from int_graphs import every_node_graph, token_graph

from neurocompile.ir import hw
from neurocompile.ir import nodes as fl
from neurocompile.ir.traits import SPIKE_BINARY, SPIKE_KINDS, SPIKE_NONE, SPIKE_TERNARY, state_bits_per_unit
from neurocompile.ir.verify import ENUM_ATTRS, verify
from neurocompile.mapping.resources import _state_bits
from neurocompile.sim import kernels, reference

ALL = {**fl.FLOAT_NODES, **hw.INT_NODES}


def _int_nodes() -> list[tuple[str, hw.QNode]]:
    return [(n, o) for g in (every_node_graph(), token_graph()) for n, o in g.items()]


@pytest.mark.parametrize("cls", list(ALL.values()), ids=list(ALL))
def test_every_class_declares_valid_traits(cls: type) -> None:
    assert cls.SPIKES in SPIKE_KINDS
    assert cls.FAMILY == ("int" if cls.__name__ in hw.INT_NODES else "float")
    for f in dataclasses.fields(cls):
        for key in f.metadata:
            assert key in {"dims", "anchor", "fits", "unit", "range", "optional", "when", "choices", "input_units"}


def test_state_variables_are_the_kernels_state_and_the_placement_bits() -> None:
    for name, node in _int_nodes():
        st = kernels.init_state(node, 2)
        assert set(st) - {"saturations"} == {v.name for v in node.state_vars()}, name
        assert state_bits_per_unit(node) == _state_bits(node), name
        assert bool(node.STATE) <= node.STATEFUL, name


def test_spiking_kind_matches_the_values_emitted() -> None:
    g = every_node_graph()
    r = reference.run(g, np.random.default_rng(0).normal(0, 2, (4, 10, 3)), record=True)
    for name, node in g.items():
        values = set(np.unique(r.trace[name]).tolist()) if name in r.trace else set()
        if node.SPIKES == SPIKE_BINARY:
            assert values <= {0, 1}, name
        elif node.SPIKES == SPIKE_TERNARY:
            assert values <= {-1, 0, 1}, name
        else:
            assert node.SPIKES == SPIKE_NONE


def test_enum_choices_come_from_field_metadata() -> None:
    assert ENUM_ATTRS[("QDense", "rounding")] == ("nearest", "floor")
    assert ENUM_ATTRS[("LIF", "reset")] == ("zero", "subtract")
    assert ("QLIF", "compare") in ENUM_ATTRS and ("Activation", "fn") in ENUM_ATTRS


def test_verifier_reads_range_metadata() -> None:
    """A value outside a field's declared range is reported without any per-class code in the verifier."""
    g = every_node_graph()
    assert verify(g) == []
    g.node("tern").den = 0  # range (1, None)
    g.node("lif").decay = 5000  # unit: coef_frac_bits (<= 4096)
    g.node("d1").weight[0, 0] = 1000  # fits: weight_bits (8)
    g.node("ln").shift[0] = 70  # range (-62, 62)
    msgs = {v.message for v in verify(g) if v.rule == "range"}
    assert any(m.startswith("den=0") for m in msgs)
    assert any(m.startswith("decay=5000") for m in msgs)
    assert any(m.startswith("weight value 1000") for m in msgs)
    assert any(m.startswith("shift values") for m in msgs)


def test_a_spiking_kind_means_spike_messages() -> None:
    """``SPIKES`` (the class's kind) and ``QNode.spiking`` (the message width) agree on every spiking node type."""
    for name, node in _int_nodes():
        if node.SPIKES != SPIKE_NONE:
            assert node.spiking, name
    assert not hw.QInput(tokens=True, out_bits=1).spiking
    assert hw.QInput(out_bits=1).spiking  # a spike input (NIR import)
