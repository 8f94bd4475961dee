"""Node traits: what a node class declares next to its equations, so that other modules read data, not class names.

A node class declares

- ``STATE``: its state variables, a tuple of :class:`StateVar` (name, width in bits or the field that holds it,
  shape, initial value); kernels allocate them, placement counts their bits, comparisons read them back;
- ``SPIKES``: how its output is a spike: :data:`SPIKE_NONE` (graded), :data:`SPIKE_BINARY` ({0, 1}) or
  :data:`SPIKE_TERNARY` ({-1, 0, 1});
- field metadata (built with :func:`arr` and :func:`attr`): array dimensions (``dims``), the signed width an array
  must fit (``fits``), value ranges (``range``), decay factors (``unit``: in [0, 2^F]) and allowed string values
  (``choices``); the verifier (:mod:`neurocompile.ir.verify`) checks them generically;
- ``port_sizes()``: the input size each port expects.

Neither ClassVars nor field metadata are serialised: saved graphs do not change when a trait is added.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

SPIKE_NONE = "none"
SPIKE_BINARY = "binary"
SPIKE_TERNARY = "ternary"
SPIKE_KINDS = (SPIKE_NONE, SPIKE_BINARY, SPIKE_TERNARY)


@dataclass(frozen=True)
class StateVar:
    """One state variable of a stateful node, one value per output unit unless ``like`` names an array field.

    ``width``: bits (int) or the name of the field holding them; ``count``: copies (int or field name; a delay
    line holds ``delay`` copies); ``like``: the array field whose shape the variable takes (``None``: [out_size]);
    ``init``: the value at t = -1; ``min_width``: bits stored even when the width field is 0 (host-side widths).
    """

    name: str
    width: int | str
    like: str | None = None
    count: int | str = 1
    init: int = 0
    min_width: int = 0

    def _resolve(self, node: Any, v: int | str) -> int:
        return int(getattr(node, v)) if isinstance(v, str) else int(v)

    def bits(self, node: Any) -> int:
        """Width of one value (bits)."""
        return max(self._resolve(node, self.width), self.min_width)

    def copies(self, node: Any) -> int:
        return self._resolve(node, self.count)

    def shape(self, node: Any) -> tuple[int, ...]:
        """Shape of one copy for one sample."""
        if self.like is None:
            return (int(node.out_size()),)
        return tuple(int(d) for d in getattr(node, self.like).shape)


def state_bits(node: Any) -> int:
    """Persistent state bits of one sample: every state variable's width x copies x values."""
    total = 0
    for v in node.state_vars():
        values = 1
        for d in v.shape(node):
            values *= d
        total += v.bits(node) * v.copies(node) * values
    return total


def state_bits_per_unit(node: Any) -> int:
    """Persistent state bits per output unit (one compartment: a QModeBank's re or im, a neuron)."""
    n = int(node.out_size())
    return state_bits(node) // n if n else 0


def arr(factory: Any, *, dims: tuple[str, ...] = (), anchor: bool = False, fits: int | str | None = None,
        unit: str | None = None, range: tuple[int, int | None] | None = None, optional: bool = False,
        when: tuple[str, str] | None = None, input_units: bool = False) -> Any:
    """An array field with its traits.

    ``dims``: one symbol per dimension; symbols are bound by the ``anchor`` field (checked first) or name an
    integer field of the node; ``fits``: signed bits every value must fit (int or field name); ``unit``: the
    fractional-bits field F with |value| <= 2^F; ``range``: (lo, hi) inclusive (hi None: no upper bound);
    ``optional``: an empty array is allowed; ``when``: (field, value): the shape is checked only then;
    ``input_units``: the values are in the units of the node's input (a threshold): scaling the input by k and
    these fields by k leaves the output unchanged.
    """
    meta = {k: v for k, v in (("dims", dims), ("anchor", anchor), ("fits", fits), ("unit", unit), ("range", range),
                               ("optional", optional), ("when", when), ("input_units", input_units)) if v}
    return dataclasses.field(default_factory=factory, metadata=meta)


def attr(default: Any, *, choices: tuple[str, ...] | None = None, range: tuple[int, int | None] | None = None,
         unit: str | None = None) -> Any:
    """A scalar field with its traits: ``choices`` (allowed strings), ``range`` (lo, hi inclusive; hi None: no
    upper bound), ``unit`` (a decay factor: the fractional-bits field F with 0 <= value <= 2^F)."""
    meta = {k: v for k, v in (("choices", choices), ("range", range), ("unit", unit)) if v}
    return dataclasses.field(default=default, metadata=meta)


def bits(default: int) -> Any:
    """A bit-width field: an integer in [0, 62]."""
    return attr(default, range=(0, 62))


def field_meta(cls: type) -> dict[str, Any]:
    """Field name -> its metadata mapping, for every field of ``cls`` (subclass redefinitions win)."""
    return {f.name: f.metadata for f in dataclasses.fields(cls)}
