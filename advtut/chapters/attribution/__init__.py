"""Chapter 7, attributions and gradient attacks (notebooks/07_attribution.ipynb)."""
