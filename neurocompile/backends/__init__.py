"""neurocompile.backends."""
