"""User-facing errors, and the one type for compiler bugs.

Every error a user can cause derives from :class:`NeurocompileError`; the CLI prints its message on one line
and exits 2 (1: ``check`` found the model does not fit), never a traceback. Messages name the file/node/resource,
the value, the limit and what to do. A broken internal invariant is an :class:`InternalError` instead: the CLI
prints one line calling it a neurocompile bug, naming the pass, and exits 3 (the traceback with
``NEUROCOMPILE_DEBUG=1``).
"""

from __future__ import annotations

from collections.abc import Sequence


class NeurocompileError(Exception):
    """Base class of errors caused by input (files, options, models), reported to the user on one line."""


class ModelLoadError(NeurocompileError):
    """A model file cannot be read, is not a model, or would need unsafe unpickling."""


class UnsupportedOpError(NeurocompileError):
    """The model contains an operation neurocompile cannot compile."""


class IRError(NeurocompileError):
    """An IR graph is malformed (verifier failures carry every violation in ``violations``)."""

    violations: Sequence[object] = ()


class TargetError(NeurocompileError):
    """A target file is missing, malformed, or names an unknown target."""


class ArtifactError(NeurocompileError):
    """An artifact directory is missing, corrupt, or from an incompatible version."""


class QuantizationError(NeurocompileError):
    """A model cannot meet the target's precision."""


class DatasetError(NeurocompileError):
    """A dataset file or name is invalid."""


class BackendError(NeurocompileError):
    """A backend (e.g. Lava) is missing or failed."""


class OutputError(NeurocompileError):
    """An output path cannot be written (not a folder, read-only, no permission, disk full, locked)."""


class InternalError(Exception):
    """A broken internal invariant (a compiler bug), not bad input: deliberately NOT a NeurocompileError, so it is
    never mistaken for a user's mistake. ``stage`` names the pass or module that broke it; ``violations``: the
    verifier's findings when verification after a pass raised it."""

    violations: Sequence[object] = ()

    def __init__(self, message: str, stage: str = "") -> None:
        self.stage = stage
        prefix = f"internal error after pass '{stage}': " if stage else "internal error: "
        super().__init__(prefix + message + " (this is a neurocompile bug; please report it with the model file)")
