"""Chapter 4, blind spots: box-constrained L-BFGS on MNIST (notebooks/04_lbfgs_mnist.ipynb)."""
