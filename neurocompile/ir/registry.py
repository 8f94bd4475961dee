"""Per-node-type registries: a node type's kernels, emitters, resource models and Lava processes are found by
looking the node's class up in a table that modules fill with a decorator, not by ``isinstance`` ladders.

A registry names the node family it must cover (``"float"``: the classes in :data:`FLOAT_NODES`, ``"int"``:
those in :data:`INT_NODES`) and the classes it leaves out on purpose, each with a reason (or a node class names,
in its ``REGISTRY_EXEMPT`` ClassVar, the registries it stays out of, with the reason). One test
(tests/test_registry_coverage.py) walks every registry and fails when a node class of its family has no entry,
so a new node type cannot be forgotten silently.

Example::

    EMIT = Registry("lava-emit", family="int")

    @EMIT.register(hw.QLIF)
    def _emit_lif(node, ...): ...

    EMIT[node](node, ...)   # exact class first, then its bases (a subclass inherits its parent's entry)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from neurocompile.errors import InternalError

T = TypeVar("T")

FAMILIES = ("float", "int", "all")


class Registry(Generic[T]):
    """A table from node class to an entry (a function, a class, a record), filled by :meth:`register`."""

    ALL: ClassVar[dict[str, Registry[Any]]] = {}

    def __init__(self, name: str, family: str, exempt: dict[str, str] | None = None) -> None:
        """``name``: unique, for messages and the coverage test; ``family``: one of :data:`FAMILIES`;
        ``exempt``: class name -> why this registry has no entry for it (checked to be a real class)."""
        if family not in FAMILIES:
            raise InternalError(f"registry '{name}': family {family!r} is not one of {FAMILIES}")
        if name in Registry.ALL:
            raise InternalError(f"registry '{name}' is defined twice")
        self.name = name
        self.family = family
        self.exempt = dict(exempt or {})
        self._table: dict[type, T] = {}
        Registry.ALL[name] = self

    def register(self, *types: type) -> Callable[[T], T]:
        """Decorator: make the decorated object the entry of every class in ``types``."""
        if not types:
            raise InternalError(f"registry '{self.name}': register() needs at least one node class")

        def deco(entry: T) -> T:
            for t in types:
                if t in self._table:
                    raise InternalError(f"registry '{self.name}': {t.__name__} registered twice")
                self._table[t] = entry
            return entry

        return deco

    def add(self, t: type, entry: T) -> None:
        """Register ``entry`` for class ``t`` (the non-decorator form)."""
        self.register(t)(entry)

    def get(self, node_or_type: object, default: T | None = None) -> T | None:
        """The entry of the node's class, or of its nearest registered base; ``default`` when none."""
        cls = node_or_type if isinstance(node_or_type, type) else type(node_or_type)
        for c in cls.__mro__:
            if c in self._table:
                return self._table[c]
        return default

    def __getitem__(self, node_or_type: object) -> T:
        entry = self.get(node_or_type)
        if entry is None:
            cls = node_or_type if isinstance(node_or_type, type) else type(node_or_type)
            raise InternalError(f"registry '{self.name}' has no entry for node type {cls.__name__}; "
                                f"registered: {', '.join(sorted(t.__name__ for t in self._table))}")
        return entry

    def __contains__(self, node_or_type: object) -> bool:
        return self.get(node_or_type) is not None

    def __iter__(self) -> Iterator[type]:
        return iter(self._table)

    def types(self) -> tuple[type, ...]:
        return tuple(self._table)

    def missing(self) -> list[str]:
        """Class names of this registry's family with no entry and no exemption (the coverage test's check)."""
        from neurocompile.ir import hw
        from neurocompile.ir.nodes import FLOAT_NODES

        pool: dict[str, type] = {}
        if self.family in ("float", "all"):
            pool.update(FLOAT_NODES)
        if self.family in ("int", "all"):
            pool.update(hw.INT_NODES)
        return sorted(n for n, c in pool.items()
                      if n not in self.exempt and self.name not in getattr(c, "REGISTRY_EXEMPT", {}) and c not in self)

    def stale_exemptions(self) -> list[str]:
        """Exempted names that are not node classes, or that do have an entry (exemptions must stay true)."""
        from neurocompile.ir import hw
        from neurocompile.ir.nodes import FLOAT_NODES

        pool = {**FLOAT_NODES, **hw.INT_NODES}
        return sorted(n for n in self.exempt if n not in pool or pool[n] in self)
