"""The chapters' networks, each a small ``nn.Module`` named after its label in the source.

Szegedy et al. (2014), Table 1 and 3, on MNIST (inputs ``(N, 1, 28, 28)`` in [0, 1], flattened):

- ``FC10``: a linear softmax classifier, 784 -> 10 (the paper's FC10(lambda));
- ``FC(hidden)``: sigmoid layers of the given widths, then 10 logits:
  ``FC((100, 100))`` is FC100-100-10, ``FC((200, 200))`` FC200-200-10,
  ``FC((123, 456))`` FC123-456-10;
- ``AE400``: a 400-unit sigmoid encoder (trained as a sparse autoencoder with
  :func:`advtut.training.train_sparse_autoencoder`, then frozen) and a softmax on top (AE400-10).

Two small convolutional networks shared by the later chapters:

- ``MnistCNN``: LeNet-like, ``(N, 1, 28, 28)`` in [0, 1] (MNIST, FashionMNIST), two
  conv-ReLU-maxpool blocks and two linear layers; 857,738 parameters by default;
- ``ImageCNN``: ``(N, 3, H, W)`` in [0, 1] (RGB photos, 32 px or more), conv-BatchNorm-ReLU-maxpool
  blocks, global average pooling and one linear layer; 94,117 parameters by default.

Every model returns logits; the softmax belongs to the loss. Every model also has
``activations(x) -> dict[str, Tensor]``: each named layer's output from one forward pass, in
forward order, ending with ``"logits"`` (identical to ``model(x)``), and ``layer_names``, the
dict's keys. Linear layers are ``"fc1", "fc2", ...``, their sigmoids ``"sigmoid1", ...``;
convolutions ``"conv1", ...``, then ``"bn1"``, ``"relu1"``, ``"pool1"``. (``AE400.encode`` is
the encoder alone, a tensor: ``activations(x)["sigmoid1"]``.)

Example::

    model = MnistCNN()
    acts = model.activations(x)          # x: (N, 1, 28, 28) in [0, 1]
    acts["pool2"].shape                  # (N, 64, 7, 7)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FC10", "FC", "AE400", "MnistCNN", "ImageCNN"]


def _sequential_activations(model: nn.Sequential, x: torch.Tensor, names: tuple[str, ...]
                            ) -> dict[str, torch.Tensor]:
    """Run ``model``'s modules in order; name the output of every module but the first
    (the ``Flatten``) by ``names``."""
    out: dict[str, torch.Tensor] = {}
    h = model[0](x)
    for name, layer in zip(names, list(model)[1:]):
        h = layer(h)
        out[name] = h
    return out


def _linear_names(n_hidden: int) -> tuple[str, ...]:
    return tuple(name for i in range(1, n_hidden + 1) for name in (f"fc{i}", f"sigmoid{i}")) + ("logits",)


class FC10(nn.Sequential):
    """Softmax regression on pixels: ``(N, 1, 28, 28) -> (N, 10)`` logits.

    ``activations(x)``: ``{"logits": (N, n_classes)}``.
    """

    layer_names = ("logits",)

    def __init__(self, n_inputs: int = 784, n_classes: int = 10):
        super().__init__(nn.Flatten(), nn.Linear(n_inputs, n_classes))

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"logits": (N, n_classes)}``, equal to ``self(x)``."""
        return _sequential_activations(self, x, self.layer_names)


class FC(nn.Sequential):
    """Sigmoid MLP: ``(N, ...) -> (N, n_classes)``; ``hidden``: the widths, e.g. ``(100, 100)``.

    ``activations(x)``: ``"fc1"`` ``(N, hidden[0])`` (pre-activation), ``"sigmoid1"`` (in (0, 1)),
    ..., ``"logits"`` ``(N, n_classes)``.
    """

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

    @property
    def layer_names(self) -> tuple[str, ...]:
        return _linear_names(len(self.hidden))

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output, ``"fc1"``, ``"sigmoid1"``, ..., ``"logits"``; see the class."""
        return _sequential_activations(self, x, self.layer_names)


class AE400(nn.Module):
    """Sparse-autoencoder features and a softmax: ``(N, 1, 28, 28) -> (N, 10)`` logits.

    ``encoder``: ``Linear(784, hidden)`` followed by a sigmoid; ``classifier``: the softmax layer
    ``Linear(hidden, 10)``; ``decoder``: ``Linear(hidden, 784)``, used only while pre-training.
    The paper does not fine-tune the encoder: train it first, then the classifier alone.
    ``activations(x)``: ``"fc1"`` (the encoder's output), ``"sigmoid1"`` (``encode(x)``),
    ``"logits"``.
    """

    layer_names = _linear_names(1)

    def __init__(self, hidden: int = 400, n_inputs: int = 784, n_classes: int = 10):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be a positive width, got {hidden}")
        self.encoder = nn.Linear(n_inputs, hidden)
        self.decoder = nn.Linear(hidden, n_inputs)
        self.classifier = nn.Linear(hidden, n_classes)

    def encode(self, x):
        """The encoder's sigmoid activations, ``(N, hidden)`` in (0, 1)."""
        return torch.sigmoid(self.encoder(x.flatten(1)))

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"fc1": (N, hidden), "sigmoid1": (N, hidden), "logits": (N, n_classes)}``."""
        pre = self.encoder(x.flatten(1))
        code = torch.sigmoid(pre)
        return {"fc1": pre, "sigmoid1": code, "logits": self.classifier(code)}

    def forward(self, x):
        return self.classifier(self.encode(x))


def _check_settings(n_classes: int, in_channels: int, widths: tuple[int, ...]) -> None:
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be at least 1, got {in_channels}")
    if not widths or any(w < 1 for w in widths):
        raise ValueError(f"widths must be positive channel counts, got {widths}")


class MnistCNN(nn.Module):
    """A LeNet-like CNN for 28 x 28 digits: ``(N, in_channels, 28, 28)`` in [0, 1] ->
    ``(N, n_classes)`` logits.

    Layers (defaults): conv 5x5 (32 channels, padding 2) - ReLU - maxpool 2 -> conv 5x5 (64,
    padding 2) - ReLU - maxpool 2 -> flatten -> linear (3136 -> 256) - ReLU -> linear (256 -> 10).
    Parameters: 832 + 51,264 + 803,072 + 2,570 = 857,738. Two epochs of
    ``train_minibatch(..., batch_size=128, lr=0.05, schedule="cosine", seed=0)`` (SGD, momentum
    0.9) reach 98.9% on the MNIST test set, in 3 minutes on one CPU thread.

    ``activations(x)``: ``"conv1"`` ``(N, 32, 28, 28)``, ``"relu1"``, ``"pool1"``
    ``(N, 32, 14, 14)``, ``"conv2"`` ``(N, 64, 14, 14)``, ``"relu2"``, ``"pool2"``
    ``(N, 64, 7, 7)``, ``"fc1"`` ``(N, 256)``, ``"relu3"``, ``"logits"`` ``(N, 10)``.
    ``image_size`` (a multiple of 4) sets the expected height and width.
    """

    layer_names = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc1", "relu3", "logits")

    def __init__(self, *, n_classes: int = 10, in_channels: int = 1, widths: tuple[int, int] = (32, 64),
                 hidden: int = 256, image_size: int = 28):
        super().__init__()
        widths = tuple(widths)
        _check_settings(n_classes, in_channels, widths)
        if len(widths) != 2:
            raise ValueError(f"widths must give the two convolutions' channels, got {widths}")
        if hidden < 1:
            raise ValueError(f"hidden must be a positive width, got {hidden}")
        if image_size < 4 or image_size % 4:
            raise ValueError(f"image_size must be a positive multiple of 4, got {image_size}")
        self.in_channels, self.image_size = in_channels, image_size
        self.conv1 = nn.Conv2d(in_channels, widths[0], 5, padding=2)
        self.conv2 = nn.Conv2d(widths[0], widths[1], 5, padding=2)
        self.fc1 = nn.Linear(widths[1] * (image_size // 4) ** 2, hidden)
        self.fc2 = nn.Linear(hidden, n_classes)

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named layer's output from one forward pass, in order; see the class."""
        c, s = self.in_channels, self.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"x must have shape (N, {c}, {s}, {s}), got {tuple(x.shape)}")
        a: dict[str, torch.Tensor] = {}
        a["conv1"] = self.conv1(x)
        a["relu1"] = F.relu(a["conv1"])
        a["pool1"] = F.max_pool2d(a["relu1"], 2)
        a["conv2"] = self.conv2(a["pool1"])
        a["relu2"] = F.relu(a["conv2"])
        a["pool2"] = F.max_pool2d(a["relu2"], 2)
        a["fc1"] = self.fc1(a["pool2"].flatten(1))
        a["relu3"] = F.relu(a["fc1"])
        a["logits"] = self.fc2(a["relu3"])
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x)["logits"]


class ImageCNN(nn.Module):
    """A small CNN for RGB photos: ``(N, in_channels, H, W)`` in [0, 1] -> ``(N, n_classes)`` logits.

    One block per entry of ``widths``: conv 3x3 (padding 1, no bias) - BatchNorm - ReLU -
    maxpool 2; then global average pooling and a linear layer, so any size works from
    ``2 ** len(widths)`` pixels up (the chapters use 32 px or more, the flowers at 64+).
    Parameters with the defaults (``widths=(32, 64, 128)``, 3 channels, 5 classes):
    convolutions 864 + 18,432 + 73,728, BatchNorm 64 + 128 + 256, linear 645; 94,117 in all.
    BatchNorm makes train and eval mode differ: evaluate with :func:`advtut.evaluation.eval_mode`.

    ``activations(x)``: ``"conv1"``, ``"bn1"``, ``"relu1"`` ``(N, 32, H, W)``, ``"pool1"``
    ``(N, 32, H/2, W/2)``, ..., ``"pool3"`` ``(N, 128, H/8, W/8)`` (sizes rounded down),
    ``"avgpool"`` ``(N, 128)``, ``"logits"`` ``(N, n_classes)``.
    """

    def __init__(self, *, n_classes: int = 5, in_channels: int = 3,
                 widths: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        widths = tuple(widths)
        _check_settings(n_classes, in_channels, widths)
        self.in_channels, self.widths = in_channels, widths
        self.convs = nn.ModuleList()
        self.bns = nn.ModuleList()
        for c_in, c_out in zip((in_channels, *widths), widths):
            self.convs.append(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False))
            self.bns.append(nn.BatchNorm2d(c_out))
        self.fc = nn.Linear(widths[-1], n_classes)

    @property
    def min_size(self) -> int:
        """The smallest height and width the pooling allows, ``2 ** len(widths)``."""
        return 2 ** len(self.widths)

    @property
    def layer_names(self) -> tuple[str, ...]:
        blocks = tuple(f"{kind}{i}" for i in range(1, len(self.widths) + 1)
                       for kind in ("conv", "bn", "relu", "pool"))
        return blocks + ("avgpool", "logits")

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every named layer's output from one forward pass, in order; see the class."""
        c, m = self.in_channels, self.min_size
        if x.ndim != 4 or x.shape[1] != c or min(x.shape[2:]) < m:
            raise ValueError(f"x must have shape (N, {c}, H, W) with H, W >= {m}, got {tuple(x.shape)}")
        a: dict[str, torch.Tensor] = {}
        h = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns), start=1):
            a[f"conv{i}"] = h = conv(h)
            a[f"bn{i}"] = h = bn(h)
            a[f"relu{i}"] = h = F.relu(h)
            a[f"pool{i}"] = h = F.max_pool2d(h, 2)
        a["avgpool"] = h = F.adaptive_avg_pool2d(h, 1).flatten(1)   # (N, widths[-1])
        a["logits"] = self.fc(h)
        return a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activations(x)["logits"]
