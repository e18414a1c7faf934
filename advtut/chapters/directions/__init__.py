"""Chapter 3, units versus random directions (notebooks/03_units_directions.ipynb)."""
