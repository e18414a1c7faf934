"""Chapter 1's source: Schoenmakers, "I Pity the fool, Deep Learning style" (blog post, 2017).

The post prints its numbers truncated (not rounded) to three decimals; they are kept as printed.
"""
from __future__ import annotations

__all__ = ["POST_ACCURACY", "POST_FOOLING"]

#: The post's training accuracy ("96.6%", 0.9667 truncated to three decimals), from its
#: section fitting ``LogisticRegression`` on the petal length and width.
POST_ACCURACY = 0.966

#: The post's three fooling points (petal length, width in cm), the class it reports for each and
#: that class's probability, as printed (truncated to three decimals), from its section on the
#: far-field predictions (its Figure 4 and the printed ``predict_proba`` output).
POST_FOOLING = (
    ((0.1, 5.0), "setosa", 0.998),
    ((10.0, 10.0), "virginica", 1.0),
    ((5.0, -5.0), "versicolor", 0.992),
)
