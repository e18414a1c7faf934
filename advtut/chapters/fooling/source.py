"""Chapter 6's source: the write-up on backworking fooling images from noise for an MNIST CNN
(Alex Vig, "Backworking strongly classified spurious inputs in CNNs", 2015, bib key
``vig2015backworking``; it echoes Nguyen et al., 2015, "Deep Neural Networks are Easily Fooled").
"""
from __future__ import annotations

from advtut.attacks.backwork import SOURCE_SETTINGS

__all__ = ["SOURCE", "SETTINGS"]

#: The source's numbers: its settings (:data:`advtut.attacks.backwork.SOURCE_SETTINGS`: the
#: threshold 0.999, the softmax penalty, the reference, batch and log-spaced layer
#: coefficients of its cost) and its figure of results, eight images per label for all ten
#: labels.
SOURCE = dict(**SOURCE_SETTINGS, per_label=8, labels=10)

#: Every setting of the chapter's backworking with the source's settings, marked ``"source"``
#: (``why``: the source's words) or ``"ours"`` (``why``: the reason; the source is silent or
#: ambiguous): ``(setting, value, whose, why)``.
SETTINGS = (
    ("stopping rule", "smallest target probability in the batch >= 0.999", "source",
     "\"The minimum correct classification probability was set to 0.999.\""),
    ("softmax penalty", "10 × mean (1 − p)", "source",
     "\"we count the cost as the mean misclassification probability across the batch\"; "
     "\"The penalty at the softmax layer (for misclassification) was set to 10.\""),
    ("reference and batch coefficients", "1/2 each", "source",
     "\"The reference_cost_coeff and batch_cost_coeff were each set to 1/2.\""),
    ("layer coefficients", "1e-5, 1e-4, 1e-3, 1e-2, lowest layer first", "source",
     "\"intialized in the log-space, for each non-softmax layer, to [1e-5, 1e-4, 1e-3, 1e-2]\""),
    ("costed layers", "input, conv1, conv2, fc1", "source",
     "\"For each input/hidden layer\": the input and our CNN's three hidden layers"),
    ("which tensor of a layer", "before the ReLU (conv1, conv2, fc1); after it shown beside",
     "ours", "the source says \"neuron activations\", which reads most naturally as after "
             "the ReLU; before it, cosines can be negative, after it they cannot; the chapter "
             "computes both"),
    ("similarity", "cosine of the raw (uncentred) activation vectors", "ours",
     "the source says \"similarity between patterns of activity\" and names no measure"),
    ("one image against the reference set", "mean cosine over the set; nearest shown beside",
     "ours", "the source does not say how one image is compared with a set; the chapter "
             "computes both"),
    ("reference set", "the first n_reference training digits", "ours",
     "the source uses \"the training data\"; a subset keeps the cost cheap"),
    ("batch size", "8 per label", "ours",
     "inferred from the figure: \"eight input images ... for each of the 10 labels\""),
    ("start", "uniform noise in [0, 1]", "ours",
     "the source says \"randomly initialized inputs\" and names no distribution"),
    ("descent", "Adam on the pixels, learning rate 0.01", "ours",
     "the source says \"Using gradient descent\" and gives no optimizer or rate"),
    ("box", "pixels clipped to [0, 1] after every step", "ours",
     "the source does not say; outside the box an image is not an image"),
    ("re-draw rule", "re-drawn when its probability fell over the last saves", "source",
     "\"If an input's correct classification probability has been monotonically decreasing "
     "over num_mono_dec_saves saves ... then it is reinitialized\""),
    ("re-draw details", "only inputs below the threshold; n saves read as n falls across n + 1 "
     "saves", "ours", "the source does not say whether an input that reached the threshold "
                      "can be re-drawn, nor whether n saves means n or n - 1 falls"),
    ("num_mono_dec_saves", "5", "ours", "the source names the parameter, not its value"),
    ("a save", "every 10 steps; every step shown beside", "ours",
     "the source: \"a save is just everytime the inputs are propagated forward to obtain "
     "classification probabilities\", which can be read as every step; the text gives no "
     "interval, so the chapter replays its recorded runs under every-step saves"),
    ("step cap", "max_steps per label (profile)", "ours", "the source states none"),
)
