"""Chapter code: blindspots."""
