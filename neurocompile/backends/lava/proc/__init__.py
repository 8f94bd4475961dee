"""neurocompile's Lava Processes (``process.py``) and their fixed_pt ProcessModels (``models.py``).

Kept in their own package because Lava's compiler executes every module in a Process's directory when it
looks for ProcessModels. Importing this package imports Lava.

A node type may keep its Process, its ProcessModel and its ``lava-process`` registry entry in one module of its
own here; :func:`load_all` imports every module of the package, so such a module registers itself.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    """Import every module of this package (each fills the ``lava-process`` registry with its node types)."""
    for mod in pkgutil.iter_modules(__path__, f"{__name__}."):
        importlib.import_module(mod.name)
