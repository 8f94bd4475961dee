"""neurocompile.models."""
