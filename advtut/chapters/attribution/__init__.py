"""Chapter code: attribution."""
