"""Task heads that sit on an encoder's bottleneck."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def global_pool(features: torch.Tensor) -> torch.Tensor:
    """Average over every spatial axis: (B, C, *spatial) -> (B, C)."""
    return features.flatten(2).mean(dim=2)


class ClassificationHead(nn.Module):
    """Global average pooling then an MLP (``hidden=0`` gives a linear layer).

    ``standardise`` puts a BatchNorm without affine parameters before it (the linear-probing protocol
    of MAE), so a linear probe learns at one learning rate whatever the scale of the features.
    """

    def __init__(
        self, in_channels: int, num_classes: int, hidden: int = 256, dropout: float = 0.0, standardise: bool = False
    ) -> None:
        super().__init__()
        self.standardise = nn.BatchNorm1d(in_channels, affine=False) if standardise else nn.Identity()
        if hidden:
            self.mlp = nn.Sequential(
                nn.Linear(in_channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
            )
        else:
            self.mlp = nn.Sequential(nn.Dropout(dropout), nn.Linear(in_channels, num_classes))

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """Class logits from the bottleneck feature map."""
        return self.mlp(self.standardise(global_pool(bottleneck)))


class MLP(nn.Module):
    """Linear -> (BatchNorm) -> ReLU -> Linear: the 2-layer projection/prediction head of SimCLR and BYOL.

    ``batch_norm`` uses the statistics of the local batch: in multi-process runs set
    ``trainer.sync_batchnorm=true`` to use the global batch.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden, bias=not batch_norm),
            nn.BatchNorm1d(hidden) if batch_norm else nn.Identity(),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_features),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features) -> (B, out_features)."""
        return self.layers(x)


UNKNOWN = -100


class MetadataHead(nn.Module):
    """A supervised branch on the representation: a 2-layer MLP with cross-entropy on a categorical
    metadata column (patient id, view, scanner, site); samples whose value is unknown are ignored.

    ``vocabulary`` lists the values seen in the training split, one class each; it is saved with the
    weights so a resumed run maps values to the same classes.
    """

    def __init__(self, in_features: int, vocabulary: Sequence[str], hidden: int = 256) -> None:
        super().__init__()
        if not vocabulary:
            raise ValueError("the metadata head needs at least one known value")
        self.vocabulary = [str(v) for v in vocabulary]
        self.mlp = MLP(in_features, hidden, len(self.vocabulary), batch_norm=False)

    @property
    def vocabulary(self) -> list[str]:
        """The known values, in class order."""
        return self._vocabulary

    @vocabulary.setter
    def vocabulary(self, values: list[str]) -> None:
        self._vocabulary = list(values)
        self._classes = {value: i for i, value in enumerate(self._vocabulary)}

    def get_extra_state(self) -> dict:
        """The vocabulary, stored in the state dict."""
        return {"vocabulary": self.vocabulary}

    def set_extra_state(self, state: dict) -> None:
        """Restore the vocabulary from the state dict."""
        self.vocabulary = state["vocabulary"]

    def targets(self, values: Sequence[str | None], device: torch.device | str | None = None) -> torch.Tensor:
        """Class indices of ``values``; unknown or missing values get -100 (ignored by the loss)."""
        indices = [self._classes.get(str(v), UNKNOWN) if v is not None else UNKNOWN for v in values]
        return torch.tensor(indices, dtype=torch.long, device=device)

    def forward(self, representation: torch.Tensor, values: Sequence[str | None]) -> torch.Tensor:
        """Mean cross-entropy over the samples with a known value (zero, with a graph, when there is none)."""
        logits = self.mlp(representation)
        targets = self.targets(values, logits.device)
        if not bool((targets != UNKNOWN).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, targets, ignore_index=UNKNOWN)


class OnlineProbe(nn.Module):
    """A linear classifier trained on detached features during pretraining, to watch representation quality live.

    Its gradient never reaches the encoder. The features are standardised first by a BatchNorm
    without affine parameters (as in MAE's linear probing), so the probe learns at one learning
    rate whatever the scale of the features.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.standardise = nn.BatchNorm1d(in_features, affine=False)
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cross-entropy loss, logits) for pooled features (B, F) and integer labels (B,)."""
        logits = self.linear(self.standardise(features.detach()))
        return F.cross_entropy(logits, labels.long()), logits
