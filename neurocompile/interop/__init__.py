"""neurocompile.interop."""
