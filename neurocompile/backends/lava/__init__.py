"""neurocompile.backends.lava."""
