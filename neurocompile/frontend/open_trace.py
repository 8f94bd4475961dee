"""Trace models of any class through their dataflow (see :mod:`neurocompile.frontend.dataflow`).

``trace`` sends a model here when its root is not one of neurocompile's own structures (``SSMClassifier``, an
``nn.Sequential`` of per-step layers, one S4D layer). An eager module is first exported with ``torch.export`` on an
example input ([2, 64, d] floats for a first ``Linear(d, .)``, [2, 64] token ids for a first ``Embedding``, unless
``example_input`` is given); a ``.pt2`` program is read as it is.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from neurocompile.errors import UnsupportedOpError
from neurocompile.frontend.canonical import canonicalise
from neurocompile.frontend.dataflow import build_graph
from neurocompile.ir.graph import Graph

__all__ = ["FAMILIES", "example_for", "trace_program"]

#: family recorded in graph.meta from the neuron templates found
FAMILIES = {"LIF": "spikingssm", "RefractoryLIF": "spike_ssm", "Heaviside": "binary_s4d"}


def example_for(module: nn.Module, steps: int = 64) -> torch.Tensor:
    """An example input for exporting ``module``: from its first Linear / Embedding / Conv1d."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Embedding):
            return torch.zeros(2, steps, dtype=torch.long)
        if isinstance(m, nn.Linear):
            return torch.zeros(2, steps, m.in_features)
        if isinstance(m, nn.Conv1d):
            return torch.zeros(2, steps, m.in_channels)
    raise UnsupportedOpError(f"module '{type(module).__name__}': cannot tell its input size (no Linear, Embedding or "
                             f"Conv1d); pass example_input= ([batch, time, features])")


def _export(module: nn.Module, x: torch.Tensor) -> torch.export.ExportedProgram:
    import logging

    logging.getLogger("torch._dynamo").setLevel(logging.ERROR)
    try:
        return torch.export.export(module.eval(), (x,))
    except Exception as exc:  # the model's Python cannot be captured as one graph
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UnsupportedOpError(f"module '<root>' ({type(module).__name__}): torch.export cannot capture its forward "
                                 f"on an input of shape {list(x.shape)} ({type(exc).__name__}: {first[:200]}); "
                                 f"make forward traceable or save the model as a .pt2 program") from None


def trace_program(loaded: Any, name: str, example_input: Any = None) -> tuple[Graph, dict[str, Any]]:
    """(float IR, info with 'proofs' and 'stripped') of a loaded model of any class."""
    if loaded.program is not None:
        ep = loaded.program
    elif isinstance(loaded.module, torch.jit.ScriptModule):
        from neurocompile.frontend.script_program import program_from_script

        ep = program_from_script(loaded.module, (loaded.config or {}).get("d_input"))
    else:
        x = torch.as_tensor(example_input) if example_input is not None else example_for(loaded.module)
        if x.dim() == 2 and x.is_floating_point():
            x = x.unsqueeze(-1)
        ep = _export(loaded.module, x[:2])
    g, info = build_graph(ep, name)
    g, info["trace_map"], info["stripped"] = canonicalise(g, info["stripped"])
    kinds = {type(node).__name__ for _, node in g.items()}
    info["family"] = None
    neurons = [k for k in kinds if k in FAMILIES]
    if len(neurons) == 1:
        info["family"] = FAMILIES[neurons[0]]
    return g, info
