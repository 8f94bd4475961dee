"""neurocompile.interop: exchange formats.

- :mod:`neurocompile.interop.onnx`: the float IR as an ONNX streaming step model (``export_onnx``, ``run_onnx``).
- :mod:`neurocompile.interop.nir`: plain-SNN subset to and from NIR (``to_nir``, ``write_nir``, ``from_nir``,
  ``read_nir``).

Both need optional packages (``onnx``/``onnxruntime``, ``nir``), imported on first use; see docs/interop.md.
"""
