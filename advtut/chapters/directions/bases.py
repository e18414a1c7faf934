"""Chapter 3: can a score tell units from random directions? Every score on layers whose answer
is known, then on the real ones.

A *score* turns one direction of a layer into a number: the label purity and the judge cosine of
its top-k images (the source's question, put to a number; :mod:`advtut.directions`), and three
statistics of its projections that change under a rotation of the layer (:mod:`advtut.basis`):
excess kurtosis, class selectivity and the loss gained by projecting it out. For a layer, the
units' scores are compared with signed random directions' by ``P`` = P(unit's score > random
direction's) (:func:`advtut.directions.compare`; for a convolutional layer the bootstrap resamples
channels). The controls: a synthetic code aligned with the classes, the real ``relu3`` in its
independent components (positive: the basis is privileged by construction), and each of these
and the real ``relu3`` under a random rotation (negative: the "units" are random directions).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from advtut.basis import (
    Readout,
    ablation_loss,
    aligned_code,
    class_selectivity,
    excess_kurtosis,
    ica_basis,
    random_rotation,
    rotate,
)
from advtut.directions import (
    Comparison,
    compare,
    label_purity,
    live_units,
    mean_pairwise_cosine,
    random_directions,
    top_k_along,
    unit_directions,
)
from advtut.models import ImageCNN, MnistCNN

__all__ = ["BASIS_SCORES", "Layer", "readout", "mnist_layer", "BasisTest",
           "basis_test", "ablation_check", "CONTROLS", "POSITIVE", "controls", "sees_basis",
           "control_verdicts"]

#: The statistics of a direction's projections, which a rotation of the layer changes.
BASIS_SCORES = ("kurtosis", "class selectivity", "ablation")


@dataclass(frozen=True)
class Layer:
    """A layer as the chapter tests it.

    ``name``; ``features`` ``(N, D)`` over the pool; ``readout``: the network above it
    (:class:`advtut.basis.Readout`; None when it cannot be rebuilt, as for AlexNet's layers);
    ``positions``: for a convolutional layer flattened from ``(C, H, W)``, ``H * W``, so that
    coordinate ``j`` belongs to channel ``j // positions`` (None: every coordinate a unit of its
    own).
    """

    name: str
    features: torch.Tensor
    readout: Readout | None = None
    positions: int | None = None


def _double(module):
    return copy.deepcopy(module).double().eval().cpu()


def _consumer(model, layer: str):
    """The module whose input is ``layer``'s output (flattened where the network flattens it)."""
    if isinstance(model, MnistCNN) and layer in ("relu3", "pool2"):
        return model.fc2 if layer == "relu3" else model.fc1
    if isinstance(model, ImageCNN):
        if layer == "avgpool":
            return model.fc
        names = [f"pool{i}" for i in range(1, len(model.widths))]
        if layer in names:
            return model.convs[names.index(layer) + 1]
    raise ValueError(f"readout knows MnistCNN's 'relu3' and 'pool2' and ImageCNN's 'avgpool' "
                     f"and pool layers below the last block, got {type(model).__name__} {layer!r}")


def readout(model, layer: str, features: torch.Tensor) -> Readout:
    """The network above ``layer`` of the book's :class:`~advtut.models.MnistCNN` (``"relu3"``,
    ``"pool2"``) or :class:`~advtut.models.ImageCNN` (``"avgpool"``, ``"pool1"``, ...), over the
    pool's ``features`` ``(N, D)`` (flattened as :func:`advtut.features.layer_features` gives
    them), on the CPU in float64. ImageCNN's BatchNorm runs in eval mode."""
    h = features.double().cpu()
    first = _double(_consumer(model, layer))                 # the first linear map above
    if isinstance(model, ImageCNN) and layer != "avgpool":
        i = int(layer.removeprefix("pool"))                    # the next block's index
        bns, convs, fc = _double(model.bns), _double(model.convs), _double(model.fc)
        c = model.widths[i - 1]
        side = int(round((h.shape[1] / c) ** 0.5))

        def linear(v):
            return first(v.view(-1, c, side, side)).flatten(1)

        def rest(z):
            z = z.view(len(z), model.widths[i], side, side)
            z = F.max_pool2d(F.relu(bns[i](z)), 2)
            for conv, bn in zip(convs[i + 1:], bns[i + 1:]):
                z = F.max_pool2d(F.relu(bn(conv(z))), 2)
            return fc(F.adaptive_avg_pool2d(z, 1).flatten(1))

        with torch.no_grad():
            pre = torch.cat([linear(b) for b in h.split(256)])
        return Readout(pre, _no_grad(linear), _no_grad(rest))
    fc2 = _double(model.fc2) if isinstance(model, MnistCNN) else None
    rest = (lambda z: fc2(F.relu(z))) if isinstance(model, MnistCNN) and layer == "pool2" \
        else (lambda z: z)
    with torch.no_grad():
        pre = first(h)
    return Readout(pre, lambda v: v @ first.weight.detach().T, _no_grad(rest))


def _no_grad(fn):
    def run(z):
        with torch.no_grad():
            return fn(z)
    return run


def mnist_layer(model: MnistCNN, features: dict[str, torch.Tensor], name: str) -> Layer:
    """``relu3`` or ``pool2`` of the MNIST CNN as a :class:`Layer` (pool2's channels hold
    7 x 7 positions)."""
    positions = None if name == "relu3" else (model.image_size // 4) ** 2
    return Layer(name, features[name], readout(model, name, features[name]), positions)


@dataclass(frozen=True)
class BasisTest:
    """A layer's units against its signed random directions, on every score.

    ``layer``; ``units`` ``(U,)``: the coordinates drawn (among those live for the largest k);
    ``groups`` ``(U,)``: each unit's channel (None: independent units); ``scores``: score name ->
    ``(units' scores (U,) or fewer, random directions' scores)``; ``tests``: score name ->
    :class:`~advtut.directions.Comparison` of the two.
    """

    layer: str
    units: torch.Tensor
    groups: torch.Tensor | None
    scores: dict[str, tuple[torch.Tensor, torch.Tensor]]
    tests: dict[str, Comparison]

    @property
    def n_groups(self) -> int:
        """The independent units: channels for a convolutional layer, else the units."""
        return len(self.units) if self.groups is None else len(self.groups.unique())


def basis_test(layer: Layer, judge: torch.Tensor, y: torch.Tensor, *, ks, n_units: int,
               n_random: int, n_ablate: int, ablate_images: int | None, seed: int) -> BasisTest:
    """Score ``n_units`` live units of ``layer`` (drawn, seeded) and ``n_random`` signed random
    directions on every score: label purity and judge cosine of the top-k images for each k in
    ``ks`` (``judge`` ``(N, D')``, centred on the pool's mean), kurtosis and class selectivity
    of the projections over the pool (labels ``y``), and the ablation loss of the first
    ``n_ablate`` of each over a seeded subset of ``ablate_images`` images (all when None;
    skipped when the layer has no readout). Units and directions are drawn as
    :func:`~advtut.chapters.directions.experiments.coherence` draws them with ``live_k =
    max(ks)``, so the rows match."""
    feats, dim = layer.features, layer.features.shape[1]
    live = live_units(feats.float(), max(ks))
    if len(live) < 2:
        raise ValueError(f"layer {layer.name!r}: fewer than 2 units fire on {max(ks)} images")
    g = torch.Generator().manual_seed(seed)
    units = live[torch.randperm(len(live), generator=g)[:n_units]].sort().values
    u_dirs = unit_directions(dim, units.tolist())
    r_dirs = random_directions(dim, n_random, seed=seed + 1)
    groups = None if layer.positions is None else units // layer.positions
    centred = judge.float() - judge.float().mean(0)
    scores = {}
    for k in ks:
        tu, tr = top_k_along(feats, u_dirs, k), top_k_along(feats, r_dirs, k)
        scores[f"label purity (k={k})"] = (label_purity(tu, y), label_purity(tr, y))
        scores[f"judge cosine (k={k})"] = (mean_pairwise_cosine(tu, centred),
                                           mean_pairwise_cosine(tr, centred))
    scores["kurtosis"] = (excess_kurtosis(feats, u_dirs), excess_kurtosis(feats, r_dirs))
    scores["class selectivity"] = (class_selectivity(feats, u_dirs, y),
                                   class_selectivity(feats, r_dirs, y))
    if layer.readout is not None and n_ablate >= 2:
        pick = torch.arange(len(feats))
        if ablate_images is not None and ablate_images < len(feats):
            pick = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed + 4))
            pick = pick[:ablate_images].sort().values
        ro = Readout(layer.readout.pre[pick], layer.readout.linear, layer.readout.rest)
        scores["ablation"] = tuple(ablation_loss(feats[pick], d[:n_ablate], y[pick], ro)
                                   for d in (u_dirs, r_dirs))
    tests = {}
    for name, (su, sr) in scores.items():
        gu = None if groups is None else groups[:len(su)]
        tests[name] = compare(su, sr, groups=gu, seed=seed)
    return BasisTest(layer.name, units, groups, scores, tests)


def ablation_check(model, x: torch.Tensor, y: torch.Tensor, layer: Layer, *, n: int = 3,
                   seed: int = 0) -> float:
    """An independent check of :func:`advtut.basis.ablation_loss` on a real network: for ``n``
    random directions, the loss gained when the network itself runs on ``x`` ``(B, ...)`` with
    a forward pre-hook that projects the direction out of the input of the module after
    ``layer``, against the shortcut through ``layer.readout`` over the same images (the first B
    of the pool). Returns the largest absolute gap, in nats."""
    b = len(x)
    dirs = random_directions(layer.features.shape[1], n, seed=seed)
    ro = Readout(layer.readout.pre[:b], layer.readout.linear, layer.readout.rest)
    fast = ablation_loss(layer.features[:b], dirs, y[:b], ro)
    module = _consumer(model, layer.name)
    dev = next(model.parameters()).device
    xb, yb = x.to(dev), y[:b].to(dev)
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            base = F.cross_entropy(model(xb).double(), yb)
            slow = []
            for v in dirs.float().to(dev):
                def hook(_, args, v=v):
                    inp = args[0]
                    flat = inp.flatten(1)
                    return ((flat - (flat @ v)[:, None] * v).view_as(inp),)
                handle = module.register_forward_pre_hook(hook)
                try:
                    slow.append(F.cross_entropy(model(xb).double(), yb) - base)
                finally:
                    handle.remove()
    finally:
        model.train(was)
    return float((fast - torch.stack(slow).cpu()).abs().max())


#: The controls, in the order of the tables: (name, "positive" or "negative").
CONTROLS = (("sparse aligned code", "positive"), ("sparse aligned code, rotated", "negative"),
            ("clustered aligned code", "positive"),
            ("clustered aligned code, rotated", "negative"),
            ("relu3 in its ICA basis", "positive"), ("relu3's ICA basis, rotated", "negative"),
            ("relu3, rotated", "negative"))


def controls(relu3: Layer, judge: torch.Tensor, y: torch.Tensor, *, code_dim: int,
             ica_components: int, ica_fit: int | None, seed: int, **opts
             ) -> tuple[dict[str, BasisTest], dict]:
    """The :data:`CONTROLS`, each scored by :func:`basis_test` (``opts``: its settings), over the
    same pool (``judge``, ``y``) as the real layer ``relu3``. The aligned codes have ``code_dim``
    units (:func:`advtut.basis.aligned_code`): the sparse one fires on half of its class's
    images at sizes drawn from Exp(1), the clustered one on all of them at size 1 (plus
    half-normal noise of scale 0.05), so that every direction's top images share a label
    whatever the basis; the ICA basis keeps ``ica_components``
    components, fitted on the first ``ica_fit`` images. Returns the tests and facts for the
    page: the ICA fit's iterations and convergence, and the largest relative change of the Gram
    matrix of the first 500 images under each rotation."""
    sparse = aligned_code(y, dim=code_dim, seed=seed)
    clustered = aligned_code(y, dim=code_dim, fire=1.0, sizes="equal", noise=0.05, seed=seed)
    ica = ica_basis(relu3.features, relu3.readout, n_components=ica_components, seed=seed,
                    fit_on=ica_fit)
    layers = {"sparse aligned code": Layer("sparse aligned code", *sparse),
              "clustered aligned code": Layer("clustered aligned code", *clustered),
              "relu3 in its ICA basis": Layer("relu3 (ICA)", ica.sources, ica.readout)}
    gram = {}
    bases = (("sparse aligned code", layers["sparse aligned code"]),
             ("clustered aligned code", layers["clustered aligned code"]),
             ("relu3's ICA basis", layers["relu3 in its ICA basis"]), ("relu3", relu3))
    for i, (name, base) in enumerate(bases):
        q = random_rotation(base.features.shape[1], seed=seed + 10 + i)
        r = rotate(base.features, base.readout, q)
        layers[f"{name}, rotated"] = Layer(f"{name}, rotated", r.features, r.readout)
        a = base.features[:500].double()
        b = r.features[:500]
        gram[name] = float((a @ a.T - b @ b.T).abs().max() / (a @ a.T).abs().max())
    tests = {name: basis_test(layers[name], judge, y, seed=seed, **opts) for name, _ in CONTROLS}
    return tests, dict(ica_iter=ica.n_iter, ica_converged=ica.converged, gram=gram)


def sees_basis(positive: Comparison, band: float = 0.06) -> bool:
    """A score sees the basis of a positive control when units beat random directions by more
    than a negligible margin: P's whole 95% interval lies above ``0.5 + band``."""
    return positive.low > 0.5 + band


POSITIVE = tuple(name for name, kind in CONTROLS if kind == "positive")


def control_verdicts(tests: dict[str, BasisTest]) -> dict[str, str]:
    """For each score: ``"sees the basis"`` when it separates the units of every positive
    control from random directions (:func:`sees_basis`), ``"blind"`` when it separates none,
    otherwise ``"misses "`` and the controls it does not separate (``"misses clustered aligned
    code"``)."""
    out = {}
    for score in tests[POSITIVE[0]].tests:
        missed = [c for c in POSITIVE if not sees_basis(tests[c].tests[score])]
        out[score] = ("sees the basis" if not missed else
                      "blind" if len(missed) == len(POSITIVE) else "misses " + ", ".join(missed))
    return out
