"""The chapters' networks, each a small ``nn.Module`` named after its label in the source.

Szegedy et al. (2014), Table 1 and 3, on MNIST (inputs ``(N, 1, 28, 28)`` in [0, 1], flattened):

- ``FC10``: a linear softmax classifier, 784 -> 10 (the paper's FC10(lambda));
- ``FC(hidden)``: sigmoid layers of the given widths, then 10 logits:
  ``FC((100, 100))`` is FC100-100-10, ``FC((200, 200))`` FC200-200-10,
  ``FC((123, 456))`` FC123-456-10;
- ``AE400``: a 400-unit sigmoid encoder (trained as a sparse autoencoder with
  :func:`advtut.training.train_sparse_autoencoder`, then frozen) and a softmax on top (AE400-10).

Every model returns logits; the softmax belongs to the loss.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FC10", "FC", "AE400"]


class FC10(nn.Sequential):
    """Softmax regression on pixels: ``(N, 1, 28, 28) -> (N, 10)`` logits."""

    def __init__(self, n_inputs: int = 784, n_classes: int = 10):
        super().__init__(nn.Flatten(), nn.Linear(n_inputs, n_classes))


class FC(nn.Sequential):
    """Sigmoid MLP: ``(N, ...) -> (N, n_classes)``; ``hidden``: the widths, e.g. ``(100, 100)``."""

    def __init__(self, hidden: tuple[int, ...], n_inputs: int = 784, n_classes: int = 10):
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden must be positive layer widths, got {hidden}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Sigmoid()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        super().__init__(*layers)
        self.hidden = tuple(hidden)


class AE400(nn.Module):
    """Sparse-autoencoder features and a softmax: ``(N, 1, 28, 28) -> (N, 10)`` logits.

    ``encoder``: ``Linear(784, hidden)`` followed by a sigmoid; ``classifier``: the softmax layer
    ``Linear(hidden, 10)``; ``decoder``: ``Linear(hidden, 784)``, used only while pre-training.
    The paper does not fine-tune the encoder: train it first, then the classifier alone.
    """

    def __init__(self, hidden: int = 400, n_inputs: int = 784, n_classes: int = 10):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be a positive width, got {hidden}")
        self.encoder = nn.Linear(n_inputs, hidden)
        self.decoder = nn.Linear(hidden, n_inputs)
        self.classifier = nn.Linear(hidden, n_classes)

    def features(self, x):
        """The encoder's sigmoid activations, ``(N, hidden)`` in (0, 1)."""
        return torch.sigmoid(self.encoder(x.flatten(1)))

    def forward(self, x):
        return self.classifier(self.features(x))
