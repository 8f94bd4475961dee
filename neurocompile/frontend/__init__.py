"""neurocompile.frontend: load model files safely and trace them into the float IR.

>>> loaded = load_model("examples/checkpoints/spikingssm_sdigits.pt")
>>> graph = trace(loaded)
"""

from neurocompile.frontend.compat import inference_spike_functions, save_exported, save_torchscript
from neurocompile.frontend.load import CONFIG_EXTRA_FILE, LoadedModel, load_model, resolve_config, wrap_module
from neurocompile.frontend.trace import SUPPORTED, is_s4d_layout, trace

__all__ = [
    "CONFIG_EXTRA_FILE",
    "LoadedModel",
    "SUPPORTED",
    "inference_spike_functions",
    "is_s4d_layout",
    "load_model",
    "resolve_config",
    "save_exported",
    "save_torchscript",
    "trace",
    "wrap_module",
]
