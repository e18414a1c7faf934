"""advtut: the code behind the advtut book of reproducible adversarial-example tutorials.

Three layers. The science library, one idea per module: ``data`` and ``download`` (datasets);
``models`` (the chapters' networks, each with ``activations``) and ``alexnet`` (torchvision's
AlexNet with the book's choices of weights); ``features`` (a network's layers as feature
matrices); ``training`` (full-batch L-BFGS and mini-batch training), ``projection`` (training
under a Lipschitz budget) and ``seeding`` (seeded blocks); ``evaluation`` (batched metrics in
eval mode); ``distances`` (L2, RMS, L-infinity per example); ``linear``, ``linear_images``,
``minimal_move`` and ``lagrangian`` (linear classifiers and their exact minimal moves);
``attacks`` (one algorithm per module); ``attribution``, ``spectral`` and ``directions`` (what a
trained network responds to, and how much it can stretch a change); ``plotting`` and
``explorer`` (figures and a widget). The book machinery, ``advtut.book``: running and building
the book, a chapter's parameters, profiles, results files, tables and caches. The chapters,
``advtut.chapters``: one package per chapter and the shared trained networks (``zoo``). The
library imports neither of the other two; the book's appendix has the API reference.

Naming used throughout: ``x`` inputs, ``y`` labels, ``target`` the class an attack aims for,
``model`` the classifier, ``eps`` a perturbation budget, ``c`` a penalty weight, ``profile``,
``device``, ``seed`` (the full table is on the book's conventions page).
"""

__version__ = "0.1.0"
