"""Reference PyTorch models of the spiking SSM families neurocompile compiles (see docs/models.md)."""

from neurocompile.models.blocks import ChannelBatchNorm, SSMBlock
from neurocompile.models.checkpoint import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    CheckpointFormatError,
    load_checkpoint,
    save_checkpoint,
)
from neurocompile.models.config import ConfigError, ModelConfig
from neurocompile.models.data import load_listops, load_sdigits
from neurocompile.models.mixing import GSU, GLUMix
from neurocompile.models.model import SSMClassifier
from neurocompile.models.neurons import LIF, Heaviside, RefractoryLIF, SpikingNeuron
from neurocompile.models.pmbc import pmbc_agreement, pmbc_bounds, pmbc_spikes
from neurocompile.models.s4d import S4D
from neurocompile.models.surrogate import atan_spike, ternarize_ste, triangle_spike

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "ChannelBatchNorm",
    "CheckpointFormatError",
    "ConfigError",
    "GLUMix",
    "GSU",
    "Heaviside",
    "LIF",
    "ModelConfig",
    "RefractoryLIF",
    "S4D",
    "SDN",
    "SSMBlock",
    "SSMClassifier",
    "SpikingNeuron",
    "atan_spike",
    "lif_reference",
    "load_checkpoint",
    "load_listops",
    "load_sdigits",
    "load_sdn",
    "pmbc_agreement",
    "pmbc_bounds",
    "pmbc_spikes",
    "save_checkpoint",
    "sdn_spike_agreement",
    "ternarize_ste",
    "train_sdn",
    "triangle_spike",
]

_SDN_NAMES = ("SDN", "lif_reference", "load_sdn", "sdn_spike_agreement", "train_sdn")


def __getattr__(name: str):
    # Lazy, so that `python -m neurocompile.models.sdn` does not find the module already imported.
    if name in _SDN_NAMES:
        from neurocompile.models import sdn

        return getattr(sdn, name)
    raise AttributeError(f"module 'neurocompile.models' has no attribute {name!r}")
