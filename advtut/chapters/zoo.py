"""The book's trained networks, trained once and reused from a cache that is never stale.

Chapters 3, 5 and 6 study the same MNIST CNN (:class:`advtut.models.MnistCNN`); chapters 3 and
5 also share an :class:`~advtut.models.ImageCNN` trained on the flower photos with
:func:`flowers_cnn` (:func:`book_flowers_cnn`), the settings chapter 7 uses for its own
(:data:`FLOWERS_CNN_TRAINING`). Each trains it
with :func:`mnist_cnn`; with a ``cache_dir`` (the book passes one per build) the first chapter
trains it and the others load it. The cache file's name holds a hash of the training settings,
the training images, the device type and the source of the code that trains it
(:mod:`advtut.book.cache`), so a changed setting, dataset or trainer trains anew.

Example::

    from advtut.data import load_mnist
    train = load_mnist("train")
    model, info = mnist_cnn(train.x, train.y, epochs=2, seed=0, device="cpu")
    info["train_loss"]            # the last epoch's mean training loss
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from advtut.book.cache import cache_path, data_digest, load_or_compute
from advtut.models import ImageCNN, MnistCNN
from advtut.seeding import seeded
from advtut.training import train_minibatch

__all__ = ["MNIST_CNN_TRAINING", "mnist_cnn", "BookCNN", "book_mnist_cnn",
           "FLOWERS_CNN_TRAINING", "flowers_cnn", "BookFlowersCNN", "book_flowers_cnn"]

#: How :func:`mnist_cnn` trains (SGD with momentum, cosine learning rate, batches of 128):
#: 98.9% test accuracy after two epochs on the 60,000 training digits.
MNIST_CNN_TRAINING = dict(batch_size=128, lr=0.05, momentum=0.9, schedule="cosine")


def mnist_cnn(x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int, device="cpu",
              cache_dir=None, variant: str = "plain",
              callback: Callable[[int, nn.Module], None] | None = None,
              loss: Callable[..., torch.Tensor] | None = None,
              variant_settings: dict | None = None, code: Iterable = (),
              progress: bool = True) -> tuple[MnistCNN, dict]:
    """An :class:`~advtut.models.MnistCNN` trained on ``x`` ``(N, 1, 28, 28)`` (floats in
    [0, 1] or uint8 pixels) and ``y`` ``(N,)`` for ``epochs`` epochs with
    :data:`MNIST_CNN_TRAINING`, its initial weights and batch order seeded by ``seed``.

    Returns the model in eval mode on ``device`` and ``{"train_loss": float, "seconds":
    float, "cached": bool}`` (``seconds``: the training time when it was trained). With
    ``cache_dir`` the weights are kept in (and loaded from) a file named for ``variant``,
    ``seed`` and a hash of everything that shapes them. A variant that changes training passes
    ``callback(step, model)`` and/or ``loss(model, x_batch, y_batch, logits)`` (see
    :func:`advtut.training.train_minibatch`), the settings they depend on in
    ``variant_settings`` and their source in ``code``: all of it enters the key.
    """
    code = tuple(code)
    if (callback is not None or loss is not None) and (variant_settings is None or not code):
        raise ValueError("a callback or a loss changes the weights: give its settings "
                         "(variant_settings) and its source (code) so that the cache can tell "
                         "the variants apart")
    device = torch.device(device)
    key = {**MNIST_CNN_TRAINING, "epochs": epochs, "device": device.type,
           "data": data_digest(x, y), **{f"variant.{k}": v for k, v in (variant_settings or {}).items()}}
    path = cache_path(cache_dir, "MnistCNN", variant, f"seed{seed}", settings=key,
                      code=(mnist_cnn, *code))
    cached = path is not None and path.is_file()

    def train():
        with seeded(seed):   # seeded weights; the caller's RNGs are kept
            model = MnistCNN().to(device)
        log = train_minibatch(model, x, y, epochs=epochs, seed=seed, callback=callback,
                              loss=loss, progress=progress, desc=f"MnistCNN ({variant})",
                              **MNIST_CNN_TRAINING)
        if log.diverged:
            raise RuntimeError(f"training MnistCNN ({variant}) diverged: lower the learning rate")
        return {"state": model.state_dict(), "train_loss": log.losses[-1], "seconds": log.seconds}

    saved = load_or_compute(path, train)
    with seeded(None):   # its initial weights are overwritten at once
        model = MnistCNN().to(device)
    model.load_state_dict(saved["state"])
    model.eval()
    return model, {"train_loss": float(saved["train_loss"]), "seconds": float(saved["seconds"]),
                   "cached": cached}


@dataclass(frozen=True)
class BookCNN:
    """The book's MNIST CNN and what it was trained on.

    ``model``: in eval mode; ``x_train`` ``(n_train, 1, 28, 28)`` in [0, 1] and ``y_train``
    ``(n_train,)``: its training digits (a seeded subset in the quick profile); ``info``: see
    :func:`mnist_cnn`; ``epochs``: how long it trained.
    """

    model: MnistCNN
    x_train: torch.Tensor
    y_train: torch.Tensor
    info: dict
    epochs: int


def book_mnist_cnn(*, profile: str, seed: int, device="cpu", cache_dir=None,
                   progress: bool = True) -> BookCNN:
    """The MNIST CNN that chapters 3, 5 and 6 share, trained as ``profile`` says
    (:mod:`advtut.book.profiles`, ``"mnist_cnn"``) on MNIST from the data root, or loaded from
    ``cache_dir`` when an earlier chapter of the same build trained it."""
    from advtut.book.profiles import settings
    from advtut.data import load_mnist

    cfg = settings("mnist_cnn", profile)
    train = load_mnist("train")
    x, y = train.x, train.y
    if cfg["n_train"] is not None and cfg["n_train"] < len(x):
        pick = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        pick = pick[:cfg["n_train"]]
        x, y = x[pick], y[pick]
    model, info = mnist_cnn(x, y, epochs=cfg["epochs"], seed=seed, device=device,
                            cache_dir=cache_dir, progress=progress)
    return BookCNN(model, x, y, info, cfg["epochs"])


#: How the flowers' :class:`~advtut.models.ImageCNN` trains (Adam, cosine learning rate, batches
#: of 32): chapter 3's :func:`flowers_cnn` and chapter 7's flowers CNN.
FLOWERS_CNN_TRAINING = dict(batch_size=32, lr=2e-3, optimizer="adam", schedule="cosine")


def flowers_cnn(x: torch.Tensor, y: torch.Tensor, *, widths: tuple[int, ...], epochs: int,
                seed: int, device="cpu", cache_dir=None, progress: bool = True
                ) -> tuple[ImageCNN, dict]:
    """An :class:`~advtut.models.ImageCNN` with ``widths`` trained on the flower photos ``x``
    ``(N, 3, H, W)`` in [0, 1] and ``y`` ``(N,)`` (five classes) with
    :data:`FLOWERS_CNN_TRAINING`, its initial weights and batch order seeded by ``seed``.
    Returns the model in eval mode on ``device`` and ``{"seconds": float, "cached": bool}``;
    with ``cache_dir`` the weights are kept under a name holding a hash of everything that
    shapes them, as for :func:`mnist_cnn`."""
    device = torch.device(device)
    key = {**FLOWERS_CNN_TRAINING, "widths": tuple(widths), "epochs": epochs,
           "device": device.type, "data": data_digest(x, y)}
    path = cache_path(cache_dir, "ImageCNN", "flowers", f"seed{seed}", settings=key,
                      code=(flowers_cnn,))
    cached = path is not None and path.is_file()

    def new():
        with seeded(seed):   # seeded weights; the caller's RNGs are kept
            return ImageCNN(widths=tuple(widths), n_classes=5).to(device)

    def train():
        model = new()
        log = train_minibatch(model, x, y, epochs=epochs, seed=seed, progress=progress,
                              desc="flowers CNN", **FLOWERS_CNN_TRAINING)
        if log.diverged:
            raise RuntimeError("training the flowers CNN diverged: lower its learning rate")
        return {"state": model.state_dict(), "seconds": log.seconds}

    saved = load_or_compute(path, train)
    model = new()
    model.load_state_dict(saved["state"])
    return model.eval(), {"seconds": float(saved["seconds"]), "cached": cached}


@dataclass(frozen=True)
class BookFlowersCNN:
    """The book's flowers CNN and what it was trained on.

    ``model``: in eval mode; ``x_train`` ``(N, 3, size, size)`` in [0, 1] and ``y_train``
    ``(N,)``: the photos of the seeded training split at ``size`` px; ``widths``, ``epochs``:
    how it was built and trained; ``info``: see :func:`flowers_cnn`.
    """

    model: ImageCNN
    x_train: torch.Tensor
    y_train: torch.Tensor
    size: int
    widths: tuple[int, ...]
    epochs: int
    info: dict


def book_flowers_cnn(*, profile: str, seed: int, device="cpu", cache_dir=None,
                     progress: bool = True) -> BookFlowersCNN:
    """The flowers CNN that chapters 3 and 5 share, trained as ``profile`` says
    (:mod:`advtut.book.profiles`, ``"flowers_cnn"``) on the training split of the flower
    photos (seeded by ``seed``) from the data root, or loaded from ``cache_dir`` when an
    earlier chapter of the same build trained it."""
    from advtut.book.profiles import settings
    from advtut.data import load_flowers

    cfg = settings("flowers_cnn", profile)
    train = load_flowers("train", image_size=cfg["size"], seed=seed)
    model, info = flowers_cnn(train.x, train.y, widths=cfg["widths"], epochs=cfg["epochs"],
                              seed=seed, device=device, cache_dir=cache_dir, progress=progress)
    return BookFlowersCNN(model, train.x, train.y, cfg["size"], tuple(cfg["widths"]),
                          cfg["epochs"], info)
