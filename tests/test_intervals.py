"""advtut.intervals: Wilson's interval against its closed form, the median's order statistics
against an exact binomial computation and a coverage check."""
import math

import pytest
import torch

from advtut.intervals import median_interval, proportion_interval


def test_wilson_interval_matches_its_formula_and_stays_in_the_unit_interval():
    k, n, z = 45, 50, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = proportion_interval(k, n)
    assert low == pytest.approx(centre - half, abs=1e-12)
    assert high == pytest.approx(centre + half, abs=1e-12)
    assert proportion_interval(0, 20)[0] == 0.0 and proportion_interval(20, 20)[1] == 1.0
    assert 0 < proportion_interval(1, 20)[0] < 0.05


def test_median_interval_uses_the_binomial_order_statistics():
    v = torch.arange(1, 101, dtype=torch.float64)        # the sorted sample is its own index
    low, high = median_interval(v.flip(0))
    j = int(low)
    # P(B < j) <= 2.5% < P(B < j + 1) for B ~ Binomial(100, 1/2)
    cdf = lambda m: sum(math.comb(100, i) for i in range(m)) / 2 ** 100  # noqa: E731
    assert cdf(j) <= 0.025 < cdf(j + 1)
    assert high == 101 - j


def test_median_interval_covers_the_median_at_least_95_percent_of_the_time():
    g = torch.Generator().manual_seed(0)
    hits = 0
    for _ in range(400):
        low, high = median_interval(torch.empty(40).exponential_(generator=g))
        hits += low <= math.log(2) <= high
    assert hits / 400 >= 0.93          # nominal >= 95%; 400 draws: a standard error of 1.1%


def test_bad_inputs_are_refused_with_what_was_wrong():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        proportion_interval(5, 4)
    with pytest.raises(ValueError, match="level"):
        proportion_interval(1, 4, level=1.5)
    with pytest.raises(ValueError, match="NaN"):
        median_interval(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="1-D"):
        median_interval(torch.zeros(2, 2))
