"""neurocompile.passes."""
