"""neurocompile.interop: exchange formats.

- :mod:`neurocompile.interop.onnx`: the float IR as an ONNX streaming step model (``export_onnx``, ``run_onnx``).
- :mod:`neurocompile.interop.nir`: plain-SNN subset to and from NIR (``to_nir``, ``write_nir``, ``from_nir``,
  ``read_nir``); :mod:`neurocompile.interop.nir_exact`: integer-weight NIR SNNs straight to a hardware graph
  (``from_nir_exact``: weights and thresholds kept, Loihi's synaptic delay optional).

Both need optional packages (``onnx``/``onnxruntime``, ``nir``), imported on first use; see docs/interop.md.
"""
