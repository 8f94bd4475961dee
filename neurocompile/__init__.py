"""neurocompile: compile spiking state-space models to Loihi-style integer hardware, simulate them bit-exactly."""

__version__ = "0.1.0"

__all__ = ["Session", "__version__"]


def __getattr__(name: str):  # lazy, so that importing neurocompile stays light
    if name == "Session":
        from neurocompile.session import Session

        return Session
    raise AttributeError(f"module 'neurocompile' has no attribute {name!r}")
