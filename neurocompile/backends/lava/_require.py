"""Lazy, checked import of Lava: the one place that decides whether the Lava backend can run.

``import neurocompile.backends.lava`` never imports Lava. Every entry point that needs Lava calls
:func:`require_lava` first, which imports it once and turns any failure (not installed, wrong Python,
a broken install) into a :class:`~neurocompile.errors.BackendError` with one clear message.
"""

from __future__ import annotations

import sys

from neurocompile.errors import BackendError

LAVA_VERSION = "0.10.0"

_checked: bool = False


def lava_missing_message(reason: str) -> str:
    """The one message users see when Lava cannot be used (``reason``: the underlying error)."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return (
        f"lava-nc {LAVA_VERSION} is needed for --backend lava; it imports only on Python 3.10: {reason} "
        f"(this is Python {py}). Install it with 'pip install lava-nc=={LAVA_VERSION}' in a Python 3.10 "
        "environment ('make setup' builds one), or use neurocompile's own simulator (the default backend)."
    )


def require_lava() -> None:
    """Import the parts of Lava the backend uses; raise BackendError when that fails."""
    global _checked
    if _checked:
        return
    try:
        import lava.magma.core.model.py.model  # noqa: F401
        import lava.magma.core.run_conditions  # noqa: F401
        import lava.magma.core.run_configs  # noqa: F401
        import lava.proc.dense.process  # noqa: F401
        import lava.proc.lif.process  # noqa: F401
    except Exception as e:  # ImportError, or whatever a half-installed Lava raises on import
        raise BackendError(lava_missing_message(f"{type(e).__name__}: {e}")) from e
    _checked = True


def lava_available() -> bool:
    """True when :func:`require_lava` would succeed (for test skips and ``--backend`` help)."""
    try:
        require_lava()
    except BackendError:
        return False
    return True
