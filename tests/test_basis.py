"""advtut.basis on tiny constructed layers whose answers are known both ways."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from advtut.basis import (
    Readout,
    ablation_loss,
    aligned_code,
    class_selectivity,
    excess_kurtosis,
    ica_basis,
    projections,
    random_rotation,
    rotate,
)
from advtut.directions import compare, random_directions


def _layer(n=400, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64).relu()


def test_kurtosis_equals_scipys_and_sees_a_sparse_unit():
    from scipy.stats import kurtosis
    feats = _layer()
    v = random_directions(6, 4, seed=1)
    ours = excess_kurtosis(feats, v)
    ref = kurtosis((feats @ v.T).numpy(), axis=0, fisher=True, bias=True)
    assert np.allclose(ours.numpy(), ref, rtol=1e-12)
    # known both ways: a unit that fires on 1 image in 100 (Bernoulli(0.01): (1 - 6pq) / pq)
    sparse = torch.zeros(1000, 2, dtype=torch.float64)
    sparse[::100, 0] = 1.0
    sparse[:, 1] = torch.linspace(-1, 1, 1000, dtype=torch.float64)   # uniform: -1.2
    k = excess_kurtosis(sparse, torch.eye(2, dtype=torch.float64))
    p = 0.01
    assert float(k[0]) == pytest.approx((1 - 6 * p * (1 - p)) / (p * (1 - p)))
    assert float(k[1]) == pytest.approx(-1.2, abs=0.01)
    assert torch.isnan(excess_kurtosis(torch.ones(5, 1), torch.ones(1, 1))).all()


def test_class_selectivity_equals_a_direct_computation_and_ignores_shift_and_scale():
    y = torch.arange(10).repeat(20)
    feats = torch.zeros(200, 2, dtype=torch.float64)
    feats[y == 3, 0] = 1.0                                 # one class apart: sqrt(K - 1) = 3
    feats[:, 1] = y.double()                               # class means evenly spread
    s = class_selectivity(feats, torch.eye(2, dtype=torch.float64), y)
    assert float(s[0]) == pytest.approx(3.0)
    means = np.arange(10.0)
    assert float(s[1]) == pytest.approx((means.max() - means.mean()) / means.std())
    v = random_directions(2, 3, seed=0)
    moved = class_selectivity(2.5 * feats + 7.0, v, y)     # p -> 2.5 p + 7 <v, 1>
    assert torch.allclose(moved, class_selectivity(feats, v, y))
    with pytest.raises(ValueError, match=r"classes \[1\] have no images"):
        class_selectivity(feats, v, torch.where(y == 1, 0, y))


def _linear_readout(feats, w, b):
    return Readout(feats @ w.T + b, lambda v: v @ w.T, lambda z: z)


def test_ablation_equals_running_the_readout_on_ablated_features():
    g = torch.Generator().manual_seed(0)
    feats = _layer(n=300, d=5)
    w = torch.randn(3, 5, generator=g, dtype=torch.float64)
    w[:, 4] = 0.0                                          # the readout ignores coordinate 4
    b = torch.randn(3, generator=g, dtype=torch.float64)
    y = (feats @ w.T + b).argmax(1)
    ro = _linear_readout(feats, w, b)
    dirs = torch.cat([random_directions(5, 3, seed=1), torch.eye(5, dtype=torch.float64)])
    ours = ablation_loss(feats, dirs, y, ro)
    base = F.cross_entropy(feats @ w.T + b, y)
    for v, got in zip(dirs, ours):
        cut = feats - (feats @ v)[:, None] * v
        assert float(got) == pytest.approx(float(F.cross_entropy(cut @ w.T + b, y) - base),
                                           abs=1e-12)
    assert float(ours[-1]) == pytest.approx(0.0, abs=1e-12)      # known no: unused coordinate
    assert float(ours[3:7].max()) > 0.01                          # known yes: a used one
    with pytest.raises(ValueError, match="unit norm"):
        ablation_loss(feats, 2 * dirs, y, ro)


def test_a_rotation_keeps_the_gram_matrix_and_turns_units_into_random_directions():
    q = random_rotation(6, seed=3)
    assert torch.allclose(q @ q.T, torch.eye(6, dtype=torch.float64), atol=1e-12)
    assert torch.equal(q, random_rotation(6, seed=3))
    feats = _layer()
    g = torch.Generator().manual_seed(1)
    w, b = torch.randn(3, 6, generator=g, dtype=torch.float64), torch.zeros(3)
    y = (feats @ w.T).argmax(1)
    r = rotate(feats, _linear_readout(feats, w, b.double()), q)
    assert torch.allclose(r.features @ r.features.T, feats @ feats.T, atol=1e-10)
    # unit i of the rotated layer is the direction q[:, i] of the original
    units = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(ablation_loss(r.features, units, y, r.readout),
                          ablation_loss(feats, q.T.contiguous(), y,
                                        _linear_readout(feats, w, b.double())), atol=1e-12)
    assert torch.allclose(excess_kurtosis(r.features, units), excess_kurtosis(feats, q.T))
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        random_rotation(0, seed=0)


def test_ica_recovers_mixed_independent_sources():
    g = torch.Generator().manual_seed(0)
    n = 4_000
    # three Exp(1) sources (excess kurtosis 6): a unit-norm mix of them has kurtosis
    # 6 * sum(v_i^4) < 6, so the components are the least Gaussian directions
    sources = torch.empty(3, n, dtype=torch.float64).exponential_(generator=g)
    mixed = sources.T @ random_rotation(3, seed=1) * torch.tensor([1.0, 2.0, 0.5]).double()
    ica = ica_basis(mixed, None, n_components=3, seed=0)
    corr = np.corrcoef(np.concatenate([ica.sources.T.numpy(), sources.numpy()]))[:3, 3:]
    assert np.sort(np.abs(corr).max(1)).min() > 0.99      # every source found
    assert torch.allclose(ica.sources.std(0, unbiased=False), torch.ones(3, dtype=torch.float64))
    assert bool(((ica.sources ** 3).mean(0) >= 0).all()) and ica.converged
    recon = ica.mean + ica.sources @ ica.mixing.T
    assert torch.allclose(recon, mixed, atol=1e-8)
    # known both ways: the components are less Gaussian than random directions of the sources
    c = compare(excess_kurtosis(ica.sources, torch.eye(3, dtype=torch.float64)),
                excess_kurtosis(ica.sources, random_directions(3, 200, seed=2)))
    assert c.superiority > 0.75
    with pytest.raises(ValueError, match=r"n_components must be an integer in \[1, 3\]"):
        ica_basis(mixed, None, n_components=4, seed=0)


def test_aligned_codes_are_aligned_and_their_rotations_are_not():
    y = torch.arange(10).repeat(100)
    sparse, ro = aligned_code(y, dim=40, seed=0)
    owner = torch.arange(40) % 10
    assert bool((sparse[y[:, None] != owner[None]] == 0).all())   # a unit fires on its class only
    assert float((sparse > 0).double().mean()) == pytest.approx(0.05, abs=0.01)
    assert float((ro.rest(ro.pre).argmax(1) == y).double().mean()) > 0.9
    clustered, _ = aligned_code(y, dim=40, fire=1.0, sizes="equal", noise=0.05, seed=0)
    assert float(clustered.min()) >= 0 and float((clustered > 0.5).double().mean()) == 0.1
    units, rand = torch.eye(40, dtype=torch.float64), random_directions(40, 200, seed=1)
    for code in (sparse, clustered):
        for stat in (excess_kurtosis, lambda f, v: class_selectivity(f, v, y)):
            assert compare(stat(code, units), stat(code, rand)).low > 0.9      # yes
            turned = code @ random_rotation(40, seed=2)
            c = compare(stat(turned, units), stat(turned, rand))
            assert c.low < 0.5 < c.high or abs(c.superiority - 0.5) < 0.1     # no
    with pytest.raises(ValueError, match="sizes must be"):
        aligned_code(y, dim=40, sizes="big", seed=0)
    with pytest.raises(ValueError, match="dim must be an integer of at least the 10 classes"):
        aligned_code(y, dim=5, seed=0)


def test_projections_check_their_arguments():
    with pytest.raises(ValueError, match=r"directions must be a \(M, 6\) tensor"):
        projections(_layer(), torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"features must be a \(N, D\) tensor"):
        projections(torch.ones(3), torch.ones(2, 3))
