"""SSMClassifier: encoder -> n residual spiking-SSM blocks -> mean pool over time -> linear decoder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from neurocompile.models.blocks import SSMBlock
from neurocompile.models.config import ModelConfig

__all__ = ["SSMClassifier"]


class SSMClassifier(nn.Module):
    """Sequence classifier. Submodules: ``encoder`` (nn.Linear(d_input, H) or nn.Embedding(vocab_size, H)),
    ``blocks`` (nn.ModuleList of :class:`SSMBlock`), ``decoder`` (nn.Linear(H, n_classes), applied to the time mean).

    Neurons run exactly (sequential, as on the chip) in eval mode, inside :meth:`streaming`, or with
    ``exact=True``; in training mode they use the configured parallel form (``config.neuron_mode``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        H = config.d_model
        if config.encoder == "embedding":
            self.encoder: nn.Module = nn.Embedding(config.vocab_size, H)
        else:
            self.encoder = nn.Linear(config.d_input, H)
        self.blocks = nn.ModuleList(SSMBlock(config) for _ in range(config.n_layers))
        self.decoder = nn.Linear(H, config.n_classes)
        self._force_exact = False

    # ------------------------------------------------------------------ helpers
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Input -> residual stream [B, L, H]; x is [B, L] long (embedding) or [B, L, d_input] float (linear)."""
        if self.config.encoder == "embedding":
            if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32):
                raise ValueError(f"embedding encoder expects token ids [B, L] (int64), got {tuple(x.shape)} {x.dtype}")
            return self.encoder(x.long())
        if x.dim() == 2 and self.config.d_input == 1:
            x = x.unsqueeze(-1)
        if x.dim() != 3 or x.shape[-1] != self.config.d_input:
            raise ValueError(
                f"linear encoder expects [B, L, {self.config.d_input}] float input, got {tuple(x.shape)}"
            )
        return self.encoder(x.to(self.encoder.weight.dtype))

    def _exact(self, exact: bool | None) -> bool:
        if exact is not None:
            return exact
        return self._force_exact or not self.training

    @contextmanager
    def streaming(self) -> Iterator[SSMClassifier]:
        """Within this context the exact sequential neurons run, even in training mode."""
        previous, self._force_exact = self._force_exact, True
        try:
            yield self
        finally:
            self._force_exact = previous

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ forward passes
    def forward(self, x: torch.Tensor, return_trace: bool = False, exact: bool | None = None):
        """``x`` -> logits [B, n_classes]; ``return_trace=True`` -> ``(logits, trace)``.

        ``trace`` keys: ``'encoder'`` (the residual stream entering block 0) and, per block i,
        ``'block{i}.s4d'`` (S4D output), ``'block{i}.spikes'`` (neuron output; Ter(y) for gsu),
        ``'block{i}.out'`` (block output, the residual stream); all [B, L, H].
        """
        exact = self._exact(exact)
        h = self.encode(x)
        trace: dict[str, torch.Tensor] = {"encoder": h} if return_trace else {}
        for i, block in enumerate(self.blocks):
            h, inner = block(h, exact=exact)
            if return_trace:
                trace[f"block{i}.s4d"] = inner["s4d"]
                trace[f"block{i}.spikes"] = inner["spikes"]
                trace[f"block{i}.out"] = h
        logits = self.decoder(h.mean(dim=1))
        return (logits, trace) if return_trace else logits

    @torch.no_grad()
    def forward_streaming(self, x: torch.Tensor, return_trace: bool = False):
        """Step-by-step reference (S4D recurrence + exact neurons, one time step at a time): what a chip computes.

        Same outputs as ``forward`` in eval mode up to float rounding of the S4D (FFT vs recurrence). Needs eval
        mode (BatchNorm statistics, no dropout); unidirectional S4D only.
        """
        if self.training:
            raise RuntimeError("SSMClassifier.forward_streaming needs eval mode; call model.eval() first")
        h_all = self.encode(x)
        states: list = [None] * len(self.blocks)
        total = torch.zeros_like(h_all[:, 0])
        records: dict[str, list[torch.Tensor]] = {}
        for t in range(h_all.shape[1]):
            h = h_all[:, t]
            for i, block in enumerate(self.blocks):
                h, inner, states[i] = block.step(h, states[i])
                if return_trace:
                    records.setdefault(f"block{i}.s4d", []).append(inner["s4d"])
                    records.setdefault(f"block{i}.spikes", []).append(inner["spikes"])
                    records.setdefault(f"block{i}.out", []).append(h)
            total = total + h
        logits = self.decoder(total / h_all.shape[1])
        if not return_trace:
            return logits
        trace = {"encoder": h_all, **{k: torch.stack(v, dim=1) for k, v in records.items()}}
        return logits, trace
