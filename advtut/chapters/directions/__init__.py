"""Chapter 3, units versus random directions (notebooks/03_units_directions.ipynb): ``source``,
``experiments`` (the families of directions and the networks), ``bases`` (every score on the
controls and on the real layers), ``report`` and ``plots``."""
