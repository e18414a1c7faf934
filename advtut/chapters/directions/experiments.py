"""Chapter 3: units against random directions (Szegedy et al., 2014, section 3).

The source looks at the held-out images that maximise ``<phi(x), e_i>`` for units ``e_i`` of a
layer ``phi`` and ``<phi(x), v>`` for random directions ``v``, finds the rows "semantically
related" in both cases and concludes that "the natural basis is not better than a random basis".
It shows pictures and gives no number. This module turns the comparison into numbers: for many
units and many random directions of a layer, the coherence of their top-k images (label purity;
mean centred cosine in another layer, the *judge*), beside two baselines (k random images; the
class-mean directions), compared with :func:`advtut.directions.compare`.

Networks: the book's MNIST CNN (:func:`advtut.chapters.zoo.book_mnist_cnn`) over the MNIST test
set, as the source; an RGB network for Figures 3-4: torchvision's AlexNet over Tiny ImageNet's
validation images when ImageNet weights can be loaded, otherwise the book's
:class:`~advtut.models.ImageCNN` trained on the flower photos
(:func:`advtut.chapters.zoo.flowers_cnn`), over their held-out fifth.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from advtut.alexnet import alexnet, imagenet_transform
from advtut.directions import (
    Comparison,
    class_mean_directions,
    compare,
    label_purity,
    live_units,
    mean_pairwise_cosine,
    random_directions,
    random_subsets,
    top_k_along,
    unit_directions,
)
from advtut.features import layer_features

__all__ = ["FAMILIES", "MNIST_LAYERS", "MNIST_JUDGE", "FLOWER_LAYERS", "FLOWER_JUDGE",
           "ALEXNET_LAYERS", "ALEXNET_JUDGE", "layer_features", "imagenet_transform", "PhotoNet",
           "photo_network", "photo_layers", "Coherence", "coherence", "verdict", "effect_size",
           "purity_position"]


#: The direction families, in the order of the tables: the source's two, the random directions
#: restricted to non-negative coordinates (like a unit of a ReLU layer), and the two baselines.
FAMILIES = ("units", "random", "random ≥ 0", "random images", "class means")

#: The layers studied and the judge layer of each network. MNIST CNN:
#: the last feature layer (``relu3``, 256 units) and the second convolutional block (``pool2``,
#: 64 x 7 x 7 = 3,136 coordinates); the judge is ``pool1``.
MNIST_LAYERS = ("relu3", "pool2")
MNIST_JUDGE = "pool1"
#: The flowers' ImageCNN: global average pool (the last feature layer) and the second block.
FLOWER_LAYERS = ("avgpool", "pool2")
FLOWER_JUDGE = "pool1"
#: torchvision's AlexNet: fc7 after its ReLU (``classifier[5]``, 4,096 units, the last feature
#: layer), pool5 (``features[12]``, 256 x 6 x 6); the judge is pool1 (``features[2]``).
ALEXNET_LAYERS = {"fc7": ("classifier", 5), "pool5": ("features", 12)}
ALEXNET_JUDGE = ("features", 2)

@dataclass(frozen=True)
class PhotoNet:
    """The network of Figures 3-4 and its pool of held-out photos.

    ``model`` (eval mode, on the device); ``x`` ``(N, 3, H, W)`` in [0, 1], ``y`` ``(N,)``,
    ``class_names``: the pool; ``features``: :func:`layer_features` of the studied layers and
    the judge (``"judge"``), ``(N, D)`` each; ``layers``: the studied layers' names; ``what``:
    a sentence saying which network and which pool; ``accuracy``: on the pool (None for
    AlexNet, whose 1,000 ImageNet classes are not the pool's labels).
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    features: dict[str, torch.Tensor]
    layers: tuple[str, ...]
    what: str
    accuracy: float | None


def photo_network(alexnet_weights, *, profile: str, seed: int, device, cache_dir=None,
                  progress: bool = True) -> PhotoNet:
    """AlexNet over Tiny ImageNet's validation images when ``alexnet_weights`` is given
    (``"download"`` or a state dict's path, see :func:`advtut.alexnet.alexnet`);
    with ``None``, the book's flowers :class:`~advtut.models.ImageCNN`
    (:func:`advtut.chapters.zoo.book_flowers_cnn`, trained as ``profile`` says) over the
    flowers' held-out fifth."""
    from advtut.chapters.zoo import book_flowers_cnn
    from advtut.data import load_flowers, load_tiny_imagenet
    from advtut.evaluation import error_rate

    if alexnet_weights is not None:
        model, what = alexnet(alexnet_weights, seed=seed)
        model = model.to(device)
        pool = load_tiny_imagenet("val")
        specs = {**ALEXNET_LAYERS, "judge": ALEXNET_JUDGE}
        feats = layer_features(model, pool.x, specs, transform=imagenet_transform)
        return PhotoNet(model, pool.x, pool.y, pool.class_names, feats,
                        tuple(ALEXNET_LAYERS),
                        f"{what}, over Tiny ImageNet's {len(pool):,} validation images "
                        "(64 px, resized to 224)", None)
    net = book_flowers_cnn(profile=profile, seed=seed, device=device, cache_dir=cache_dir,
                           progress=progress)
    model, size = net.model, net.size
    pool = load_flowers("val", image_size=size, seed=seed)
    feats = layer_features(model, pool.x, [*FLOWER_LAYERS, FLOWER_JUDGE])
    feats["judge"] = feats.pop(FLOWER_JUDGE)
    acc = 1 - error_rate(model, pool.x, pool.y)
    return PhotoNet(model, pool.x, pool.y, pool.class_names, feats, FLOWER_LAYERS,
                    f"the book's ImageCNN (widths {net.widths}) trained "
                    f"{net.epochs} epochs on {len(net.x_train):,} flower photos at {size} px, "
                    f"over the {len(pool):,} held-out photos (no ImageNet weights were given)",
                    acc)


def photo_layers(photo: PhotoNet) -> dict:
    r"""The studied layers of ``photo`` as :class:`~advtut.chapters.directions.bases.Layer`\ s:
    with the network above each for the book's ImageCNN (AlexNet's is not rebuilt: no
    ablation), and the positions per channel of the convolutional one."""
    from advtut.chapters.directions.bases import Layer, readout
    from advtut.models import ImageCNN

    out = {}
    for name in photo.layers:
        feats = photo.features[name]
        if isinstance(photo.model, ImageCNN):
            ro = readout(photo.model, name, feats)
            positions = None if name == "avgpool" else feats.shape[1] // photo.model.widths[1]
        else:
            # pool5 is (256, 6, 6) flattened; fc7 is a vector
            ro, positions = None, (None if name == "fc7" else feats.shape[1] // 256)
        out[name] = Layer(name, feats, ro, positions)
    return out


@dataclass(frozen=True)
class Coherence:
    """One layer's comparison.

    ``layer``; ``width``: its number of coordinates; ``live``: how many units have a top-k that
    is not a tie among silent images (:func:`advtut.directions.live_units`); ``units``
    ``(U,)``: the units drawn among those; ``top``: for each family of :data:`FAMILIES`,
    its top-k images ``(M, k)`` (indices into the pool); ``purity``, ``cosine``: for each
    family its scores ``(M,)`` (label purity, mean centred cosine in the judge layer); ``tests``:
    ``(score, "random images") -> Comparison`` of the units against k random images (the
    comparison with random directions, on every score and after the controls, is
    :func:`advtut.chapters.directions.bases.basis_test`'s).
    """

    layer: str
    width: int
    live: int
    units: torch.Tensor
    top: dict[str, torch.Tensor]
    purity: dict[str, torch.Tensor]
    cosine: dict[str, torch.Tensor]
    tests: dict[tuple[str, str], Comparison]

    @property
    def k(self) -> int:
        return self.top["units"].shape[1]


def coherence(features: torch.Tensor, judge: torch.Tensor, y: torch.Tensor, *, layer: str,
              k: int, n_units: int, n_random: int, seed: int,
              positions: int | None = None, live_k: int | None = None) -> Coherence:
    """Units, random directions and the baselines of one layer, scored.

    ``features`` ``(N, D)``: the layer over the pool of held-out images; ``judge`` ``(N, D')``:
    another layer, where the top-k images' similarity is measured (centred on the pool's mean, so
    that the shared positive part of ReLU features does not make every cosine near 1); ``y``
    ``(N,)``: the pool's labels. ``n_units`` units are drawn (seeded) among the live ones (all of
    them if fewer; live at ``live_k`` images, default ``k``), ``n_random`` random directions and
    ``n_random`` random k-subsets. The units are compared (:func:`advtut.directions.compare`)
    with the random images; for a convolutional layer, ``positions`` (H * W per channel) makes
    the bootstrap resample channels. The units and the signed random directions are drawn as
    :func:`~advtut.chapters.directions.bases.basis_test` draws them (same ``seed`` and
    ``live_k``), so its rows are these.
    """
    if len(judge) != len(features) or y.shape != (len(features),):
        raise ValueError(f"features, judge and y must cover the same {len(features)} images, got "
                         f"{len(judge)} and {tuple(y.shape)}")
    for name, value in (("n_units", n_units), ("n_random", n_random)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an integer of at least 2, got {value!r}")
    dim = features.shape[1]
    live = live_units(features, k if live_k is None else live_k)
    if len(live) < 2:
        raise ValueError(f"layer {layer!r}: only {len(live)} of its {dim} units fire on at least "
                         f"{k} images; choose another layer or a smaller k")
    g = torch.Generator().manual_seed(seed)
    units = live[torch.randperm(len(live), generator=g)[:n_units]].sort().values
    top = {
        "units": top_k_along(features, unit_directions(dim, units.tolist()), k),
        "random": top_k_along(features, random_directions(dim, n_random, seed=seed + 1), k),
        "random ≥ 0": top_k_along(features, random_directions(dim, n_random, seed=seed + 2,
                                                              nonnegative=True), k),
        "random images": random_subsets(len(features), n_random, k, seed=seed + 3),
        "class means": top_k_along(features, class_mean_directions(features, y), k),
    }
    centred = judge.float() - judge.float().mean(0)
    purity = {f: label_purity(t, y) for f, t in top.items()}
    cosine = {f: mean_pairwise_cosine(t, centred) for f, t in top.items()}
    groups = None if positions is None else units // positions
    tests = {(score, "random images"): compare(values["units"], values["random images"],
                                               groups=groups, seed=seed)
             for score, values in (("purity", purity), ("cosine", cosine))}
    return Coherence(layer, dim, len(live), units, top, purity, cosine, tests)


def verdict(c: Comparison, *, other: str = "random directions") -> str:
    """The source's claim put to a number, from the 95% interval of the probability ``P`` that
    a unit's row scores higher than one of ``other``'s: ``"no distinction"`` when the whole
    interval is negligible (within [0.44, 0.56]); ``"units higher"`` or ``"<other> higher"``
    when it excludes 0.5 on that side (for the top-k scores: more coherent), followed by the
    size of ``|P - 0.5|``
    on Vargha and Delaney's scale in brackets (``"(small)"``); otherwise ``"inconclusive"``
    (more directions would tell)."""
    if c.negligible:
        return "no distinction"
    size = effect_size(abs(c.superiority - 0.5))
    if c.low > 0.5:
        return f"units higher ({size})"
    if c.high < 0.5:
        return f"{other} higher ({size})"
    return "inconclusive"


def effect_size(edge: float) -> str:
    """Vargha and Delaney's words for ``|P - 0.5|``: negligible below 0.06, small below 0.14,
    medium below 0.21, large above."""
    for bound, word in ((0.06, "negligible"), (0.14, "small"), (0.21, "medium")):
        if edge < bound:
            return word
    return "large"


def purity_position(c: Coherence, family: str) -> float:
    """Where ``family``'s mean label purity lies between the random images (0) and the
    class-mean directions (1); above 1 when the family is purer than the class means."""
    lo, hi = float(c.purity["random images"].mean()), float(c.purity["class means"].mean())
    if hi <= lo:
        raise ValueError(f"{c.layer}: the class means are no purer than random images")
    return (float(c.purity[family].mean()) - lo) / (hi - lo)
