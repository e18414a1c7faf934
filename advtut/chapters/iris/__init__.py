"""Chapter code: iris."""
