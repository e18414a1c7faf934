"""advtut.detection: the max-softmax score's order and the AUROC against exact references."""
import math

import pytest
import torch
from sklearn.metrics import roc_auc_score

from advtut.detection import auroc, max_softmax_score


def test_score_orders_as_the_probability_and_does_not_saturate():
    z = torch.tensor([[0.0, 1.0, 2.0], [5.0, 0.0, 0.0], [40.0, 0.0, 1.0], [50.0, 0.0, 1.0]])
    s = max_softmax_score(z)
    p = torch.softmax(z.double(), 1).max(1).values
    assert torch.allclose(s[:2], (p / (1 - p)).log()[:2], atol=1e-12)
    assert s[3] > s[2] > s[1] and p[2] == p[3] == 1.0     # the probability ties, the score not
    assert abs(float(s[3]) - (49 - math.log1p(math.exp(-1)))) < 1e-12   # -log(e^-50 + e^-49)


def test_auroc_matches_sklearn_and_the_pairwise_count():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(40, generator=g) + 0.7
    neg = torch.cat([torch.randn(30, generator=g), pos[:5]])            # ties across samples
    pos = torch.cat([pos, pos[:3]])                                       # and within
    a = auroc(pos, neg)
    y = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
    assert abs(a.value - roc_auc_score(y, torch.cat([pos, neg]))) < 1e-12
    pairs = (pos[:, None] > neg[None]).double() + 0.5 * (pos[:, None] == neg[None]).double()
    assert abs(a.value - float(pairs.mean())) < 1e-12
    # DeLong's variance from its definition: the placement values' variances
    v10, v01 = pairs.mean(1), pairs.mean(0)
    var = float(v10.var() / len(pos) + v01.var() / len(neg))
    assert abs((a.high - a.low) / 2 - 1.959963984540054 * var ** 0.5) < 1e-9
    assert a.low < a.value < a.high


def test_controls_perfect_chance_and_reversed():
    x = torch.arange(10.0)
    assert auroc(x + 100, x).value == 1.0 and auroc(x, x + 100).value == 0.0
    assert auroc(x, x).value == 0.5


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="negative"):
        auroc(torch.ones(3), torch.ones(0))
    with pytest.raises(ValueError, match="positive"):
        auroc(torch.tensor([float("nan")]), torch.ones(2))
    with pytest.raises(ValueError, match="logits"):
        max_softmax_score(torch.ones(3))
