"""Chapter 2, breaking linear classifiers on ImageNet-like images
(notebooks/02_linear_imagenet.ipynb)."""
