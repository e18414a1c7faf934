"""advtut.attacks.backwork: the costs against explicit pairwise sums, the descent on a tiny CNN."""
import pytest
import torch
import torch.nn.functional as F

from advtut.attacks.backwork import (
    _falling,
    backwork,
    backwork_many,
    first_redraw,
    redraw,
    reference_directions,
    similarity_costs,
)
from advtut.models import MnistCNN

LAYERS = ("conv1", "conv2", "fc1", "logits")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    net = MnistCNN(widths=(4, 8), hidden=16).eval()
    with torch.no_grad():              # larger weights: logits that respond to the input
        net.fc1.weight.mul_(5)
        net.fc2.weight.mul_(20)
    return net


@pytest.fixture(scope="module")
def images():
    return torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def test_costs_equal_the_mean_pairwise_cosines(net, images):
    ref = reference_directions(net, images[:7], layers=LAYERS, batch_size=3)
    batch = images[7:]
    with torch.no_grad():
        acts = net.activations(batch)
        r, b = similarity_costs(acts, ref)
        ref_acts = net.activations(images[:7])
    for k in LAYERS:
        a, t = acts[k].flatten(1), ref_acts[k].flatten(1)
        cos = F.cosine_similarity(a[:, None], t[None], dim=2)             # (5, 7)
        assert float(r[k]) == pytest.approx(float(cos.mean()), abs=1e-5)
        pair = F.cosine_similarity(a[:, None], a[None], dim=2)
        off = pair[~torch.eye(5, dtype=torch.bool)]
        assert float(b[k]) == pytest.approx(float(off.mean()), abs=1e-5)
    _, single = similarity_costs(net.activations(batch[:1]), ref)
    assert all(float(v) == 0 for v in single.values())


def test_backwork_reaches_the_threshold_inside_the_box_and_repeats(net):
    ref = reference_directions(net, torch.rand(20, 1, 28, 28), layers=LAYERS)
    kw = dict(label=2, reference=ref, batch_size=4, threshold=0.99, lr=0.05, max_iter=500,
              seed=1, progress=False)
    out = backwork(net, **kw)
    assert out.success.all() and float(out.prob.min()) >= 0.99 and out.n_iter > 1
    assert out.success.dtype == torch.bool and out.success.shape == (4,)
    probs = torch.softmax(net(out.x), 1)[:, 2]
    assert torch.allclose(probs, out.prob, atol=1e-6)                # prob is the final batch's
    assert out.x.min() >= 0 and out.x.max() <= 1 and out.x.shape == (4, 1, 28, 28)
    again = backwork(net, **kw)
    assert torch.equal(again.x, out.x) and again.n_iter == out.n_iter
    assert set(out.reference_cost) == set(LAYERS) == set(out.batch_cost)


def test_stuck_inputs_are_the_ones_that_fell_at_every_save():
    h = [torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.4, 0.6, 0.4]),
         torch.tensor([0.3, 0.7, 0.35]), torch.tensor([0.2, 0.6, 0.3])]
    assert _falling(h, 3).tolist() == [True, False, True]
    assert _falling(h, 4).tolist() == [False, False, False]          # not enough saves yet
    h[2][0] = float("nan")                                            # re-drawn: a new history
    assert _falling(h, 3).tolist() == [False, False, True]


def test_bad_inputs_say_what_is_wrong(net):
    ref = reference_directions(net, torch.rand(4, 1, 28, 28), layers=("fc1",))
    with pytest.raises(ValueError, match=r"label must be an integer class in \[0, 10\)"):
        backwork(net, label=10, reference=ref, layer_coeffs=(1.0,), progress=False)
    with pytest.raises(ValueError, match="one coefficient per reference layer"):
        backwork(net, label=1, reference=ref, progress=False)
    with pytest.raises(ValueError, match="no layer 'fc9'"):
        reference_directions(net, torch.rand(4, 1, 28, 28), layers=("fc9",))
    with pytest.raises(ValueError, match="eval mode"):
        backwork(net.train(), label=1, reference=ref, layer_coeffs=(1.0,), progress=False)
    net.eval()


def test_centred_costs_and_the_margin_objective(net, images):
    ref = reference_directions(net, images[:7], layers=("input", "fc1"), center=True)
    centre = net.activations(images[:7])["fc1"].mean(0)
    assert torch.allclose(ref["fc1"][0], centre.detach(), atol=1e-5)
    with torch.no_grad():
        a = net.activations(images[7:])["fc1"] - centre
        t = net.activations(images[:7])["fc1"] - centre
        r, b = similarity_costs({"input": images[7:], "fc1": net.activations(images[7:])["fc1"]},
                                ref)
    cos = F.cosine_similarity(a[:, None], t[None], dim=2)
    assert float(r["fc1"]) == pytest.approx(float(cos.mean()), abs=1e-5)
    out = backwork(net, label=4, reference=ref, layer_coeffs=(0.0, 1.0), batch_size=3,
                   objective="margin", threshold=0.99, min_iter=40, max_iter=400, lr=0.05,
                   seed=0, progress=False)
    assert out.success.all() and out.n_iter >= 40     # polished for at least min_iter
    with pytest.raises(ValueError, match="objective must be one of"):
        backwork(net, label=4, reference=ref, layer_coeffs=(0.0, 1.0), objective="hinge",
                 progress=False)


def test_the_nearest_reading_is_the_largest_pairwise_cosine(net, images):
    ref = reference_directions(net, images[:7], layers=LAYERS, reading="nearest", batch_size=3)
    assert ref["fc1"].shape == (8, 16)                   # the centre and seven unit vectors
    with torch.no_grad():
        acts = net.activations(images[7:])
        r, _ = similarity_costs(acts, ref)
        ref_acts = net.activations(images[:7])
    for k in LAYERS:
        a, t = acts[k].flatten(1), ref_acts[k].flatten(1)
        cos = F.cosine_similarity(a[:, None], t[None], dim=2)             # (5, 7)
        assert float(r[k]) == pytest.approx(float(cos.max(1).values.mean()), abs=1e-5)
    # a reference set of one image: both readings are the same number
    one = {k: reference_directions(net, images[:1], layers=LAYERS, reading=reading)
           for k, reading in (("mean", "mean"), ("nearest", "nearest"))}
    with torch.no_grad():
        r1, _ = similarity_costs(acts, one["mean"])
        r2, _ = similarity_costs(acts, one["nearest"])
    assert all(float(r1[k]) == pytest.approx(float(r2[k]), abs=1e-6) for k in LAYERS)
    with pytest.raises(ValueError, match="reading must be one of"):
        reference_directions(net, images[:2], layers=LAYERS, reading="closest")


def test_redraw_replaces_only_the_masked_images_and_their_adam_state():
    x = torch.rand(4, 1, 3, 3, requires_grad=True)
    opt = torch.optim.Adam([x], lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (x ** 2).sum().backward()
        opt.step()
    before = x.detach().clone()
    state = {k: v.clone() for k, v in opt.state[x].items() if torch.is_tensor(v)}
    stuck = torch.tensor([False, True, False, True])
    fresh = torch.full((2, 1, 3, 3), 0.25)
    redraw(x, stuck, opt, fresh)
    assert torch.equal(x[stuck].detach(), fresh) and torch.equal(x[~stuck].detach(), before[~stuck])
    for name in ("exp_avg", "exp_avg_sq"):
        assert state[name][stuck].abs().max() > 0               # there was state to reset
        assert opt.state[x][name][stuck].abs().max() == 0
        assert torch.equal(opt.state[x][name][~stuck], state[name][~stuck])
    assert torch.equal(opt.state[x]["step"], state["step"])      # the shared step count stays
    with pytest.raises(ValueError, match="fresh must have shape"):
        redraw(x, stuck, opt, torch.zeros(3, 1, 3, 3))
    with pytest.raises(ValueError, match="stuck must be a bool mask"):
        redraw(x, torch.tensor([0, 1, 0, 1]), opt, fresh)


def test_a_run_where_the_redraw_fires_counts_every_slot(net):
    # a negative penalty pushes every target probability down: each input falls at every
    # save, so each is re-drawn every num_mono_dec_saves saves
    ref = reference_directions(net, torch.rand(4, 1, 28, 28), layers=("fc1",))
    out = backwork(net, label=3, reference=ref, layer_coeffs=(0.0,), penalty=-10.0,
                   batch_size=3, threshold=0.999, lr=0.05, max_iter=60, save_every=2,
                   num_mono_dec_saves=2, seed=0, progress=False)
    assert out.reinits > 0 and int(out.redrawn.sum()) == out.reinits
    assert out.redrawn.shape == (3,) and (out.redrawn > 0).all()
    calm = backwork(net, label=3, reference=ref, layer_coeffs=(0.0,), batch_size=3,
                    threshold=0.999, lr=0.05, max_iter=60, seed=0, progress=False)
    assert int(calm.redrawn.sum()) == calm.reinits


def test_first_redraw_finds_where_another_save_interval_would_fire(net):
    ref = reference_directions(net, torch.rand(4, 1, 28, 28), layers=("fc1",))
    kw = dict(label=3, reference=ref, layer_coeffs=(0.0,), penalty=-10.0, batch_size=3,
              threshold=0.999, lr=0.05, max_iter=40, num_mono_dec_saves=2, seed=0,
              progress=False)
    fired = backwork(net, save_every=3, **kw)
    quiet = backwork(net, save_every=1_000, **kw)      # never saves: the rule never fires
    assert fired.reinits > 0 and quiet.reinits == 0 and quiet.trace.shape == (41, 3)
    step = first_redraw(quiet.trace, save_every=3, num_mono_dec_saves=2, threshold=0.999,
                        max_iter=40)
    differs = (fired.trace != quiet.trace).any(1).nonzero()[0, 0]
    assert step is not None and int(differs) == step   # the same run up to the first re-draw
    assert torch.equal(fired.trace[:step], quiet.trace[:step])
    calm = backwork(net, **{**kw, "penalty": 10.0}, save_every=1)
    assert first_redraw(calm.trace, save_every=1, num_mono_dec_saves=2, threshold=0.999,
                        max_iter=40) is None and calm.reinits == 0


def test_many_batches_side_by_side_are_the_runs_alone(net):
    # labels that stop at different steps, one of them with re-draws (a negative penalty)
    ref = reference_directions(net, torch.rand(4, 1, 28, 28), layers=("conv2", "fc1"))
    kw = dict(reference=ref, layer_coeffs=(0.5, 1.0), batch_size=3, threshold=0.99,
              lr=0.05, max_iter=80, save_every=2, num_mono_dec_saves=2, progress=False)
    many = backwork_many(net, labels=[1, 4, 7], seeds=[0, 5, 9], **kw)
    alone = [backwork(net, label=k, seed=s, **kw) for k, s in ((1, 0), (4, 5), (7, 9))]
    assert len({r.n_iter for r in alone}) > 1                 # they stop at different steps
    # equal up to the rounding of a batched matrix product, which Adam (it rescales every
    # gradient) can grow over a long run: compare the early steps, and short runs whole
    for m, a in zip(many, alone):
        assert (m.label, m.n_iter, m.reinits) == (a.label, a.n_iter, a.reinits)
        assert torch.allclose(m.trace[:20], a.trace[:20], atol=1e-5)
        if a.n_iter < 50:
            assert torch.allclose(m.x, a.x, atol=1e-4)
            assert m.batch_cost == pytest.approx(a.batch_cost, abs=1e-4)
    hard = dict(kw, penalty=-10.0, layer_coeffs=(0.0, 0.0))
    m2 = backwork_many(net, labels=[3, 3], seeds=[0, 1], **hard)
    assert [r.reinits for r in m2] == [backwork(net, label=3, seed=s, **hard).reinits
                                       for s in (0, 1)] and m2[0].reinits > 0
    with pytest.raises(ValueError, match="one seed per label"):
        backwork_many(net, labels=[1, 2], seeds=[0], **kw)
