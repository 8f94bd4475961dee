"""neurocompile.report."""
