"""Chapter 6, fooling images grown from noise (notebooks/06_fooling_from_noise.ipynb)."""
