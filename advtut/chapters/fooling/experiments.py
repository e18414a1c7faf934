"""Chapter 6 (fooling images grown from noise): the experiments around
:func:`advtut.attacks.backwork.backwork` on the book's MNIST CNN.

Source: the write-up on backworking fooling images from noise for an MNIST CNN, with layer-wise
reference and batch dissimilarity costs and re-initialisation of stuck inputs: Alex Vig,
"Backworking strongly classified spurious inputs in CNNs" (2015,
http://jalexvig.github.io/blog/cnn-backwork/; bib key ``vig2015backworking``). It echoes Nguyen
et al. (2015, ``nguyen2015deep``). Its numbers are in :mod:`advtut.chapters.fooling.source`, the
tables and results entries in :mod:`advtut.chapters.fooling.report`, the figures in
:mod:`advtut.chapters.fooling.plots`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from advtut.attacks.backwork import (
    SOURCE_SETTINGS,
    BackworkResult,
    backwork,
    layer_activations,
    similarity_costs,
)
from advtut.evaluation import logits as model_logits
from advtut.models import FC, MnistCNN
from advtut.seeding import seeded
from advtut.training import train_minibatch

#: The layers the source's costs sit on for our CNN: "each input/hidden layer", lowest first
#: (four, as the source's four layer coefficients; the logits are left out).
LAYERS = ("input", "conv1", "conv2", "fc1")

#: The layers every sweep is measured on, with centred cosines (see :func:`measure`).
MEASURE_LAYERS = ("conv2", "fc1")


#: Our design where the costs matter (section "A design where the costs matter"): the costs
#: on the hidden layers only (the logits of images that must all say the same label cannot be
#: made unlike each other), each activation centred on the training data's mean before the
#: cosine, the logit-margin objective (a constant pull until the threshold is guaranteed), and
#: descent that goes on for ``min_iter`` steps after reaching the threshold so the costs can act.
#: ``layer_coeffs``: one coefficient per costed layer before a sweep's scale; ``coeff``: the
#: scale the chapter shows.
DESIGN = dict(layers=("conv2", "fc1"), center=True, objective="margin",
              layer_coeffs=(1.0, 1.0), coeff=10.0)


def run_labels(model: nn.Module, reference: dict, *, labels=range(10), seed: int,
               progress: bool = True, **settings) -> dict[int, BackworkResult]:
    """:func:`~advtut.attacks.backwork.backwork` for each label (seeded ``seed + label``),
    with ``settings`` passed on, under one progress bar: ``{label: result}``."""
    from tqdm.auto import tqdm

    out = {}
    for k in tqdm(list(labels), desc="labels", disable=not progress, mininterval=2.0):
        out[int(k)] = backwork(model, label=int(k), reference=reference, seed=seed + int(k),
                               progress=False, **settings)
    return out


@dataclass(frozen=True)
class Worst:
    """The least typical training images: ``index`` ``(n,)`` into the training set and
    ``p`` ``(n,)``, the model's probability of each one's own label (ascending)."""

    index: torch.Tensor
    p: torch.Tensor


def worst_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, n: int = 8) -> Worst:
    """The ``n`` training images ``x`` (labels ``y``) the model gives the lowest probability
    of their own label (the source's second figure)."""
    p = torch.softmax(model_logits(model, x).double(), 1)
    own = p.gather(1, y[:, None].to(p.device))[:, 0]
    worst = own.argsort()[:n]
    return Worst(worst, own[worst])


@dataclass(frozen=True)
class Costs:
    """The reference and batch costs of a set of images, ``{layer: float}`` each."""

    reference: dict
    batch: dict


@torch.no_grad()
def measure(model: nn.Module, x: torch.Tensor, reference: dict) -> Costs:
    """The reference and batch costs (:func:`~advtut.attacks.backwork.similarity_costs`) of
    the images ``x`` ``(B, ...)`` against ``reference``: one ruler for every design (the
    chapter uses centred cosines on :data:`MEASURE_LAYERS`), floats per layer."""
    ref, bat = similarity_costs(layer_activations(model, x), reference)
    return Costs({k: float(v) for k, v in ref.items()}, {k: float(v) for k, v in bat.items()})


@dataclass(frozen=True)
class SweepRow:
    """One setting of a cost sweep (``scale``: the multiplier of the layer coefficients): the
    fraction of runs (labels) whose batch ``converged``, mean ``steps`` and ``reinits``, and
    the mean reference and batch costs per layer of the final images measured with one ruler
    (:func:`measure`)."""

    scale: float
    converged: float
    steps: float
    reinits: float
    reference_cost: dict
    batch_cost: dict


def summarise(scale: float, runs: dict[int, BackworkResult], *, model: nn.Module,
              ruler: dict) -> SweepRow:
    """A :class:`SweepRow` from the runs of one setting, measured with ``ruler``."""
    rs = list(runs.values())
    measured = [measure(model, r.x, ruler) for r in rs]
    layers = measured[0].reference
    return SweepRow(scale, sum(bool(r.success.all()) for r in rs) / len(rs),
                    sum(r.n_iter for r in rs) / len(rs), sum(r.reinits for r in rs) / len(rs),
                    {k: sum(m.reference[k] for m in measured) / len(rs) for k in layers},
                    {k: sum(m.batch[k] for m in measured) / len(rs) for k in layers})


def digit_baseline(model: nn.Module, x: torch.Tensor, y: torch.Tensor, ruler: dict, *,
                   per_label: int = 8) -> Costs:
    """The same costs for real digits: batches of the first ``per_label`` training images of
    each label, averaged over labels (what a batch of real 3s scores on the ruler)."""
    refs, bats = [], []
    for k in range(10):
        c = measure(model, x[y == k][:per_label].to(next(model.parameters()).device), ruler)
        refs.append(c.reference)
        bats.append(c.batch)
    return Costs({k: sum(r[k] for r in refs) / 10 for k in refs[0]},
                 {k: sum(b[k] for b in bats) / 10 for k in bats[0]})


@dataclass(frozen=True)
class Sweep:
    """A cost sweep: one :class:`SweepRow` per scale (``rows``), ``diff`` the largest pixel
    difference between the images at scale 0 and at scale 1 when both are swept (0.0: the
    costs change nothing; None when not both scales are run), and the runs themselves,
    ``runs`` ``{scale: {label: result}}``."""

    rows: tuple[SweepRow, ...]
    diff: float | None
    runs: dict


def sweep(model: nn.Module, reference: dict, *, scales, labels, max_iter: int, seed: int,
          ruler: dict, layer_coeffs=SOURCE_SETTINGS["layer_coeffs"],
          objective: str = "probability", min_iter: int = 0, progress: bool = True) -> Sweep:
    """:func:`run_labels` on ``labels`` with ``layer_coeffs`` (one per reference layer; the
    source's by default) multiplied by each of ``scales``, at least ``min_iter`` and at most
    ``max_iter`` steps, the ``objective`` of :func:`~advtut.attacks.backwork.backwork` (the
    source's ``"probability"`` by default) and its other settings the source's; each scale
    measured with ``ruler``. Returns a :class:`Sweep`."""
    if len(layer_coeffs) != len(reference):
        raise ValueError(f"layer_coeffs needs one coefficient per reference layer "
                         f"({list(reference)}), got {list(layer_coeffs)}")
    rows, images, all_runs = [], {}, {}
    for scale in scales:
        runs = run_labels(model, reference, labels=labels, seed=seed, progress=progress,
                          max_iter=max_iter, layer_coeffs=[c * scale for c in layer_coeffs],
                          objective=objective, min_iter=min_iter)
        rows.append(summarise(float(scale), runs, model=model, ruler=ruler))
        images[float(scale)] = torch.cat([r.x for r in runs.values()])
        all_runs[float(scale)] = runs
    diff = None
    if 0.0 in images and 1.0 in images:
        diff = float((images[0.0] - images[1.0]).abs().max())
    return Sweep(tuple(rows), diff, all_runs)


# --- transfer ---------------------------------------------------------------------------------

def train_mlp(x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int, device
              ) -> nn.Module:
    """A sigmoid MLP (784-256-10, :class:`advtut.models.FC`) trained with SGD and momentum on
    ``x`` ``(N, 1, 28, 28)``, ``y``; its weights and batch order seeded by ``seed``."""
    with seeded(seed):
        mlp = FC((256,)).to(device)
    train_minibatch(mlp, x, y, epochs=epochs, batch_size=64, lr=0.1, momentum=0.9,
                    schedule="cosine", seed=seed, progress=False)
    return mlp.eval()


def noise_rates(model: nn.Module, *, n: int, seed: int, image_shape=(1, 28, 28),
                n_classes: int = 10) -> torch.Tensor:
    """The fraction of ``n`` uniform-noise images (seeded) the model puts in each class:
    ``(n_classes,)``, the chance level of a label for images that carry no digit."""
    x = torch.rand(n, *image_shape, generator=torch.Generator().manual_seed(seed))
    pred = model_logits(model, x).argmax(1)
    return torch.bincount(pred, minlength=n_classes)[:n_classes].double() / n


def transfer(model: nn.Module, runs: dict[int, BackworkResult]) -> dict[int, tuple[float, float]]:
    """For each label's fooling images: the fraction ``model`` also classifies as that label
    and its mean probability of it: ``{label: (rate, mean probability)}``."""
    out = {}
    for label, r in runs.items():
        p = torch.softmax(model_logits(model, r.x).double(), 1)
        out[label] = (float((p.argmax(1) == label).double().mean()), float(p[:, label].mean()))
    return out


# --- a rejection class --------------------------------------------------------------------------

def with_rejection_class(model: MnistCNN) -> MnistCNN:
    """An 11-class copy of ``model`` (class 10: "fooling image"): every weight copied; the new
    output row's weights zero and its bias 10 below the smallest of the others, so the copy
    predicts as ``model`` does wherever some logit exceeds that constant (almost always)."""
    with seeded(None):          # its initial weights are overwritten at once
        new = MnistCNN(n_classes=11, widths=(model.conv1.out_channels,
                                             model.conv2.out_channels),
                       hidden=model.fc1.out_features).to(model.fc2.weight.device)
    state = copy.deepcopy(model.state_dict())
    w, b = state["fc2.weight"], state["fc2.bias"]
    state["fc2.weight"] = torch.cat([w, torch.zeros_like(w[:1])])
    state["fc2.bias"] = torch.cat([b, b.min().reshape(1) - 10])   # starts out never chosen
    new.load_state_dict(state)
    return new.eval()


@dataclass(frozen=True)
class RejectionRound:
    """After ``round`` rounds of training with fooling images as class 10: ``test_accuracy``
    on the clean test digits (a digit called class 10 is an error), ``noise_rejected`` (the
    fraction of uniform noise put in class 10), and for new fooling images with the step
    budget: ``success`` (fraction of labels whose batch reached the threshold), ``steps``
    (mean), ``prob`` (mean of each batch's smallest target probability)."""

    round: int
    test_accuracy: float
    noise_rejected: float
    success: float
    steps: float
    prob: float


def rejection_rounds(model: MnistCNN, reference_fn, x: torch.Tensor, y: torch.Tensor,
                     x_test: torch.Tensor, y_test: torch.Tensor, *, rounds: int, labels,
                     budget: int, repeat: int, seed: int, settings: dict, n_noise: int,
                     progress: bool = True) -> tuple[list[RejectionRound], MnistCNN]:
    """Generate, add, retrain: round 0 measures ``model`` given an 11th output that is never
    chosen; each later round adds the fooling images found on the current network (label 10,
    each repeated ``repeat`` times) to the training digits ``x``, ``y`` and trains the network
    one more epoch. Fooling images are measured with at most ``budget`` steps per label
    (``labels``), with ``reference_fn(model)`` giving each network's reference directions.
    ``repeat=0`` is the control: the same rounds of training on the digits alone.
    Returns one :class:`RejectionRound` per round (``rounds + 1``) and the last network."""
    net = with_rejection_class(model)
    pool_x, pool_y = [], []
    out = []
    for r in range(rounds + 1):
        runs = run_labels(net, reference_fn(net), labels=labels, seed=seed + 100 * r,
                          progress=progress, max_iter=budget, **settings)
        pred = model_logits(net, x_test).argmax(1)
        out.append(RejectionRound(
            r, float((pred == y_test.to(pred.device)).double().mean()),
            float(noise_rates(net, n=n_noise, seed=seed, n_classes=11)[10]),
            sum(bool(v.success.all()) for v in runs.values()) / len(runs),
            sum(v.n_iter for v in runs.values()) / len(runs),
            sum(float(v.prob.min()) for v in runs.values()) / len(runs)))
        if r == rounds:
            break
        pool_x += [v.x.cpu() for v in runs.values()]
        pool_y += [torch.full((len(v.x),), 10, dtype=torch.long) for v in runs.values()]
        fx = torch.cat(pool_x).repeat(repeat, 1, 1, 1)      # empty for the control
        fy = torch.cat(pool_y).repeat(repeat)
        train_minibatch(net, torch.cat([x.float(), fx]), torch.cat([y, fy]), epochs=1,
                        batch_size=128,
                        lr=0.01, momentum=0.9, schedule="cosine", seed=seed + r,
                        progress=False)
        net.eval()
    return out, net


def confusion(model: nn.Module, runs: dict[int, BackworkResult], *, n_classes: int = 10
              ) -> torch.Tensor:
    """Target by predicted: ``(len(runs), n_classes)`` counts, row ``i`` the fooling images of
    the ``i``-th label of ``runs`` (in its order), column ``j`` how many ``model`` calls
    ``j``."""
    rows = []
    for r in runs.values():
        pred = model_logits(model, r.x).argmax(1).cpu()
        rows.append(torch.bincount(pred, minlength=n_classes)[:n_classes])
    return torch.stack(rows)


@dataclass(frozen=True)
class DigitDistances:
    """L2 distances (pixels in [0, 1]) to the nearest training digit, ``(n,)`` each:
    ``fooling`` for the fooling images, ``fooling_own`` to the nearest digit of the fooling
    image's own target label, ``held_out`` for held-out real digits (to the nearest training
    digit of their label: how near a real digit lies), ``noise`` for uniform noise; and
    ``within_label``: the distances between random pairs of training digits of one label (the
    typical distance within a label); ``target`` the fooling images' labels and the labels of
    the nearest training digits of the fooling and noise images."""

    fooling: torch.Tensor
    fooling_own: torch.Tensor
    held_out: torch.Tensor
    noise: torch.Tensor
    within_label: torch.Tensor
    target: torch.Tensor | None = None
    fooling_nearest_label: torch.Tensor | None = None
    noise_nearest_label: torch.Tensor | None = None

    @property
    def nearest_is_target(self) -> float:
        """The fraction of fooling images whose nearest training digit has their target."""
        return float((self.fooling_nearest_label == self.target).double().mean())

    @property
    def noise_favourite(self) -> float:
        """The largest share of noise images whose nearest training digit has one label."""
        return float(torch.bincount(self.noise_nearest_label, minlength=10).max()
                     / len(self.noise_nearest_label))


def digit_distances(runs: dict[int, BackworkResult], x_train: torch.Tensor,
                    y_train: torch.Tensor, x_held: torch.Tensor, y_held: torch.Tensor, *,
                    n_pairs: int = 1_000, n_noise: int = 100, seed: int = 0
                    ) -> DigitDistances:
    """:class:`DigitDistances` of the fooling images of ``runs`` against the training digits
    ``x_train`` ``(N, 1, 28, 28)``, ``y_train``; ``x_held``, ``y_held``: real digits not in
    ``x_train``; ``n_pairs`` random same-label pairs and ``n_noise`` noise images (seeded);
    also the label of each fooling and noise image's nearest training digit.
    Distances are exact (no ``|x|^2 - 2 x.y + |y|^2`` shortcut), in float64."""
    flat = x_train.flatten(1).double().cpu()
    y_train = y_train.cpu()

    def nearest(x: torch.Tensor, pool: torch.Tensor, which: bool = False):
        d = torch.cdist(x.flatten(1).double().cpu(), pool,           # exact, no x.y trick
                        compute_mode="donot_use_mm_for_euclid_dist").min(1)
        return (d.values, d.indices) if which else d.values

    fx = torch.cat([r.x for r in runs.values()])
    fy = torch.cat([torch.full((len(r.x),), k) for k, r in runs.items()])
    own = torch.cat([nearest(fx[fy == k], flat[y_train == k]) for k in runs])
    held = torch.cat([nearest(x_held[y_held.cpu() == k], flat[y_train == k])
                      for k in range(10) if (y_held.cpu() == k).any()])
    g = torch.Generator().manual_seed(seed)
    noise, noise_at = nearest(torch.rand(n_noise, *x_train.shape[1:], generator=g), flat,
                              which=True)
    i = torch.randint(len(flat), (n_pairs,), generator=g)
    pairs = []
    for a in i.tolist():
        same = (y_train == y_train[a]).nonzero()[:, 0]
        b = same[torch.randint(len(same), (1,), generator=g)]
        pairs.append(float((flat[a] - flat[b]).norm()) if int(b) != a else None)
    within = torch.tensor([p for p in pairs if p is not None], dtype=torch.float64)
    fool, fool_at = nearest(fx, flat, which=True)
    return DigitDistances(fool, own, held, noise, within, fy, y_train[fool_at],
                          y_train[noise_at])


#: The two readings of "neuron activations" (the source's costed layers, lowest first):
#: our CNN's layers before the ReLU, and after it.
ACTIVATIONS = {"before the ReLU": LAYERS, "after the ReLU": ("input", "relu1", "relu2", "relu3")}


@dataclass(frozen=True)
class ReadingRow:
    """One reading of the source's costs (``activations``: a key of :data:`ACTIVATIONS`;
    ``similarity``: ``"mean"`` or ``"nearest"``), scored at its top costed layer (fc1 or its
    ReLU) by its own reference cost: for held-out real ``digits``, uniform ``noise``, fooling
    images grown with the costs ``off`` and with them ``on`` at ``scale`` times the source's
    coefficients; ``diff``: the largest pixel difference between the off and on images;
    ``converged``: the on batch reached the threshold; ``batch_on``: the chapter's ruler's
    batch cosine at fc1 of the on images (``batch_off`` of the off ones)."""

    activations: str
    similarity: str
    scale: float
    digits: float
    noise: float
    off: float
    on: float
    diff: float
    converged: bool
    batch_off: float
    batch_on: float


def readings(model: nn.Module, x_ref: torch.Tensor, x_digits: torch.Tensor, *, label: int,
             scales, max_iter: int, seed: int, ruler: dict, n_nearest: int) -> list[ReadingRow]:
    """The source's backworking of ``label`` under each of the four readings (two of
    :data:`ACTIVATIONS` by ``"mean"`` and ``"nearest"``), at each of ``scales`` times the
    source's layer coefficients, beside one run with the costs off (the same run for every
    reading: a zero coefficient leaves the gradient alone). ``x_ref``: the reference digits
    (the nearest reading uses the first ``n_nearest``); ``x_digits``: held-out real digits for
    the control, with as many uniform-noise images. The runs start from the same noise as
    :func:`run_labels`' (seed ``seed + label``)."""
    from advtut.attacks.backwork import SOURCE_SETTINGS, reference_directions

    dev = next(model.parameters()).device
    noise = torch.rand(len(x_digits), *x_digits.shape[1:],
                       generator=torch.Generator().manual_seed(seed)).to(dev)
    digits = x_digits.to(dev)
    coeffs = SOURCE_SETTINGS["layer_coeffs"]
    out = []
    off = None
    for act, layers in ACTIVATIONS.items():
        for sim in ("mean", "nearest"):
            refs = x_ref if sim == "mean" else x_ref[:n_nearest]
            ref = reference_directions(model, refs, layers=layers, reading=sim)
            top = layers[-1]

            def score(x, ref=ref, top=top):
                return measure(model, x, {top: ref[top]}).reference[top]

            if off is None:
                off = backwork(model, label=label, reference=ref, seed=seed + label,
                               progress=False,
                               layer_coeffs=[0.0] * len(layers), max_iter=max_iter)
            for scale in scales:
                on = backwork(model, label=label, reference=ref, seed=seed + label,
                              progress=False,
                              layer_coeffs=[c * scale for c in coeffs], max_iter=max_iter)
                out.append(ReadingRow(
                    act, sim, float(scale), score(digits), score(noise), score(off.x),
                    score(on.x), float((on.x - off.x).abs().max()), bool(on.success.all()),
                    measure(model, off.x, ruler).batch["fc1"],
                    measure(model, on.x, ruler).batch["fc1"]))
    return out
