"""Chapter 5's source: Szegedy et al. (2014), "Intriguing properties of neural networks",
section 4.3 and Table 5 ("Frame bounds of each rectified layer of the network from [9]",
Krizhevsky et al.'s AlexNet); https://arxiv.org/abs/1312.6199, bib key ``szegedy2014intriguing``.
"""
from __future__ import annotations

__all__ = ["TABLE5", "PUBLISHED"]

#: Table 5 as printed: layer, the paper's size (C x k x k x D or in x out), stride, upper bound.
#: conv4's and FC1's bounds are empty in our copy of the paper (missing, not zero).
TABLE5 = (
    ("conv1", "3×11×11×96", 4, 2.75),
    ("conv2", "96×5×5×256", 1, 10.0),
    ("conv3", "256×3×3×384", 1, 7.0),
    ("conv4", "384×3×3×384", 1, None),
    ("conv5", "384×3×3×256", 1, 11.0),
    ("fc1", "9216×4096", None, None),
    ("fc2", "4096×4096", None, 4.0),
    ("fc3", "4096×1000", None, 4.0),
)

#: Published certified L2 robustness on MNIST (pixels in [0, 1]) of Lipschitz-based training,
#: as printed: method, the paper that reports the number (bib key), the L2 radius, clean and
#: certified ("verified") accuracy on the test set, and where in that paper it is printed.
PUBLISHED = (
    dict(method="BCP (Lee et al.)", paper="lee2020lipschitz", eps=1.58, clean=0.9254,
         certified=0.4820, where="the authors' repository README, MNIST table"),
    dict(method="CAP (Wong et al.)", paper="lee2020lipschitz", eps=1.58, clean=0.8839,
         certified=0.4395, where="the same table, as reported by Lee et al."),
    dict(method="LMT (Tsuzuku et al.)", paper="lee2020lipschitz", eps=1.58, clean=0.8648,
         certified=0.4055, where="the same table, as reported by Lee et al."),
)
