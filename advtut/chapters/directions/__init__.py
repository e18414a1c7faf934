"""Chapter code: directions."""
