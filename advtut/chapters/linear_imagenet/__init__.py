"""Chapter code: linear_imagenet."""
