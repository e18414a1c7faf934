"""Chapter 7's source: the write-up on gradient x input attribution, the fast gradient sign method
and normalised-gradient steps on Fashion-MNIST and the flower photos (Benjamin Badger, "Input
Attribution and Adversarial Examples", bib key ``badger_attribution``): its reported
accuracies, the share of flower photos that resist the sign step, and its step and batch settings.
"""
from __future__ import annotations

__all__ = ["SOURCE"]

#: The source's numbers. Accuracies are test-set fractions; ``resist``: "around a third of all
#: inputs" keep their output under the sign step after 40 epochs (flowers); ``eps``: its step
#: on 0-1 images; ``batch_size``: the minibatch of its attribution-over-training videos.
SOURCE = dict(fashion_accuracy=0.91, flowers_accuracy=0.61, pair_accuracy=0.91, resist=1 / 3,
              eps=0.01, batch_size=16, fashion_params=180_000, resist_epochs=40,
              flowers_attribution_epochs=25)
