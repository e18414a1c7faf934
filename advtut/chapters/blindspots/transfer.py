"""Chapter 4's Tables 2 and 4: every model on every model's adversarial images, and on noise.

Szegedy et al. (2014), section 4.2: adversarial examples made for one network fool others
(Table 2: the same data; Table 4: networks trained on disjoint halves of the training set).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from advtut.attacks.sets import amplify, gaussian_noise
from advtut.distances import rms
from advtut.evaluation import error_matrix

__all__ = ["CrossErrors", "cross_model_errors", "transfer_errors", "off_diagonal_mean"]


@dataclass(frozen=True)
class CrossErrors:
    """``errors[row][model]``: each model's error on each row's images; ``distortion[row]``:
    the row's mean distortion (:func:`advtut.distances.rms`)."""

    errors: dict[str, dict[str, float]]
    distortion: dict[str, float]


def cross_model_errors(models, sets, x, y, *, seed: int) -> CrossErrors:
    """Table 2: every model on every model's adversarial set, and on ``x`` with Gaussian noise
    of stddev 0.1 and 0.3 (seeds ``seed`` and ``seed + 1``)."""
    inputs = {name: (s.x_adv, s.y) for name, s in sets.items()}
    dist = {name: float(s.distortion.mean()) for name, s in sets.items()}
    for k, std in enumerate((0.1, 0.3)):
        noisy = gaussian_noise(x, std, seed=seed + k)
        inputs[f"Gaussian noise, stddev={std}"] = (noisy, y)
        dist[f"Gaussian noise, stddev={std}"] = float(rms(noisy, x).mean())
    return CrossErrors(error_matrix(models, inputs), dist)


def transfer_errors(models, sets, x, y, *, seed: int) -> CrossErrors:
    """Table 4: every model on every model's adversarial set of ``x``; on ``x`` with noise of
    the sets' mean distortion (seed ``seed``); on each set amplified to distortion 0.1
    (:func:`~advtut.attacks.sets.amplify`); on ``x`` with noise of stddev 0.1 (``seed + 1``).
    Every row's distortion is measured on the images themselves."""
    inputs = {f"Distorted for {name}": (s.x_adv, s.y) for name, s in sets.items()}
    mean_adv = float(np.mean([float(s.distortion.mean()) for s in sets.values()]))
    inputs["Gaussian noise (adversarial stddev)"] = (gaussian_noise(x, mean_adv, seed=seed), y)
    for name, s in sets.items():
        inputs[f"Distorted for {name} amplified"] = (amplify(s.x, s.x_adv, to=0.1), s.y)
    inputs["Gaussian noise (stddev 0.1)"] = (gaussian_noise(x, 0.1, seed=seed + 1), y)
    dist = {row: float(rms(xr, x).mean()) for row, (xr, _) in inputs.items()}
    return CrossErrors(error_matrix(models, inputs), dist)


def off_diagonal_mean(errors: dict[str, dict[str, float]], names, *, row: str = "{}") -> float:
    """The mean of ``errors[row.format(r)][c]`` over ``r != c`` in ``names``: how often one
    model's adversarial images fool the others."""
    return float(np.mean([errors[row.format(r)][c] for r in names for c in names if r != c]))
