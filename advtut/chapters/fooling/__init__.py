"""Chapter code: fooling."""
