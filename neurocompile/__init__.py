"""neurocompile: compile spiking state-space models to Loihi-style integer hardware, simulate them bit-exactly."""

__version__ = "0.1.0"
