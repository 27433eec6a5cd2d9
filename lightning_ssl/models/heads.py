"""Task heads that sit on an encoder's bottleneck."""

from __future__ import annotations

import torch
from torch import nn


def global_pool(features: torch.Tensor) -> torch.Tensor:
    """Average over every spatial axis: (B, C, *spatial) -> (B, C)."""
    return features.flatten(2).mean(dim=2)


class ClassificationHead(nn.Module):
    """Global average pooling then an MLP (``hidden=0`` gives a linear layer)."""

    def __init__(self, in_channels: int, num_classes: int, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        if hidden:
            self.mlp = nn.Sequential(
                nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
            )
        else:
            self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_channels, num_classes))

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """Class logits from the bottleneck feature map."""
        return self.mlp(global_pool(bottleneck))


class EncoderClassifier(nn.Module):
    """An encoder with a classification head: ``forward`` returns class logits."""

    def __init__(self, encoder: nn.Module, num_classes: int, hidden: int = 256, dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = ClassificationHead(encoder.out_channels, num_classes, hidden, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits."""
        return self.head(self.encoder(x)[-1])
