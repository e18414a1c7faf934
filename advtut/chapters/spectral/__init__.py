"""Chapter 5, spectral analysis of instability (notebooks/05_spectral.ipynb)."""
