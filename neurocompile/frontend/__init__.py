"""neurocompile.frontend."""
