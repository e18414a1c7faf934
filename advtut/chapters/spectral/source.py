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

#: Published certified L2 robustness on MNIST (pixels in [0, 1]) of certified training, as
#: printed: method, who reports the number (bib key lee2020lipschitz: Lee, Lee and Park,
#: 2020), the L2 radius, clean and certified ("verified") test accuracy, and where it is
#: printed. All three rows are Lee et al.'s runs, each trained at that radius; Tsuzuku et
#: al.'s own MNIST number at 1.58 was not found, so LMT appears as Lee et al. ran it.
#: Revisions of that README differ in BCP's row: the one read here prints 92.54 / 48.20,
#: another 92.41 clean and 47.95 verified (CAP's and LMT's rows agree); ``where`` says so.
PUBLISHED = (
    dict(method="BCP (Lee et al.)", reported_by="Lee et al. 2020", eps=1.58, clean=0.9254,
         certified=0.4820, where="the authors' code repository, README, MNIST table (another "
         "revision prints 92.41% clean, 47.95% certified)"),
    dict(method="CAP (Wong et al.)", reported_by="Lee et al. 2020", eps=1.58, clean=0.8839,
         certified=0.4395, where="the same table (Lee et al.'s run of CAP)"),
    dict(method="LMT (Tsuzuku et al.)", reported_by="Lee et al. 2020", eps=1.58,
         clean=0.8648, certified=0.4055, where="the same table (Lee et al.'s run of LMT)"),
)
