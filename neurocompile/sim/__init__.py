"""neurocompile.sim."""
