"""A network's layers as feature matrices: each named layer's output for a set of images,
flattened to ``(N, D)``, read through the book's ``activations`` method or through forward hooks
(torchvision models such as AlexNet).

Example::

    feats = layer_features(cnn, x, ["relu3", "pool2"])            # {name: (N, D)} on the CPU
    feats = layer_features(alex, x, {"fc7": ("classifier", 5)},
                           transform=imagenet_transform)
"""
from __future__ import annotations

import torch
from torch import nn

from advtut.evaluation import eval_mode

__all__ = ["layer_features"]


def _hooked(model: nn.Module, modules: dict[str, nn.Module], x: torch.Tensor):
    out, handles = {}, []
    for name, module in modules.items():
        def hook(_m, _i, o, name=name):
            out[name] = o.detach().clone()
        handles.append(module.register_forward_hook(hook))
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return out


@torch.no_grad()
def layer_features(model: nn.Module, x: torch.Tensor, layers, *, batch_size: int = 250,
                   transform=None) -> dict[str, torch.Tensor]:
    """Each named layer's output for the images ``x`` ``(N, C, H, W)``, flattened: ``{name:
    (N, D)}`` float32 on the CPU, computed in batches on the model's device in eval mode.

    ``layers``: names of ``model.activations`` (the book's networks), or a mapping from a name
    to a ``(part, index)`` of a torchvision model such as AlexNet (read with forward hooks).
    ``transform``: applied to each batch first (resizing and normalising for AlexNet).
    """
    device = next(model.parameters()).device
    hooks = not hasattr(model, "activations")
    if hooks:
        if not isinstance(layers, dict):
            raise ValueError("layers must map names to (part, index) for a model without "
                             "an activations method")
        try:
            modules = {n: getattr(model, part)[i] for n, (part, i) in layers.items()}
        except (AttributeError, IndexError, TypeError, ValueError):
            raise ValueError(f"layers must map names to (part, index) of the model's "
                             f"submodules, such as {{'fc7': ('classifier', 5)}}; got "
                             f"{layers!r}") from None
    elif missing := [n for n in layers if n not in model.layer_names]:
        raise ValueError(f"layers {missing} are not among the model's {model.layer_names}")
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device).float()
            if transform is not None:
                xb = transform(xb)
            acts = _hooked(model, modules, xb) if hooks else model.activations(xb)
            for n in layers:
                chunks[n].append(acts[n].flatten(1).float().cpu())
    return {n: torch.cat(c) for n, c in chunks.items()}
