"""Chapter 2's source: Karpathy, "Breaking Linear Classifiers on ImageNet" (blog post, 2015).

Every number the chapter compares against, as the post states it. Pixel units are the post's
Caffe units (0-255) unless the name says otherwise.
"""
from __future__ import annotations

__all__ = ["TOY_X", "TOY_W", "SOURCE_TOY", "SOURCE_INIT_LOSS", "SOURCE_LR", "SOURCE_ACCURACY",
           "SOURCE_TOP1_PAIRS", "ALEXNET_DECAY", "SOURCE_DECAY", "SOURCE_TARGETS"]

#: The toy binary logistic regression of the post's section "Linear classifiers": the input
#: ``x`` and weights ``w`` in 10 dimensions (no bias).
TOY_X = (2, -1, 3, -2, 2, 2, 1, -4, 5, 1)
TOY_W = (-1, -1, 1, -1, 1, -1, 1, 1, -1, 1)
#: The same section: score and P(class 1) before and after ``x + 0.5 w``.
SOURCE_TOY = dict(score=-3.0, p=0.0474, score_ad=2.0, p_ad=0.88)
#: Section "Training a linear classifier" (its lessons): initial loss of a 1000-class model,
#: "ballpark 7.0" at a small init, "about 80" at std 0.01.
SOURCE_INIT_LOSS = {1e-4: 7.0, 1e-2: 80.0}
#: The same lessons: the plain-SGD learning rate that worked, in 0-255 pixel units
#: ("about 1e-7").
SOURCE_LR = 1e-7
#: The same section: the best model's validation accuracy on ImageNet-1k (1000 classes),
#: about 3.0% top-1 and 10% top-5.
SOURCE_ACCURACY = {1: 0.030, 5: 0.10}
#: Section "Regularization": the accuracy pairs, noisy-template (weak decay) vs smooth-template
#: (strong decay) models, in its text (3.0% vs 1.6%) and in a figure caption (2.6% vs 1.4%);
#: 2.8%: its "very low regularization" model, decay not stated.
SOURCE_TOP1_PAIRS = dict(text=(0.030, 0.016), caption=(0.026, 0.014), very_low=0.028)
#: The lessons' weight decays (Caffe units): AlexNet's default, "almost negligible" with
#: 12,288 inputs, and the value the post ended up needing.
ALEXNET_DECAY, SOURCE_DECAY = 0.0005, 100.0
#: The fooling targets of the post's figures (section "Fooling a linear classifier"); Tiny
#: ImageNet has both.
SOURCE_TARGETS = ("goldfish", "school bus")
