"""Chapter code: spectral."""
