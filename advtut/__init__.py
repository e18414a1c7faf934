"""advtut: the code behind the advtut book of reproducible adversarial-example tutorials.

Modules, one idea each: ``data`` (datasets as tensors) and ``download`` (verified downloads,
safe extraction); ``linear`` (a linear softmax classifier and its regions) and ``minimal_move``
(the smallest move to another class); ``iris`` (chapter 1's experiments); ``plotting`` and
``explorer`` (figures, the widget); ``results`` (the results JSON and the report);
``chapter`` and ``profiles`` (a chapter's parameters); ``book`` (papermill + Jupyter Book).

Naming used throughout: ``x`` inputs, ``y`` labels, ``target`` the class an attack aims for,
``model`` the classifier, ``eps`` a perturbation budget, ``c`` a penalty weight, ``profile``,
``device``, ``seed``.
"""

__version__ = "0.1.0"
