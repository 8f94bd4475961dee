"""neurocompile.ir."""
