"""Chapter 4's source, as data: Szegedy et al., "Intriguing properties of neural networks"
(ICLR 2014), section 4.2.

- :data:`TABLE1` and :data:`SPLIT`: the paper's models as :class:`ModelSpec` rows (Table 1's
  six, Table 3's three trained on disjoint halves); :data:`LINEAR`: the linear ones.
- :data:`PAPER_TABLE1` to :data:`PAPER_TABLE4`, :data:`PAPER_NOISE_ACCURACY`,
  :data:`PAPER_AMPLIFICATION_GAIN`, :data:`PAPER_ADVERSARIAL_TRAINING`: its numbers, each with
  its place in the paper. Errors are fractions; distortions the paper's
  ``sqrt(sum((x' - x)^2) / n)``, ``n = 784``.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ModelSpec", "KINDS", "TABLE1", "SPLIT", "LINEAR", "PAPER_TABLE1", "PAPER_TABLE2",
           "PAPER_TABLE2_DISTORTION", "PAPER_TABLE3", "PAPER_TABLE4", "PAPER_NOISE_ACCURACY",
           "PAPER_AMPLIFICATION_GAIN", "PAPER_ADVERSARIAL_TRAINING"]

#: The model kinds: a softmax on pixels, a sigmoid network, an autoencoder with a softmax.
KINDS = ("fc10", "fc", "ae")


@dataclass(frozen=True)
class ModelSpec:
    """One model of the paper's tables: ``name`` as printed there, ``kind`` (``"fc10"``, ``"fc"``,
    ``"ae"``), ``lambdas`` (one weight decay, or one per linear layer), ``hidden`` widths for
    ``"fc"`` (and ``(400,)`` for ``"ae"``), the paper's ``description``."""

    name: str
    kind: str
    lambdas: float | tuple[float, ...]
    hidden: tuple[int, ...] = ()
    description: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


_NET_DECAY = (1e-5, 1e-5, 1e-6)
#: The six models of Tables 1 and 2: the paper's names, kinds and weight decays.
TABLE1 = (
    ModelSpec("FC10(1e-4)", "fc10", 1e-4, description="Softmax with λ=1e-4"),
    ModelSpec("FC10(1e-2)", "fc10", 1e-2, description="Softmax with λ=1e-2"),
    ModelSpec("FC10(1)", "fc10", 1.0, description="Softmax with λ=1"),
    ModelSpec("FC100-100-10", "fc", _NET_DECAY, (100, 100), "Sigmoid network λ=1e-5, 1e-5, 1e-6"),
    ModelSpec("FC200-200-10", "fc", _NET_DECAY, (200, 200), "Sigmoid network λ=1e-5, 1e-5, 1e-6"),
    ModelSpec("AE400-10", "ae", 1e-6, (400,), "Autoencoder with Softmax λ=1e-6"),
)
#: The three networks of Table 3, each trained on one half (P1 or P2) of the training digits.
SPLIT = (
    ModelSpec("FC100-100-10", "fc", _NET_DECAY, (100, 100), "100-100-10 trained on P1"),
    ModelSpec("FC123-456-10", "fc", _NET_DECAY, (123, 456), "123-456-10 trained on P1"),
    ModelSpec("FC100-100-10'", "fc", _NET_DECAY, (100, 100), "100-100-10 trained on P2"),
)
#: The linear models (a loss convex in the image: the attack may settle large ``c`` at once).
LINEAR = tuple(s.name for s in TABLE1 if s.kind == "fc10")

# --- The paper's numbers (Szegedy et al., 2014, section 4.2) -----------------------------------
_T1 = tuple(s.name for s in TABLE1)
_T3 = tuple(s.name for s in SPLIT)

#: Table 1: training error, test error and "av. min. distortion" of each model.
PAPER_TABLE1 = {
    "FC10(1e-4)": dict(train_error=0.067, test_error=0.074, distortion=0.062),
    "FC10(1e-2)": dict(train_error=0.10, test_error=0.094, distortion=0.1),
    "FC10(1)": dict(train_error=0.212, test_error=0.20, distortion=0.14),
    "FC100-100-10": dict(train_error=0.0, test_error=0.0164, distortion=0.058),
    "FC200-200-10": dict(train_error=0.0, test_error=0.0154, distortion=0.065),
    "AE400-10": dict(train_error=0.0057, test_error=0.019, distortion=0.086),
}

#: Table 2: each model's error (columns, Table 1's models) on the training images distorted for
#: each row's model, or noised.
PAPER_TABLE2 = {row: dict(zip(_T1, errors)) for row, errors in {
    "FC10(1e-4)": (1.00, 0.117, 0.227, 0.02, 0.039, 0.027),
    "FC10(1e-2)": (0.871, 1.00, 0.352, 0.359, 0.273, 0.098),
    "FC10(1)": (0.719, 0.762, 1.00, 0.481, 0.47, 0.344),
    "FC100-100-10": (0.289, 0.137, 0.211, 1.00, 0.066, 0.02),
    "FC200-200-10": (0.382, 0.14, 0.238, 0.203, 1.00, 0.027),
    "AE400-10": (0.234, 0.16, 0.248, 0.094, 0.066, 1.00),
    "Gaussian noise, stddev=0.1": (0.05, 0.101, 0.183, 0.0, 0.0, 0.008),
    "Gaussian noise, stddev=0.3": (0.156, 0.113, 0.227, 0.05, 0.043, 0.031),
}.items()}
#: Table 2, last column: the row's average distortion.
PAPER_TABLE2_DISTORTION = {
    "FC10(1e-4)": 0.062, "FC10(1e-2)": 0.1, "FC10(1)": 0.14, "FC100-100-10": 0.058,
    "FC200-200-10": 0.065, "AE400-10": 0.086, "Gaussian noise, stddev=0.1": 0.1,
    "Gaussian noise, stddev=0.3": 0.3,
}

#: Table 3: the disjoint-training-set models' errors on P1, P2 and the test set, and their
#: "min av. distortion" (of the test images).
PAPER_TABLE3 = {
    "FC100-100-10": dict(error_p1=0.0, error_p2=0.024, test_error=0.02, distortion=0.062),
    "FC123-456-10": dict(error_p1=0.0, error_p2=0.025, test_error=0.021, distortion=0.059),
    "FC100-100-10'": dict(error_p1=0.023, error_p2=0.0, test_error=0.021, distortion=0.058),
}

#: Table 4: each model's error (columns, Table 3's models) on the test images distorted for each
#: row's model, amplified to stddev 0.1, or noised. (The noise rows' stddevs, and the amplified
#: rows' stddev, are lost from the source text.)
PAPER_TABLE4 = {row: dict(zip(_T3, errors)) for row, errors in {
    "Distorted for FC100-100-10": (1.00, 0.262, 0.059),
    "Distorted for FC123-456-10": (0.0625, 1.00, 0.051),
    "Distorted for FC100-100-10'": (0.082, 0.082, 1.00),
    "Gaussian noise (adversarial stddev)": (0.022, 0.026, 0.024),
    "Distorted for FC100-100-10 amplified": (1.00, 0.98, 0.43),
    "Distorted for FC123-456-10 amplified": (0.96, 1.00, 0.22),
    "Distorted for FC100-100-10' amplified": (0.27, 0.50, 1.00),
    "Gaussian noise (stddev 0.1)": (0.026, 0.028, 0.027),
}.items()}

#: Figure 7 (c): "Randomly distorted samples by Gaussian noise with stddev=1. Accuracy: 51%."
#: (the model is not named).
PAPER_NOISE_ACCURACY = 0.51

#: Section 4.2, Table 4's text: amplifying "magnifies the distortion on average by 40%".
PAPER_AMPLIFICATION_GAIN = 1.4

#: Section 4.2: a 100-100-10 network reaches 1.6% test error with weight decay alone and "below
#: 1.2%" with a pool of adversarial examples (per layer).
PAPER_ADVERSARIAL_TRAINING = dict(control=0.016, with_pool=0.012)
