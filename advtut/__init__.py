"""advtut: the code behind the advtut book of reproducible adversarial-example tutorials.

Modules, one idea each (the README has the full table): ``data`` and ``download`` (datasets);
``models`` (the chapters' networks, each with ``activations``); ``training`` (full-batch L-BFGS
and mini-batch training); ``evaluation`` (batched metrics in eval mode); ``distances`` (L2, RMS,
L-infinity per example); ``linear``, ``linear_images`` and ``minimal_move`` (linear classifiers
and their exact minimal moves); ``lagrangian`` (the augmented Lagrangian they share with the
attacks); ``attacks`` (L-BFGS, adversarial sets, the template step); ``plotting`` (maps, images,
animations); ``tables`` and ``results`` (HTML tables, the results JSON and its gate); ``cache``;
``chapter``, ``profiles`` and ``book`` (running the chapters and the book). Chapter-only code
and the sources' numbers live in ``advtut.chapters``, which no general module imports.

Naming used throughout: ``x`` inputs, ``y`` labels, ``target`` the class an attack aims for,
``model`` the classifier, ``eps`` a perturbation budget, ``c`` a penalty weight, ``profile``,
``device``, ``seed``.
"""

__version__ = "0.1.0"
