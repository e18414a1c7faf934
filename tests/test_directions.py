"""advtut.directions on constructed features whose answers are known."""
import pytest
import torch

from advtut.directions import (
    class_mean_directions,
    label_purity,
    mean_pairwise_cosine,
    random_directions,
    top_k_along,
    unit_directions,
)


def test_top_k_of_a_unit_are_the_k_largest_activations():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(50, 6, generator=g, dtype=torch.float64)
    top = top_k_along(feats, unit_directions(6, [2, 5]), k=4)
    assert top[0].tolist() == feats[:, 2].argsort(descending=True)[:4].tolist()
    assert top[1].tolist() == feats[:, 5].argsort(descending=True)[:4].tolist()


def test_random_directions_are_unit_seeded_and_signed():
    v = random_directions(100, 20, seed=3)
    assert torch.allclose(v.norm(dim=1), torch.ones(20, dtype=torch.float64))
    assert torch.equal(v, random_directions(100, 20, seed=3))
    assert 0.3 < float((v < 0).double().mean()) < 0.7


def test_class_means_find_their_class_and_scores_are_exact():
    # two classes in separate coordinates: the class-mean direction's top images are pure
    y = torch.tensor([0] * 5 + [1] * 5)
    feats = torch.zeros(10, 3, dtype=torch.float64)
    feats[:5, 0] = torch.arange(1.0, 6.0)
    feats[5:, 1] = torch.arange(1.0, 6.0)
    dirs = class_mean_directions(feats, y)
    top = top_k_along(feats, dirs, k=5)
    assert label_purity(top, y).tolist() == [1.0, 1.0]
    mixed = torch.tensor([[0, 1, 5, 6], [0, 1, 2, 5]])
    assert label_purity(mixed, y).tolist() == [0.5, 0.75]
    assert mean_pairwise_cosine(top, feats).tolist() == pytest.approx([1.0, 1.0])
    assert float(mean_pairwise_cosine(torch.tensor([[0, 5]]), feats)[0]) == pytest.approx(0.0)


def test_bad_inputs_say_what_is_wrong():
    feats = torch.rand(5, 3)
    with pytest.raises(ValueError, match=r"directions must be \(M, 3\)"):
        top_k_along(feats, torch.rand(2, 4), k=2)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 5\]"):
        top_k_along(feats, torch.rand(2, 3), k=6)
    with pytest.raises(ValueError, match=r"units must lie in \[0, 3\)"):
        unit_directions(3, [3])


def test_superiority_counts_pairs_and_ties():
    from advtut.directions import compare
    c = compare(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 2.0]))
    # pairs: (1>0), (1<2), (2>0), (2=2), (3>0), (3>2): 4 wins and one tie in 6
    assert c.superiority == pytest.approx(4.5 / 6)
    assert c.u == pytest.approx(4.5)
    assert c.low <= c.superiority <= c.high
    x = torch.arange(500.0)
    same = compare(x, x)
    assert same.superiority == pytest.approx(0.5) and same.p_value > 0.9
    assert 0.44 <= same.low < 0.5 < same.high <= 0.56 and same.negligible
    far = compare(torch.arange(10.0) + 100, torch.arange(10.0))
    assert far.superiority == 1.0 and far.low == 1.0 and far.p_value < 1e-3
    assert not far.negligible
    small = compare(torch.arange(10.0), torch.arange(10.0))      # too few to show anything
    assert small.low < 0.44 and small.high > 0.56 and not small.negligible
    assert compare(x, x.flip(0), seed=3) == compare(x, x.flip(0), seed=3)


def test_live_units_drop_ties_among_silent_images():
    from advtut.directions import live_units
    feats = torch.zeros(6, 3)
    feats[:, 0] = torch.arange(6.0)          # fires on five images
    feats[0, 1] = 1.0                         # fires on one image only
    assert live_units(feats, k=2).tolist() == [0]
    assert live_units(feats, k=1).tolist() == [0, 1]


def test_random_subsets_and_nonnegative_directions():
    from advtut.directions import random_subsets
    s = random_subsets(20, 50, 5, seed=1)
    assert s.shape == (50, 5) and all(len(set(r.tolist())) == 5 for r in s)
    assert int(s.min()) >= 0 and int(s.max()) < 20
    assert torch.equal(s, random_subsets(20, 50, 5, seed=1))
    v = random_directions(30, 10, seed=2, nonnegative=True)
    assert float(v.min()) >= 0 and torch.allclose(v.norm(dim=1), torch.ones(10, dtype=torch.float64))


def test_mean_overlap_counts_shared_images():
    from advtut.directions import mean_overlap
    assert mean_overlap(torch.tensor([[0, 1], [0, 1], [0, 1]])) == 1.0
    assert mean_overlap(torch.tensor([[0, 1], [2, 3]])) == 0.0
    # pairs: (r0, r1) share 1 of 2, (r0, r2) 0, (r1, r2) 1 -> mean 2 / (3 * 2)
    assert mean_overlap(torch.tensor([[0, 1], [1, 2], [2, 3]])) == pytest.approx(1 / 3)


def test_centred_class_means_beat_a_shared_positive_part():
    # every image has a large shared activity in coordinate 2; raw class means point mostly
    # along it, the centred ones along what tells the classes apart
    y = torch.tensor([0] * 4 + [1] * 4)
    feats = torch.zeros(8, 3, dtype=torch.float64)
    feats[:4, 0] = 1.0
    feats[4:, 1] = 1.0
    feats[:, 2] = torch.tensor([9.0, 5.0, 5.0, 5.0, 10.0, 10.0, 10.0, 10.0])
    raw = top_k_along(feats, class_mean_directions(feats, y, centered=False), k=4)
    assert y[raw[0]].tolist() == [1, 1, 1, 1]     # class 0's raw mean picks class-1 images
    centred = top_k_along(feats, class_mean_directions(feats, y), k=4)
    assert label_purity(centred, y).tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match=r"classes \[1\] have no images"):
        class_mean_directions(feats, torch.tensor([0] * 6 + [2] * 2))


def test_scores_check_their_rows():
    y = torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match="outside"):
        label_purity(torch.tensor([[0, 3]]), y)
    with pytest.raises(ValueError, match=r"long \(N,\) tensor of labels"):
        label_purity(torch.tensor([[0, 1]]), y.float())
    with pytest.raises(ValueError, match="top must be"):
        mean_pairwise_cosine(torch.tensor([0, 1]), torch.rand(3, 2))
    # chunking changes nothing
    feats = torch.rand(40, 5, generator=torch.Generator().manual_seed(0))
    top = torch.randint(0, 40, (30, 4), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(mean_pairwise_cosine(top, feats, chunk=7),
                          mean_pairwise_cosine(top, feats, chunk=1000))


def test_cluster_bootstrap_widens_the_interval_of_clustered_scores():
    from advtut.directions import compare
    g = torch.Generator().manual_seed(0)
    # 20 clusters of 25 scores: each cluster shares an offset, so 500 scores hold about 20
    # independent pieces of information
    offsets = torch.randn(20, generator=g, dtype=torch.float64).repeat_interleave(25)
    a = offsets + 0.1 * torch.randn(500, generator=g, dtype=torch.float64)
    b = torch.randn(500, generator=g, dtype=torch.float64)
    groups = torch.arange(20).repeat_interleave(25)
    naive, clustered = compare(a, b), compare(a, b, groups=groups)
    assert clustered.superiority == naive.superiority and clustered.n_groups == 20
    assert naive.n_groups is None
    assert clustered.high - clustered.low > 2 * (naive.high - naive.low)
    # one score per cluster: the cluster bootstrap is the plain one
    single = compare(a[:50], b[:50], groups=torch.arange(50))
    plain = compare(a[:50], b[:50])
    assert abs((single.high - single.low) - (plain.high - plain.low)) < 0.05
    with pytest.raises(ValueError, match="one cluster per score"):
        compare(a, b, groups=groups[:10])
    with pytest.raises(ValueError, match="NaN"):
        compare(torch.tensor([1.0, float("nan")]), b)


def test_units_needed_meets_its_half_width():
    from advtut.directions import units_needed
    # at P = 0.5 the target is the negligible band's half-width, 0.06
    n = units_needed(0.5, 1_000)
    assert n == 98                                         # (n + 1001) / (12 n 1000) < (0.06 / 1.96)^2
    var = (n + 1_000 + 1) / (12 * n * 1_000)
    assert 1.96 * var ** 0.5 < 0.06 < 1.96 * ((n - 1 + 1_001) / (12 * (n - 1) * 1_000)) ** 0.5
    # the hardest case is |P - 0.5| = 0.03: both targets are 0.03 away
    assert units_needed(0.53, 1_000) > units_needed(0.6, 1_000) > units_needed(0.8, 1_000)
    assert units_needed(0.53, 50) is None                  # 50 random directions cannot do it
    with pytest.raises(ValueError, match="superiority must lie in"):
        units_needed(1.0, 100)
