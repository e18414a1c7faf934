"""Chapter 3's source: Szegedy et al. (2014), "Intriguing properties of neural networks",
section 3 ("Units of phi(x)"), Figures 1-4."""
from __future__ import annotations

__all__ = ["SOURCE"]

#: What the source says (section 3): rows of top images are "semantically related" both for
#: units and for random directions; "the natural basis is not better than a random basis".
#: It reports no number.
SOURCE = dict(claim="no distinction")
