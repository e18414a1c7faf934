"""Chapter 7 (attributions and gradient attacks): the networks, the data and the experiments.
The methods themselves live in :mod:`advtut.attribution` and :mod:`advtut.attacks.gradient`.

Source: the write-up on gradient x input attribution, the fast gradient sign method and
normalised-gradient steps on Fashion-MNIST and the flower photos: Benjamin Badger, "Input
Attribution and Adversarial Examples" (https://blbadger.github.io/input-adversarials.html; bib key
``badger_attribution``). Its numbers are in :mod:`advtut.chapters.attribution.source`, the
tables and results entries in :mod:`advtut.chapters.attribution.report`, the figures in
:mod:`advtut.chapters.attribution.plots`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from advtut.attacks.gradient import (
    flip_curve,
    gradient_step,
    loss_gradient,
    random_signs,
    step_direction,
)
from advtut.attribution import (
    TrainingRecorder,
    cascading_randomisation,
    edge_map,
    gradient,
    gradient_x_input,
    integrated_gradients,
    occlusion,
    rank_correlation,
)
from advtut.chapters.zoo import FLOWERS_CNN_TRAINING
from advtut.evaluation import error_rate
from advtut.evaluation import logits as model_logits
from advtut.models import ImageCNN, MnistCNN
from advtut.seeding import seeded
from advtut.training import train_minibatch

#: The binary flower pairs the source shows (class names of :data:`advtut.data.FLOWER_CLASSES`).
PAIRS = (("roses", "dandelion"), ("sunflowers", "tulips"), ("tulips", "roses"))

#: How each dataset's network trains (:func:`advtut.training.train_minibatch` settings).
TRAINING = {
    "fashion": dict(batch_size=64, lr=0.05, momentum=0.9, optimizer="sgd", schedule="cosine"),
    "flowers": FLOWERS_CNN_TRAINING,
}

#: The layers each network's sanity check re-initialises, top first (module names).
RANDOMISE = {
    "fashion": ("fc2", "fc1", "conv2", "conv1"),
    "flowers": ("fc", ("convs.2", "bns.2"), ("convs.1", "bns.1"), ("convs.0", "bns.0")),
}


def network(dataset: str, *, n_classes: int | None = None, image_size: int = 28) -> nn.Module:
    """The chapter's CNN for ``dataset``: ``"fashion"``, a 2-convolution
    :class:`~advtut.models.MnistCNN` with widths 16 and 32 and 128 hidden units (215,370
    parameters; the source's network has about 180,000); ``"flowers"``, a 3-block
    :class:`~advtut.models.ImageCNN` with widths 16, 32, 64 (any image size)."""
    if dataset == "fashion":
        return MnistCNN(widths=(16, 32), hidden=128, image_size=image_size)
    if dataset == "flowers":
        return ImageCNN(widths=(16, 32, 64), n_classes=n_classes or 5)
    raise ValueError(f"dataset must be 'fashion' or 'flowers', got {dataset!r}")


@dataclass(frozen=True)
class Trained:
    """A network before and after training. ``model``, ``initial``: eval mode, on the device;
    ``recorder``: the :class:`~advtut.attribution.TrainingRecorder` that followed the watched
    images (None when none were watched); ``accuracy``: on the test split; ``initial_accuracy``;
    ``epochs``, ``steps``, ``seconds``."""

    model: nn.Module
    initial: nn.Module
    recorder: TrainingRecorder | None
    accuracy: float
    initial_accuracy: float
    epochs: int
    steps: int
    seconds: float


def train(dataset: str, x: torch.Tensor, y: torch.Tensor, x_test: torch.Tensor,
          y_test: torch.Tensor, *, epochs: int, seed: int, device, n_classes: int,
          watch: tuple[torch.Tensor, torch.Tensor] | None = None, every: int = 10,
          progress: bool = True) -> Trained:
    """Train :func:`network` for ``dataset`` on ``x`` ``(N, C, H, W)`` in [0, 1] and ``y``
    ``(N,)`` with :data:`TRAINING`, weights and batch order seeded by ``seed``; with ``watch``
    (images, labels) a :class:`~advtut.attribution.TrainingRecorder` keeps their attribution
    every ``every`` updates."""
    device = torch.device(device)
    with seeded(seed):          # seeded weights; the caller's RNGs are kept
        model = network(dataset, n_classes=n_classes, image_size=x.shape[-1]).to(device)
    initial = copy.deepcopy(model).eval()
    recorder = None
    if watch is not None:
        recorder = TrainingRecorder(watch[0].to(device), watch[1].to(device), every=every)
        recorder.start(model)
    log = train_minibatch(model, x, y, epochs=epochs, seed=seed, callback=recorder,
                          progress=progress, desc=f"{dataset} CNN", **TRAINING[dataset])
    if log.diverged:
        raise RuntimeError(f"training the {dataset} CNN diverged: lower its learning rate")
    if recorder is not None:
        recorder.finish()
    model.eval()
    return Trained(model, initial, recorder, 1 - error_rate(model, x_test, y_test),
                   1 - error_rate(initial, x_test, y_test), epochs, log.n_steps, log.seconds)


def pick_per_class(y: torch.Tensor, *, per_class: int, n_classes: int) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of each class, class by class: ``(K p,)``."""
    picks = [torch.nonzero(y == k).flatten()[:per_class] for k in range(n_classes)]
    if any(len(p) < per_class for p in picks):
        raise ValueError(f"per_class: some class has fewer than {per_class} examples")
    return torch.cat(picks)


# --- the sign step, as the source shows it -----------------------------------------------------

def sign_step_examples(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                       seed: int) -> dict[str, torch.Tensor]:
    """The source's figure for images ``x`` ``(N, C, H, W)`` with labels ``y``: the class and
    softmax confidence of the original, of the perturbation ``eps * sign(g)`` alone, of
    ``x + eps * sign(g)`` and of ``x`` plus random signs of the same size. Returns tensors
    ``{"<what>_class": (N,), "<what>_conf": (N,)}`` for ``what`` in ``original``, ``alone``,
    ``adversarial``, ``random``, and the steps ``"perturbation"`` and ``"random_perturbation"``
    ``(N, C, H, W)``. Nothing is clipped (as in the source)."""
    pert = eps * step_direction(loss_gradient(model, x, y), kind="sign")
    rand = eps * random_signs(x, seed=seed)
    inputs = {"original": x, "alone": pert, "adversarial": x + pert, "random": x + rand}
    out = {"perturbation": pert, "random_perturbation": rand}
    for what, inp in inputs.items():
        p = torch.softmax(model_logits(model, inp).double(), 1)
        conf, cls = p.max(1)
        out[f"{what}_class"], out[f"{what}_conf"] = cls, conf
    return out


@dataclass(frozen=True)
class SignStepStats:
    """The sign step of size ``eps`` over ``n`` test images: ``flipped`` (fraction whose label
    changes), ``random_flipped`` (random signs of the same size), ``resist`` (``1 - flipped``:
    the source's "does not change its output"), ``alone_confidence`` (median softmax confidence
    of the perturbation alone), ``alone_confident`` (fraction of perturbations alone classified
    with confidence above 0.5)."""

    eps: float
    n: int
    flipped: float
    random_flipped: float
    resist: float
    alone_confidence: float
    alone_confident: float


def sign_step_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float,
                    seed: int, batch_size: int = 250) -> SignStepStats:
    """:class:`SignStepStats` of ``model`` on ``x``, ``y`` (batched)."""
    parts = [sign_step_examples(model, x[i:i + batch_size], y[i:i + batch_size], eps=eps,
                                seed=seed + i) for i in range(0, len(x), batch_size)]
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k.endswith(("_class", "_conf"))}
    flipped = float((cat["adversarial_class"] != cat["original_class"]).double().mean())
    rnd = float((cat["random_class"] != cat["original_class"]).double().mean())
    return SignStepStats(eps, len(x), flipped, rnd, 1 - flipped,
                         float(cat["alone_conf"].median()),
                         float((cat["alone_conf"] > 0.5).double().mean()))


@dataclass(frozen=True)
class FlipCurves:
    """Fraction of images whose label flips against the step size ``eps`` ``(E,)`` (the
    L-infinity size of a sign step), each ``(E,)`` float64 in [0, 1]: ``sign``, the sign step
    ``eps * sign(g)``; ``random``, random signs of the same size. With the normalised gradient
    (else None): ``l2`` ``(E,)``, the sign step's L2 size (mean over the images);
    ``l2_equal``, the normalised gradient with each image's sign-step L2 size; ``linf_equal``,
    the normalised gradient stretched to L-infinity ``eps``."""

    eps: torch.Tensor
    sign: torch.Tensor
    random: torch.Tensor
    l2: torch.Tensor | None = None
    l2_equal: torch.Tensor | None = None
    linf_equal: torch.Tensor | None = None


def flip_curves(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps, *, seed: int,
                normalised: bool = False) -> FlipCurves:
    """:class:`FlipCurves` of ``model`` on images ``x`` with labels ``y`` for the sizes
    ``eps``. Each image's normalised step has its sign step's L2 length, ``eps * sqrt(d_i)``
    with ``d_i`` the number of its pixels whose gradient is not zero; ``l2`` reports the mean
    over the images."""
    g = loss_gradient(model, x, y)
    eps_t = torch.tensor([float(e) for e in eps], dtype=torch.float64)

    def curve(kind, sizes):
        return flip_curve(model, x, step_direction(g, kind=kind), sizes.tolist(),
                          batch_size=250)

    out = dict(eps=eps_t, sign=curve("sign", eps_t),
               random=flip_curve(model, x, random_signs(x, seed=seed), eps_t.tolist(),
                                 batch_size=250))
    if normalised:
        # each image's sign step has L2 length eps * sqrt(d_i): give its normalised step the same
        root_d = (g.flatten(1) != 0).double().sum(1).sqrt().to(g.dtype)
        unit = step_direction(g, kind="l2") * root_d.view(-1, *(1,) * (g.ndim - 1))
        out.update(l2=eps_t * float(root_d.double().mean()),
                   l2_equal=flip_curve(model, x, unit, eps_t.tolist(), batch_size=250),
                   linf_equal=curve("linf_scaled", eps_t))
    return FlipCurves(**out)


# --- do gradients keep the input's features? --------------------------------------------------

def edge_correlation(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image, Spearman's correlation between ``|d loss / d x|`` (summed over channels) and
    the image's Sobel edges (:func:`~advtut.attribution.edge_map`): ``(N,)``. High when the
    gradient image shows the input's outlines, as the source sees after training."""
    g = loss_gradient(model, x, y).abs().sum(1, keepdim=True)
    return rank_correlation(g, edge_map(x))


# --- sanity checks ------------------------------------------------------------------------------

#: The gradient-based methods the sanity check compares, by the names the maps carry.
METHODS = ("gradient", "gradient x input", "integrated gradients")


def attribution_maps(model: nn.Module, x: torch.Tensor, target: torch.Tensor, *,
                     ig_steps: int) -> dict[str, torch.Tensor]:
    """Each of :data:`METHODS` for ``target``'s logit, as the magnitude a heat map shows:
    ``|gradient|``, the source's ``|gradient| * x`` and ``|integrated gradients|`` (black
    baseline, Gauss-Legendre with ``ig_steps`` nodes), each ``x``'s shape."""
    return {"gradient": gradient(model, x, target=target).abs(),
            "gradient x input": gradient_x_input(model, x, target=target),
            "integrated gradients": integrated_gradients(
                model, x, target=target, steps=ig_steps).attributions.abs()}


def all_maps(trained: Trained, x: torch.Tensor, target: torch.Tensor, *, patch: int,
             ig_steps: int) -> dict[str, torch.Tensor]:
    """Every map of the watched images ``x`` (those of ``trained.recorder``) for ``target``'s
    output: :func:`attribution_maps`, occlusion with a ``patch``-pixel window at half-patch
    stride (the drop, where positive) and the source's integral over training; each ``x``'s
    shape, as magnitudes."""
    maps = attribution_maps(trained.model, x, target, ig_steps=ig_steps)
    maps["occlusion"] = occlusion(trained.model, x, patch=patch, stride=max(1, patch // 2),
                                  target=target).clamp_min(0)
    maps["over training"] = trained.recorder.integrated.abs()
    return maps


def map_agreement(maps: dict[str, torch.Tensor], a: str, others) -> list[float]:
    """Mean rank correlation of map ``a`` with each map in ``others`` (magnitudes summed over
    channels), one float per other map."""
    def flat(m):
        return m.abs().sum(1, keepdim=True)

    return [float(rank_correlation(flat(maps[a]), flat(maps[b])).mean()) for b in others]


def sanity_check(trained: nn.Module, initial: nn.Module, layers, x: torch.Tensor,
                 target: torch.Tensor, *, seed: int, ig_steps: int) -> list[dict]:
    """Adebayo et al.'s cascading randomisation. For the trained network, each step of
    :func:`~advtut.attribution.cascading_randomisation` over ``layers`` (top first) and the
    untrained ``initial`` network: every method's mean rank correlation with the trained
    network's map (``"vs trained"``) and with the input itself (``"vs input"``: how much of the
    map is the picture). Returns one dict per network state: ``{"state", "<method> vs trained",
    "<method> vs input"}``."""
    picture = x.abs().sum(1, keepdim=True)
    reference = attribution_maps(trained, x, target, ig_steps=ig_steps)
    states = [("trained", trained)]
    states += [(f"+ {name}", m) for name, m in cascading_randomisation(trained, layers, seed=seed)]
    states += [("untrained", initial)]
    rows = []
    for state, model in states:
        maps = reference if model is trained else attribution_maps(model, x, target,
                                                                   ig_steps=ig_steps)
        row = {"state": state}
        for method, m in maps.items():
            flat = m.sum(1, keepdim=True)
            row[f"{method} vs trained"] = float(
                rank_correlation(flat, reference[method].sum(1, keepdim=True)).mean())
            row[f"{method} vs input"] = float(rank_correlation(flat, picture).mean())
        rows.append(row)
    return rows


def completeness(model: nn.Module, x: torch.Tensor, *, rules, steps: int) -> list[dict]:
    """Integrated gradients of the top logit on ``x`` with each quadrature rule in ``rules`` at
    ``steps`` nodes: ``{"rule", "steps", "mean |gap|", "max |gap|", "mean |f(x) - f(0)|"}``."""
    with torch.no_grad():
        f = model(x) - model(torch.zeros_like(x))
        top = model(x).argmax(1)
        change = float(f.gather(1, top[:, None]).abs().mean())
    rows = []
    for rule in rules:
        ig = integrated_gradients(model, x, steps=steps, rule=rule)
        rows.append({"rule": rule, "steps": steps, "mean |gap|": float(ig.gap.abs().mean()),
                     "max |gap|": float(ig.gap.abs().max()), "mean |f(x) - f(0)|": change})
    return rows


def fgsm_matches_foolbox(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                         eps: float) -> float | None:
    """The fraction of pixels where our sign step (clipped to [0, 1]) and foolbox's ``FGSM``
    differ by more than 1e-6 on the same model and images (0: the same images; a gradient
    within rounding of zero could take the other sign in either); None when foolbox is not
    installed (a development dependency)."""
    try:
        import foolbox
    except ImportError:
        return None
    fmodel = foolbox.PyTorchModel(model, bounds=(0, 1), device=x.device)
    _, theirs, _ = foolbox.attacks.FGSM()(fmodel, x, y, epsilons=eps)
    ours = gradient_step(model, x, y, eps=eps, bounds=(0, 1))
    return float(((ours - theirs).abs() > 1e-6).double().mean())
