"""A small PyTorch module in an importable place, as the PyTorch flavour requires (imported only when torch is)."""

from __future__ import annotations

import torch


class TinyNet(torch.nn.Module):
    def __init__(self, n_in: int):
        super().__init__()
        self.layer = torch.nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.layer(x))
