"""advtut.attribution against exact references (a linear model) and against captum."""
import pytest
import torch
from torch import nn

from advtut.attribution import (
    TrainingRecorder,
    cascading_randomisation,
    edge_map,
    gradient,
    gradient_x_input,
    integrated_gradients,
    max_normalise,
    occlusion,
    quadrature,
    rank_correlation,
)


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double().eval()


@pytest.fixture
def x():
    return torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_on_a_linear_model_everything_is_exact(x):
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).double().eval()
    t = torch.tensor([0, 1, 2, 0, 1])
    w = lin[1].weight[t].detach().view(5, 1, 8, 8)
    assert torch.allclose(gradient(lin, x, target=t), w)
    assert torch.allclose(gradient_x_input(lin, x, target=t), w.abs() * x)
    ig = integrated_gradients(lin, x, target=t, steps=3, rule="riemann_left")
    assert torch.allclose(ig.attributions, w * x) and ig.gap.abs().max() < 1e-12


@pytest.mark.parametrize("rule", ["gausslegendre", "trapezoid", "riemann_middle"])
def test_quadrature_weights_sum_to_one_and_integrate_exactly(rule):
    a, w = quadrature(rule, 8)
    assert float(w.sum()) == pytest.approx(1.0) and a.min() >= 0 and a.max() <= 1
    assert float((w * a).sum()) == pytest.approx(0.5)                  # integral of a
    if rule == "gausslegendre":
        assert float((w * a ** 15).sum()) == pytest.approx(1 / 16)      # degree 2n - 1


def test_riemann_nodes_are_where_their_names_say():
    n = 4
    assert quadrature("riemann_left", n)[0].tolist() == [0, 0.25, 0.5, 0.75]
    assert quadrature("riemann_right", n)[0].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert quadrature("riemann_middle", n)[0].tolist() == [0.125, 0.375, 0.625, 0.875]
    assert quadrature("trapezoid", n)[1].tolist() == pytest.approx([1 / 6, 1 / 3, 1 / 3, 1 / 6])


def test_integrated_gradients_matches_captum_and_its_gap_shrinks(x):
    from captum.attr import IntegratedGradients as CaptumIG

    net = _cnn()
    t = net(x).argmax(1)
    ours = integrated_gradients(net, x, steps=50, batch_size=64)
    theirs = CaptumIG(net).attribute(x, target=t, n_steps=50, method="gausslegendre")
    assert torch.allclose(ours.attributions, theirs, atol=1e-10)
    coarse = integrated_gradients(net, x, steps=4)
    assert ours.gap.abs().max() <= coarse.gap.abs().max() + 1e-12


def test_input_x_gradient_and_occlusion_match_captum(x):
    from captum.attr import InputXGradient, Occlusion

    net = _cnn()
    t = net(x).argmax(1)
    assert torch.allclose(gradient_x_input(net, x, absolute=False),
                          InputXGradient(net).attribute(x, target=t))
    theirs = Occlusion(net).attribute(x, target=t, sliding_window_shapes=(1, 3, 3),
                                      strides=(1, 2, 2), baselines=0.0)
    assert torch.allclose(occlusion(net, x, patch=3, stride=2), theirs.double(), atol=1e-6)


def test_bad_inputs_say_what_is_wrong(x):
    net = _cnn()
    with pytest.raises(ValueError, match="target must be long class indices"):
        gradient(net, x, target=[0, 1])
    with pytest.raises(ValueError, match=r"target must lie in \[0, 3\)"):
        gradient(net, x, target=torch.full((5,), 7))
    with pytest.raises(ValueError, match="rule must be one of"):
        integrated_gradients(net, x, rule="simpson")
    with pytest.raises(ValueError, match="baseline must have x's shape"):
        integrated_gradients(net, x, baseline=torch.zeros(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="patch"):
        occlusion(net, x, patch=9, stride=1)
    with pytest.raises(ValueError, match=r"stride \(4\) must be at most patch \(3\)"):
        occlusion(net, x, patch=3, stride=4)
    with pytest.raises(ValueError, match="eval mode"):
        gradient(net.train(), x)


def test_rank_correlation_and_max_normalise():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64)
    assert torch.allclose(rank_correlation(a, a.exp()), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(rank_correlation(a, -a), -torch.ones(3, dtype=torch.float64))
    from scipy.stats import spearmanr
    b = torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64)
    ref = [spearmanr(a[i].flatten(), b[i].flatten()).statistic for i in range(3)]
    assert torch.allclose(rank_correlation(a, b), torch.tensor(ref, dtype=torch.float64))
    tied = torch.tensor([[0.0, 0.0, 0.0, 1.0, 2.0, 0.0], [3.0, 1.0, 1.0, 0.0, 0.0, 2.0]])
    other = torch.tensor([[0.0, 0.0, 0.5, 0.0, 2.0, 1.0], [1.0, 1.0, 2.0, 0.0, 3.0, 3.0]])
    ref = [spearmanr(tied[i], other[i]).statistic for i in range(2)]      # ties: mean ranks
    assert torch.allclose(rank_correlation(tied, other), torch.tensor(ref, dtype=torch.float64))
    assert torch.isnan(rank_correlation(torch.ones(1, 5), torch.arange(5.0)[None])).all()
    m = max_normalise(a)
    assert torch.allclose(m.flatten(1).abs().amax(1), torch.ones(3, dtype=torch.float64))
    assert max_normalise(torch.zeros(2, 4)).abs().max() == 0
    with pytest.raises(ValueError, match="same shape"):
        rank_correlation(a, b[:2])


def test_edge_map_finds_a_vertical_edge_and_nothing_on_flat_images():
    x = torch.zeros(1, 3, 8, 8, dtype=torch.float64)
    x[..., 4:] = 1.0                                        # a step between columns 3 and 4
    e = edge_map(x)
    assert e.shape == (1, 1, 8, 8)
    assert torch.allclose(e[0, 0, 3:5, 3:5], torch.full((2, 2), 3 * 0.5, dtype=torch.float64))
    assert e[0, 0, 2:6, :3].abs().max() == 0 and e[0, 0, 2:6, 5:7].abs().max() == 0
    assert edge_map(torch.full((2, 1, 5, 5), 0.3))[:, :, 1:-1, 1:-1].abs().max() < 1e-7


def test_training_recorder_integrates_the_gradient_over_training(x):
    from advtut.training import train_minibatch

    net = _cnn().train()
    y = torch.tensor([0, 1, 2, 0, 1])
    rec = TrainingRecorder(x[:2], y[:2], every=5)
    seen, modes, maps = [], [], [gradient_x_input(net.eval(), x[:2])]
    net.train()

    def callback(step, model):
        rec(step, model)
        modes.append(all(m.training for m in model.modules()))   # the recorder restores them
        seen.append(gradient(model.eval(), x[:2], target=y[:2]))
        maps.append(gradient_x_input(model, x[:2]))
        model.train()

    rec.start(net)
    train_minibatch(net, x, y, epochs=4, batch_size=2, lr=0.1, seed=0, callback=callback,
                    progress=False)
    rec.finish()
    assert rec.frame_steps == [0, 5, 10, 12]       # 3 batches x 4 epochs; finish() keeps 12
    moved = [float(((b - a).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)).mean())
             for a, b in zip(maps, maps[1:])]
    assert rec.changes == pytest.approx(moved)
    assert torch.allclose(rec.frames[-1], max_normalise(maps[-1]).float())
    assert torch.allclose(rec.integrated, x[:2] * torch.stack(seen).mean(0))
    assert modes == [True] * 12
    frames = torch.stack(rec.frames)
    assert frames.shape == (4, 2, 1, 8, 8) and frames.abs().max() <= 1
    with pytest.raises(ValueError, match="every"):
        TrainingRecorder(x, y, every=0)


def test_cascading_randomisation_changes_layers_from_the_top_only():
    net = _cnn()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = cascading_randomisation(net, ["4", "0"], seed=1)
    assert [name for name, _ in out] == ["4", "0"]
    top, both = out[0][1].state_dict(), out[1][1].state_dict()
    assert not torch.equal(top["4.weight"], before["4.weight"])
    assert torch.equal(top["0.weight"], before["0.weight"])
    assert torch.equal(both["4.weight"], top["4.weight"])
    assert not torch.equal(both["0.weight"], before["0.weight"])
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    again = cascading_randomisation(net, ["4", "0"], seed=1)
    assert torch.equal(again[1][1].state_dict()["0.weight"], both["0.weight"])
    with pytest.raises(ValueError, match="no module 'conv9'"):
        cascading_randomisation(net, ["conv9"], seed=0)
    with pytest.raises(ValueError, match="no parameters"):
        cascading_randomisation(net, ["1"], seed=0)


def test_captums_riemann_trapezoid_is_not_the_textbook_rule():
    """What the chapter says about captum: its trapezoid weights sum to (n - 1) / n, ours to 1."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, _ = approximation_parameters("riemann_trapezoid")
    assert sum(step_sizes(50)) == pytest.approx(49 / 50)
    assert float(quadrature("trapezoid", 50)[1].sum()) == pytest.approx(1.0)
