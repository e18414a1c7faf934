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
import math
from dataclasses import dataclass

import torch
from torch import nn

from advtut.attacks.backwork import (
    SOURCE_SETTINGS,
    BackworkResult,
    backwork,
    backwork_many,
    layer_activations,
    similarity_costs,
)
from advtut.attacks.evolve import EvolveResult, evolve
from advtut.detection import Auroc, auroc, max_softmax_score
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
    """:func:`~advtut.attacks.backwork.backwork` for each label, seeded ``seed + label``, with
    ``settings`` passed on: ``{label: result}``. The labels run side by side in one batch
    (:func:`~advtut.attacks.backwork.backwork_many`), each as it would alone."""
    labels = [int(k) for k in labels]
    results = backwork_many(model, labels=labels, seeds=[seed + k for k in labels],
                            reference=reference, progress=progress, **settings)
    return dict(zip(labels, results))


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
    (:func:`measure`); ``labels`` the runs' labels and ``batch_fc1`` each run's batch cosine at
    fc1 in that order (the spread over noise starts behind the mean)."""

    scale: float
    converged: float
    steps: float
    reinits: float
    reference_cost: dict
    batch_cost: dict
    labels: tuple[int, ...] = ()
    batch_fc1: tuple[float, ...] = ()


def summarise(scale: float, runs: dict[int, BackworkResult], *, model: nn.Module,
              ruler: dict) -> SweepRow:
    """A :class:`SweepRow` from the runs of one setting, measured with ``ruler``."""
    rs = list(runs.values())
    measured = [measure(model, r.x, ruler) for r in rs]
    layers = measured[0].reference
    return SweepRow(scale, sum(bool(r.success.all()) for r in rs) / len(rs),
                    sum(r.n_iter for r in rs) / len(rs), sum(r.reinits for r in rs) / len(rs),
                    {k: sum(m.reference[k] for m in measured) / len(rs) for k in layers},
                    {k: sum(m.batch[k] for m in measured) / len(rs) for k in layers},
                    tuple(runs), tuple(m.batch["fc1"] for m in measured))


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
    costs change nothing; None when not both scales are run) and ``diff_mean`` the mean
    one, and the runs themselves, ``runs`` ``{scale: {label: result}}``."""

    rows: tuple[SweepRow, ...]
    diff: float | None
    runs: dict
    diff_mean: float | None = None


def sweep(model: nn.Module, reference: dict, *, scales, labels, max_iter: int, seed: int,
          ruler: dict, layer_coeffs=SOURCE_SETTINGS["layer_coeffs"],
          objective: str = "probability", min_iter: int = 0, known: dict | None = None,
          progress: bool = True) -> Sweep:
    """:func:`run_labels` on ``labels`` with ``layer_coeffs`` (one per reference layer; the
    source's by default) multiplied by each of ``scales``, at least ``min_iter`` and at most
    ``max_iter`` steps, the ``objective`` of :func:`~advtut.attacks.backwork.backwork` (the
    source's ``"probability"`` by default) and its other settings the source's; each scale
    measured with ``ruler``. ``known``: ``{scale: {label: result}}`` of runs already made with
    these settings under a larger cap (seeded as :func:`run_labels` seeds); a run that
    reached the threshold within ``max_iter`` steps and at least ``min_iter`` is the run this
    cap gives (up to the float rounding of a different batch of labels), and is reused.
    Returns a :class:`Sweep`."""
    if len(layer_coeffs) != len(reference):
        raise ValueError(f"layer_coeffs needs one coefficient per reference layer "
                         f"({list(reference)}), got {list(layer_coeffs)}")
    known = known or {}
    rows, images, all_runs = [], {}, {}
    for scale in scales:
        have = {k: r for k, r in known.get(float(scale), {}).items()
                if k in labels and bool(r.success.all()) and min_iter <= r.n_iter <= max_iter}
        todo = [k for k in labels if k not in have]
        new = run_labels(model, reference, labels=todo, seed=seed, progress=progress,
                         max_iter=max_iter, layer_coeffs=[c * scale for c in layer_coeffs],
                         objective=objective, min_iter=min_iter) if todo else {}
        runs = {int(k): (have[k] if k in have else new[int(k)]) for k in labels}
        rows.append(summarise(float(scale), runs, model=model, ruler=ruler))
        images[float(scale)] = torch.cat([r.x for r in runs.values()])
        all_runs[float(scale)] = runs
    diff = diff_mean = None
    if 0.0 in images and 1.0 in images:
        gap = (images[0.0] - images[1.0]).abs()
        diff, diff_mean = float(gap.max()), float(gap.double().mean())
    return Sweep(tuple(rows), diff, all_runs, diff_mean)


def curve_text(rows, *, fmt: str = ".3f") -> str:
    """A sweep's whole curve of the batch cosine at fc1 in words: each scale's mean over runs
    (with more than one run, its range over them in brackets), whether it falls at every step
    up in scale, and where it is lowest."""
    parts = []
    for r in rows:
        spread = (f" [{min(r.batch_fc1):{fmt}}, {max(r.batch_fc1):{fmt}}]"
                  if len(r.batch_fc1) > 1 else "")
        parts.append(f"{r.batch_cost['fc1']:{fmt}}{spread} at {r.scale:g}")
    ups = [(a, b) for a, b in zip(rows, rows[1:]) if b.batch_cost["fc1"] > a.batch_cost["fc1"]]
    shape = ("it falls at every step up in scale" if not ups else
             "it does not fall monotonically: it rises from scale "
             + ", and from ".join(f"{a.scale:g} to {b.scale:g}" for a, b in ups))
    lowest = min(rows, key=lambda r: r.batch_cost["fc1"]).scale
    return f"{'; '.join(parts)}: {shape}, and is lowest at scale {lowest:g}"


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
    fraction of uniform noise put in class 10); for new fooling images of the measured labels
    within the step budget: ``success`` (fraction of labels whose batch reached the
    threshold), ``steps`` (mean, at most the budget), ``capped`` (fraction of labels stopped
    by the budget), ``prob`` (mean of each batch's smallest target probability); and the
    previous round's fooling images put in class 10: ``trained_rejected`` (those of the
    training labels, which this network trained on) and ``held_rejected`` (those of the other
    labels, which it never saw; None at round 0 or without any)."""

    round: int
    test_accuracy: float
    noise_rejected: float
    success: float
    steps: float
    capped: float
    prob: float
    trained_rejected: float | None = None
    held_rejected: float | None = None


def within_budget(r: BackworkResult, budget: int, *, threshold: float = SOURCE_SETTINGS["threshold"]
                  ) -> tuple[bool, int, float]:
    """What a run would have given with at most ``budget`` steps, read from its trace (the
    same run up to there: a cap changes nothing before it): whether the batch reached
    ``threshold``, the steps taken and the batch's smallest target probability at the end."""
    if r.n_iter <= budget:
        return bool(r.success.all()), r.n_iter, float(r.prob.min())
    low = r.trace[:budget + 1].min(1).values.double()
    hit = (low >= threshold).nonzero()
    if len(hit):
        return True, int(hit[0, 0]), float(low[hit[0, 0]])
    return False, budget, float(low[budget])


def rejection_rounds(model: MnistCNN, reference_fn, x: torch.Tensor, y: torch.Tensor,
                     x_test: torch.Tensor, y_test: torch.Tensor, *, rounds: int, labels,
                     train_labels, budget: int, repeat: int, seed: int, settings: dict,
                     n_noise: int, first: dict[int, BackworkResult] | None = None,
                     epochs: int = 1, lr: float = 0.05, class10: str = "fooling",
                     progress: bool = True) -> tuple[list[RejectionRound], MnistCNN]:
    """Generate, add, retrain. Round 0 is ``model`` itself (its 11-class copy, whose 11th
    output is never chosen, predicts as it does); each later round adds the fooling images of
    ``train_labels`` found on the current network (label 10, each repeated ``repeat`` times)
    to the training digits ``x``, ``y`` and trains the network ``epochs`` more epochs (SGD with
    momentum at ``lr``, the book CNN's own rate, cosine schedule), and shows it
    the previous round's images of the other labels, held out. Fooling images of ``labels``
    are grown in every round with at most ``budget`` steps per label, with
    ``reference_fn(net)`` giving each network's reference directions and ``settings`` passed
    to :func:`run_labels`; ``first``: round 0's runs already made on ``model`` with these
    settings and any larger cap (:func:`within_budget` reads them at the budget), which may
    cover more labels than ``labels`` (the extra ones are held out at round 1).
    ``class10="noise"`` is the control: the same rounds, each adding as many uniform-noise
    images (seeded) as class 10 instead of the fooling images, so that what training an
    eleventh class on noise does by itself is not credited to the fooling images; ``repeat=0``
    trains on the digits alone. Returns one :class:`RejectionRound` per round
    (``rounds + 1``) and the last network."""
    if class10 not in ("fooling", "noise"):
        raise ValueError(f"class10 must be 'fooling' or 'noise', got {class10!r}")
    train_labels = {int(k) for k in train_labels}
    for k, v in (first or {}).items():
        if k in train_labels and v.n_iter > budget:
            raise ValueError(f"first: label {k}'s run took {v.n_iter} steps, more than the "
                             f"budget {budget}; its images are not the budget's: pass a "
                             f"larger budget or first=None")
    net = with_rejection_class(model)
    pool_x: list[torch.Tensor] = []
    out, prev = [], None
    for r in range(rounds + 1):
        if r == 0 and first is not None:
            runs = dict(first)
            measured = [within_budget(runs[int(k)], budget) for k in labels]
        else:
            runs = run_labels(net if r else model, reference_fn(net if r else model),
                              labels=labels, seed=seed + 100 * r, progress=progress,
                              max_iter=budget, **settings)
            measured = [(bool(v.success.all()), v.n_iter, float(v.prob.min()))
                        for v in runs.values()]
        pred = model_logits(net, x_test).argmax(1)

        def rejected(images):
            if not images:
                return None
            return float((model_logits(net, torch.cat(images)).argmax(1) == 10).double().mean())

        out.append(RejectionRound(
            r, float((pred == y_test.to(pred.device)).double().mean()),
            float(noise_rates(net, n=n_noise, seed=seed, n_classes=11)[10]),
            sum(m[0] for m in measured) / len(measured),
            sum(m[1] for m in measured) / len(measured),
            sum((not m[0]) and m[1] >= budget for m in measured) / len(measured),
            sum(m[2] for m in measured) / len(measured),
            rejected([v.x for k, v in prev.items() if k in train_labels]) if prev else None,
            rejected([v.x for k, v in prev.items() if k not in train_labels]) if prev else None))
        if r == rounds:
            break
        prev = runs
        found = [v.x.cpu() for k, v in runs.items() if k in train_labels]
        if class10 == "noise":           # as many noise images, seeded by the round
            n = sum(len(f) for f in found)
            found = [torch.rand(n, *x.shape[1:],
                                generator=torch.Generator().manual_seed(seed + 1_000 + r))]
        pool_x += found
        fx = torch.cat(pool_x).repeat(repeat, 1, 1, 1)      # empty with repeat=0
        fy = torch.full((len(fx),), 10, dtype=torch.long)
        train_minibatch(net, torch.cat([x.float(), fx]), torch.cat([y, fy]), epochs=epochs,
                        batch_size=128, lr=lr, momentum=0.9, schedule="cosine",
                        seed=seed + r, progress=False)
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
    target: torch.Tensor
    fooling_nearest_label: torch.Tensor
    noise_nearest_label: torch.Tensor

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
             scales, max_iter: int, seed: int, ruler: dict, n_nearest: int,
             known: dict | None = None) -> list[ReadingRow]:
    """The source's backworking of ``label`` under each of the four readings (two of
    :data:`ACTIVATIONS` by ``"mean"`` and ``"nearest"``), at each of ``scales`` times the
    source's layer coefficients, beside one run with the costs off (the same run for every
    reading: a zero coefficient leaves the gradient alone). ``x_ref``: the reference digits
    (the nearest reading uses the first ``n_nearest``); ``x_digits``: held-out real digits for
    the control, with as many uniform-noise images. The runs start from the same noise as
    :func:`run_labels`' (seed ``seed + label``). ``known``: ``{scale: result}`` of runs of
    ``label`` already made with the source's reading (before the ReLU, mean) and ``max_iter``
    (a :class:`Sweep`'s; scale 0 is the run with the costs off), reused."""
    from advtut.attacks.backwork import reference_directions

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

            source = act == "before the ReLU" and sim == "mean"
            if off is None:
                off = known.get(0.0) if known and 0.0 in known else backwork(
                    model, label=label, reference=ref, seed=seed + label, progress=False,
                    layer_coeffs=[0.0] * len(layers), max_iter=max_iter)
            for scale in scales:
                on = known[float(scale)] if source and known and float(scale) in known else \
                    backwork(model, label=label, reference=ref, seed=seed + label,
                             progress=False, layer_coeffs=[c * scale for c in coeffs],
                             max_iter=max_iter)
                out.append(ReadingRow(
                    act, sim, float(scale), score(digits), score(noise), score(off.x),
                    score(on.x), float((on.x - off.x).abs().max()), bool(on.success.all()),
                    measure(model, off.x, ruler).batch["fc1"],
                    measure(model, on.x, ruler).batch["fc1"]))
    return out


# --- without gradients, and a detector -------------------------------------------------------

def evolve_labels(model: nn.Module, *, labels, n_runs: int, seed: int, max_queries: int,
                  batch_size: int = 8, image_shape=(1, 28, 28), threshold: float = 0.999
                  ) -> dict[int, list[EvolveResult]]:
    """:func:`~advtut.attacks.evolve.evolve` ``n_runs`` times per label, each run from one of
    the noise images :func:`run_labels` starts that label's gradient search from (image ``i``
    of the batch seeded ``seed + label``; ``n_runs`` at most ``batch_size``), the search seeded
    ``seed + 100 * label + i``: ``{label: [result, ...]}``."""
    if not 1 <= n_runs <= batch_size:
        raise ValueError(f"n_runs must be in [1, {batch_size}] (one run per starting image of "
                         f"the gradient search's batch), got {n_runs}")
    out = {}
    for k in labels:
        start = torch.rand(batch_size, *image_shape,
                           generator=torch.Generator().manual_seed(seed + int(k)))
        out[int(k)] = [evolve(model, label=int(k), x0=start[i:i + 1], seed=seed + 100 * int(k) + i,
                              max_queries=max_queries, threshold=threshold,
                              image_shape=tuple(image_shape))
                       for i in range(n_runs)]
    return out


def first_crossing(r: BackworkResult, *, threshold: float = SOURCE_SETTINGS["threshold"]
                   ) -> torch.Tensor:
    """Per image of a run, the first step at which its target probability reached
    ``threshold`` (from :attr:`~advtut.attacks.backwork.BackworkResult.trace`; an image can
    cross earlier than the batch stops): long ``(B,)``, -1 where it never did."""
    hit = r.trace.double() >= threshold                       # (T, B)
    first = hit.double().argmax(0)                            # the first True, or 0
    return torch.where(hit.any(0), first, torch.full_like(first, -1))


@dataclass(frozen=True)
class DetectorRow:
    """The maximum softmax probability as a detector: held-out digits (scored high, the
    positives) against the ``n`` images of ``name``; ``auroc`` with its interval (0.5: cannot
    tell them apart; below 0.5: the images score higher than digits); ``fpr95``: the share of
    the images the detector lets through at the threshold that keeps 95% of the digits (the
    false-positive rate at 95% true-positive rate); ``median_p``: the images' median
    top-class probability, in float64."""

    name: str
    n: int
    auroc: Auroc
    fpr95: float
    median_p: float


def msp_detector(model: nn.Module, digits: torch.Tensor, groups: dict[str, torch.Tensor]
                 ) -> list[DetectorRow]:
    """:class:`DetectorRow` of each of ``groups`` (``{name: images (n, ...)}``) against the
    held-out ``digits`` (:func:`~advtut.detection.max_softmax_score` of ``model``, AUROC by
    :func:`~advtut.detection.auroc`). Give one group of other held-out digits as the negative
    control (the answer must be 0.5) and one of uniform noise."""
    s_in = max_softmax_score(model_logits(model, digits))
    keep = torch.quantile(s_in, 0.05, interpolation="lower")    # 95% of digits score >= it
    rows = []
    for name, x in groups.items():
        z = model_logits(model, x)
        s_out = max_softmax_score(z)
        p = torch.softmax(z.double(), 1).max(1).values.cpu()
        rows.append(DetectorRow(name, len(x), auroc(s_in, s_out),
                                float((s_out >= keep).double().mean()), float(p.median())))
    return rows


def share_confident(model: nn.Module, x: torch.Tensor, *, threshold: float) -> float:
    """The fraction of ``x`` whose top softmax probability is at least ``threshold``
    (compared as log-odds, :func:`~advtut.detection.max_softmax_score`, so that no rounding
    to 1.0 decides it)."""
    s = max_softmax_score(model_logits(model, x))
    return float((s >= math.log(threshold / (1 - threshold))).double().mean())
