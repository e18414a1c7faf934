"""Chapter 1, fooling multinomial logistic regression on Iris (notebooks/01_iris.ipynb)."""
