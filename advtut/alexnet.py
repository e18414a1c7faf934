"""torchvision's AlexNet (Krizhevsky et al., 2012) with the book's three choices of weights, and
the input transform it expects.

``alexnet(None)`` is the seeded initialisation (no download, no trained weights); ``"download"``
fetches torchvision's ImageNet weights online (checked against their hash); a path loads a saved
state dict with ``weights_only=True``. Used by chapters 3 (units and directions) and 5 (spectral
analysis); without weights a chapter says what it cannot show.

Example::

    model, what = alexnet(None, seed=0)          # what: a sentence naming the weights
    logits = model(imagenet_transform(x))        # x: (N, 3, h, w) in [0, 1]
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from advtut.seeding import seeded

__all__ = ["alexnet", "imagenet_transform"]


def alexnet(weights=None, *, seed: int = 0) -> tuple[nn.Module, str]:
    """torchvision's AlexNet in eval mode and a line saying whose weights it holds.

    ``weights``: ``None`` (the initialisation, seeded by ``seed``), ``"download"``
    (torchvision's ``IMAGENET1K_V1``, fetched online and checked against its hash) or the path
    of a saved state dict (loaded with ``weights_only=True``).
    """
    from torchvision.models import AlexNet_Weights
    from torchvision.models import alexnet as tv_alexnet

    with seeded(seed):
        model = tv_alexnet(weights=None)
    if weights is None:
        what = f"torchvision's AlexNet at its initialisation (seed {seed}): no trained weights"
    elif weights == "download":
        state = AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False, check_hash=True)
        model.load_state_dict(state)
        what = "torchvision's AlexNet, ImageNet weights IMAGENET1K_V1 (top-1 56.5%)"
    elif isinstance(weights, (str, Path)):
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"alexnet_weights: no file at {path}; give None, 'download' or the "
                             "path of a state dict saved with torch.save(model.state_dict(), path)")
        state = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(state, dict):
            raise ValueError(f"alexnet_weights: {path} holds a {type(state).__name__}, not a "
                             "state dict")
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            first = str(err).splitlines()[1:3]
            raise ValueError(f"alexnet_weights: {path} is not a torchvision AlexNet state dict: "
                             + " ".join(line.strip() for line in first)) from None
        what = f"torchvision's AlexNet, weights from {path.name}"
    else:
        raise ValueError(f"alexnet_weights must be None, 'download' or a file path, got {weights!r}")
    return model.eval(), what


def imagenet_transform(x: torch.Tensor) -> torch.Tensor:
    """Images ``(N, 3, h, w)`` in [0, 1] as AlexNet expects them: resized (bilinear) to 224 x 224
    and normalised with ImageNet's channel means and deviations."""
    mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
    x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False, antialias=False)
    return (x - mean) / std
