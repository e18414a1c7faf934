"""Chapter 6's source: the write-up on backworking fooling images from noise for an MNIST CNN
(Alex Vig, "Backworking strongly classified spurious inputs in CNNs", 2015, bib key
``vig2015backworking``; it echoes Nguyen et al., 2015, "Deep Neural Networks are Easily Fooled").
"""
from __future__ import annotations

from advtut.attacks.backwork import SOURCE_SETTINGS

__all__ = ["SOURCE"]

#: The source's numbers: its settings (:data:`advtut.attacks.backwork.SOURCE_SETTINGS`: the
#: threshold 0.999, the softmax penalty, the reference, batch and log-spaced layer
#: coefficients of its cost) and its figure of results, eight images per label for all ten
#: labels.
SOURCE = dict(**SOURCE_SETTINGS, per_label=8, labels=10)
